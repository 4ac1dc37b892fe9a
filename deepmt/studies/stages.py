"""The stages of a trained run: their order, the epoch each kept, and how its last stage ended.

Read from a run's history and ``result.json`` (:mod:`deepmt.experiment_cache`); no training happens here.
:mod:`deepmt.studies.common` re-exports them for the studies.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
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


def stage_curve(res: ExperimentResult, stage: str, metric: str,
                best: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """``stage``'s validation curve on ``metric`` (``val_<metric>`` of the run's history): one row per epoch with
    ``epoch``, ``value``, ``loss`` (the epoch's mean weighted training loss, nan where not recorded) and ``start``
    (False), preceded, where the stage evaluated the weights it started from (``start_val`` of :func:`best_info`;
    DeepMT-DR's stage 2), by that start point: epoch 0, ``loss`` nan, ``start`` True. Empty when the stage did not
    record the metric. ``best``: :func:`best_info` of ``res`` when already read."""
    cols = ["epoch", "value", "loss", "start"]
    hs = res.history[res.history["stage"] == stage] if "stage" in res.history else res.history.iloc[:0]
    if f"val_{metric}" not in hs:
        return pd.DataFrame(columns=cols)
    start_val = ((best if best is not None else best_info(res)).get(stage, {}).get("start_val")) or {}
    loss = hs["loss_total"].to_numpy(float) if "loss_total" in hs else np.full(len(hs), np.nan)
    rows = [{"epoch": 0, "value": float(start_val[metric]), "loss": math.nan, "start": True}] if metric in start_val else []
    rows += [{"epoch": int(e), "value": float(v), "loss": float(lo), "start": False}
             for e, v, lo in zip(hs["epoch"].astype(int), hs[f"val_{metric}"].to_numpy(float), loss)]
    return pd.DataFrame(rows, columns=cols)


def last_stage_end(res: ExperimentResult) -> dict[str, bool]:
    """How a run of 2 or more stages ended its last one: ``fell_back``, it kept the weights that stage started
    from (:func:`best_info` epoch 0: DeepMT-DR's stage 2 falling back to the stage-1 weights, issue 27), and
    ``rising``, its validation curve on the stage's selection metric (:func:`stage_curve`) had not levelled off by
    notebook 03's rule (:func:`deepmt.metrics.curves.level_check`): a comparison with such a run may change with a
    longer stage. Both False for a run of one stage. One read of the run's ``result.json``."""
    order = stage_order(res.history)
    if len(order) < 2:
        return {"fell_back": False, "rising": False}
    best = best_info(res)
    b = best.get(order[-1], {})
    h = res.history[res.history["stage"] == order[-1]]
    metric = str(b.get("metric") or (h["selection_metric"].iloc[0] if "selection_metric" in h else ""))
    curve = stage_curve(res, order[-1], metric, best)
    rising = len(curve) > 0 and level_check(curve["value"].to_numpy(float), int((~curve["start"]).sum()))["levelled"] == "no"
    return {"fell_back": b.get("epoch") == 0, "rising": bool(rising)}


def stage2_notes(a: Sequence[ExperimentResult], b: Sequence[ExperimentResult]) -> dict[str, int]:
    """The claims table's stage-2 notes for a comparison of runs ``a`` with runs ``b`` (:func:`last_stage_end`):
    ``stage2_fallbacks`` (A's seeds whose last stage kept its starting weights), ``stage2_rising`` /
    ``stage2_rising_b`` (A's / B's seeds whose last stage was still rising). Each run's ``result.json`` read once."""
    ends_a, ends_b = [last_stage_end(r) for r in a], [last_stage_end(r) for r in b]
    return {"stage2_fallbacks": sum(e["fell_back"] for e in ends_a), "stage2_rising": sum(e["rising"] for e in ends_a),
            "stage2_rising_b": sum(e["rising"] for e in ends_b)}


def stage2_fallbacks(results: Sequence[ExperimentResult]) -> int:
    """How many of ``results`` kept, in their last stage (of 2 or more), the weights that stage started from
    (:func:`last_stage_end`'s ``fell_back``)."""
    return sum(last_stage_end(r)["fell_back"] for r in results)


def stage2_rising(results: Sequence[ExperimentResult]) -> int:
    """How many of ``results`` ended their last stage (of 2 or more) still rising on its selection metric by
    notebook 03's rule (:func:`last_stage_end`'s ``rising``)."""
    return sum(last_stage_end(r)["rising"] for r in results)
