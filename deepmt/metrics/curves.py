"""Has a training curve levelled off? The rule notebook 03 judges every validation curve by.

A curve has levelled off when its running best gained at most :data:`LEVEL_SHARE` of its total gain (best point
minus first point) in the last third of the epochs; below :data:`MIN_EPOCHS` epochs it is not judged. Fixed on
2026-11-26, before any curve was read (``deepmt/studies/convergence.py`` applies it to a grid's runs; the claims
table counts the runs whose last stage had not levelled).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: a curve has levelled off when its running best gained at most this share of its total gain in the last third
LEVEL_SHARE = 0.10
#: fewer epochs than this: the curve is not judged
MIN_EPOCHS = 3


def level_check(values: Sequence[float], n_epochs: int) -> dict[str, Any]:
    """The "levelled off?" rule of the module docstring on one curve: ``values`` its points in order (a
    start value first where there is one), ``n_epochs`` the epochs trained. Returns ``first`` (first finite
    point), ``best`` (best point), ``total_gain``, ``last_third_gain`` (of the running best), ``share``
    (last-third / total gain; 0 when both are 0) and ``levelled``: "yes", "no" or "n/a" (fewer than
    :data:`MIN_EPOCHS` epochs, or no finite value)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    out: dict[str, Any] = {"first": math.nan, "best": math.nan, "total_gain": math.nan, "last_third_gain": math.nan,
                           "share": math.nan, "levelled": "n/a"}
    if not ok.any():
        return out
    v = v[int(np.argmax(ok)):]  # from the first finite point on
    running = np.fmax.accumulate(v)  # nan points never lower the running best
    tail = math.ceil(int(n_epochs) / 3)
    total = float(running[-1] - v[0])
    last = float(running[-1] - running[max(0, len(running) - 1 - tail)])
    out.update(first=float(v[0]), best=float(running[-1]), total_gain=total, last_third_gain=last,
               share=last / total if total > 0 else 0.0)
    if int(n_epochs) >= MIN_EPOCHS:
        out["levelled"] = "yes" if last <= LEVEL_SHARE * total else "no"
    return out
