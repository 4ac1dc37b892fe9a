"""What every metric module shares: inputs as NumPy arrays, shape errors that name the shapes, the checked
grading inputs, the :class:`Metric` record of the registry, a nan-mean without warnings, and the image chunks
that bound memory."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

N_GRADES = 5
_CHUNK_ELEMENTS = 1 << 21  # values per image chunk (~2M): bounds the float64 temporaries to a few hundred MB


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


def shape_error(what: str, **shapes: Any) -> ValueError:
    """A ``ValueError`` "``what``: got name (shape), ..." naming every given shape."""
    parts = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
    return ValueError(f"{what}: got {parts}")


def check_same_length(arrays: Sequence[Any], names: Sequence[str] | None = None) -> int:
    """The common number of rows (images) of the arrays that are not ``None``; a shape error if they differ."""
    present = [(i, a) for i, a in enumerate(arrays) if a is not None]
    if not present:
        raise ValueError("no arrays given")
    lengths = [len(a) for _, a in present]
    if len(set(lengths)) != 1:
        names = names or [f"array{i}" for i in range(len(arrays))]
        shapes = {names[i]: np.shape(a) for i, a in present}
        raise shape_error("arrays must have the same number of rows (images)", **shapes)
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


def grading_inputs(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Validate and return ``(y, pred, probs_or_None, keep)`` with grade -1 rows removed.

    ``probs`` is (N, 5) class probabilities (scores: only their ranking and argmax matter, except for
    the calibration error) or (N,) integer predictions.
    """
    y = to_numpy(y_true, "y_true")
    p = to_numpy(probs, "probs")
    if y.ndim != 1:
        raise shape_error("y_true must be 1-D (N,)", y_true=y.shape)
    if p.ndim == 2:
        if p.shape != (len(y), N_GRADES):
            raise shape_error(f"probs must be (N, {N_GRADES}) with N = len(y_true)", y_true=y.shape, probs=p.shape)
        p = p.astype(np.float64)
        if np.isnan(p).any():
            raise ValueError(f"probs contain NaN ({int(np.isnan(p).any(1).sum())} of {len(p)} rows)")
        pred = p.argmax(1)
    elif p.ndim == 1:
        if p.shape != y.shape:
            raise shape_error("predictions must have the shape of y_true", y_true=y.shape, pred=p.shape)
        if p.size and (not np.all(np.isfinite(p)) or np.any(p != np.round(p))):
            raise ValueError("1-D predictions must be integer grades 0-4 (pass (N, 5) probabilities otherwise)")
        pred, p = p.astype(np.int64), None
    else:
        raise shape_error(f"probs must be (N, {N_GRADES}) probabilities or (N,) predicted grades", probs=p.shape)
    if y.size and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
        raise ValueError("y_true must hold integer grades (0-4, or -1 for no grade)")
    y = y.astype(np.int64)
    if np.any((y < -1) | (y >= N_GRADES)):
        raise ValueError(f"y_true has grades outside -1..{N_GRADES - 1}: {sorted(set(y[(y < -1) | (y >= N_GRADES)]))}")
    if np.any((pred < 0) | (pred >= N_GRADES)):
        raise ValueError(f"predicted grades outside 0..{N_GRADES - 1}")
    keep = y >= 0
    return y[keep], pred[keep], (p[keep] if p is not None else None), keep


def nanmean_quiet(x: np.ndarray, axis: int | None = None) -> Any:
    """``np.nanmean`` without the "mean of empty slice" warning: nan is the answer for an undefined metric."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def images_per_chunk(shape: Sequence[int]) -> int:
    """How many images of an (N, ...) array to process at once."""
    return max(1, _CHUNK_ELEMENTS // max(1, int(np.prod(shape[1:]))))
