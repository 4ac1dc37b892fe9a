"""Data: the synthetic fundus benchmark, HR->LR degradation, real dataset loaders.

Every dataset returns the same :class:`deepmt.data.sample.Sample` dict. Use::

    from deepmt.data import build_datasets
    splits = build_datasets(cfg.data)          # {"train": Dataset, "val": Dataset, "test": Dataset}

``cfg.data.dataset`` picks the source: ``synthetic`` (made by deepmt, no download) or one of
the real datasets in their published layouts (``cfg.data.root`` points at it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepmt.data.sample import NO_GRADE, SAMPLE_KEYS, Sample, validate_sample

if TYPE_CHECKING:  # pragma: no cover
    from torch.utils.data import Dataset

    from deepmt.config import DataConfig

SPLITS = ("train", "val", "test")


def build_datasets(cfg: "DataConfig", splits: tuple[str, ...] = SPLITS) -> dict[str, "Dataset"]:
    """The requested splits of the dataset named by ``cfg.dataset``, as torch Datasets of samples."""
    if cfg.dataset == "synthetic":
        from deepmt.data.synthetic import build_synthetic_splits

        out = build_synthetic_splits(cfg, splits)
    else:
        from deepmt.data.real import build_real_splits

        out = build_real_splits(cfg, splits)
    if "train" in out and cfg.mask_fraction < 1.0:
        from deepmt.data.partial_masks import with_partial_masks

        out["train"] = with_partial_masks(out["train"], cfg.mask_fraction, cfg.seed)
    if "train" in out and cfg.label_fraction < 1.0:
        from deepmt.data.partial_masks import with_partial_labels

        out["train"] = with_partial_labels(out["train"], cfg.label_fraction, cfg.seed)
    if "train" in out and (cfg.augment or cfg.crop_size):
        from deepmt.data.transforms import AugmentedDataset, TrainAugment

        out["train"] = AugmentedDataset(out["train"], TrainAugment(cfg))
    return out


__all__ = ["build_datasets", "Sample", "SAMPLE_KEYS", "NO_GRADE", "validate_sample", "SPLITS"]
