"""Calibration of the grading: the top-label reliability diagram and the expected calibration error (ECE)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepmt.metrics.base import grading_inputs


def ece_bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence: bins ``(lo, hi]`` of equal width (0 falls in the first), as scikit-learn."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], conf)


def reliability_curve(y_true: Any, probs: Any, n_bins: int = 15) -> dict[str, np.ndarray | float]:
    """Top-label reliability diagram: confidence = max probability, correct = argmax == grade.

    Returns arrays over the ``n_bins`` equal-width bins ``(lo, hi]``: ``bin_lower``, ``bin_upper``,
    ``confidence`` (mean confidence, nan for an empty bin), ``accuracy`` (fraction correct, nan for an empty
    bin), ``count``; and the scalar ``ece``. Grade -1 rows are ignored. Plot ``accuracy`` against
    ``confidence`` (and the diagonal) for the diagram.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, pred, p, _ = grading_inputs(y_true, probs)
    if p is None:
        raise ValueError("reliability_curve needs (N, 5) probabilities, not predicted grades")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = p.max(1)
    correct = (pred == y).astype(float)
    ids = ece_bins(conf, n_bins)
    count = np.bincount(ids, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(ids, weights=conf, minlength=n_bins) / count
        acc = np.bincount(ids, weights=correct, minlength=n_bins) / count
    total = count.sum()
    filled = count > 0
    ece = float((count[filled] / total * np.abs(acc[filled] - mean_conf[filled])).sum()) if total else math.nan
    return {"bin_lower": edges[:-1], "bin_upper": edges[1:], "confidence": mean_conf, "accuracy": acc, "count": count, "ece": ece}


def expected_calibration_error(y_true: Any, probs: Any, n_bins: int = 15) -> float:
    """Top-label expected calibration error: sum over bins of (bin share) * |accuracy - mean confidence|."""
    return float(reliability_curve(y_true, probs, n_bins=n_bins)["ece"])
