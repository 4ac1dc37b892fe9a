"""Notebook 03: DeepMT-DR's staged training schedule, read back from a cached run.

    from deepmt.studies.training import stage_schedule, loss_curves, validation_curves, selected_epochs
    res = run_methods(["deepmt_dr"], cfg)["deepmt_dr"][0]
    method = load_method(res)
    stage_schedule(res, method)            # stage, parts, epochs, peak lr, trained parameters, seconds, images/s
    loss_curves(res.history)               # long table: stage, epoch, term, value (every loss_* column)
    validation_curves(res.history)         # long table: stage, epoch, metric, value (val_qwk, val_psnr, ...)
    selected_epochs(res)                   # the epoch each stage kept (best validation score) and its metrics

Everything comes from what the trainer recorded (:mod:`deepmt.engine.trainer`): ``history`` has one row per
epoch with ``stage``, ``epoch``, ``global_epoch``, the epoch's mean ``loss_<term>`` values, the ``val_<metric>``
values after the epoch, ``selection_metric`` / ``selection_score`` / ``best`` (the score improved), ``lr``
(after the epoch's last step), ``seconds`` (optimisation only, validation excluded) and ``images_per_s``;
``result.json`` holds ``best`` = ``{stage: {"score", "epoch", "metric"}}``, the epoch whose weights the stage kept.
No training happens here.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.experiments import ExperimentResult
from deepmt.studies.common import label

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


def stage_order(history: pd.DataFrame) -> list[str]:
    """The stages of a run in the order they ran."""
    if history.empty or "stage" not in history:
        return []
    return list(dict.fromkeys(history["stage"].tolist()))


def loss_terms(history: pd.DataFrame) -> list[str]:
    """Every ``loss_*`` column of the history (``loss_total`` first), without the prefix."""
    terms = [c[5:] for c in history.columns if c.startswith("loss_")]
    return sorted(terms, key=lambda t: (t != "total", terms.index(t)))


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
    score, optimisation seconds and training images/s (images drawn / seconds over the stage's epochs).

    ``method`` (e.g. :func:`deepmt.experiments.load_method` of ``res``) supplies the parameter counts and
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
        seconds = float(hs["seconds"].sum()) if len(hs) and "seconds" in hs else math.nan
        images = float((hs["images_per_s"] * hs["seconds"]).sum()) if len(hs) and "images_per_s" in hs else math.nan
        row["seconds"] = seconds
        row["train_images"] = images
        row["images_per_s"] = images / seconds if seconds and seconds > 0 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


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
    its score, and the validation metrics of that epoch (``val_<metric>``)."""
    h = res.history
    rows = []
    for stage, b in best_info(res).items():
        row: dict[str, Any] = {"stage": stage, "selection_metric": b.get("metric"), "selected_epoch": b.get("epoch"),
                               "score": b.get("score")}
        hs = h[(h["stage"] == stage) & (h["epoch"] == b.get("epoch"))] if len(h) else h
        row["epochs_run"] = int((h["stage"] == stage).sum()) if len(h) else 0
        for m in metrics:
            if f"val_{m}" in h:
                row[f"val_{m}"] = float(hs[f"val_{m}"].iloc[0]) if len(hs) else math.nan
        rows.append(row)
    order = {s: i for i, s in enumerate(stage_order(h))}
    df = pd.DataFrame(rows)
    return df.sort_values("stage", key=lambda s: s.map(order).fillna(99)).reset_index(drop=True) if len(df) else df


def final_metrics(runs: Mapping[str, Sequence[ExperimentResult]], metrics: Sequence[str] = (
        "accuracy", "qwk", "auc_ovr", "psnr", "ssim", "dice", "aupr")) -> pd.DataFrame:
    """Test-split metrics of each run (one row per method and seed; nan for a task the method lacks), with its
    optimisation seconds."""
    rows = []
    for name, results in runs.items():
        for r in results:
            row: dict[str, Any] = {"method": name, "label": label(name), "seed": r.config.train.seed}
            row.update({m: float(r.metrics.get(m, math.nan)) for m in metrics})
            row["train_s"] = r.train_seconds
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures
def _stage_spans(history: pd.DataFrame, x: str) -> list[tuple[str, float, float]]:
    spans = []
    for stage in stage_order(history):
        hs = history[history["stage"] == stage]
        spans.append((stage, float(hs[x].min()), float(hs[x].max())))
    return spans


def figure_loss_curves(history: pd.DataFrame):
    """One panel per stage: every loss term the stage computes (mean over the epoch's steps) against the epoch,
    on a log scale (terms span orders of magnitude: TV at 1e-6 weight beside CE)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    long = loss_curves(history)
    stages = stage_order(history)
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(4.4 * max(1, len(stages)), 3.6), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        d = long[long["stage"] == stage]
        for term, g in d.groupby("term", sort=False):
            v = g["value"].to_numpy(float)
            style = dict(lw=2.2, color="k") if term == "total" else dict(lw=1.2)
            ax.plot(g["epoch"], np.where(v > 0, v, np.nan), marker="o", ms=3, label=term, **style)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(STAGE_TEXT.get(stage, stage).split(" (")[0], fontsize=9)
        ax.set_xlabel(f"epoch of {stage}")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss (epoch mean, weighted)")
    if not stages:
        axes[0][0].text(0.5, 0.5, "no training history", ha="center", va="center")
    fig.tight_layout()
    return fig


def figure_validation_curves(runs: Mapping[str, Sequence[ExperimentResult]], main: str = "deepmt_dr",
                             metrics: Sequence[str] = ("qwk", "accuracy", "psnr", "dice", "aupr")):
    """One panel per validation metric against cumulative optimisation seconds: ``main``'s epochs coloured by
    stage (stage boundaries shaded), and each other run of ``runs`` that recorded the metric as a grey line."""
    import matplotlib.pyplot as plt

    main_h = runs[main][0].history
    curves = {name: validation_curves(rs[0].history, metrics) for name, rs in runs.items() if rs}
    shown = [m for m in metrics if any((c["metric"] == m).any() for c in curves.values())]
    n = max(1, len(shown))
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    h = main_h.assign(train_seconds=main_h["seconds"].cumsum()) if len(main_h) else main_h
    spans = _stage_spans(h, "train_seconds") if len(h) else []
    for ax, m in zip(axes[0], shown):
        for i, (stage, lo, hi) in enumerate(spans):
            ax.axvspan(lo, hi, color=colors[i % len(colors)], alpha=0.08)
        for k, (name, c) in enumerate(curves.items()):
            d = c[c["metric"] == m]
            if d.empty:
                continue
            if name == main:
                for i, stage in enumerate(stage_order(d)):
                    ds = d[d["stage"] == stage]
                    ax.plot(ds["train_seconds"], ds["value"], marker="o", ms=4, color=colors[i % len(colors)],
                            label=f"{label(main)} {stage}")
            else:
                ax.plot(d["train_seconds"], d["value"], marker=".", color="0.5", ls=["--", ":", "-."][k % 3],
                        label=label(name))
        ax.set_title(f"validation {m}", fontsize=10)
        ax.set_xlabel("cumulative training seconds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if not shown:
        axes[0][0].text(0.5, 0.5, "no validation metrics", ha="center", va="center")
    fig.tight_layout()
    return fig


def figure_schedule(schedule: pd.DataFrame):
    """Bars per stage: share of parameters trained, and optimisation seconds."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    x = np.arange(len(schedule))
    a1.bar(x, schedule["trained_params"].astype(float), color="C0", label="trained")
    a1.bar(x, schedule["frozen_params"].astype(float), bottom=schedule["trained_params"].astype(float), color="0.8",
           label="frozen")
    a1.set_xticks(x, schedule["stage"])
    a1.set_ylabel("parameters")
    a1.legend(fontsize=8)
    a2.bar(x, schedule["seconds"].astype(float), color="C1")
    a2.set_xticks(x, schedule["stage"])
    a2.set_ylabel("optimisation seconds")
    for i, r in schedule.reset_index(drop=True).iterrows():
        a2.text(i, float(r["seconds"]) if np.isfinite(r["seconds"]) else 0, f"{r['images_per_s']:.0f} img/s",
                ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    return fig


__all__ = [
    "STAGE_TEXT", "VAL_METRICS", "stage_order", "loss_terms", "best_info", "stage_schedule", "loss_curves",
    "validation_curves", "selected_epochs", "final_metrics", "figure_loss_curves", "figure_validation_curves",
    "figure_schedule",
]
