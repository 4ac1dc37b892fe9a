"""Small shared helpers: seeding, atomic file writes, output-folder checks, cache folder."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from deepmt.errors import DeepMTError, DiskFullError, OutputError, os_error_reason


def seed_everything(seed: int, deterministic: bool | None = True) -> None:
    """The one seeding function: Python, NumPy and torch (CPU and CUDA).

    Same seed and same device -> same numbers. ``deterministic`` switches torch's deterministic algorithms
    on (warn-only, so no op is refused; cuDNN deterministic, without autotuning) or off (cuDNN autotuning on:
    ``train.deterministic``); ``None`` leaves the switches as they are (a DataLoader worker seeding its copy of
    NumPy).
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic is not None:
        torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)
        # cuDNN autotuning picks among algorithms by timing, which differs between runs: off when deterministic
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = bool(deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` where Linux offers it (setting and restoring it
    instead would briefly widen the permissions of files other threads create meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Below this many free bytes (for an unprivileged writer) a file system counts as full when a write failed
#: without saying why (torch's zip writer reports a failed write as ``RuntimeError ... unexpected pos``).
FULL_BELOW_BYTES = 1 << 20

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes an unprivileged process may still write on the file system of ``path`` (or of its nearest existing
    parent); ``None`` if unknown."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def disk_full_errno(exc: BaseException, path: str | os.PathLike | None = None) -> int | None:
    """``errno.ENOSPC`` / ``errno.EDQUOT`` if ``exc`` is a write that failed because the file system of ``path`` is
    full, else ``None``. Looks through the exception's chain (torch raises its ``RuntimeError`` while handling the
    ``OSError`` of the failed write), and, for a ``RuntimeError`` or an ``OSError`` that names no reason, at the
    free space left there (call it before the partial file is removed)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return e.errno
        e = e.__cause__ or e.__context__
    if path is not None and (isinstance(exc, RuntimeError) or (isinstance(exc, OSError) and exc.errno is None)):
        free = free_bytes(path)
        if free is not None and free < FULL_BELOW_BYTES:
            return errno.ENOSPC
    return None


@contextlib.contextmanager
def write_errors(path: str | os.PathLike, *, temporary: str | os.PathLike | None = None) -> Iterator[None]:
    """The one place a writer's failure goes through: a full file system inside the block (an ``OSError``
    ENOSPC/EDQUOT, or torch's ``RuntimeError`` from a failed write) becomes
    :class:`deepmt.errors.DiskFullError` naming ``path`` (``PATH: no space left on the device; ...``), and any
    other ``OSError`` that names no file (or names ``temporary``, the file actually written) is raised again
    naming ``path``. Files, folders and in-memory stores wrap their writes in it (:func:`atomic_path` does)::

        with write_errors(out_dir):
            image.save(out_dir / "a.png")
    """
    try:
        yield
    except DeepMTError:
        raise
    except (OSError, RuntimeError) as exc:
        code = disk_full_errno(exc, temporary if temporary is not None else path)
        if code is not None:
            raise DiskFullError(path, code) from exc
        if not isinstance(exc, OSError) or exc.errno is None:
            raise
        if exc.filename not in (None, *(() if temporary is None else (str(temporary),))):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash inside the block never leaves a half-written ``path`` behind::

        with atomic_path("figures/01_gap.png") as tmp:
            fig.savefig(tmp, format="png")

    A failure to write goes through :func:`write_errors`: a full disk raises
    :class:`deepmt.errors.DiskFullError` naming ``path`` (also when torch reports it as a ``RuntimeError``), any
    other ``OSError`` about the temporary file names ``path`` instead; the temporary file is removed either way.
    The file gets the mode of any newly created file (``0666`` less the umask, e.g. ``0644``), not the
    temporary file's private ``0600``, so that others on a shared machine can read results and checkpoints.
    """
    path = Path(path)
    with write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".tmp", dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with write_errors(path, temporary=tmp_path):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~current_umask())
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Make sure files can be created in folder ``path`` (or, if it does not exist yet, in its nearest existing
    parent, where it would be made), *before* a command spends time on work it could not save.

    Nothing is left behind: the probe is an anonymous temporary file. Raises :class:`deepmt.errors.OutputError`
    naming ``what`` (e.g. ``"--out"``) and the reason: a file in the way, no permission, read-only file system.
    """
    path = Path(path).expanduser()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        where = "" if probe == path else f" (in {probe})"
        raise OutputError(f"{what} {path}: cannot write there{where}: {os_error_reason(exc)}") from exc
    return path


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary folder *inside* ``out`` (created if absent); when the block succeeds, move its
    entries into ``out`` (folders first, files last) and remove it.

    Unlike writing a sibling folder and renaming it onto ``out``, this never removes or replaces ``out`` itself,
    so ``out`` may be an existing (empty) mount point, where ``rmdir`` fails with EBUSY and a rename would cross
    file systems. If the block fails, the temporary folder is removed, and so is ``out`` if this call made it.
    """
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".staging.", suffix=".tmp", dir=out))
    ok = False
    try:
        yield tmp
        for entry in sorted(tmp.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            os.replace(entry, out / entry.name)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not ok:
            shutil.rmtree(out, ignore_errors=True)


def cache_root() -> Path:
    """The on-disk cache's root (not created): ``$DEEPMT_CACHE`` or ``~/.cache/deepmt``."""
    return Path(os.environ.get("DEEPMT_CACHE", Path.home() / ".cache" / "deepmt")).expanduser()


def cache_dir(*parts: str) -> Path:
    """A folder of the on-disk cache (synthetic datasets, trained models), created if needed; see :func:`cache_root`."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    """The checkout's root (where ``figures/`` and ``results/`` live) when run from a clone, else the cwd."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def host_available_bytes() -> int | None:
    """Memory a new allocation can get on this machine without swapping: ``MemAvailable`` of ``/proc/meminfo``
    (Linux), else free physical pages (``os.sysconf``); ``None`` if neither says."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None
