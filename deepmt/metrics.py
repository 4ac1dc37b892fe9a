"""Evaluation metrics of DeepMT-DR: grading, super-resolution (ISR), lesion segmentation, uncertainty.

NumPy in (torch tensors are accepted and converted), plain ``dict`` / ``float`` out. Every function is
NaN-safe: a metric that is undefined on the given data (no positive pixel, one class only, an empty mask)
comes out as ``nan`` instead of raising, while inputs of the wrong shape raise ``ValueError`` naming the
shapes.

The metrics follow the paper (Wang et al., AAAI 2021; summarised in ``docs/METHOD.md``):

* **Grading** (:func:`grading_metrics`): accuracy, quadratic-weighted Cohen's kappa (QWK), linear kappa,
  macro-F1, weighted precision / F1, per-grade recall ("per-class accuracy"), one-vs-rest ROC-AUC and the
  expected calibration error. Rows with grade ``-1`` (no grade) are ignored. scikit-learn is the reference.
* **ISR** (:func:`psnr`, :func:`ssim`, :func:`isr_metrics`): PSNR on [0, 1] images and SSIM with an 11-px
  Gaussian window, sigma 1.5 -- numerically the same as ``skimage.metrics`` (``gaussian_weights=True,
  use_sample_covariance=False``) on the whole image, and also restricted to the field of view and to
  (dilated) lesion regions, where the task-aware loss is meant to help.
* **Segmentation** (:func:`segmentation_metrics`): per lesion (MA, HE, EX, SE) AUPR (average precision) and
  ROC-AUC, Dice and IoU at a threshold; averaged over the images that contain the lesion (as the paper) and
  pooled over all pixels.
* **Uncertainty** (:func:`bootstrap_ci`, :func:`paired_bootstrap`, :func:`paired_bootstrap_test`,
  :func:`mean_std`): percentile bootstrap over images, paired tests between two methods on the same
  images, spread across seeds.

**Metric registry.** :data:`METRICS` maps a metric's name to a :class:`Metric`: the function and its
vectorised bootstrap path (``batched(weights, *arrays)``: the metric on every resample at once, each
resample a row of integer weights = how often each image was drawn), so 1000 resamples of 500 images take
well under a second. The bootstrap functions take a :class:`Metric`, a registered name or function (its
batched path is looked up), or any callable (resampled one by one).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from deepmt import LESIONS

N_GRADES = 5
_GRADE_LABELS = list(range(N_GRADES))

__all__ = [
    "N_GRADES",
    "Metric",
    "METRICS",
    "as_metric",
    "to_numpy",
    "grading_metrics",
    "grading_confusion_matrix",
    "accuracy",
    "qwk",
    "linear_kappa",
    "macro_f1",
    "auc_ovr",
    "expected_calibration_error",
    "reliability_curve",
    "psnr",
    "ssim",
    "lesion_region",
    "isr_per_image",
    "isr_metrics",
    "segmentation_per_image",
    "segmentation_metrics",
    "nanmean",
    "bootstrap_ci",
    "paired_bootstrap",
    "paired_bootstrap_test",
    "mean_std",
    "format_mean_std",
    "format_ci",
]


# =========================================================================== input handling
def to_numpy(x: Any, name: str = "array") -> np.ndarray:
    """``x`` as a NumPy array (torch tensors are detached and moved to the CPU; bfloat16 becomes float32)."""
    if x is None:
        raise ValueError(f"{name} is None")
    if type(x).__module__.startswith("torch"):
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            if x.dtype in (torch.bfloat16, torch.float16):
                x = x.float()
            return x.numpy()
    return np.asarray(x)


def _shape_error(what: str, **shapes: Any) -> ValueError:
    parts = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
    return ValueError(f"{what}: got {parts}")


def _check_same_length(arrays: Sequence[Any], names: Sequence[str] | None = None) -> int:
    present = [(i, a) for i, a in enumerate(arrays) if a is not None]
    if not present:
        raise ValueError("no arrays given")
    lengths = [len(a) for _, a in present]
    if len(set(lengths)) != 1:
        names = names or [f"array{i}" for i in range(len(arrays))]
        shapes = {names[i]: np.shape(a) for i, a in present}
        raise _shape_error("arrays must have the same number of rows (images)", **shapes)
    return lengths[0]


@dataclass(frozen=True)
class Metric:
    """A metric and its vectorised bootstrap path (an entry of :data:`METRICS`).

    ``fn(*arrays)`` -> a number or a dict of numbers: the metric on the given rows (images).
    ``batched(weights, *arrays)`` -> (B,) values (or a dict of them): the metric on B resamples at once, resample
    ``b`` being row ``b`` of the (B, N) integer ``weights`` (how often each row was drawn); it must equal ``fn`` on
    the repeated rows. ``None``: no such path, the bootstrap calls ``fn`` once per resample. A Metric is called
    like its ``fn``.
    """

    fn: Callable[..., Any]
    batched: Callable[..., Any] | None = None

    def __call__(self, *arrays: Any) -> Any:
        return self.fn(*arrays)


# =========================================================================== grading
def _grading_inputs(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Validate and return ``(y, pred, probs_or_None, keep)`` with grade -1 rows removed.

    ``probs`` is (N, 5) class probabilities (scores: only their ranking and argmax matter, except for
    the calibration error) or (N,) integer predictions.
    """
    y = to_numpy(y_true, "y_true")
    p = to_numpy(probs, "probs")
    if y.ndim != 1:
        raise _shape_error("y_true must be 1-D (N,)", y_true=y.shape)
    if p.ndim == 2:
        if p.shape != (len(y), N_GRADES):
            raise _shape_error(f"probs must be (N, {N_GRADES}) with N = len(y_true)", y_true=y.shape, probs=p.shape)
        p = p.astype(np.float64)
        if np.isnan(p).any():
            raise ValueError(f"probs contain NaN ({int(np.isnan(p).any(1).sum())} of {len(p)} rows)")
        pred = p.argmax(1)
    elif p.ndim == 1:
        if p.shape != y.shape:
            raise _shape_error("predictions must have the shape of y_true", y_true=y.shape, pred=p.shape)
        if p.size and (not np.all(np.isfinite(p)) or np.any(p != np.round(p))):
            raise ValueError("1-D predictions must be integer grades 0-4 (pass (N, 5) probabilities otherwise)")
        pred, p = p.astype(np.int64), None
    else:
        raise _shape_error(f"probs must be (N, {N_GRADES}) probabilities or (N,) predicted grades", probs=p.shape)
    if y.size and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
        raise ValueError("y_true must hold integer grades (0-4, or -1 for no grade)")
    y = y.astype(np.int64)
    if np.any((y < -1) | (y >= N_GRADES)):
        raise ValueError(f"y_true has grades outside -1..{N_GRADES - 1}: {sorted(set(y[(y < -1) | (y >= N_GRADES)]))}")
    if np.any((pred < 0) | (pred >= N_GRADES)):
        raise ValueError(f"predicted grades outside 0..{N_GRADES - 1}")
    keep = y >= 0
    return y[keep], pred[keep], (p[keep] if p is not None else None), keep


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


def _nanmean_quiet(x: np.ndarray, axis: int | None = None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


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

    y, pred, p, _ = _grading_inputs(y_true, probs)
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
    out["auc_ovr"] = float(_nanmean_quiet(aucs))
    for c in range(N_GRADES):
        out[f"auc_{c}"] = float(aucs[c])
    out["ece"] = expected_calibration_error(y, p, n_bins=n_bins) if p is not None else math.nan
    return out


def grading_confusion_matrix(y_true: Any, probs: Any, normalize: str | None = None) -> np.ndarray:
    """(5, 5) confusion matrix (rows: true grade, columns: predicted), grade -1 rows ignored.

    ``normalize`` as scikit-learn: ``None`` (counts), ``"true"`` (rows sum to 1), ``"pred"`` or ``"all"``.
    """
    from sklearn.metrics import confusion_matrix

    y, pred, _, _ = _grading_inputs(y_true, probs)
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


def _ece_bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence: bins ``(lo, hi]`` of equal width (0 falls in the first), as scikit-learn."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], conf)


def _grading_batched(w: np.ndarray, y_true: Any, probs: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """:func:`grading_metrics` for each row of item weights ``w`` (B, N) at once."""
    y, pred, p, keep = _grading_inputs(y_true, probs)
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
        bins[np.arange(len(y)), _ece_bins(conf, n_bins)] = gap
        with np.errstate(invalid="ignore", divide="ignore"):
            out["ece"] = np.abs(w @ bins).sum(1) / w.sum(1)
    out["auc_ovr"] = _nanmean_quiet(aucs, axis=1)
    for c in range(N_GRADES):
        out[f"auc_{c}"] = aucs[:, c]
    return out


def _single_grading_metric(key: str, doc: str) -> Metric:
    """One entry ``key`` of :func:`grading_metrics` as a :class:`Metric` of its own."""

    def metric(y_true: Any, probs: Any) -> float:
        return grading_metrics(y_true, probs)[key]

    def batched(w: np.ndarray, y_true: Any, probs: Any) -> np.ndarray:
        return _grading_batched(w, y_true, probs)[key]

    metric.__name__ = metric.__qualname__ = key
    metric.__doc__ = doc + " ``probs``: (N, 5) probabilities or (N,) grades; grade -1 rows ignored."
    return Metric(metric, batched)


#: the single grading metrics by name (registered in :data:`METRICS`)
_GRADING_SINGLE: dict[str, Metric] = {
    "accuracy": _single_grading_metric("accuracy", "Grading accuracy."),
    "qwk": _single_grading_metric("qwk", "Quadratic-weighted Cohen's kappa (the paper's main grading metric)."),
    "linear_kappa": _single_grading_metric("kappa_linear", "Linearly weighted Cohen's kappa."),
    "macro_f1": _single_grading_metric("macro_f1", "Macro-averaged F1 over the grades present."),
    "auc_ovr": _single_grading_metric("auc_ovr", "Macro one-vs-rest ROC-AUC over the grades present."),
}
accuracy = _GRADING_SINGLE["accuracy"].fn
qwk = _GRADING_SINGLE["qwk"].fn
linear_kappa = _GRADING_SINGLE["linear_kappa"].fn
macro_f1 = _GRADING_SINGLE["macro_f1"].fn
auc_ovr = _GRADING_SINGLE["auc_ovr"].fn


# =========================================================================== calibration
def reliability_curve(y_true: Any, probs: Any, n_bins: int = 15) -> dict[str, np.ndarray | float]:
    """Top-label reliability diagram: confidence = max probability, correct = argmax == grade.

    Returns arrays over the ``n_bins`` equal-width bins ``(lo, hi]``: ``bin_lower``, ``bin_upper``,
    ``confidence`` (mean confidence, nan for an empty bin), ``accuracy`` (fraction correct, nan for an empty
    bin), ``count``; and the scalar ``ece``. Grade -1 rows are ignored. Plot ``accuracy`` against
    ``confidence`` (and the diagonal) for the diagram.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, pred, p, _ = _grading_inputs(y_true, probs)
    if p is None:
        raise ValueError("reliability_curve needs (N, 5) probabilities, not predicted grades")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = p.max(1)
    correct = (pred == y).astype(float)
    ids = _ece_bins(conf, n_bins)
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


# =========================================================================== ISR: PSNR / SSIM
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # as skimage with gaussian_weights=True: radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
_CHUNK_ELEMENTS = 1 << 21  # values per image chunk (~2M): bounds the float64 temporaries to a few hundred MB


def _chunk(shape: Sequence[int]) -> int:
    """How many images of an (N, ...) array to process at once."""
    return max(1, _CHUNK_ELEMENTS // max(1, int(np.prod(shape[1:]))))


def _as_chw(x: Any, name: str) -> np.ndarray:
    """One image as (C, H, W) float64 from (H, W), (C, H, W) or (H, W, C) with C in {1, 3}."""
    a = to_numpy(x, name)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3:
        if a.shape[0] not in (1, 3) and a.shape[-1] in (1, 3):
            a = np.moveaxis(a, -1, 0)
        elif a.shape[0] not in (1, 3):
            raise _shape_error(f"{name} must be (3, H, W), (H, W, 3) or (H, W)", **{name: a.shape})
    else:
        raise _shape_error(f"{name} must be one image (3, H, W), (H, W, 3) or (H, W)", **{name: a.shape})
    return a.astype(np.float64)


def _as_mask(m: Any, hw: tuple[int, int], name: str) -> np.ndarray:
    """A mask for one image as (H, W) bool from (H, W), (1, H, W) or (H, W, 1); values > 0.5 are inside."""
    a = to_numpy(m, name)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.shape != hw:
        raise _shape_error(f"{name} must be (H, W) or (1, H, W) matching the image", **{name: a.shape}, image_hw=hw)
    return a > 0.5


def _psnr_nchw(sr: np.ndarray, hr: np.ndarray, mask: np.ndarray | None, data_range: float) -> np.ndarray:
    """Per-image PSNR of (N, C, H, W) arrays; ``mask`` (N, H, W) bool restricts the squared error (nan if empty)."""
    se = ((sr - hr) ** 2).sum(1)  # (N, H, W), summed over channels
    c = sr.shape[1]
    if mask is None:
        mse = se.mean((1, 2)) / c
    else:
        cnt = mask.sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            mse = np.where(cnt > 0, (se * mask).sum((1, 2)) / (c * np.maximum(cnt, 1)), np.nan)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def _gaussian_taps(sigma: float = _SSIM_SIGMA, truncate: float = _SSIM_TRUNCATE) -> np.ndarray:
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _ssim_map_nchw(sr: np.ndarray, hr: np.ndarray, data_range: float, backend: str = "auto") -> np.ndarray:
    """SSIM maps of (N, C, H, W) arrays, averaged over channels: (N, H - 10, W - 10).

    Separable 11-tap Gaussian (sigma 1.5) in float64 over the whole batch at once, kept on the "valid"
    region only: that is the region skimage averages over (it crops (win_size - 1) / 2 px from each
    border), so the mean of this map equals ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. ``backend``: ``"scipy"``
    (``ndimage.correlate1d``, the fastest on a CPU), ``"torch"`` (conv2d on CUDA when present, else CPU) or
    ``"auto"`` (torch when CUDA is available, else scipy).
    """
    g = _gaussian_taps()
    r = len(g) // 2
    n, c, h, w = sr.shape
    if h < len(g) or w < len(g):
        raise ValueError(f"SSIM needs images of at least {len(g)} x {len(g)} px (11-px window), got {h} x {w}")
    if backend == "auto":
        import torch

        backend = "torch" if torch.cuda.is_available() else "scipy"
    if backend == "scipy":
        from scipy import ndimage

        x, y = np.asarray(sr, dtype=np.float64), np.asarray(hr, dtype=np.float64)
        f = np.stack([x, y, x * x, y * y, x * y])  # (5, N, C, H, W)
        f = ndimage.correlate1d(f, g, axis=3, mode="constant")[:, :, :, r : h - r]
        f = ndimage.correlate1d(f, g, axis=4, mode="constant")[..., r : w - r]
    elif backend == "torch":
        import torch
        import torch.nn.functional as F

        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        x = torch.as_tensor(np.asarray(sr, dtype=np.float64), device=dev).reshape(n * c, 1, h, w)
        y = torch.as_tensor(np.asarray(hr, dtype=np.float64), device=dev).reshape(n * c, 1, h, w)
        gt = torch.as_tensor(g, device=dev)
        f = torch.cat([x, y, x * x, y * y, x * y])
        f = F.conv2d(F.conv2d(f, gt.view(1, 1, -1, 1)), gt.view(1, 1, 1, -1))  # (5NC, 1, h', w')
        return _ssim_formula(f.reshape(5, n, c, h - 2 * r, w - 2 * r), data_range).mean(1).cpu().numpy()
    else:
        raise ValueError(f"backend must be 'auto', 'scipy' or 'torch', got {backend!r}")
    return _ssim_formula(f, data_range).mean(1)


def _ssim_formula(f: Any, data_range: float) -> Any:
    """SSIM from the stacked local means (mu_x, mu_y, E[x^2], E[y^2], E[xy]) (NumPy or torch)."""
    ux, uy, uxx, uyy, uxy = f
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def _masked_mean(maps: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Mean of (N, h, w) SSIM maps, inside (N, H, W) masks cropped to the valid region (nan if empty)."""
    if mask is None:
        return maps.mean((1, 2))
    r = (mask.shape[1] - maps.shape[1]) // 2
    m = mask[:, r : mask.shape[1] - r, r : mask.shape[2] - r]
    cnt = m.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (maps * m).sum((1, 2)) / np.maximum(cnt, 1), np.nan)


def _pair(sr: Any, hr: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """(N, C, H, W) float64 pair and an (N, H, W) mask from one image or a batch; also 'was a batch'."""
    a, b = to_numpy(sr, "sr"), to_numpy(hr, "hr")
    if a.ndim == 4:
        if a.shape != b.shape:
            raise _shape_error("sr and hr must have the same shape", sr=a.shape, hr=b.shape)
        m = None
        if mask is not None:
            m = to_numpy(mask, "mask")
            m = m[:, 0] if m.ndim == 4 and m.shape[1] == 1 else m
            if m.shape != (a.shape[0], *a.shape[2:]):
                raise _shape_error("mask must be (N, 1, H, W) or (N, H, W) matching sr", sr=a.shape, mask=np.shape(mask))
            m = m > 0.5
        return a.astype(np.float64), b.astype(np.float64), m, True
    a, b = _as_chw(a, "sr"), _as_chw(b, "hr")
    if a.shape != b.shape:
        raise _shape_error("sr and hr must have the same shape", sr=a.shape, hr=b.shape)
    m = _as_mask(mask, a.shape[1:], "mask")[None] if mask is not None else None
    return a[None], b[None], m, False


def psnr(sr: Any, hr: Any, mask: Any = None, data_range: float = 1.0) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB of ``sr`` against ``hr`` (images in [0, ``data_range``]).

    One image: (3, H, W), (H, W, 3) or (H, W) -> float; a batch (N, C, H, W) -> (N,) per-image array.
    ``mask`` ((H, W) / (1, H, W), or (N, 1, H, W) for a batch; > 0.5 is inside) restricts the mean squared
    error to the pixels inside (all channels): nan when the mask is empty, inf when sr == hr there.
    Without a mask this is ``skimage.metrics.peak_signal_noise_ratio``.
    """
    a, b, m, batch = _pair(sr, hr, mask)
    out = _psnr_nchw(a, b, m, data_range)
    return out if batch else float(out[0])


def ssim(sr: Any, hr: Any, mask: Any = None, data_range: float = 1.0) -> float | np.ndarray:
    """Structural similarity with the paper's 11-px Gaussian window (sigma 1.5), mean over channels.

    Without ``mask`` it equals ``skimage.metrics.structural_similarity(sr, hr, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=...)``. With a mask it is the mean of
    the same SSIM map over the mask's pixels (the map exists 5 px away from the border, where skimage
    averages too); nan when no mask pixel is left. Shapes as :func:`psnr`.
    """
    a, b, m, batch = _pair(sr, hr, mask)
    k = _chunk(a.shape)
    vals = np.concatenate(
        [
            _masked_mean(_ssim_map_nchw(a[i : i + k], b[i : i + k], data_range), None if m is None else m[i : i + k])
            for i in range(0, len(a), k)
        ]
    )
    return vals if batch else float(vals[0])


def lesion_region(lesion_masks: Any, dilation: int = 3, fov: Any = None) -> np.ndarray:
    """(N, H, W) bool: union of the lesion masks (N, 4, H, W), dilated by a disk of ``dilation`` px, inside the FOV.

    The lesion region is where the paper's task-aware loss should improve super-resolution most; the
    dilation takes in each lesion's immediate surroundings (its edges and the context a grader sees).
    """
    from scipy import ndimage

    m = to_numpy(lesion_masks, "lesion_masks")
    if m.ndim != 4:
        raise _shape_error("lesion_masks must be (N, 4, H, W)", lesion_masks=m.shape)
    union = (m > 0.5).any(1)
    if dilation > 0:
        yy, xx = np.mgrid[-dilation : dilation + 1, -dilation : dilation + 1]
        disk = (yy**2 + xx**2) <= dilation**2
        union = ndimage.binary_dilation(union, structure=disk[None])
    if fov is not None:
        f = to_numpy(fov, "fov")
        f = f[:, 0] if f.ndim == 4 else f
        if f.shape != union.shape:
            raise _shape_error("fov must be (N, 1, H, W) matching lesion_masks", fov=np.shape(fov), lesion_masks=m.shape)
        union &= f > 0.5
    return union


def _check_isr_shapes(sr: Any, hr: Any, fov: Any, lesion_masks: Any) -> tuple[int, int, int]:
    s, h = np.shape(sr), np.shape(hr)
    if len(s) != 4 or s != h:
        raise _shape_error("sr and hr must be (N, 3, H, W) of the same shape", sr=s, hr=h)
    n, _, hh, ww = s
    if fov is not None and tuple(np.shape(fov)) not in ((n, 1, hh, ww), (n, hh, ww)):
        raise _shape_error("fov must be (N, 1, H, W) matching sr", sr=s, fov=np.shape(fov))
    ls = tuple(np.shape(lesion_masks)) if lesion_masks is not None else None
    if ls is not None and (len(ls) != 4 or ls[0] != n or ls[2:] != (hh, ww)):
        raise _shape_error("lesion_masks must be (N, 4, H, W) matching sr", sr=s, lesion_masks=np.shape(lesion_masks))
    return n, hh, ww


def isr_per_image(
    sr: Any, hr: Any, fov: Any = None, lesion_masks: Any = None, lesion_dilation: int = 3, data_range: float = 1.0
) -> dict[str, np.ndarray]:
    """Per-image ISR numbers (N,) for bootstrapping: ``psnr``, ``ssim`` (whole image), ``psnr_fov``,
    ``ssim_fov`` (inside the field of view), ``psnr_lesion``, ``ssim_lesion`` (inside :func:`lesion_region`;
    nan for an image without lesions) and ``has_lesion`` (bool). Missing ``fov`` / ``lesion_masks`` give nan
    columns. Works through the images in chunks, so memory stays small for large N.
    """
    n, _, _ = _check_isr_shapes(sr, hr, fov, lesion_masks)
    keys = ("psnr", "ssim", "psnr_fov", "ssim_fov", "psnr_lesion", "ssim_lesion")
    out = {k: np.full(n, np.nan) for k in keys}
    out["has_lesion"] = np.zeros(n, dtype=bool)
    k = _chunk(np.shape(sr))
    for i in range(0, n, k):
        j = min(n, i + k)
        a = to_numpy(sr[i:j], "sr").astype(np.float64)
        b = to_numpy(hr[i:j], "hr").astype(np.float64)
        maps = _ssim_map_nchw(a, b, data_range)
        f = None
        if fov is not None:
            f = to_numpy(fov[i:j], "fov")
            f = (f[:, 0] if f.ndim == 4 else f) > 0.5
            out["psnr_fov"][i:j] = _psnr_nchw(a, b, f, data_range)
            out["ssim_fov"][i:j] = _masked_mean(maps, f)
        out["psnr"][i:j] = _psnr_nchw(a, b, None, data_range)
        out["ssim"][i:j] = _masked_mean(maps, None)
        if lesion_masks is not None:
            region = lesion_region(lesion_masks[i:j], dilation=lesion_dilation, fov=f)
            has = region.any((1, 2))
            out["has_lesion"][i:j] = has
            region[~has] = False
            out["psnr_lesion"][i:j] = _psnr_nchw(a, b, region, data_range)
            out["ssim_lesion"][i:j] = _masked_mean(maps, region)
    return out


def isr_metrics(
    sr: Any, hr: Any, fov: Any = None, lesion_masks: Any = None, lesion_dilation: int = 3, data_range: float = 1.0
) -> dict[str, float]:
    """ISR metrics averaged over images: ``psnr``, ``ssim``, ``psnr_fov``, ``ssim_fov``, ``psnr_lesion``,
    ``ssim_lesion`` (over the images that have lesions), ``n`` and ``n_lesion_images``.

    ``sr``, ``hr``: (N, 3, H, W) in [0, 1]; ``fov``: (N, 1, H, W); ``lesion_masks``: (N, 4, H, W), dilated by
    ``lesion_dilation`` px (see :func:`lesion_region`). Per-image numbers: :func:`isr_per_image`.
    """
    per = isr_per_image(sr, hr, fov, lesion_masks, lesion_dilation, data_range)
    out = {k: float(_nanmean_quiet(v)) if len(v) else math.nan for k, v in per.items() if k != "has_lesion"}
    out["n"] = float(len(per["psnr"]))
    out["n_lesion_images"] = float(per["has_lesion"].sum())
    return out


# =========================================================================== segmentation
_LOGIT_CLIP = 16.0  # float32 sigmoid saturates near |logit| 16.6


def _score_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Monotone bin index of probabilities: equal-width bins in logit space on [-16, 16].

    Ranks are kept except between scores that fall into the same bin (logit width 32 / n_bins, 0.004 for
    the default 8192: a relative change of 0.4 % near 0 or 1, 0.001 near 0.5); those count as ties.
    """
    p = p.astype(np.float64, copy=False)
    with np.errstate(divide="ignore"):
        logit = np.log(p) - np.log1p(-p)
    logit = np.clip(logit, -_LOGIT_CLIP, _LOGIT_CLIP)
    b = ((logit + _LOGIT_CLIP) * (n_bins / (2 * _LOGIT_CLIP))).astype(np.int64)
    return np.minimum(b, n_bins - 1)


def _ap_auc_from_hist(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average precision and ROC-AUC from (..., K) positive/negative counts per ascending score bin.

    Scores in one bin are ties, treated exactly as scikit-learn treats tied scores: AP = sum over
    thresholds of (R_k - R_{k-1}) * P_k; AUC = P(pos > neg) + 0.5 P(tie).
    """
    pos = pos[..., ::-1].astype(np.float64)  # descending scores
    neg = neg[..., ::-1].astype(np.float64)
    tp, fp = np.cumsum(pos, -1), np.cumsum(neg, -1)
    n_pos, n_neg = tp[..., -1], fp[..., -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        ap = np.where(n_pos > 0, (pos * precision).sum(-1) / np.maximum(n_pos, 1), np.nan)
        above = tp - pos  # positives with a strictly higher score than this bin
        auc = (neg * (above + 0.5 * pos)).sum(-1)
        auc = np.where((n_pos > 0) & (n_neg > 0), auc / np.maximum(n_pos * n_neg, 1), np.nan)
    return ap, auc


def _check_seg_shapes(probs: Any, masks: Any, present: Any, fov: Any) -> tuple[np.ndarray, int]:
    ps, ms = np.shape(probs), np.shape(masks)
    if len(ps) != 4 or ps != ms or ps[1] != len(LESIONS):
        raise _shape_error(f"probs and masks must be (N, {len(LESIONS)}, H, W) of the same shape", probs=ps, masks=ms)
    pr = to_numpy(present, "present").astype(bool)
    if pr.shape != ps[:2]:
        raise _shape_error(f"present must be (N, {len(LESIONS)}) bool", probs=ps, present=pr.shape)
    if fov is not None and tuple(np.shape(fov)) not in ((ps[0], 1, *ps[2:]), (ps[0], *ps[2:])):
        raise _shape_error("fov must be (N, 1, H, W) matching probs", probs=ps, fov=np.shape(fov))
    return pr, ps[0]


def _segmentation_counts(
    probs: Any, masks: Any, present: Any, threshold: float, fov: Any, method: str, n_bins: int
) -> dict[str, Any]:
    """Per-image numbers (N, 4) and pooled numbers (4,) of every segmentation metric."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if method not in ("hist", "exact"):
        raise ValueError(f"method must be 'hist' or 'exact', got {method!r}")
    pr, n = _check_seg_shapes(probs, masks, present, fov)
    nl = len(LESIONS)
    per = {k: np.full((n, nl), np.nan) for k in ("aupr", "auc", "dice", "iou")}
    pooled = {k: np.full(nl, np.nan) for k in ("aupr", "auc", "dice", "iou")}
    pooled_hist = np.zeros((nl, 2, n_bins), dtype=np.int64)
    pooled_tp, pooled_fp, pooled_fn = np.zeros(nl), np.zeros(nl), np.zeros(nl)
    exact_scores: list[list[np.ndarray]] = [[] for _ in range(nl)]
    exact_labels: list[list[np.ndarray]] = [[] for _ in range(nl)]
    k = _chunk(np.shape(probs))
    for i in range(0, n, k):
        j = min(n, i + k)
        p = to_numpy(probs[i:j], "probs").astype(np.float32, copy=False)
        m = to_numpy(masks[i:j], "masks") > 0.5
        if np.isnan(p).any():
            raise ValueError(f"probs contain NaN (images {i}..{j - 1})")
        if p.size and (p.min() < 0 or p.max() > 1):
            raise ValueError(f"probs must be probabilities in [0, 1], got values in [{p.min():.3g}, {p.max():.3g}]")
        valid = None
        if fov is not None:
            f = to_numpy(fov[i:j], "fov")
            valid = ((f[:, 0] if f.ndim == 4 else f) > 0.5).reshape(j - i, -1)
        for l in range(nl):
            rows = np.flatnonzero(pr[i:j, l])
            if rows.size == 0:
                continue
            pl = p[rows, l].reshape(rows.size, -1)
            ml = m[rows, l].reshape(rows.size, -1)
            vl = np.ones_like(ml) if valid is None else valid[rows]
            pred = pl >= threshold
            tp = (pred & ml & vl).sum(1).astype(float)
            fp = (pred & ~ml & vl).sum(1).astype(float)
            fn = (~pred & ml & vl).sum(1).astype(float)
            has = (ml & vl).any(1)
            idx = i + rows
            with np.errstate(invalid="ignore", divide="ignore"):
                per["dice"][idx, l] = np.where(has, 2 * tp / (2 * tp + fp + fn), np.nan)
                per["iou"][idx, l] = np.where(has, tp / (tp + fp + fn), np.nan)
            pooled_tp[l] += tp.sum()
            pooled_fp[l] += fp.sum()
            pooled_fn[l] += fn.sum()
            if method == "hist":
                code = (np.arange(rows.size)[:, None] * 2 + ml) * n_bins + _score_bins(pl, n_bins)
                hist = np.bincount(code[vl], minlength=rows.size * 2 * n_bins).reshape(rows.size, 2, n_bins)
                ap, auc = _ap_auc_from_hist(hist[:, 1], hist[:, 0])
                per["aupr"][idx, l] = np.where(has, ap, np.nan)
                per["auc"][idx, l] = np.where(has, auc, np.nan)
                pooled_hist[l] += hist.sum(0)
            else:
                for r, k in enumerate(idx):
                    s, t = pl[r][vl[r]], ml[r][vl[r]]
                    exact_scores[l].append(s)
                    exact_labels[l].append(t)
                    if t.any():
                        per["aupr"][k, l] = average_precision_score(t, s)
                        per["auc"][k, l] = roc_auc_score(t, s) if not t.all() else np.nan
    for l in range(nl):
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = 2 * pooled_tp[l] + pooled_fp[l] + pooled_fn[l]
            if pooled_tp[l] + pooled_fn[l] > 0:
                pooled["dice"][l] = 2 * pooled_tp[l] / denom
                pooled["iou"][l] = pooled_tp[l] / (denom - pooled_tp[l])
        if method == "hist":
            ap, auc = _ap_auc_from_hist(pooled_hist[l, 1], pooled_hist[l, 0])
            pooled["aupr"][l], pooled["auc"][l] = ap, auc
        elif exact_scores[l]:
            s, t = np.concatenate(exact_scores[l]), np.concatenate(exact_labels[l])
            if t.any():
                pooled["aupr"][l] = average_precision_score(t, s)
                if not t.all():
                    pooled["auc"][l] = roc_auc_score(t, s)
    return {"per_image": per, "pooled": pooled}


def segmentation_per_image(
    probs: Any, masks: Any, present: Any, threshold: float = 0.5, fov: Any = None, method: str = "hist", n_bins: int = 8192
) -> dict[str, np.ndarray]:
    """Per-image, per-lesion numbers (N, 4) for bootstrapping: ``aupr``, ``auc``, ``dice``, ``iou``.

    nan where the lesion is not annotated (``present`` False) or its mask is empty in that image.
    Arguments as :func:`segmentation_metrics`.
    """
    return _segmentation_counts(probs, masks, present, threshold, fov, method, n_bins)["per_image"]


def segmentation_metrics(
    probs: Any,
    masks: Any,
    present: Any,
    threshold: float = 0.5,
    fov: Any = None,
    method: str = "hist",
    n_bins: int = 8192,
) -> dict[str, float]:
    """Lesion-segmentation metrics per lesion (MA, HE, EX, SE) and their mean over lesions.

    Args:
        probs: (N, 4, H, W) lesion probabilities in [0, 1] (in :data:`deepmt.LESIONS` order).
        masks: (N, 4, H, W) binary ground truth (> 0.5 is lesion).
        present: (N, 4) bool, True where that lesion is annotated. Non-annotated (image, lesion) pairs are
            left out of everything.
        threshold: a pixel is predicted as lesion when its probability is >= threshold (Dice, IoU).
        fov: optional (N, 1, H, W); when given only pixels inside the field of view are scored.
        method: ``"hist"`` (default): AUPR and ROC-AUC from per-image histograms of the scores in 8192
            equal-width logit bins -- fast on millions of pixels and exact up to ties within a bin
            (a relative probability change of 0.4 % near 0/1; agrees with scikit-learn to ~1e-3, and
            exactly when scores are coarser than the bins). ``"exact"``: scikit-learn's
            ``average_precision_score`` / ``roc_auc_score`` on every image and on all pixels (slow).

    Returns, for each lesion ``L``:
        * ``aupr_L``, ``auc_L``, ``dice_L``, ``iou_L``: averaged over the images whose mask of ``L`` is
          annotated and non-empty (the paper's "averaged over the images that contain that lesion");
        * ``aupr_L_pooled`` ... ``iou_L_pooled``: over all pixels of all images where ``L`` is annotated
          (images with an empty mask included: their false positives count);
        * ``n_images_L``: the number of images in the per-image average.
    and ``aupr``, ``auc``, ``dice``, ``iou`` (and ``..._pooled``): the mean over lesions (nan-skipping).
    """
    res = _segmentation_counts(probs, masks, present, threshold, fov, method, n_bins)
    per, pooled = res["per_image"], res["pooled"]
    out: dict[str, float] = {}
    for k in ("aupr", "auc", "dice", "iou"):
        lesion_means = _nanmean_quiet(per[k], axis=0) if len(per[k]) else np.full(len(LESIONS), np.nan)
        for l, name in enumerate(LESIONS):
            out[f"{k}_{name}"] = float(lesion_means[l])
            out[f"{k}_{name}_pooled"] = float(pooled[k][l])
        out[k] = float(_nanmean_quiet(lesion_means))
        out[f"{k}_pooled"] = float(_nanmean_quiet(pooled[k]))
    for l, name in enumerate(LESIONS):
        out[f"n_images_{name}"] = float(np.isfinite(per["dice"][:, l]).sum())
    return out


# =========================================================================== uncertainty
def nanmean(x: Any) -> float:
    """Mean over the non-nan entries of a 1-D array (nan if none); has a vectorised bootstrap path (``"mean"``)."""
    a = to_numpy(x, "x").astype(np.float64)
    return float(_nanmean_quiet(a)) if a.size else math.nan


def _mean_batched(w: np.ndarray, x: Any) -> np.ndarray:
    a = to_numpy(x, "x").astype(np.float64)
    if a.ndim != 1:
        raise _shape_error("a mean metric takes a 1-D array of per-image values", x=a.shape)
    ok = ~np.isnan(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w[:, ok] @ a[ok]) / w[:, ok].sum(1)


#: name -> :class:`Metric`: the metrics with a vectorised bootstrap path. ``"grading"`` is the dict of
#: :func:`grading_metrics`; ``"accuracy"``, ``"qwk"``, ``"linear_kappa"``, ``"macro_f1"``, ``"auc_ovr"`` single
#: entries of it (``fn(y_true, probs)``); ``"mean"`` the nan-skipping mean of one (N,) array of per-image values.
METRICS: dict[str, Metric] = {
    "grading": Metric(grading_metrics, _grading_batched),
    **_GRADING_SINGLE,
    "mean": Metric(nanmean, _mean_batched),
}


def as_metric(metric: Metric | str | Callable[..., Any]) -> Metric:
    """``metric`` as a :class:`Metric`: a Metric as it is; a name of :data:`METRICS`; a registered function
    (e.g. :func:`qwk`) with its batched path; ``np.mean`` / ``np.nanmean`` with the ``"mean"`` path (over the
    non-nan values); any other callable without a batched path."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; registered: {', '.join(METRICS)}")
        return METRICS[metric]
    if not callable(metric):
        raise TypeError(f"metric must be a Metric, a name in METRICS or a function, got {type(metric).__name__}")
    for registered in METRICS.values():
        if registered.fn is metric:
            return registered
    if metric is np.mean or metric is np.nanmean:
        return Metric(metric, _mean_batched)
    return Metric(metric)


def _as_dict(value: Any) -> dict[str | None, float]:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if np.ndim(v) == 0:
                try:
                    out[k] = float(v)
                except (TypeError, ValueError):
                    pass
        return out
    if np.ndim(value) != 0:
        raise ValueError(f"metric_fn must return a number or a dict of numbers, got shape {np.shape(value)}")
    return {None: float(value)}


def _take(a: Any, idx: np.ndarray) -> Any:
    if a is None:
        return None
    if type(a).__module__.startswith("torch"):
        import torch

        return a[torch.from_numpy(idx)]
    return np.asarray(a)[idx]


def _bootstrap_samples(
    metric: Metric, arrays: Sequence[Any], n_boot: int, seed: int, use_batched: bool = True
) -> dict[str | None, np.ndarray]:
    """``metric`` on ``n_boot`` resamples of the rows of ``arrays`` -> {key: (n_boot,) values}.

    Resample ``b`` draws ``n`` row indices with replacement from ``np.random.default_rng(seed)``, in the
    same order for every metric, so two calls with the same seed and n see the same resamples (what a
    paired test needs). A metric with a batched path is evaluated on all resamples at once from the row
    multiplicities.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n = _check_same_length(arrays)
    if n == 0:
        raise ValueError("cannot bootstrap zero rows")
    batched = metric.batched if use_batched else None
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // n))
    collected: dict[str | None, list[np.ndarray]] = {}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        if batched is not None:
            w = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
            res = batched(w, *arrays)
            res = dict(res) if isinstance(res, Mapping) else {None: res}
            for k, v in res.items():
                collected.setdefault(k, []).append(np.asarray(v, dtype=np.float64).reshape(b))
        else:
            rows = [_as_dict(metric.fn(*[_take(a, r) for a in arrays])) for r in idx]
            for k in rows[0]:
                collected.setdefault(k, []).append(np.array([row.get(k, np.nan) for row in rows]))
        done += b
    return {k: np.concatenate(v) for k, v in collected.items()}


def _percentiles(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    ok = samples[~np.isnan(samples)]
    if ok.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(ok, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(
    metric_fn: Metric | str | Callable[..., Any], *arrays: Any, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
    use_batched: bool = True,
) -> tuple[float, float, float] | dict[str, tuple[float, float, float]]:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``, resampling rows (images).

    ``arrays`` share their first dimension (e.g. ``y_true (N,)`` and ``probs (N, 5)``, or one (N,) array of
    per-image PSNRs with ``metric_fn=np.mean``). Returns ``(point, lo, hi)``: the metric on all rows and the
    ``alpha/2`` and ``1 - alpha/2`` percentiles over ``n_boot`` resamples (resamples where the metric is
    undefined, nan, are left out). If ``metric_fn`` returns a dict (e.g. :func:`grading_metrics`), the result
    is a dict ``{name: (point, lo, hi)}`` for every numeric entry. ``metric_fn`` is anything
    :func:`as_metric` takes.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    metric = as_metric(metric_fn)
    point = _as_dict(metric.fn(*arrays))
    samples = _bootstrap_samples(metric, arrays, n_boot, seed, use_batched)
    out = {k: (v, *_percentiles(samples.get(k, np.array([np.nan])), alpha)) for k, v in point.items()}
    return out[None] if list(out) == [None] else out  # type: ignore[return-value]


def paired_bootstrap(
    metric_a: Metric | str | Callable[..., Any],
    arrays_a: Sequence[Any],
    metric_b: Metric | str | Callable[..., Any],
    arrays_b: Sequence[Any],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    use_batched: bool = True,
) -> dict[str, Any]:
    """Paired bootstrap of metric(A) - metric(B), where ``metric_a(*arrays_a)`` and ``metric_b(*arrays_b)`` are
    two methods' numbers whose arrays have one row per image, the same images in the same order.

    Every resample draws the same image indices for both (the same ``seed`` and number of rows), so image
    difficulty cancels. The two metrics may differ (e.g. each averages over its own training seeds); each is
    anything :func:`as_metric` takes. Returns ``diff`` = metric(A) - metric(B) on all images, ``lo``/``hi`` the
    ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled differences, a two-sided ``p_value`` =
    2 * min(share of resampled differences <= 0, share >= 0) with the usual +1 correction
    ((k + 1) / (n_boot + 1)), capped at 1 (small when the interval excludes 0, 1 for identical methods), ``a``,
    ``b`` (the two point values) and ``n_boot`` (resamples where both are defined). For dict-valued metrics
    the result is ``{name: {...}}``.
    """
    ma, mb = as_metric(metric_a), as_metric(metric_b)
    _check_same_length([*arrays_a, *arrays_b])
    pa, pb = _as_dict(ma.fn(*arrays_a)), _as_dict(mb.fn(*arrays_b))
    sa = _bootstrap_samples(ma, arrays_a, n_boot, seed, use_batched)
    sb = _bootstrap_samples(mb, arrays_b, n_boot, seed, use_batched)
    out: dict[str | None, dict[str, Any]] = {}
    for k in pa:
        d = sa.get(k, np.full(n_boot, np.nan)) - sb.get(k, np.full(n_boot, np.nan))
        d = d[~np.isnan(d)]
        lo, hi = _percentiles(d, alpha)
        if d.size:
            p = min(1.0, 2 * (min((d <= 0).sum(), (d >= 0).sum()) + 1) / (d.size + 1))
        else:
            p = math.nan
        out[k] = {"diff": pa[k] - pb.get(k, math.nan), "lo": lo, "hi": hi, "p_value": float(p), "a": pa[k], "b": pb.get(k, math.nan), "n_boot": int(d.size)}
    return out[None] if list(out) == [None] else out  # type: ignore[return-value]


def paired_bootstrap_test(
    metric_fn: Metric | str | Callable[..., Any],
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    use_batched: bool = True,
) -> dict[str, Any]:
    """Paired bootstrap comparison (:func:`paired_bootstrap`) of methods A and B evaluated on the same images
    with one metric: ``metric_fn(y_true, pred_a)`` vs ``metric_fn(y_true, pred_b)``.

    ``y_true`` may be ``None`` when ``metric_fn`` takes only the predictions (e.g. ``np.mean`` of
    per-image PSNRs). Returns what :func:`paired_bootstrap` returns.
    """
    args_a = (pred_a,) if y_true is None else (y_true, pred_a)
    args_b = (pred_b,) if y_true is None else (y_true, pred_b)
    names = ["pred_a"] if y_true is None else ["y_true", "pred_a"]
    _check_same_length([*args_a, pred_b], names + ["pred_b"])
    return paired_bootstrap(metric_fn, args_a, metric_fn, args_b, n_boot=n_boot, seed=seed, alpha=alpha, use_batched=use_batched)


def mean_std(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) across seeds, skipping nan; std is nan for one value."""
    a = to_numpy(values, "values").astype(np.float64).ravel()
    a = a[~np.isnan(a)]
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan


def format_mean_std(values_or_mean: Any, std: float | None = None, digits: int = 3) -> str:
    """``"0.812 ± 0.013"`` from values across seeds (or from a mean and a std); ``"0.812"`` for one seed."""
    if std is None:
        mean, std = mean_std(values_or_mean)
    else:
        mean = float(values_or_mean)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if std is None or math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_ci(point: float, lo: float, hi: float, digits: int = 3, signed: bool = False) -> str:
    """``"0.812 [0.790, 0.833]"`` (``signed=True``: ``"+0.052 [+0.021, +0.083]"`` for effects)."""
    if point is None or math.isnan(point):
        return "n/a"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f.format(point)
    return f"{f.format(point)} [{f.format(lo)}, {f.format(hi)}]"
