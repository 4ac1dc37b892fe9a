"""What the paper's tables share (notebooks 01, 04-06): what each method sees, CI tables per method, paired effects
read as claims and controls, the verdicts in words and the metric bar chart.

Each table function trains (or loads from the cache) the methods it compares, then returns a dict of
DataFrames -- ``summary`` (mean ± std over seeds), ``ci`` (95% bootstrap CIs over test images),
``effects`` (paired differences with CIs and p-values) and ``claims`` (rows of the claims table) --
plus the runs themselves for figures. Method names: :data:`deepmt.models.methods.METHODS`.

Training seconds never enter these tables: they differ between two runs that give the same numbers, so they
go to a ``timing`` table of their own (saved under ``results/timing/``), and a rerun changes no result table.
Each notebook's "what we see" is written from a study's result by ``what_we_see_<nn>`` (01, 04, 05, 06), in the
notebook's own module (:mod:`deepmt.studies.finding1`, :mod:`~deepmt.studies.grading_table`,
:mod:`~deepmt.studies.isr_table`, :mod:`~deepmt.studies.segmentation_table`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from deepmt import metrics as M
from deepmt.claims import Claim, claims_table, stage2_counts
from deepmt.controls import control_row
from deepmt.studies.common import Runs, label, method_ci

#: what each method sees
INPUTS = {
    "grader_lr": "LR", "unet_lr": "LR", "grader_bicubic": "bicubic", "unet_bicubic": "bicubic",
    "deepmt_dr_noisr": "bicubic", "deepmt_dr": "SR (DeepMT-DR)", "two_stage": "SR (single-task ISR)",
    "foo_mt": "bicubic", "grader_hr": "HR", "unet_hr": "HR", "foo_mt_hr": "HR", "bicubic": "bicubic",
    "srcnn": "SR", "edsr": "SR", "isr": "SR", "edsr_": "SR",
    "deepmt_dr_on_hr": "HR (DeepMT-DR's weights)", "deepmt_dr_on_bicubic": "bicubic (DeepMT-DR's weights)",
}


def ci_table(runs: Runs, metrics: Sequence[str], n_boot: int) -> pd.DataFrame:
    rows = []
    for m, results in runs.items():
        row: dict[str, Any] = {"method": m, "label": label(m), "input": INPUTS.get(m, ""), "n_seeds": len(results)}
        for met in metrics:
            try:
                v, lo, hi = method_ci(results, met, n_boot=n_boot)
            except ValueError:  # the method does not do that task
                v = lo = hi = np.nan
            row[met], row[f"{met}_lo"], row[f"{met}_hi"] = v, lo, hi
            row[f"{met} [95% CI]"] = M.format_ci(v, lo, hi)
        rows.append(row)
    return pd.DataFrame(rows)


def effect_row(effects: pd.DataFrame, a: str, b: str, metric: str) -> pd.Series | None:
    r = effects[(effects.a == a) & (effects.b == b) & (effects.metric == metric)]
    return None if r.empty else r.iloc[0]


def effect_control(cid: str, effects: pd.DataFrame, a: str, b: str, metric: str, evidence: str, regime: str):
    """Control ``cid`` measured as the paired effect A - B of ``metric`` (a row of ``effects``)."""
    r = effect_row(effects, a, b, metric)
    if r is None:
        return control_row(cid, evidence=evidence, regime=regime)
    return control_row(cid, value=float(r["diff"]), lo=float(r["lo"]), hi=float(r["hi"]), n_seeds=int(r["n_seeds"]),
                       evidence=evidence, regime=regime)


def grading_controls(runs: Runs, effects: pd.DataFrame, hr: str, bicubic: str, evidence: str, regime: str,
                     n_boot: int = 1000) -> list[dict[str, Any]]:
    """The controls a grading claim (C1, C4) needs, measured on its own runs in its regime: *learnable* (the
    lesion-supervised multi-task net on HR, ``foo_mt_hr``: test accuracy with its CI), *gap* (``foo_mt_hr`` -
    ``foo_mt``, a row of ``effects``) and *gap:deepmt_dr* (DeepMT-DR's grading pathway fed HR minus fed bicubic: the
    ``effects`` row ``hr`` - ``bicubic``, :mod:`deepmt.studies.pathway`)."""
    acc, lo, hi = method_ci(runs["foo_mt_hr"], "accuracy", n_boot=n_boot)
    return [
        control_row("learnable", value=acc, lo=lo, hi=hi, n_seeds=len(runs["foo_mt_hr"]), evidence=evidence, regime=regime),
        effect_control("gap", effects, "foo_mt_hr", "foo_mt", "accuracy", evidence, regime),
        effect_control("gap:deepmt_dr", effects, hr, bicubic, "accuracy", evidence, regime),
    ]


def effect_claims(cid: str, effects: pd.DataFrame, a: str, b: str, metrics: Sequence[str], evidence: str, comparison: str | None = None,
            regime: str = "") -> pd.DataFrame:
    claims = []
    for met in metrics:
        r = effects[(effects.a == a) & (effects.b == b) & (effects.metric == met)]
        if r.empty:
            continue
        r = r.iloc[0]
        kw = {"comparison": comparison} if comparison else {}
        claims.append(Claim.from_paper(cid, metric=met, effect=float(r["diff"]), lo=float(r["lo"]), hi=float(r["hi"]),
                                       p_value=float(r.get("p_value", np.nan)), n_seeds=int(r["n_seeds"]),
                                       interval=str(r.get("interval", "") or ""), **stage2_counts(r),
                                       evidence=evidence, regime=regime, **kw))
    return claims_table(claims)


def verdict_list(claims: pd.DataFrame, with_id: bool = False) -> str:
    return "; ".join(f"{r.id} {r.metric}: {r.verdict}" if with_id else f"{r.metric}: {r.verdict}" for r in claims.itertuples())


def plot_metric_bars(table: pd.DataFrame, metrics: Sequence[str], title: str = "", reference: str | None = None):
    """One panel per metric: a bar per method (``table`` from a ``*_table`` function) with its 95% CI."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    colors = ["#c0392b" if m == "deepmt_dr" else ("#7f8c8d" if m == reference or str(m).endswith("_hr") else "#2e86c1")
              for m in table.method]
    for ax, met in zip(axes[0], metrics):
        v = table[met].to_numpy(float)
        err = np.vstack([v - table[f"{met}_lo"].to_numpy(float), table[f"{met}_hi"].to_numpy(float) - v])
        x = np.arange(len(table))
        ax.bar(x, v, color=colors, yerr=np.nan_to_num(err), capsize=3)
        ax.set_xticks(x, [label(m) for m in table.method], rotation=60, ha="right", fontsize=8)
        ax.set_title(met)
        finite = v[np.isfinite(v)]
        if finite.size:
            lo = float(np.nanmin(table[f"{met}_lo"])) if np.isfinite(table[f"{met}_lo"]).any() else float(finite.min())
            ax.set_ylim(max(0.0, lo - 0.1 * abs(lo)) if met.startswith(("psnr",)) else max(0.0, lo - 0.05), None)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = ["INPUTS", "ci_table", "effect_row", "effect_control", "grading_controls", "effect_claims", "verdict_list", "plot_metric_bars"]
