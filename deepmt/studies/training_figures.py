"""Figures of notebook 03: the loss terms and validation metrics per stage, the schedule (parameters trained
and frozen, seconds per stage) and the convergence of every trained part (the tables are
:mod:`deepmt.studies.training_tables`'s).

    from deepmt.studies.training_figures import figure_convergence, figure_loss_curves, figure_schedule
    figure_schedule(study.schedule, study.timing["schedule"])   # study = training.training_study(...)
    figure_loss_curves(res.history)
    figure_convergence(study.curves, study.convergence)
    figure_validation_curves(runs)
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.experiment_cache import ExperimentResult
from deepmt.studies.common import label
from deepmt.studies.common import stage_order
from deepmt.studies.training_tables import STAGE_TEXT, loss_curves, validation_curves


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


def figure_schedule(schedule: pd.DataFrame, timing: pd.DataFrame):
    """Bars per stage: parameters trained and frozen (``schedule``), and optimisation seconds with the training
    images/s (``timing``, :func:`stage_timing`)."""
    import matplotlib.pyplot as plt

    timing = schedule[["stage"]].merge(timing, on="stage", how="left")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    x = np.arange(len(schedule))
    a1.bar(x, schedule["trained_params"].astype(float), color="C0", label="trained")
    a1.bar(x, schedule["frozen_params"].astype(float), bottom=schedule["trained_params"].astype(float), color="0.8",
           label="frozen")
    a1.set_xticks(x, schedule["stage"])
    a1.set_ylabel("parameters")
    a1.legend(fontsize=8)
    a2.bar(x, timing["seconds"].astype(float), color="C1")
    a2.set_xticks(x, schedule["stage"])
    a2.set_ylabel("optimisation seconds")
    for i, r in timing.iterrows():
        a2.text(i, float(r["seconds"]) if np.isfinite(r["seconds"]) else 0, f"{r['images_per_s']:.0f} img/s",
                ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    return fig


def figure_convergence(curves: pd.DataFrame, table: pd.DataFrame | None = None, ncols: int = 4):
    """One panel per curve of :func:`convergence_curves` (method, stage, metric): the validation value after
    every epoch, one line per seed, the kept epoch starred and the stage-2 start candidate (epoch 0) drawn
    as an open square; the training loss (weighted total, log scale, right axis) dashed in grey. The title
    names the method, stage and metric, with "levelled: yes / no / n/a" per seed from ``table``
    (:func:`convergence_table`)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    keys = list(dict.fromkeys(zip(curves["method"], curves["stage"], curves["metric"]))) if len(curves) else []
    n = max(1, len(keys))
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 2.9 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    if not keys:
        axes[0, 0].text(0.5, 0.5, "no validation curves", ha="center", va="center")
    for ax, (method, stage, metric) in zip(axes.flat, keys):
        d = curves[(curves["method"] == method) & (curves["stage"] == stage) & (curves["metric"] == metric)]
        loss_ax = ax.twinx()
        for k, (seed, ds) in enumerate(d.groupby("seed", sort=False)):
            ds = ds.sort_values("epoch")
            c = colors[k % len(colors)]
            ax.plot(ds["epoch"], ds["value"], marker="o", ms=3, color=c, label=f"seed {seed}")
            start, kept = ds[ds["start"].astype(bool)], ds[ds["kept"].astype(bool)]
            ax.plot(start["epoch"], start["value"], "s", ms=7, mfc="none", color=c)
            ax.plot(kept["epoch"], kept["value"], "*", ms=12, color=c, mec="k", mew=0.5)
            trained = ds[~ds["start"].astype(bool)]
            loss = trained["loss"].to_numpy(float)
            loss_ax.plot(trained["epoch"], np.where(loss > 0, loss, np.nan), ls="--", lw=0.9, color="0.55")
        loss_ax.set_yscale("log")
        loss_ax.tick_params(which="both", labelsize=6, colors="0.45")
        title = f"{label(method)} · {stage}"
        if table is not None and len(table):
            t = table[(table["method"] == method) & (table["stage"] == stage) & (table["metric"] == metric)]
            if len(t):
                title += f"\nlevelled: {', '.join(t['levelled'].astype(str))}"
        ax.set_title(title, fontsize=8)
        ax.set_ylabel(f"val {metric}{' (selects)' if bool(d['selects'].iloc[0]) else ''}", fontsize=8)
        ax.set_xlabel("epoch (0 = start candidate)" if d["start"].astype(bool).any() else "epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if keys:
        axes.flat[0].legend(fontsize=6, loc="best")
    fig.suptitle("Validation curves of every trained part (★ kept epoch, □ stage-2 start candidate; "
                 "grey dashed: training loss, right axis, log)", fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["figure_loss_curves", "figure_validation_curves", "figure_schedule", "figure_convergence"]
