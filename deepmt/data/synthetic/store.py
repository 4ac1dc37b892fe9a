"""The synthetic benchmark's on-disk cache: each split generated once, checked on every load.

A split is generated once and cached under ``deepmt.utils.cache_dir("synthetic", key)/<split>-n<N>/`` as
``.npy`` files (memory-mapped on load): ``hr`` (N,H,W,3) uint8, ``lr`` (N,H/s,W/s,3) uint8 = ``degrade(hr)``,
``masks`` (N,4,H,ceil(W/8)) bit-packed 0/1, ``fov`` (N,H,ceil(W/8)) bit-packed, ``grade`` (N,), ``meta``
(N,K) int32 (columns in the manifest), and ``manifest.json`` (shapes, CRC32 of every file, the config).
The key hashes every field that changes the data. A missing or corrupt file is detected on load (CRC32)
and the split regenerated; folders are written under a temporary name and renamed when complete. The memory-mapped
files are allocated in full before they are filled, so a full disk is a :class:`deepmt.errors.DiskFullError` naming
the split's folder (writing into the map of a sparse file would kill the process with SIGBUS instead).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np

from deepmt.data.synthetic.dataset import SyntheticFundus
from deepmt.data.synthetic.generate import GENERATOR_VERSION, META_COLUMNS, generate_sample
from deepmt.data.synthetic.rules import SPLIT_IDS
from deepmt.errors import DataError


def cache_key(data_cfg) -> str:
    """Hash of every field that changes the generated images (not the split sizes: see :func:`_split_dir`)."""
    blob = {
        "version": GENERATOR_VERSION,
        "hr_size": data_cfg.hr_size,
        "scale": data_cfg.scale,
        "seed": data_cfg.seed,
        "synth": dataclasses.asdict(data_cfg.synth),
        "degradation": dataclasses.asdict(data_cfg.degradation),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_size(data_cfg, split: str) -> int:
    try:
        return int({"train": data_cfg.n_train, "val": data_cfg.n_val, "test": data_cfg.n_test}[split])
    except KeyError:
        raise DataError(f"unknown split {split!r}; choose one of {tuple(SPLIT_IDS)}") from None


def _split_dir(data_cfg, split: str) -> Path:
    from deepmt.utils import cache_dir

    return cache_dir("synthetic", cache_key(data_cfg)) / f"{split}-n{split_size(data_cfg, split)}"


_FILES = ("hr", "lr", "masks", "fov", "grade", "meta")


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _verify(folder: Path) -> dict | None:
    """The manifest if every file is present with the recorded shape and CRC32, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        for name in _FILES:
            info = manifest["files"][name]
            path = folder / f"{name}.npy"
            arr = np.load(path, mmap_mode="r")
            if list(arr.shape) != info["shape"] or str(arr.dtype) != info["dtype"] or _crc32(path) != info["crc32"]:
                return None
        return manifest
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError):
        return None


def _reserve(path: Path) -> None:
    """Allocate the whole file ``path`` on disk now: writing into a memory map of a sparse file on a full disk
    kills the process (SIGBUS) instead of raising ``OSError`` (ENOSPC), as this does."""
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
        except AttributeError:  # pragma: no cover - no posix_fallocate on this platform
            pass


def _memmap(path: Path, shape: tuple[int, ...]) -> np.memmap:
    from numpy.lib.format import open_memmap

    arr = open_memmap(path, "w+", np.uint8, shape)
    _reserve(path)
    return arr


def _generate_split(data_cfg, split: str, folder: Path, progress: bool = True) -> None:
    """Generate a whole split into ``folder`` (written under a temporary name, then renamed); a full disk raises
    :class:`deepmt.errors.DiskFullError` naming ``folder``, with the temporary folder removed."""
    from deepmt.utils import write_errors

    with write_errors(folder):
        _generate_split_into(data_cfg, split, folder, progress)


def _generate_split_into(data_cfg, split: str, folder: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    n_img = split_size(data_cfg, split)
    H = data_cfg.hr_size
    h = H // data_cfg.scale
    wb = (H + 7) // 8
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        arrays = {
            "hr": _memmap(tmp / "hr.npy", (n_img, H, H, 3)),
            "lr": _memmap(tmp / "lr.npy", (n_img, h, h, 3)),
            "masks": _memmap(tmp / "masks.npy", (n_img, 4, H, wb)),
            "fov": _memmap(tmp / "fov.npy", (n_img, H, wb)),
        }
        grades = np.zeros(n_img, dtype=np.int64)
        meta = np.zeros((n_img, len(META_COLUMNS)), dtype=np.int32)
        desc = f"synthetic {split} ({H}px, x{data_cfg.scale})"
        for i in tqdm(range(n_img), desc=desc, disable=not progress, mininterval=1.0, leave=False):
            smp = generate_sample(i, data_cfg, split)
            arrays["hr"][i] = smp["hr"]
            arrays["lr"][i] = smp["lr"]
            arrays["masks"][i] = np.packbits(smp["masks"], axis=-1)
            arrays["fov"][i] = np.packbits(smp["fov"], axis=-1)
            grades[i] = smp["grade"]
            meta[i] = [smp["meta"][k] for k in META_COLUMNS]
        for a in arrays.values():
            a.flush()
        del arrays
        np.save(tmp / "grade.npy", grades)
        np.save(tmp / "meta.npy", meta)
        files = {}
        for name in _FILES:
            arr = np.load(tmp / f"{name}.npy", mmap_mode="r")
            files[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "crc32": _crc32(tmp / f"{name}.npy")}
        manifest = {
            "split": split,
            "n": n_img,
            "hr_size": H,
            "scale": data_cfg.scale,
            "meta_columns": list(META_COLUMNS),
            "files": files,
            "data_config": dataclasses.asdict(data_cfg),
            "generator_version": GENERATOR_VERSION,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
        if folder.exists():  # corrupt copy (or a concurrent writer finished first)
            if _verify(folder) is not None:
                return
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_synthetic_splits(cfg, splits=("train", "val", "test"), progress: bool = True) -> dict[str, "SyntheticFundus"]:
    """Generate (with a progress bar) or load from the cache the requested splits of the benchmark.

    ``cfg`` is a :class:`deepmt.config.DataConfig`. Splits use disjoint random streams (seed, split, index).
    """
    out = {}
    for split in splits:
        folder = _split_dir(cfg, split)
        if _verify(folder) is None:
            _generate_split(cfg, split, folder, progress=progress)
            if _verify(folder) is None:  # pragma: no cover
                raise DataError(f"{folder}: the synthetic cache could not be written or read back")
        out[split] = SyntheticFundus(folder)
    return out
