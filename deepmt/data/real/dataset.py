"""The torch Dataset of a real split: each photo preprocessed once (FOV crop, square pad, resize to the HR size),
cached as uint8 per image, and degraded to LR on the fly; :class:`deepmt.data.sample.Sample` dicts out."""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmt import LESIONS
from deepmt.data.io import read_image, read_mask
from deepmt.data.preprocess import preprocess_fundus
from deepmt.data.real.records import FundusRecord, IndexReport
from deepmt.errors import DataError
from deepmt.utils import atomic_path, cache_dir

if TYPE_CHECKING:  # pragma: no cover
    from deepmt.config import DataConfig

log = logging.getLogger(__name__)

#: Bumped whenever preprocessing changes, so stale cache entries are not reused.
PREPROCESS_VERSION = 1


def _file_sig(path: Path | None) -> str:
    if path is None:
        return "-"
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


class RealFundusDataset(Dataset):
    """A real fundus dataset split as :class:`deepmt.data.sample.Sample` dicts (preprocessed HR cached).

    Attributes: ``records`` (the :class:`FundusRecord` list), ``grades`` (int array, -1 = none),
    ``report`` (the :class:`IndexReport` of the root), ``excluded_ungradable`` (count), ``dataset``, ``split``.
    """

    def __init__(
        self,
        records: Sequence[FundusRecord],
        cfg: "DataConfig",
        dataset: str,
        split: str,
        root: str | Path,
        report: IndexReport | None = None,
    ) -> None:
        if cfg.hr_size % cfg.scale:
            raise DataError(f"data.hr_size={cfg.hr_size} is not divisible by data.scale={cfg.scale}")
        self.records = list(records)
        self.cfg = cfg
        self.dataset = dataset
        self.split = split
        self.root = Path(root)
        self.report = report
        self.excluded_ungradable = report.n_ungradable if report else 0
        self.grades = np.array([r.grade for r in self.records], dtype=np.int64)
        key = hashlib.sha1(f"{self.root.resolve()}|{cfg.hr_size}|v{PREPROCESS_VERSION}".encode()).hexdigest()[:12]
        self.cache = cache_dir("real", dataset, key)

    def __len__(self) -> int:
        return len(self.records)

    def class_counts(self) -> np.ndarray:
        """Images per grade 0-4 (ungraded images are not counted)."""
        g = self.grades[self.grades >= 0]
        return np.bincount(g, minlength=5)

    # ----------------------------------------------------------------- cache
    def _cache_file(self, rec: FundusRecord) -> Path:
        paths = [rec.image, *(rec.masks or ())]
        sig = "|".join([str(rec.image.relative_to(self.root)) if rec.image.is_relative_to(self.root) else str(rec.image)]
                       + [_file_sig(p) for p in paths] + [str(rec.masks is not None)])
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", rec.id)[:80]
        return self.cache / f"{safe}-{hashlib.sha1(sig.encode()).hexdigest()[:12]}.npz"

    def _load_cached(self, path: Path, annotated: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        if not path.is_file():
            return None
        n = self.cfg.hr_size
        try:
            with np.load(path) as z:
                hr, fov = z["hr"], z["fov"]
                masks = z["masks"] if annotated else None
            ok = hr.shape == (n, n, 3) and hr.dtype == np.uint8 and fov.shape == (n, n)
            ok = ok and (masks is None or masks.shape == (len(LESIONS), n, n))
            if ok:
                return hr, fov.astype(bool), None if masks is None else masks.astype(bool)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass
        log.warning("%s: corrupt cache entry, recomputing", path)
        return None

    def load_preprocessed(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(hr uint8 (n,n,3), fov bool (n,n), masks bool (4,n,n) or None)`` of record ``index``, cached."""
        rec = self.records[index]
        path = self._cache_file(rec)
        cached = self._load_cached(path, rec.masks is not None)
        if cached is not None:
            return cached
        image = read_image(rec.image)
        masks = None
        if rec.masks is not None:
            masks = np.zeros((len(LESIONS), *image.shape[:2]), dtype=bool)
            for i, mp in enumerate(rec.masks):
                if mp is None:
                    continue
                m = read_mask(mp)
                if m.shape != image.shape[:2]:
                    raise DataError(
                        f"{mp}: mask size {m.shape[1]}x{m.shape[0]} differs from its image {rec.image} "
                        f"({image.shape[1]}x{image.shape[0]})"
                    )
                masks[i] = m
        hr, fov, hr_masks = preprocess_fundus(image, self.cfg.hr_size, masks, name=str(rec.image))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                if hr_masks is None:
                    np.savez(f, hr=hr, fov=fov)
                else:
                    np.savez(f, hr=hr, fov=fov, masks=hr_masks)
        return hr, fov, hr_masks

    # ----------------------------------------------------------------- samples
    def __getitem__(self, index: int) -> dict:
        from deepmt.data.degradation import degrade_config

        rec = self.records[index]
        hr_u8, fov, masks = self.load_preprocessed(index)
        hr = torch.from_numpy(np.ascontiguousarray(hr_u8)).permute(2, 0, 1).float().div_(255.0)
        n = self.cfg.hr_size
        lr = degrade_config(hr, self.cfg, seed=self.cfg.seed * 1_000_003 + index)
        return {
            "hr": hr,
            "lr": lr,
            "masks": torch.from_numpy(masks).float() if masks is not None else torch.zeros(len(LESIONS), n, n),
            "mask_present": torch.tensor(rec.mask_present, dtype=torch.bool),
            "fov": torch.from_numpy(fov).float()[None],
            "grade": torch.tensor(rec.grade, dtype=torch.int64),
            "id": rec.id,
        }
