"""Notebook 03's tables read back from one cached run (its per-epoch history and the epochs each stage kept):
the schedule, the loss and validation curves, the selected epochs, the test metrics and stage 2's feedback
calibration. The study that composes them, and its text, is :mod:`deepmt.studies.training`; the figures are in
:mod:`deepmt.studies.training_figures`.

Everything comes from what the trainer recorded (:mod:`deepmt.engine.trainer`): ``history`` has one row per
epoch with ``stage``, ``epoch``, ``global_epoch``, the epoch's mean ``loss_<term>`` values, the ``val_<metric>``
values after the epoch, ``selection_metric`` / ``selection_score`` / ``best`` (the score improved), ``lr``
(after the epoch's last step), ``seconds`` (optimisation only, validation excluded) and ``images_per_s``;
``result.json`` holds ``best`` = ``{stage: {"score", "epoch", "metric"}}``, the epoch whose weights the stage kept
(epoch 0: the weights it started from), with ``start_val``, the validation metrics of those starting weights,
for a stage that competes with them. No training happens here.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.experiment_cache import ExperimentResult
from deepmt.losses.task_aware import FEEDBACK_TERMS
from deepmt.studies.common import label
from deepmt.studies.common import best_info, stage_order


#: what each stage trains and on what, in the paper's words (DeepMT-DR), and the baselines' single stages
STAGE_TEXT: dict[str, str] = {
    "stage1a": "1a: ISR + lesion segmentation (pixel + TV; Dice + focal on SR and HR)",
    "stage1b": "1b: grading + visualization fusion on HR, segmentation frozen (CE + vis consistency)",
    "stage2": "2: joint fine-tuning of all parts with the task-aware loss (lr x lr_stage2_factor)",
    "single": "one stage: every part of the method",
    "isr": "ISR alone (pixel + TV)",
    "grade": "grader on the frozen ISR output (CE)",
}

#: validation metrics shown per task (only the ones a run recorded are used)
VAL_METRICS = ("qwk", "accuracy", "psnr", "ssim", "dice", "aupr")
_TASK_OF = {"qwk": "grading", "accuracy": "grading", "psnr": "ISR", "ssim": "ISR", "dice": "segmentation",
            "aupr": "segmentation"}

#: the history's timing columns (:func:`split_history`): they differ between two runs with the same numbers
HISTORY_TIMING = ("seconds", "images_per_s")


def loss_terms(history: pd.DataFrame) -> list[str]:
    """Every ``loss_*`` column of the history (``loss_total`` first), without the prefix."""
    terms = [c[5:] for c in history.columns if c.startswith("loss_")]
    return sorted(terms, key=lambda t: (t != "total", terms.index(t)))


def _parts_of(method, stage: str) -> list[str]:
    """Names of the method's sub-modules that ``stage`` trains (``isr``, ``seg``, ``grader``, ``vis``, ...)."""
    by_id = {id(m): name for name, m in method.named_children()}
    try:
        modules = method.stage_modules(stage)
    except (NotImplementedError, KeyError, ValueError):
        return []
    return [by_id.get(id(m), type(m).__name__) for m in modules]


def stage_schedule(res: ExperimentResult, method=None) -> pd.DataFrame:
    """One row per stage of ``res``: what it trains (parts, trained / frozen parameters), epochs configured
    and run, the peak learning rate of its one-cycle schedule, the selection metric, the kept epoch and its
    score. How long each stage took is a timing: :func:`stage_timing`.

    ``method`` (e.g. :func:`deepmt.experiment_cache.load_method` of ``res``) supplies the parameter counts and
    learning rates; without it those columns are nan.
    """
    h = res.history
    best = best_info(res)
    cfg = res.config
    stages = list(getattr(method, "stages", ())) or stage_order(h)
    n_total = sum(p.numel() for p in method.parameters()) if method is not None else 0
    rows = []
    for stage in stages:
        hs = h[h["stage"] == stage] if len(h) else h
        row: dict[str, Any] = {"stage": stage, "what": STAGE_TEXT.get(stage, stage)}
        if method is not None:
            params = method.stage_parameters(stage)
            n = sum(p.numel() for p in params)
            row.update(parts=", ".join(_parts_of(method, stage)), epochs=int(method.stage_epochs(stage, cfg.train)),
                       peak_lr=float(method.stage_lr(stage, cfg.train)), trained_params=int(n),
                       frozen_params=int(n_total - n), trained_share=n / n_total if n_total else math.nan)
        else:
            row.update(parts="", epochs=len(hs), peak_lr=math.nan, trained_params=math.nan, frozen_params=math.nan,
                       trained_share=math.nan)
        row["epochs_run"] = int(len(hs))
        b = best.get(stage, {})
        row["selection_metric"] = b.get("metric", hs["selection_metric"].iloc[0] if len(hs) and "selection_metric" in hs else "")
        row["selected_epoch"] = b.get("epoch", math.nan)
        row["selected_score"] = b.get("score", math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def stage_timing(res: ExperimentResult, stages: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per stage (``stages``, default: those in the history): optimisation ``seconds``, ``train_images``
    drawn and training ``images_per_s`` (images / seconds over the stage's epochs). A timing, not a result: two
    runs with the same numbers differ here (``results/timing/``)."""
    h = res.history
    rows = []
    for stage in stage_order(h) if stages is None else stages:
        hs = h[h["stage"] == stage] if len(h) else h
        seconds = float(hs["seconds"].sum()) if len(hs) and "seconds" in hs else math.nan
        images = float((hs["images_per_s"] * hs["seconds"]).sum()) if len(hs) and "images_per_s" in hs else math.nan
        rows.append({"stage": stage, "seconds": seconds, "train_images": images,
                     "images_per_s": images / seconds if seconds and seconds > 0 else math.nan})
    return pd.DataFrame(rows, columns=["stage", "seconds", "train_images", "images_per_s"])


def split_history(history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the history without its timing columns, the timing columns :data:`HISTORY_TIMING` keyed by ``stage``,
    ``epoch`` and ``global_epoch``): the first is a result, the second differs between two identical runs."""
    timing = [c for c in HISTORY_TIMING if c in history]
    keys = [c for c in ("stage", "epoch", "global_epoch") if c in history]
    return history.drop(columns=timing), history[keys + timing]


def loss_curves(history: pd.DataFrame) -> pd.DataFrame:
    """Long table of the training losses: one row per (stage, epoch, term) with the epoch's mean value.
    Terms a stage does not compute (nan in the history) are left out."""
    if history.empty:
        return pd.DataFrame(columns=["stage", "epoch", "global_epoch", "term", "value"])
    cols = [f"loss_{t}" for t in loss_terms(history)]
    long = history.melt(id_vars=["stage", "epoch", "global_epoch"], value_vars=cols, var_name="term", value_name="value")
    long["term"] = long["term"].str[5:]
    return long.dropna(subset=["value"]).reset_index(drop=True)


def validation_curves(history: pd.DataFrame, metrics: Sequence[str] = VAL_METRICS) -> pd.DataFrame:
    """Long table of validation metrics after each epoch: stage, epoch, global_epoch, metric, task, value,
    and the cumulative optimisation seconds. Metrics the run did not record, or that are nan in every epoch
    (e.g. Dice on a split without lesion masks), are left out."""
    cols = [f"val_{m}" for m in metrics if f"val_{m}" in history and history[f"val_{m}"].notna().any()]
    if history.empty or not cols:
        return pd.DataFrame(columns=["stage", "epoch", "global_epoch", "train_seconds", "metric", "task", "value"])
    h = history.assign(train_seconds=history["seconds"].cumsum() if "seconds" in history else np.nan)
    long = h.melt(id_vars=["stage", "epoch", "global_epoch", "train_seconds"], value_vars=cols, var_name="metric",
                  value_name="value")
    long["metric"] = long["metric"].str[4:]
    long["task"] = long["metric"].map(_TASK_OF).fillna("")
    return long.reset_index(drop=True)


def selected_epochs(res: ExperimentResult, metrics: Sequence[str] = VAL_METRICS) -> pd.DataFrame:
    """One row per stage: the epoch whose weights the stage kept (best validation ``selection_metric``),
    its score, and the validation metrics of that epoch (``val_<metric>``). Epoch 0 is the weights the stage
    started from (DeepMT-DR's stage 2 when no epoch beat them): its metrics are those measured before training."""
    h = res.history
    rows = []
    for stage, b in best_info(res).items():
        row: dict[str, Any] = {"stage": stage, "selection_metric": b.get("metric"), "selected_epoch": b.get("epoch"),
                               "score": b.get("score")}
        hs = h[(h["stage"] == stage) & (h["epoch"] == b.get("epoch"))] if len(h) else h
        start_val = b.get("start_val") if b.get("epoch") == 0 else None
        row["epochs_run"] = int((h["stage"] == stage).sum()) if len(h) else 0
        for m in metrics:
            if start_val is not None:
                row[f"val_{m}"] = float(start_val.get(m, math.nan))
            elif f"val_{m}" in h:
                row[f"val_{m}"] = float(hs[f"val_{m}"].iloc[0]) if len(hs) else math.nan
        rows.append(row)
    order = {s: i for i, s in enumerate(stage_order(h))}
    df = pd.DataFrame(rows)
    return df.sort_values("stage", key=lambda s: s.map(order).fillna(99)).reset_index(drop=True) if len(df) else df


def final_metrics(runs: Mapping[str, Sequence[ExperimentResult]], metrics: Sequence[str] = (
        "accuracy", "qwk", "auc_ovr", "psnr", "ssim", "dice", "aupr")) -> pd.DataFrame:
    """Test-split metrics of each run (one row per method and seed; nan for a task the method lacks). Its
    optimisation seconds are a timing: :func:`run_seconds`."""
    rows = []
    for name, results in runs.items():
        for r in results:
            row: dict[str, Any] = {"method": name, "label": label(name), "seed": r.config.train.seed}
            row.update({m: float(r.metrics.get(m, math.nan)) for m in metrics})
            rows.append(row)
    return pd.DataFrame(rows)


def run_seconds(runs: Mapping[str, Sequence[ExperimentResult]]) -> pd.DataFrame:
    """One row per run (method and seed): ``train_s``, its optimisation seconds. A timing, not a result."""
    return pd.DataFrame([{"method": name, "label": label(name), "seed": r.config.train.seed, "train_s": r.train_seconds}
                         for name, results in runs.items() for r in results],
                        columns=["method", "label", "seed", "train_s"])


def feedback_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Stage 2's task-aware feedback from :meth:`DeepMTDR.feedback_summary`: one row per term (the ISR pixel
    term, then each feedback term) with its mean gradient norm on the ISR parameters before weighting
    (measured over the first stage-2 batches; nan under the authors' weights, which measure nothing), the
    scale it got, the weighted norm and its ratio to the pixel term's (``loss.feedback_ratio`` by
    construction when calibrated). A calibration that measured no batch (``batches`` 0: e.g. stage 2 kept the
    weights it started from, taken before any stage-2 batch) has nan norms: nothing was measured."""
    measured = int(summary.get("batches", 0)) > 0

    def norm(term):
        return float(summary.get(f"grad_norm_{term}", math.nan)) if measured else math.nan

    pix = norm("isr_pixel")
    rows = [{"term": "isr_pixel", "grad_norm": pix, "scale": 1.0}]
    rows += [{"term": t, "grad_norm": norm(t), "scale": float(summary[f"scale_{t}"])} for t in FEEDBACK_TERMS]
    df = pd.DataFrame(rows)
    df["weighted_grad_norm"] = df["scale"] * df["grad_norm"]
    df["ratio_to_pixel"] = df["weighted_grad_norm"] / pix if pix > 0 else math.nan
    df.insert(0, "scaling", summary.get("scaling", ""))
    df["batches"] = summary.get("batches", 0)
    return df


__all__ = [
    "STAGE_TEXT", "VAL_METRICS", "HISTORY_TIMING", "loss_terms", "stage_schedule", "stage_timing", "split_history",
    "loss_curves", "validation_curves", "selected_epochs", "final_metrics", "run_seconds", "feedback_table",
]
