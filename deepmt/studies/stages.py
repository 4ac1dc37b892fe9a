"""The stages of a trained run: their order, the epoch each kept, and how its last stage ended.

Read from a run's history and ``result.json`` (:mod:`deepmt.experiment_cache`); no training happens here.
:mod:`deepmt.studies.common` re-exports them for the studies.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import pandas as pd

from deepmt.experiment_cache import ExperimentResult
from deepmt.metrics.curves import level_check


def stage_order(history: pd.DataFrame) -> list[str]:
    """The stages of a run in the order they ran."""
    if history.empty or "stage" not in history:
        return []
    return list(dict.fromkeys(history["stage"].tolist()))


def best_info(res: ExperimentResult) -> dict[str, dict[str, Any]]:
    """``{stage: {"score", "epoch", "metric"}}``: the epoch each stage kept, from the run's ``result.json``
    (or, for an entry without it, the last epoch of the stage whose ``best`` flag is set)."""
    try:
        best = json.loads((res.run_dir / "result.json").read_text()).get("best") or {}
    except (OSError, ValueError):
        best = {}
    h = res.history
    for stage in stage_order(h):
        if stage in best:
            continue
        rows = h[(h["stage"] == stage) & h.get("best", pd.Series(False, index=h.index)).astype(bool)]
        if len(rows):
            r = rows.iloc[-1]
            best[stage] = {"score": float(r.get("selection_score", math.nan)), "epoch": int(r["epoch"]),
                           "metric": str(r.get("selection_metric", ""))}
    return best


def stage2_fallbacks(results: Sequence[ExperimentResult]) -> int:
    """How many of ``results`` kept, in their last stage (of 2 or more), the weights that stage started from
    (``best_info`` epoch 0): DeepMT-DR's stage 2 falling back to the stage-1 weights (issue 27)."""
    orders = [stage_order(r.history) for r in results]
    return sum(len(o) > 1 and best_info(r).get(o[-1], {}).get("epoch") == 0 for r, o in zip(results, orders))


def stage2_rising(results: Sequence[ExperimentResult]) -> int:
    """How many of ``results`` ended their last stage (of 2 or more) still rising on its selection metric by
    notebook 03's rule (:func:`deepmt.metrics.curves.level_check` on the stage's validation curve, the weights it
    started from first where they were evaluated): a comparison with such a run may change with a longer stage."""
    n = 0
    for r in results:
        order = stage_order(r.history)
        if len(order) < 2:
            continue
        h = r.history[r.history["stage"] == order[-1]]
        b = best_info(r).get(order[-1], {})
        metric = str(b.get("metric") or (h["selection_metric"].iloc[0] if "selection_metric" in h else ""))
        if f"val_{metric}" in h:
            start = (b.get("start_val") or {}).get(metric)
            curve = [start] * (start is not None) + h[f"val_{metric}"].astype(float).tolist()
            n += level_check(curve, len(h))["levelled"] == "no"
    return n
