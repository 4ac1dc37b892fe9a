"""The metric registry :data:`METRICS`: each metric with its vectorised bootstrap path, and :func:`as_metric`,
which turns a name, a registered function or any callable into a :class:`~deepmt.metrics.base.Metric`."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from deepmt.metrics.base import Metric, nanmean_quiet, shape_error, to_numpy
from deepmt.metrics.grading import GRADING_SINGLE, grading_batched, grading_metrics


def nanmean(x: Any) -> float:
    """Mean over the non-nan entries of a 1-D array (nan if none); has a vectorised bootstrap path (``"mean"``)."""
    a = to_numpy(x, "x").astype(np.float64)
    return float(nanmean_quiet(a)) if a.size else math.nan


def _mean_batched(w: np.ndarray, x: Any) -> np.ndarray:
    a = to_numpy(x, "x").astype(np.float64)
    if a.ndim != 1:
        raise shape_error("a mean metric takes a 1-D array of per-image values", x=a.shape)
    ok = ~np.isnan(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w[:, ok] @ a[ok]) / w[:, ok].sum(1)


#: name -> :class:`Metric`: the metrics with a vectorised bootstrap path. ``"grading"`` is the dict of
#: :func:`grading_metrics`; ``"accuracy"``, ``"qwk"``, ``"linear_kappa"``, ``"macro_f1"``, ``"auc_ovr"`` single
#: entries of it (``fn(y_true, probs)``); ``"mean"`` the nan-skipping mean of one (N,) array of per-image values.
METRICS: dict[str, Metric] = {
    "grading": Metric(grading_metrics, grading_batched),
    **GRADING_SINGLE,
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
