"""Partial annotation: only a share of the training images keeps its lesion masks, or its labels at all.

Real DR data are mostly grade-only: DDR has lesion masks for 757 of its 13,673 graded images, IDRiD for
81 of 516. The synthetic benchmark masks every image, which leaves the journal extension's unsupervised
term (pseudo masks from the visualization map, for images *without* annotation) nothing to do.
``data.mask_fraction`` < 1 recreates the real setting on any dataset: a fixed random subset of the training
split (drawn from ``data.seed``, stratified by grade so every grade keeps its share) keeps its masks; the
other training images become grade-only (``mask_present`` all False, zero masks), exactly like a
grading-only real image.

``data.label_fraction`` < 1 goes further: only a fixed, grade-stratified subset of the training split keeps
its grade and its masks; the others become *unlabelled* HR images (grade :data:`~deepmt.data.sample.NO_GRADE`,
zero masks, ``mask_present`` all False). That is the regime in which a learned ISR can use data a
bicubic-input network cannot: the ISR learns from HR images alone (LR is made from HR), so it trains on every
image, while segmentation and grading learn from the labelled ones (:func:`labelled_subset`, which the trainer
uses for every stage whose loss needs labels). The labelled subset is drawn from an RNG stream of its own, so
it is not the mask subset's draw; the two compose (an image keeps masks only when it is in both).

Validation and test keep all their grades and masks, so every setting is scored alike.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from deepmt.data.sample import NO_GRADE
from deepmt.errors import ConfigMismatchError

#: the RNG streams of the two draws (the bytes of "mask" and "labl"), each mixed with ``data.seed``
MASK_STREAM = 0x6D61736B
LABEL_STREAM = 0x6C61626C


def stratified_indices(grades: Sequence[int], fraction: float, seed: int, stream: int, setting: str,
                       lo_open: bool = False) -> np.ndarray:
    """Sorted indices of a grade-stratified share ``fraction`` of the images: ``round(fraction * n_g)`` per
    grade g (at least one per grade present when ``fraction`` > 0), drawn without replacement from the RNG
    stream ``(seed, stream)``. ``setting`` names the config key in the error for a fraction outside [0, 1]
    (``(0, 1]`` when ``lo_open``)."""
    above_lo = fraction > 0.0 if lo_open else fraction >= 0.0
    if not (above_lo and fraction <= 1.0):
        raise ConfigMismatchError(f"{setting}={fraction}: must lie in {'(' if lo_open else '['}0, 1]")
    g = np.asarray(list(grades), dtype=np.int64)
    rng = np.random.default_rng([int(seed), int(stream)])
    keep = []
    for grade in np.unique(g):
        idx = np.flatnonzero(g == grade)
        k = int(round(fraction * len(idx)))
        if fraction > 0:
            k = max(k, 1)
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def annotated_indices(grades: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the images that keep their masks under ``data.mask_fraction`` (:func:`stratified_indices`)."""
    return stratified_indices(grades, fraction, seed, MASK_STREAM, "data.mask_fraction")


def labelled_indices(grades: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the images that keep their grade and masks under ``data.label_fraction`` (in (0, 1]),
    drawn from a stream other than the masks' (:func:`stratified_indices`)."""
    return stratified_indices(grades, fraction, seed, LABEL_STREAM, "data.label_fraction", lo_open=True)


def _grades_of(dataset: Dataset) -> Sequence[int]:
    grades = getattr(dataset, "grades", None)
    if grades is None:
        grades = [int(dataset[i]["grade"]) for i in range(len(dataset))]  # type: ignore[arg-type]
    return grades


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


class PartialLabels(PartialMasks):
    """``dataset`` with every image outside ``keep`` unlabelled: no masks (as :class:`PartialMasks`) and grade
    :data:`NO_GRADE`. ``grades`` says so too (class-balanced losses count only labelled images), and
    ``labelled_indices`` lists the images that keep their labels (:func:`labelled_subset`)."""

    def __init__(self, dataset: Dataset, keep: np.ndarray) -> None:
        super().__init__(dataset, keep)
        self.labelled_indices = np.sort(np.asarray(list(self.keep), dtype=np.int64))
        self.grades = [int(g) if i in self.keep else NO_GRADE for i, g in enumerate(_grades_of(dataset))]

    def __getitem__(self, index: int) -> dict:
        s = super().__getitem__(index)
        if int(index) not in self.keep:
            s["grade"] = torch.full_like(torch.as_tensor(s["grade"]), NO_GRADE)
        return s


def with_partial_masks(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """``dataset`` unchanged when ``fraction`` is 1, else :class:`PartialMasks` over :func:`annotated_indices`."""
    if float(fraction) >= 1.0:
        return dataset
    return PartialMasks(dataset, annotated_indices(_grades_of(dataset), float(fraction), seed))


def with_partial_labels(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """``dataset`` unchanged when ``fraction`` is 1, else :class:`PartialLabels` over :func:`labelled_indices`
    (stratified by the images' true grades, even when ``dataset`` already lost some masks)."""
    if float(fraction) >= 1.0:
        return dataset
    return PartialLabels(dataset, labelled_indices(_grades_of(dataset), float(fraction), seed))


def labelled_subset(dataset: Dataset) -> Dataset:
    """The images of ``dataset`` that carry labels: ``dataset`` itself when all do (no ``data.label_fraction`` < 1
    anywhere in its wrappers, so its loader draws exactly the batches it drew before the setting existed), else a
    :class:`torch.utils.data.Subset` of its ``labelled_indices`` (an augmentation wrapper forwards them)."""
    keep = getattr(dataset, "labelled_indices", None)
    return dataset if keep is None else Subset(dataset, [int(i) for i in keep])
