"""From an indexed root to the datasets of each split: the problems checked (:func:`raise_on_problems`), the
official splits kept and the missing test / validation splits carved out, stratified on grade."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import numpy as np
from torch.utils.data import Dataset

from deepmt.data.real.dataset import RealFundusDataset
from deepmt.data.real.layouts import index_dataset
from deepmt.data.real.records import FundusRecord, IndexReport
from deepmt.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from deepmt.config import DataConfig

log = logging.getLogger(__name__)

#: Fraction of the labelled images held out as the test split for datasets without test labels.
TEST_FRACTION = 0.2


def stratified_split(
    records: Sequence[FundusRecord], fraction: float, seed: int
) -> tuple[list[FundusRecord], list[FundusRecord]]:
    """Deterministically hold out ``fraction`` of ``records``, stratified on grade where possible.

    Stratification needs every grade at least twice and room for every grade on both sides; otherwise
    (tiny sets, segmentation sets without grades) the split is a plain seeded shuffle.
    """
    from sklearn.model_selection import train_test_split

    records = sorted(records, key=lambda r: r.id)
    if fraction <= 0 or len(records) < 2:
        return list(records), []
    n_held = min(len(records) - 1, max(1, int(round(fraction * len(records)))))
    grades = np.array([r.grade for r in records])
    classes, counts = np.unique(grades, return_counts=True)
    can_stratify = len(classes) > 1 and counts.min() >= 2 and len(classes) <= n_held <= len(records) - len(classes)
    keep, held = train_test_split(
        records, test_size=n_held, random_state=seed, shuffle=True, stratify=grades if can_stratify else None
    )
    return sorted(keep, key=lambda r: r.id), sorted(held, key=lambda r: r.id)


def assign_splits(rep: IndexReport, val_fraction: float, seed: int) -> dict[str, list[FundusRecord]]:
    """Official splits where they exist, stratified test/val splits where they do not."""
    s = {k: list(v) for k, v in rep.splits.items()}
    if "test" not in s:
        s["train"], s["test"] = stratified_split(s.get("train", []), TEST_FRACTION, seed)
    if "val" not in s:
        s["train"], s["val"] = stratified_split(s.get("train", []), val_fraction, seed)
    for split, recs in s.items():
        for r in recs:
            r.split = split
    return s


def raise_on_problems(rep: IndexReport, skip_bad: bool) -> None:
    """DataError for fatal problems (always) and errors (unless ``skip_bad``: then they are counted)."""
    fatal = [p for p in rep.problems if p.severity == "fatal"]
    errors = [p for p in rep.problems if p.severity == "error"]
    hint = f"run `python -m deepmt data check --format {rep.fmt} {rep.root}` to list every problem"
    if fatal or (errors and not skip_bad):
        bad = fatal or errors
        more = len(rep.errors) - 1
        extra = f" (and {more} more problem(s); {hint})" if more > 0 else ""
        raise DataError(bad[0].message + extra)
    if errors:
        rep.n_skipped = len(errors)
        log.warning("%s (%s): skipped %d bad row(s) (skip_bad=True); %s", rep.root, rep.fmt, len(errors), hint)
    if rep.warnings:
        log.warning("%s (%s): %d warning(s), e.g. %s", rep.root, rep.fmt, len(rep.warnings), rep.warnings[0].message)


def build_real_splits(
    cfg: "DataConfig", splits: Sequence[str] = ("train", "val", "test"), skip_bad: bool = False
) -> dict[str, Dataset]:
    """The requested splits of the real dataset ``cfg.dataset`` at ``cfg.root`` (see the module docstring).

    Augmentation of the train split is added by :func:`deepmt.data.build_datasets`, for every dataset alike.
    """
    rep = index_dataset(cfg.dataset, cfg.root)
    raise_on_problems(rep, skip_bad)
    assigned = assign_splits(rep, cfg.val_fraction, cfg.seed)
    out: dict[str, Dataset] = {}
    for split in splits:
        if split not in assigned:
            raise DataError(f"unknown split {split!r}; choose from {sorted(assigned)}")
        if not assigned[split]:
            raise DataError(f"{rep.root}: the {split} split of {cfg.dataset!r} is empty (too few usable images)")
        out[split] = RealFundusDataset(assigned[split], cfg, cfg.dataset, split, rep.root, rep)
    return out
