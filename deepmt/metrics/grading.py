"""DR-grading metrics (accuracy, QWK, linear kappa, F1, recall, one-vs-rest AUC, ECE), scikit-learn as the
reference, and their vectorised bootstrap path: every resample a row of integer weights over the images."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from deepmt.metrics.base import N_GRADES, Metric, grading_inputs, nanmean_quiet
from deepmt.metrics.calibration import ece_bins, expected_calibration_error

_GRADE_LABELS = list(range(N_GRADES))


def _kappa(y: np.ndarray, pred: np.ndarray, weights: str | None) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(np.union1d(y, pred)) < 2:  # one class in both: chance agreement is 1, kappa undefined
        return math.nan
    return float(cohen_kappa_score(y, pred, labels=_GRADE_LABELS, weights=weights))


def _auc_per_class(y: np.ndarray, p: np.ndarray | None) -> np.ndarray:
    from sklearn.metrics import roc_auc_score

    aucs = np.full(N_GRADES, np.nan)
    if p is None:
        return aucs
    for c in range(N_GRADES):
        pos = y == c
        if 0 < pos.sum() < len(y):
            aucs[c] = roc_auc_score(pos, p[:, c])
    return aucs


def grading_metrics(y_true: Any, probs: Any, n_bins: int = 15) -> dict[str, float]:
    """DR-grading metrics of the paper, computed with scikit-learn.

    Args:
        y_true: (N,) grades 0-4; rows with -1 (no grade) are ignored.
        probs: (N, 5) class probabilities (argmax = prediction) or (N,) predicted grades (then the AUC and
            calibration numbers are nan).
        n_bins: bins of the expected calibration error.

    Returns ``n``, ``accuracy``, ``qwk`` (quadratic-weighted kappa), ``kappa_linear``, ``macro_f1`` (over the
    grades present in ``y_true`` or the predictions, as scikit-learn), ``precision_weighted``,
    ``f1_weighted``, ``recall_0`` .. ``recall_4`` (per-grade recall, nan for a grade absent from ``y_true``),
    ``auc_ovr`` (macro one-vs-rest ROC-AUC over the grades that are present and not the only grade),
    ``auc_0`` .. ``auc_4`` and ``ece``.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    y, pred, p, _ = grading_inputs(y_true, probs)
    out: dict[str, float] = {"n": float(len(y))}
    keys = ["accuracy", "qwk", "kappa_linear", "macro_f1", "precision_weighted", "f1_weighted"]
    keys += [f"recall_{c}" for c in range(N_GRADES)] + ["auc_ovr"] + [f"auc_{c}" for c in range(N_GRADES)] + ["ece"]
    if len(y) == 0:
        return out | {k: math.nan for k in keys}
    present = np.union1d(y, pred)
    out["accuracy"] = float(accuracy_score(y, pred))
    out["qwk"] = _kappa(y, pred, "quadratic")
    out["kappa_linear"] = _kappa(y, pred, "linear")
    out["macro_f1"] = float(f1_score(y, pred, labels=present, average="macro", zero_division=0))
    out["precision_weighted"] = float(
        precision_score(y, pred, labels=_GRADE_LABELS, average="weighted", zero_division=0)
    )
    out["f1_weighted"] = float(f1_score(y, pred, labels=_GRADE_LABELS, average="weighted", zero_division=0))
    recall = recall_score(y, pred, labels=_GRADE_LABELS, average=None, zero_division=np.nan)
    for c in range(N_GRADES):
        out[f"recall_{c}"] = float(recall[c])
    aucs = _auc_per_class(y, p)
    out["auc_ovr"] = float(nanmean_quiet(aucs))
    for c in range(N_GRADES):
        out[f"auc_{c}"] = float(aucs[c])
    out["ece"] = expected_calibration_error(y, p, n_bins=n_bins) if p is not None else math.nan
    return out


def grading_confusion_matrix(y_true: Any, probs: Any, normalize: str | None = None) -> np.ndarray:
    """(5, 5) confusion matrix (rows: true grade, columns: predicted), grade -1 rows ignored.

    ``normalize`` as scikit-learn: ``None`` (counts), ``"true"`` (rows sum to 1), ``"pred"`` or ``"all"``.
    """
    from sklearn.metrics import confusion_matrix

    y, pred, _, _ = grading_inputs(y_true, probs)
    if len(y) == 0:
        return np.zeros((N_GRADES, N_GRADES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a grade that never occurs: nan row, not a warning
        return confusion_matrix(y, pred, labels=_GRADE_LABELS, normalize=normalize)


# ---- the vectorised path: every resample is a row of integer weights (multiplicities) over the items
def _confusion_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Grading metrics from a batch of (B, K, K) (weighted) confusion matrices, as scikit-learn defines them."""
    k = cm.shape[-1]
    n = cm.sum((1, 2))
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(2)  # true counts per class
    predicted = cm.sum(1)
    out: dict[str, np.ndarray] = {"n": n.astype(float)}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["accuracy"] = tp.sum(1) / n
        idx = np.arange(k)
        for name, w in (("qwk", (idx[:, None] - idx[None, :]) ** 2), ("kappa_linear", np.abs(idx[:, None] - idx[None, :]))):
            expected = support[:, :, None] * predicted[:, None, :] / n[:, None, None]
            num = (w * cm).sum((1, 2))
            den = (w * expected).sum((1, 2))
            degenerate = ((support + predicted) > 0).sum(1) < 2
            out[name] = np.where(degenerate | (den == 0), np.nan, 1 - num / np.where(den == 0, 1, den))
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1), np.nan)
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), 0.0)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        present = denom > 0
        out["macro_f1"] = (f1 * present).sum(1) / present.sum(1)
        out["precision_weighted"] = (support * precision).sum(1) / n
        out["f1_weighted"] = (support * f1).sum(1) / n
    for c in range(k):
        out[f"recall_{c}"] = recall[:, c]
    return out


def _weighted_auc(w: np.ndarray, pos: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``score`` for the binary labels ``pos`` under each row of item weights ``w`` (B, N).

    AUC = P(score_pos > score_neg) + 0.5 P(tie) over weighted (positive, negative) pairs -- the same number
    as ``roc_auc_score`` on the resample that the weights describe; nan without items (no graded image).
    """
    if len(score) == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ws = w[:, order]
    gpos = np.add.reduceat(ws * pos[order], starts, axis=1)
    gneg = np.add.reduceat(ws * ~pos[order], starts, axis=1)
    neg_below = np.cumsum(gneg, axis=1) - gneg
    num = (gpos * (neg_below + 0.5 * gneg)).sum(1)
    den = gpos.sum(1) * gneg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def grading_batched(w: np.ndarray, y_true: Any, probs: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """:func:`grading_metrics` for each row of item weights ``w`` (B, N) at once."""
    y, pred, p, keep = grading_inputs(y_true, probs)
    w = np.asarray(w, dtype=np.float64)[:, keep]
    onehot = np.zeros((len(y), N_GRADES * N_GRADES))
    onehot[np.arange(len(y)), y * N_GRADES + pred] = 1.0
    cm = (w @ onehot).reshape(-1, N_GRADES, N_GRADES)
    out = _confusion_stats(cm)
    b = w.shape[0]
    if p is None:
        aucs = np.full((b, N_GRADES), np.nan)
        out["ece"] = np.full(b, np.nan)
    else:
        aucs = np.stack([_weighted_auc(w, y == c, p[:, c]) for c in range(N_GRADES)], axis=1)
        conf = p.max(1)
        gap = (pred == y).astype(float) - conf
        bins = np.zeros((len(y), n_bins))
        bins[np.arange(len(y)), ece_bins(conf, n_bins)] = gap
        with np.errstate(invalid="ignore", divide="ignore"):
            out["ece"] = np.abs(w @ bins).sum(1) / w.sum(1)
    out["auc_ovr"] = nanmean_quiet(aucs, axis=1)
    for c in range(N_GRADES):
        out[f"auc_{c}"] = aucs[:, c]
    return out


def _single_grading_metric(key: str, doc: str) -> Metric:
    """One entry ``key`` of :func:`grading_metrics` as a :class:`Metric` of its own."""

    def metric(y_true: Any, probs: Any) -> float:
        return grading_metrics(y_true, probs)[key]

    def batched(w: np.ndarray, y_true: Any, probs: Any) -> np.ndarray:
        return grading_batched(w, y_true, probs)[key]

    metric.__name__ = metric.__qualname__ = key
    metric.__doc__ = doc + " ``probs``: (N, 5) probabilities or (N,) grades; grade -1 rows ignored."
    return Metric(metric, batched)


#: the single grading metrics by name (registered in :data:`METRICS`)
GRADING_SINGLE: dict[str, Metric] = {
    "accuracy": _single_grading_metric("accuracy", "Grading accuracy."),
    "qwk": _single_grading_metric("qwk", "Quadratic-weighted Cohen's kappa (the paper's main grading metric)."),
    "linear_kappa": _single_grading_metric("kappa_linear", "Linearly weighted Cohen's kappa."),
    "macro_f1": _single_grading_metric("macro_f1", "Macro-averaged F1 over the grades present."),
    "auc_ovr": _single_grading_metric("auc_ovr", "Macro one-vs-rest ROC-AUC over the grades present."),
}
accuracy = GRADING_SINGLE["accuracy"].fn
qwk = GRADING_SINGLE["qwk"].fn
linear_kappa = GRADING_SINGLE["linear_kappa"].fn
macro_f1 = GRADING_SINGLE["macro_f1"].fn
auc_ovr = GRADING_SINGLE["auc_ovr"].fn
