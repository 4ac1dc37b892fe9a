"""Finding 1 and the paper's main tables: grading, super-resolution and segmentation (notebooks 01, 04-06).

Each function trains (or loads from the cache) the methods it compares, then returns a dict of
DataFrames -- ``summary`` (mean ± std over seeds), ``ci`` (95% bootstrap CIs over test images),
``effects`` (paired differences with CIs and p-values) and ``claims`` (rows of the claims table) --
plus the runs themselves for figures. Method names: :data:`deepmt.models.methods.METHODS`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from deepmt import LESIONS
from deepmt import metrics as M
from deepmt.claims import Claim, claims_table
from deepmt.config import Config
from deepmt.studies.common import (
    GRADING_METRICS,
    ISR_METRICS,
    Runs,
    effects_table,
    label,
    method_ci,
    run_methods,
    summary_table,
)

#: Finding 1, grading: the same task from each kind of input (LR, bicubic, SR, HR).
FINDING1_GRADING = ("grader_lr", "grader_bicubic", "deepmt_dr_noisr", "deepmt_dr", "grader_hr", "foo_mt_hr")
#: Finding 1, segmentation.
FINDING1_SEG = ("unet_lr", "unet_bicubic", "deepmt_dr_noisr", "deepmt_dr", "unet_hr")
#: what each method sees
INPUTS = {
    "grader_lr": "LR", "unet_lr": "LR", "grader_bicubic": "bicubic", "unet_bicubic": "bicubic",
    "deepmt_dr_noisr": "bicubic", "deepmt_dr": "SR (DeepMT-DR)", "two_stage": "SR (single-task ISR)",
    "foo_mt": "bicubic", "grader_hr": "HR", "unet_hr": "HR", "foo_mt_hr": "HR", "bicubic": "bicubic",
    "srcnn": "SR", "edsr": "SR", "isr": "SR", "edsr_": "SR",
}
#: grading baselines of table 04 (all from LR input) and HR references (upper bounds, not competitors)
GRADING_BASELINES = ("grader_lr", "grader_bicubic", "two_stage", "foo_mt", "deepmt_dr_noisr")
GRADING_REFERENCES = ("grader_hr", "foo_mt_hr")
ISR_METHODS = ("bicubic", "srcnn", "edsr", "isr", "deepmt_dr")
SEG_METHODS = ("unet_lr", "unet_bicubic", "deepmt_dr_noisr", "deepmt_dr", "unet_hr")


def _ci_table(runs: Runs, metrics: Sequence[str], n_boot: int) -> pd.DataFrame:
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


def _claims(cid: str, effects: pd.DataFrame, a: str, b: str, metrics: Sequence[str], evidence: str, comparison: str | None = None) -> pd.DataFrame:
    claims = []
    for met in metrics:
        r = effects[(effects.a == a) & (effects.b == b) & (effects.metric == met)]
        if r.empty:
            continue
        r = r.iloc[0]
        kw = {"comparison": comparison} if comparison else {}
        claims.append(Claim.from_paper(cid, metric=met, effect=float(r["diff"]), lo=float(r["lo"]), hi=float(r["hi"]),
                                       n_seeds=int(r["n_seeds"]), evidence=evidence, **kw))
    return claims_table(claims)


# --------------------------------------------------------------------------- 01
def finding1(cfg: Config, seeds: Sequence[int], seg_seeds: Sequence[int] = (0,), n_boot: int = 1000) -> dict[str, Any]:
    """Finding 1: does super-resolving the LR input improve grading and segmentation?

    Grading from LR, bicubic, DeepMT-DR's SR and HR (``FINDING1_GRADING``, ``seeds``); segmentation
    likewise (``FINDING1_SEG``, ``seg_seeds``). The controlled comparison for claims C1/C2 is DeepMT-DR vs
    the same network without its ISR subnet (bicubic input, ``deepmt_dr_noisr``): same segmentation and
    grading subnets and losses, only the input differs.
    """
    grading = run_methods(FINDING1_GRADING, cfg, seeds)
    seg_only = [m for m in FINDING1_SEG if m not in grading]
    seg_runs = run_methods(seg_only, cfg, seg_seeds)
    seg = {m: (grading[m] if m in grading else seg_runs[m]) for m in FINDING1_SEG}
    g_metrics = list(GRADING_METRICS)
    s_metrics = ["aupr", "dice", "aupr_MA", "dice_MA"]
    g_effects = effects_table(grading, [("deepmt_dr", "deepmt_dr_noisr"), ("deepmt_dr_noisr", "grader_bicubic"),
                                        ("grader_bicubic", "grader_lr"), ("grader_hr", "grader_bicubic"),
                                        ("foo_mt_hr", "deepmt_dr_noisr")], g_metrics, n_boot)
    s_effects = effects_table(seg, [("deepmt_dr", "deepmt_dr_noisr"), ("unet_bicubic", "unet_lr"), ("unet_hr", "unet_bicubic")],
                              s_metrics, n_boot)
    claims = pd.concat([
        _claims("C1", g_effects, "deepmt_dr", "deepmt_dr_noisr", ("accuracy", "qwk", "macro_f1"), "01_finding1_isr_helps"),
        _claims("C2", s_effects, "deepmt_dr", "deepmt_dr_noisr", ("aupr", "dice"), "01_finding1_isr_helps",
                comparison="DeepMT-DR segmentation of its SR image vs the same network on the bicubic image"),
    ], ignore_index=True)
    return {
        "grading_runs": grading, "seg_runs": seg,
        "grading": _ci_table(grading, g_metrics, n_boot).merge(summary_table(grading, g_metrics)[["method"] + [f"{m}_std" for m in g_metrics]], on="method"),
        "segmentation": _ci_table(seg, s_metrics + ["auc"], n_boot),
        "effects": pd.concat([g_effects.assign(task="grading"), s_effects.assign(task="segmentation")], ignore_index=True),
        "claims": claims,
    }


# --------------------------------------------------------------------------- 04
def grading_table(cfg: Config, seeds: Sequence[int], baselines: Sequence[str] = GRADING_BASELINES,
                  references: Sequence[str] = GRADING_REFERENCES, n_boot: int = 1000) -> dict[str, Any]:
    """Table 04: every grading baseline vs DeepMT-DR on LR input, over ``seeds``.

    The best baseline is chosen on the *validation* split (mean validation QWK over seeds), never on test;
    DeepMT-DR is compared with it by a paired bootstrap over test images (claim C4).
    """
    runs = run_methods([*baselines, "deepmt_dr", *references], cfg, seeds)
    metrics = list(GRADING_METRICS)
    summary = summary_table(runs, metrics)
    summary.insert(2, "input", [INPUTS.get(m, "") for m in summary.method])
    summary["val_qwk_mean"] = [float(np.mean([r.val_metrics.get("qwk", np.nan) for r in runs[m]])) for m in summary.method]
    ci = _ci_table(runs, metrics, n_boot)
    val = summary.set_index("method")["val_qwk_mean"]
    best = str(val.loc[list(baselines)].idxmax())
    effects = effects_table(runs, [("deepmt_dr", b) for b in baselines], metrics, n_boot)
    claims = _claims("C4", effects, "deepmt_dr", best, ("accuracy", "qwk", "macro_f1"), "04_grading_table",
                     comparison=f"DeepMT-DR vs the best baseline on validation QWK ({label(best)}), LR input")
    table = summary.merge(ci[["method"] + [f"{m} [95% CI]" for m in metrics]], on="method")
    per_grade = pd.DataFrame([
        {"method": m, "label": label(m), "seed": r.config.train.seed,
         **{f"recall_{g}": r.metrics.get(f"recall_{g}", np.nan) for g in range(5)}}
        for m, rs in runs.items() for r in rs
    ]).groupby(["method", "label"], sort=False).mean(numeric_only=True).drop(columns="seed").reset_index()
    return {"runs": runs, "table": table, "ci": ci, "effects": effects, "best_baseline": best, "claims": claims,
            "per_grade_recall": per_grade}


def confusion_matrices(results_by_method: dict[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """Row-normalised test confusion matrices summed over seeds, per method."""
    out = {}
    for m, rs in results_by_method.items():
        cm = sum(M.grading_confusion_matrix(r.predictions["grade_true"], r.predictions["grade_probs"]) for r in rs)
        out[m] = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    return out


# --------------------------------------------------------------------------- 05
def isr_table(cfg: Config, seeds: Sequence[int], methods: Sequence[str] = ISR_METHODS, n_boot: int = 1000) -> dict[str, Any]:
    """Table 05: PSNR / SSIM over the whole image and inside lesion regions (masks dilated by 3 px).

    DeepMT-DR uses ``seeds`` (shared with the grading table); the single-task SR baselines are trained
    with the first seed only (their spread across seeds is small). Claim C6: DeepMT-DR vs single-task ISR
    (the same ISR architecture trained with the pixel loss only) inside lesion regions.
    """
    runs = run_methods([m for m in methods if m != "deepmt_dr"], cfg, seeds[:1])
    if "deepmt_dr" in methods:
        runs.update(run_methods(["deepmt_dr"], cfg, seeds))
    metrics = list(ISR_METRICS)
    ci = _ci_table(runs, metrics, n_boot)
    pairs = [("deepmt_dr", m) for m in methods if m != "deepmt_dr"] if "deepmt_dr" in methods else []
    effects = effects_table(runs, pairs, metrics, n_boot)
    claims = _claims("C6", effects, "deepmt_dr", "isr", ("psnr_lesion", "ssim_lesion"), "05_isr_table")
    return {"runs": runs, "table": ci, "effects": effects, "claims": claims}


# --------------------------------------------------------------------------- 06
def segmentation_table(cfg: Config, seeds: Sequence[int], methods: Sequence[str] = SEG_METHODS, n_boot: int = 1000) -> dict[str, Any]:
    """Table 06: per-lesion AUPR / ROC-AUC / Dice (averaged over the test images containing the lesion,
    the paper's protocol) for U-Nets on LR / bicubic / HR, DeepMT-DR without and with ISR."""
    runs = run_methods(methods, cfg, seeds[:1])
    rows = []
    for m, rs in runs.items():
        for metric in ("aupr", "auc", "dice"):
            row = {"method": m, "label": label(m), "input": INPUTS.get(m, ""), "metric": metric}
            for lesion in (*LESIONS, None):
                key = f"{metric}_{lesion}" if lesion else metric
                v, lo, hi = method_ci(rs, key, n_boot=n_boot)
                row[lesion or "mean"] = v
                row[f"{lesion or 'mean'} [95% CI]"] = M.format_ci(v, lo, hi)
            rows.append(row)
    table = pd.DataFrame(rows)
    effects = effects_table(runs, [("deepmt_dr", m) for m in methods if m != "deepmt_dr"],
                            ["aupr", "aupr_MA", "aupr_HE", "dice", "dice_MA"], n_boot)
    return {"runs": runs, "table": table, "effects": effects}


# --------------------------------------------------------------------------- figures
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


def plot_confusions(cms: dict[str, np.ndarray]):
    """Row-normalised confusion matrices side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cms), figsize=(3.3 * len(cms), 3.2), squeeze=False)
    for ax, (m, cm) in zip(axes[0], cms.items()):
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if cm[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted grade")
        ax.set_ylabel("true grade")
        ax.set_title(label(m), fontsize=9)
    fig.tight_layout()
    return fig


def plot_seg_heatmap(table: pd.DataFrame, metric: str = "aupr"):
    """Methods x lesions heatmap of a segmentation metric (``segmentation_table(...)["table"]``)."""
    import matplotlib.pyplot as plt

    t = table[table.metric == metric].set_index("method")[[*LESIONS, "mean"]]
    fig, ax = plt.subplots(figsize=(6, 0.55 * len(t) + 1.2))
    im = ax.imshow(t.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            v = t.iloc[i, j]
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if (np.isfinite(v) and v < 0.6) else "black")
    ax.set_xticks(range(t.shape[1]), t.columns)
    ax.set_yticks(range(t.shape[0]), [label(m) for m in t.index], fontsize=8)
    ax.set_title(f"segmentation {metric} per lesion (test split)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig
