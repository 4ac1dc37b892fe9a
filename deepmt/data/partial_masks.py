"""Partial lesion annotation: only a fraction of the training images keep their lesion masks.

Real DR data are mostly grade-only: DDR has lesion masks for 757 of its 13,673 graded images, IDRiD for
81 of 516. The synthetic benchmark masks every image, which leaves the journal extension's unsupervised
term (pseudo masks from the visualization map, for images *without* annotation) nothing to do.
``data.mask_fraction`` < 1 recreates the real setting on any dataset: a fixed random subset of the training
split (drawn from ``data.seed``, stratified by grade so every grade keeps its share) keeps its masks; the
other training images become grade-only (``mask_present`` all False, zero masks), exactly like a
grading-only real image. Validation and test keep all their masks, so every setting is scored alike.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmt.errors import ConfigMismatchError


def annotated_indices(grades: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the images that keep their masks: ``round(fraction * n_g)`` per grade g (at least
    one per grade present when ``fraction`` > 0), drawn without replacement from ``seed``."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigMismatchError(f"data.mask_fraction={fraction}: must lie in [0, 1]")
    g = np.asarray(list(grades), dtype=np.int64)
    rng = np.random.default_rng([int(seed), 0x6D61736B])  # an RNG stream of its own ("mask")
    keep = []
    for grade in np.unique(g):
        idx = np.flatnonzero(g == grade)
        k = int(round(fraction * len(idx)))
        if fraction > 0:
            k = max(k, 1)
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


class PartialMasks(Dataset):
    """``dataset`` with the lesion masks of every image outside ``keep`` removed (grade-only images)."""

    def __init__(self, dataset: Dataset, keep: np.ndarray) -> None:
        self.dataset = dataset
        self.keep = frozenset(int(i) for i in keep)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        s = self.dataset[index]
        if int(index) not in self.keep:
            s = dict(s)
            s["masks"] = torch.zeros_like(s["masks"])
            s["mask_present"] = torch.zeros_like(s["mask_present"])
        return s

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("dataset", "keep"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def with_partial_masks(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """``dataset`` unchanged when ``fraction`` is 1, else :class:`PartialMasks` over :func:`annotated_indices`."""
    if float(fraction) >= 1.0:
        return dataset
    grades = getattr(dataset, "grades", None)
    if grades is None:
        grades = [int(dataset[i]["grade"]) for i in range(len(dataset))]  # type: ignore[arg-type]
    return PartialMasks(dataset, annotated_indices(grades, float(fraction), seed))
