"""One cached split of the synthetic benchmark as a torch Dataset (written by :mod:`deepmt.data.synthetic.store`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmt import LESIONS
from deepmt.data.synthetic.rules import sample_id


class SyntheticFundus(Dataset):
    """One cached split of the synthetic benchmark; items are :class:`deepmt.data.sample.Sample` dicts."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.split = self.manifest["split"]
        self.scale = int(self.manifest["scale"])
        self.hr_size = int(self.manifest["hr_size"])
        self._arrays: dict[str, np.ndarray] | None = None
        self.grades = np.load(self.folder / "grade.npy")
        self.meta_array = np.load(self.folder / "meta.npy")

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:  # opened lazily (per DataLoader worker)
            self._arrays = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r") for k in ("hr", "lr", "masks", "fov")}
        return self._arrays

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return int(self.manifest["n"])

    @property
    def meta(self):
        """Per-image metadata as a pandas DataFrame (id, grade, lesion counts per type and quadrant, has_nv, ...)."""
        import pandas as pd

        df = pd.DataFrame(self.meta_array, columns=self.manifest["meta_columns"])
        df.insert(0, "grade", self.grades)
        df.insert(0, "id", [sample_id(self.split, i) for i in range(len(self))])
        return df

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for synthetic {self.split} split of {len(self)} images")
        a = self._load()
        H = self.hr_size
        hr = torch.from_numpy(np.array(a["hr"][i])).permute(2, 0, 1).float().div_(255.0)
        lr = torch.from_numpy(np.array(a["lr"][i])).permute(2, 0, 1).float().div_(255.0)
        masks = torch.from_numpy(np.unpackbits(a["masks"][i], axis=-1, count=H)).float()
        fov = torch.from_numpy(np.unpackbits(a["fov"][i], axis=-1, count=H)).float()[None]
        return {
            "hr": hr,
            "lr": lr,
            "masks": masks,
            "mask_present": torch.ones(len(LESIONS), dtype=torch.bool),
            "fov": fov,
            "grade": torch.tensor(int(self.grades[i]), dtype=torch.int64),
            "id": sample_id(self.split, i),
        }
