"""Errors meant for the user. The CLI prints them as one clear line, without a traceback.

Each message names the file (or setting) and the problem, e.g.
``DataError("IDRiD/B. Disease Grading/.../IDRiD_001.jpg: truncated JPEG (cannot decode)")``.
"""

from __future__ import annotations

import errno


class DeepMTError(Exception):
    """Base class of every error deepmt raises on purpose."""


class DataError(DeepMTError, ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ConfigMismatchError(DeepMTError):
    """A checkpoint or cache entry was made with a different config."""


class SettingError(ConfigMismatchError, KeyError, ValueError):
    """A setting (``--set KEY=VALUE``, a notebook override, ``DEEPMT_PROFILE``) names no config field, or has a value
    its field does not allow. Also a ``KeyError``/``ValueError``, as config overrides raised before."""

    __str__ = Exception.__str__  # KeyError would quote the message


class TrainingError(DeepMTError, RuntimeError):
    """Training cannot go on (e.g. a NaN/Inf loss term)."""


class OutputError(DeepMTError):
    """An output file or folder cannot be written: missing or read-only folder, a file in the way, disk full."""


class DiskFullError(OutputError, OSError):
    """A file could not be written because its file system is full (or the user's quota is spent): ``PATH: no space
    left on the device; ...``. Also an ``OSError`` with ``errno`` ENOSPC (EDQUOT) and ``filename`` PATH, as the
    write failure it stands for. Raised by :func:`deepmt.utils.write_errors`, the one place every writer's failure
    goes through."""

    def __init__(self, path, code: int = errno.ENOSPC):
        super().__init__(f"{path}: {_OS_HINTS.get(code, _OS_HINTS[errno.ENOSPC])}")
        self.errno, self.strerror, self.filename = code, _OS_HINTS.get(code, _OS_HINTS[errno.ENOSPC]), str(path)

    __str__ = Exception.__str__  # OSError would show "[Errno 28] ..."


class ResourceError(DeepMTError):
    """What was asked cannot fit this machine (e.g. a model's estimated memory exceeds the memory available)."""


#: What to tell the user for the operating-system errors that a bad output (or input) location causes.
_OS_HINTS = {
    errno.ENOSPC: "no space left on the device; free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded; free some space or write somewhere else",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "read-only file system; choose a writable folder",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENAMETOOLONG: "file name too long",
}


def os_error_reason(exc: OSError) -> str:
    """What went wrong in an :class:`OSError`, in words (without the path)."""
    return _OS_HINTS.get(exc.errno) or exc.strerror or str(exc)


def describe_os_error(exc: OSError) -> str:
    """One line for an :class:`OSError`: the path(s) it concerns and what went wrong."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {os_error_reason(exc)}" if paths else os_error_reason(exc)
