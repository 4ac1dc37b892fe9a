"""Grading loss of DeepMT-DR: class-weighted cross-entropy over the 5 DR grades.

The paper weighted DDR's classes [1, 10, 1.44, 25, 8]; by default (``loss.class_weights="auto"``)
we derive the weights from the training label counts: inverse frequency, normalised to mean 1 over
the classes that occur (absent classes get weight 1; they never appear as targets). ``"none"``
gives uniform weights, or pass 5 numbers. Images without a grade (-1) are ignored; a batch with no
graded image gives a zero loss that is still part of the graph.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

N_GRADES = 5


def class_weights(spec, class_counts: Sequence[int] | None = None) -> torch.Tensor | None:
    """Resolve ``loss.class_weights`` to a (5,) float tensor, or None for uniform weights.

    ``"auto"`` without ``class_counts`` falls back to uniform (None).
    """
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if isinstance(spec, str):
        if spec.lower() != "auto":
            raise ValueError(f"loss.class_weights must be 'auto', 'none' or 5 numbers, got {spec!r}")
        if class_counts is None:
            return None
        counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
        if counts.shape != (N_GRADES,) or (counts < 0).any():
            raise ValueError(f"class_counts must be 5 non-negative counts, got {list(class_counts)}")
        present = counts > 0
        if not present.any():
            return None
        w = torch.ones(N_GRADES, dtype=torch.float64)
        inv = 1.0 / counts[present]
        w[present] = inv / inv.mean()
        return w.float()
    w = torch.as_tensor([float(v) for v in spec], dtype=torch.float32)
    if w.shape != (N_GRADES,) or (w < 0).any():
        raise ValueError(f"loss.class_weights must be 5 non-negative numbers, got {spec!r}")
    return w


def weighted_cross_entropy(logits: torch.Tensor, grade: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted CE (torch's weighted mean: sum w_y CE / sum w_y), ignoring grade -1."""
    grade = grade.long()
    valid = grade >= 0
    ce = F.cross_entropy(logits.float(), grade.clamp_min(0), reduction="none")
    w = valid.float()
    if weights is not None:
        w = w * weights.to(logits.device)[grade.clamp_min(0)]
    return (w * ce).sum() / w.sum().clamp_min(1e-12)
