"""Finding 1 and the paper's main tables: grading, super-resolution and segmentation (notebooks 01, 04-06).

Each function trains (or loads from the cache) the methods it compares, then returns a dict of
DataFrames -- ``summary`` (mean ± std over seeds), ``ci`` (95% bootstrap CIs over test images),
``effects`` (paired differences with CIs and p-values) and ``claims`` (rows of the claims table) --
plus the runs themselves for figures. Method names: :data:`deepmt.models.methods.METHODS`.

Training seconds never enter these tables: they differ between two runs that give the same numbers, so they
go to a ``timing`` table of their own (saved under ``results/timing/``), and a rerun changes no result table.
Each notebook's "what we see" is written from a study's result by ``what_we_see_<nn>`` (01, 04, 05, 06).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from deepmt import LESIONS
from deepmt import metrics as M
from deepmt.claims import Claim, claims_table
from deepmt.config import Config
from deepmt.controls import control_row, controls_table, regime_of
from deepmt.studies.common import (
    GRADING_METRICS,
    ISR_METRICS,
    SMOKE_NOTE,
    Runs,
    effects_table,
    label,
    method_ci,
    run_methods,
    sentence,
    sentences,
    summary_table,
)
from deepmt.studies.convergence import lesion_channel_summary, lesion_channels

#: Finding 1, grading: the same task from each kind of input (LR, bicubic, SR, HR).
FINDING1_GRADING = ("grader_lr", "grader_bicubic", "foo_mt", "deepmt_dr_noisr", "deepmt_dr", "grader_hr", "foo_mt_hr")
#: the LR-information dial: MA-vs-smudge LR contrast from "easy" (no smudges) to "nothing left" (LR peaks matched)
DIAL_SETTINGS = (0.0, 0.5, 0.8, 1.0)
#: the dial setting at which LR carries no MA information (the negative control's regime)
NOTHING_LEFT = 1.0
#: methods of the dial sweep: the gap (HR vs bicubic, same lesion-supervised net) and what DeepMT-DR recovers
DIAL_METHODS = ("foo_mt_hr", "foo_mt", "deepmt_dr", "deepmt_dr_noisr")
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
#: notebook 06's loss check: the parts whose lesion channel the literal Dice killed (notebook 03), each trained again
#: with the other ``loss.seg_dice_empty`` setting (:func:`dice_empty_check`)
DICE_EMPTY_METHODS = ("unet_hr", "unet_lr", "foo_mt_hr")


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


def _effect_row(effects: pd.DataFrame, a: str, b: str, metric: str) -> pd.Series | None:
    r = effects[(effects.a == a) & (effects.b == b) & (effects.metric == metric)]
    return None if r.empty else r.iloc[0]


def effect_control(cid: str, effects: pd.DataFrame, a: str, b: str, metric: str, evidence: str, regime: str):
    """Control ``cid`` measured as the paired effect A - B of ``metric`` (a row of ``effects``)."""
    r = _effect_row(effects, a, b, metric)
    if r is None:
        return control_row(cid, evidence=evidence, regime=regime)
    return control_row(cid, value=float(r["diff"]), lo=float(r["lo"]), hi=float(r["hi"]), n_seeds=int(r["n_seeds"]),
                       evidence=evidence, regime=regime)


def _claims(cid: str, effects: pd.DataFrame, a: str, b: str, metrics: Sequence[str], evidence: str, comparison: str | None = None,
            regime: str = "") -> pd.DataFrame:
    claims = []
    for met in metrics:
        r = effects[(effects.a == a) & (effects.b == b) & (effects.metric == met)]
        if r.empty:
            continue
        r = r.iloc[0]
        kw = {"comparison": comparison} if comparison else {}
        claims.append(Claim.from_paper(cid, metric=met, effect=float(r["diff"]), lo=float(r["lo"]), hi=float(r["hi"]),
                                       n_seeds=int(r["n_seeds"]), evidence=evidence, regime=regime, **kw))
    return claims_table(claims)


# --------------------------------------------------------------------------- 01
def finding1(cfg: Config, seeds: Sequence[int], seg_seeds: Sequence[int] = (0,), n_boot: int = 1000,
             dial: Sequence[float] = (), dial_seeds: Sequence[int] = (0,),
             control_seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Finding 1: does super-resolving the LR input improve grading and segmentation?

    Grading from LR, bicubic, DeepMT-DR's SR and HR (``FINDING1_GRADING``, ``seeds``); segmentation
    likewise (``FINDING1_SEG``, ``seg_seeds``). The controlled comparison for claims C1/C2 is DeepMT-DR vs
    the same network without its ISR subnet (bicubic input, ``deepmt_dr_noisr``): same segmentation and
    grading subnets and losses, only the input differs.

    With ``dial`` settings, on the synthetic benchmark, the LR-information dial is swept as well
    (:func:`dial_sweep` with ``dial_seeds``; the config's own setting uses ``seeds``, the negative control's
    ``control_seeds``, by default ``seeds`` too): ``dial`` is its table (None without a sweep) and ``controls``
    holds its negative control after the three of finding 1.
    """
    grading = run_methods(FINDING1_GRADING, cfg, seeds)
    seg_only = [m for m in FINDING1_SEG if m not in grading]
    seg_runs = run_methods(seg_only, cfg, seg_seeds)
    seg = {m: (grading[m] if m in grading else seg_runs[m]) for m in FINDING1_SEG}
    g_metrics = list(GRADING_METRICS)
    s_metrics = ["aupr", "dice", "aupr_MA", "dice_MA"]
    g_effects = effects_table(grading, [("deepmt_dr", "deepmt_dr_noisr"), ("deepmt_dr_noisr", "grader_bicubic"),
                                        ("grader_bicubic", "grader_lr"), ("grader_hr", "grader_bicubic"),
                                        ("foo_mt_hr", "foo_mt"), ("foo_mt_hr", "deepmt_dr_noisr")], g_metrics, n_boot)
    s_effects = effects_table(seg, [("deepmt_dr", "deepmt_dr_noisr"), ("unet_bicubic", "unet_lr"), ("unet_hr", "unet_bicubic")],
                              s_metrics, n_boot)
    regime, ev = regime_of(cfg), "01_finding1_isr_helps"
    claims = pd.concat([
        _claims("C1", g_effects, "deepmt_dr", "deepmt_dr_noisr", ("accuracy", "qwk", "macro_f1"), ev, regime=regime),
        _claims("C2", s_effects, "deepmt_dr", "deepmt_dr_noisr", ("aupr", "dice", "aupr_MA"), ev,
                comparison="DeepMT-DR segmentation of its SR image vs the same network on the bicubic image", regime=regime),
    ], ignore_index=True)
    acc, lo, hi = method_ci(grading["foo_mt_hr"], "accuracy", n_boot=n_boot)
    controls = controls_table([
        control_row("learnable", value=acc, lo=lo, hi=hi, n_seeds=len(grading["foo_mt_hr"]), evidence=ev, regime=regime),
        effect_control("gap", g_effects, "foo_mt_hr", "foo_mt", "accuracy", ev, regime),
        effect_control("lesion_resolution", s_effects, "unet_hr", "unet_bicubic", "aupr_MA", ev, regime),
    ])
    sweep = (dial_sweep(cfg, dial, dial_seeds, default_seeds=seeds, n_boot=n_boot, control_seeds=control_seeds)
             if len(dial) and cfg.data.dataset == "synthetic" else None)
    if sweep is not None:
        controls = pd.concat([controls, sweep["controls"]], ignore_index=True)
    return {
        "grading_runs": grading, "seg_runs": seg,
        "grading": _ci_table(grading, g_metrics, n_boot).merge(summary_table(grading, g_metrics)[["method"] + [f"{m}_std" for m in g_metrics]], on="method"),
        "segmentation": _ci_table(seg, s_metrics + ["auc"], n_boot),
        "effects": pd.concat([g_effects.assign(task="grading"), s_effects.assign(task="segmentation")], ignore_index=True),
        "claims": claims,
        "controls": controls,
        "dial": None if sweep is None else sweep["table"],
        "dial_runs": None if sweep is None else sweep["runs"],
        "smoke": cfg.profile == "smoke",
    }


def dial_sweep(cfg: Config, settings: Sequence[float] = DIAL_SETTINGS, seeds: Sequence[int] = (0,),
               default_seeds: Sequence[int] = (0, 1, 2), n_boot: int = 1000,
               control_seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Where can super-resolution help? The LR-information dial (``data.synth.smudge_match``) from "easy"
    (0: no MA-like smudges) to "nothing left" (1: MA and smudges look alike at LR).

    Per setting: the gap = accuracy of the lesion-supervised multi-task net on HR minus the same net on
    bicubic LR (``foo_mt_hr`` - ``foo_mt``), DeepMT-DR's gain over the same network without ISR
    (``deepmt_dr`` - ``deepmt_dr_noisr``), the share of the gap that gain recovers, and the MA AUPR gain.
    The setting of ``cfg`` itself uses ``default_seeds`` (it is the main claims' regime, shared with the
    rest of notebook 01); the others ``seeds``. The negative control is read at :data:`NOTHING_LEFT`, trained
    with ``control_seeds`` (default: ``default_seeds``): it decides whether claims C1 and C2 can be judged, so it
    is measured with as many seeds as they are (the bootstrap interval covers the test images, not training noise).
    """
    default = float(cfg.data.synth.smudge_match)
    rows, controls = [], []
    runs_by_setting = {}
    for sm in settings:
        c = cfg.replace({"data.synth.smudge_match": float(sm)})
        if float(sm) == default:
            use = list(default_seeds)
        elif float(sm) == NOTHING_LEFT:
            use = list(default_seeds if control_seeds is None else control_seeds)
        else:
            use = list(seeds)
        runs = run_methods(DIAL_METHODS, c, use)
        runs_by_setting[float(sm)] = runs
        numbers, e = gap_and_gain(runs, n_boot)
        rows.append({"smudge_match": float(sm), "regime": regime_of(c), "n_seeds": len(use), **numbers})
        if float(sm) == NOTHING_LEFT:
            controls.append(effect_control("negative", e, "deepmt_dr", "deepmt_dr_noisr", "aupr_MA", "01_finding1_isr_helps", regime_of(c)))
    return {"table": pd.DataFrame(rows), "controls": controls_table(controls), "runs": runs_by_setting}


def gap_and_gain(runs: Runs, n_boot: int = 1000) -> tuple[dict[str, Any], pd.DataFrame]:
    """The numbers of one benchmark setting from runs of :data:`DIAL_METHODS` (same seeds): each method's mean
    test accuracy (``accuracy_<method>``); the gap = ``foo_mt_hr`` - ``foo_mt`` accuracy, DeepMT-DR's ``gain`` over
    the same network without ISR in accuracy and its ``ma_aupr_gain`` in MA AUPR, each as ``<name>``,
    ``<name>_lo``, ``<name>_hi`` (paired 95% CI) and ``<name> [95% CI]``; ``share_recovered`` = gain / gap (NaN
    unless the gap is positive). Returns (those numbers in that order, the effects table they come from)."""
    e = effects_table(runs, [("foo_mt_hr", "foo_mt"), ("deepmt_dr", "deepmt_dr_noisr")], ["accuracy", "aupr_MA"], n_boot)
    gap, gain, ma = (_effect_row(e, "foo_mt_hr", "foo_mt", "accuracy"), _effect_row(e, "deepmt_dr", "deepmt_dr_noisr", "accuracy"),
                     _effect_row(e, "deepmt_dr", "deepmt_dr_noisr", "aupr_MA"))
    row: dict[str, Any] = {}
    for m in DIAL_METHODS:
        row[f"accuracy_{m}"] = float(np.mean([r.metrics["accuracy"] for r in runs[m]]))
    for name, r in (("gap", gap), ("gain", gain), ("ma_aupr_gain", ma)):
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = float(r["diff"]), float(r["lo"]), float(r["hi"])
        row[f"{name} [95% CI]"] = r["effect"]
    row["share_recovered"] = row["gain"] / row["gap"] if row["gap"] > 0 else np.nan
    return row, e


def plot_dial(table: pd.DataFrame):
    """The gap (HR vs bicubic) and DeepMT-DR's gain against the dial, with 95% CIs."""
    return plot_gap_and_gain(table, "smudge_match", "smudge_match (0 easy → 1 nothing left at LR)")


def plot_gap_and_gain(table: pd.DataFrame, x_column: str, x_label: str, x_ticks: bool = False):
    """The gap (HR vs bicubic) and DeepMT-DR's gain in accuracy (left) and MA AUPR (right), with 95% CIs, against
    the setting in ``x_column`` of a table of :func:`gap_and_gain` rows (``x_ticks``: a tick at each setting)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    x = table[x_column].to_numpy()
    for name, lab_, col in (("gap", "gap: MT net on HR − on bicubic", "#34495e"), ("gain", "DeepMT-DR − same net without ISR", "#c0392b")):
        y = table[name].to_numpy()
        axes[0].errorbar(x, y, yerr=[y - table[f"{name}_lo"], table[f"{name}_hi"] - y], marker="o", capsize=3, label=lab_, color=col)
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xlabel(x_label)
    axes[0].set_ylabel("accuracy difference")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Accuracy lost at LR, and regained by ISR")
    y = table["ma_aupr_gain"].to_numpy()
    axes[1].errorbar(x, y, yerr=[y - table["ma_aupr_gain_lo"], table["ma_aupr_gain_hi"] - y], marker="o", capsize=3, color="#c0392b")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_xlabel(x_column)
    axes[1].set_ylabel("MA AUPR: DeepMT-DR − without ISR")
    axes[1].set_title("Microaneurysms recovered by ISR")
    if x_ticks:
        for ax in axes:
            ax.set_xticks(x)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- 04
def grading_table(cfg: Config, seeds: Sequence[int], baselines: Sequence[str] = GRADING_BASELINES,
                  references: Sequence[str] = GRADING_REFERENCES, n_boot: int = 1000) -> dict[str, Any]:
    """Table 04: every grading baseline vs DeepMT-DR on LR input, over ``seeds``.

    The best baseline is chosen on the *validation* split (mean validation QWK over seeds), never on test;
    DeepMT-DR is compared with it by a paired bootstrap over test images (claim C4). ``timing``: each
    method's training seconds (mean over seeds), apart from the result tables.
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
                     comparison=f"DeepMT-DR vs the best baseline on validation QWK ({label(best)}), LR input", regime=regime_of(cfg))
    table = summary.merge(ci[["method"] + [f"{m} [95% CI]" for m in metrics]], on="method")
    per_grade = pd.DataFrame([
        {"method": m, "label": label(m), "seed": r.config.train.seed,
         **{f"recall_{g}": r.metrics.get(f"recall_{g}", np.nan) for g in range(5)}}
        for m, rs in runs.items() for r in rs
    ]).groupby(["method", "label"], sort=False).mean(numeric_only=True).drop(columns="seed").reset_index()
    return {"runs": runs, "table": table, "ci": ci, "effects": effects, "best_baseline": best, "claims": claims,
            "per_grade_recall": per_grade, "timing": train_seconds(runs), "smoke": cfg.profile == "smoke"}


def train_seconds(runs: Runs) -> pd.DataFrame:
    """One row per method: ``train_s``, its training seconds (optimisation only) averaged over its seeds. A
    timing, not a result: two runs with the same numbers differ here (``results/timing/``)."""
    return pd.DataFrame([{"method": m, "label": label(m), "n_seeds": len(rs),
                          "train_s": float(np.mean([r.train_seconds for r in rs]))} for m, rs in runs.items()],
                        columns=["method", "label", "n_seeds", "train_s"])


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

    Every method uses ``seeds`` (metrics averaged over them). Claim C6: DeepMT-DR vs single-task ISR (the
    same ISR architecture trained with the pixel loss only) inside lesion regions. Controls ``sr_works:*``:
    each learned single-task SR method vs bicubic PSNR.
    """
    runs = run_methods(methods, cfg, seeds)  # bicubic trains nothing: its "seeds" are the same numbers, cheap
    metrics = list(ISR_METRICS)
    ci = _ci_table(runs, metrics, n_boot)
    pairs = [("deepmt_dr", m) for m in methods if m != "deepmt_dr"] if "deepmt_dr" in methods else []
    sr_controls = [m for m in ("srcnn", "edsr", "isr") if m in methods]
    if "bicubic" in methods:
        pairs += [(m, "bicubic") for m in sr_controls]
    effects = effects_table(runs, pairs, metrics, n_boot)
    regime, ev = regime_of(cfg), "05_isr_table"
    claims = _claims("C6", effects, "deepmt_dr", "isr", ("psnr_lesion", "ssim_lesion"), ev, regime=regime)
    controls = controls_table([effect_control(f"sr_works:{m}", effects, m, "bicubic", "psnr", ev, regime) for m in sr_controls])
    return {"runs": runs, "table": ci, "effects": effects, "claims": claims, "controls": controls,
            "smoke": cfg.profile == "smoke"}


# --------------------------------------------------------------------------- 06
def lesion_cis(results: Sequence[Any], metric: str, n_boot: int = 1000) -> dict[str, Any]:
    """A segmentation ``metric`` (``aupr``, ``auc``, ``dice``) of ``results`` per lesion and its mean over the lesions:
    ``{"MA": value, "MA [95% CI]": text, ..., "mean": value, "mean [95% CI]": text}`` (:func:`method_ci`)."""
    row: dict[str, Any] = {}
    for lesion in (*LESIONS, None):
        v, lo, hi = method_ci(results, f"{metric}_{lesion}" if lesion else metric, n_boot=n_boot)
        row[lesion or "mean"] = v
        row[f"{lesion or 'mean'} [95% CI]"] = M.format_ci(v, lo, hi)
    return row


def segmentation_table(cfg: Config, seeds: Sequence[int], methods: Sequence[str] = SEG_METHODS, n_boot: int = 1000) -> dict[str, Any]:
    """Table 06: per-lesion AUPR / ROC-AUC / Dice (averaged over the test images containing the lesion,
    the paper's protocol) for U-Nets on LR / bicubic / HR, DeepMT-DR without and with ISR."""
    runs = run_methods(methods, cfg, seeds)
    rows = []
    for m, rs in runs.items():
        for metric in ("aupr", "auc", "dice"):
            rows.append({"method": m, "label": label(m), "input": INPUTS.get(m, ""), "metric": metric,
                         **lesion_cis(rs, metric, n_boot)})
    table = pd.DataFrame(rows)
    effects = effects_table(runs, [("deepmt_dr", m) for m in methods if m != "deepmt_dr"],
                            ["aupr", "aupr_MA", "aupr_HE", "dice", "dice_MA"], n_boot)
    return {"runs": runs, "table": table, "effects": effects, "smoke": cfg.profile == "smoke"}


def dice_empty_check(cfg: Config, seeds: Sequence[int], methods: Sequence[str] = DICE_EMPTY_METHODS,
                     n_boot: int = 1000) -> dict[str, Any]:
    """Notebook 06's loss check: the per-image soft Dice averaged over every annotated (image, lesion) pair, an empty
    mask included (``loss.seg_dice_empty = "include"``), or only over pairs with a lesion pixel (``"skip"``). Each of
    ``methods`` is trained under ``cfg``'s setting and again, as ``METHOD_dice_SETTING``, under the other one.
    Returns ``table`` (per run: its setting, read from the run's config; test AUPR per lesion and mean with 95% CIs;
    test accuracy for a method that grades; ``kept_all``: the seeds whose kept epoch kept every lesion channel,
    :func:`deepmt.studies.convergence.lesion_channels`), ``channels`` (that check per seed and lesion), ``effects``
    (skip - include, paired over test images: AUPR, Dice, and accuracy / QWK where the method grades) and ``pairs``
    (method, its skip run, its include run)."""
    other = "include" if cfg.loss.seg_dice_empty == "skip" else "skip"
    check = {f"{m}_dice_{other}": m for m in dict.fromkeys(methods)}
    runs = run_methods([*check.values(), *check], cfg, seeds, overrides={n: {"loss.seg_dice_empty": other} for n in check},
                       names=check)
    pairs = [(m, n, m) if other == "skip" else (m, m, n) for n, m in check.items()]
    channels = lesion_channels(runs)
    kept = lesion_channel_summary(channels).set_index("method")["kept_all"]
    grades = {name: all("accuracy" in r.metrics for r in rs) for name, rs in runs.items()}
    rows = []
    for name, rs in runs.items():
        row = {"method": name, "label": label(name), "seg_dice_empty": rs[0].config.loss.seg_dice_empty,
               "kept_all": kept.get(name, "n/a"), **lesion_cis(rs, "aupr", n_boot)}
        v, lo, hi = method_ci(rs, "accuracy", n_boot=n_boot) if grades[name] else (np.nan, np.nan, np.nan)
        row["accuracy"], row["accuracy [95% CI]"] = v, (M.format_ci(v, lo, hi) if grades[name] else "")
        rows.append(row)
    seg = ["aupr", *(f"aupr_{l}" for l in LESIONS), "dice"]
    effects = pd.concat([effects_table(runs, [(s, i)], seg + (["accuracy", "qwk"] if grades[s] and grades[i] else []), n_boot)
                         for _, s, i in pairs], ignore_index=True)
    return {"runs": runs, "table": pd.DataFrame(rows), "channels": channels, "effects": effects, "pairs": pairs,
            "smoke": cfg.profile == "smoke"}


def what_we_see_dice_empty(res: dict[str, Any]) -> str:
    """The loss check in words, from :func:`dice_empty_check`'s result: per method, the mean and SE AUPR under both
    settings, the seeds that kept every lesion channel, and the paired effects (accuracy too where measured)."""
    t, e = res["table"].set_index("method"), res["effects"]
    parts = []
    for method, s, i in res["pairs"]:
        comparisons = [(s, i, m) for m in ("aupr", "aupr_SE", "aupr_MA", "accuracy") if ((e.a == s) & (e.metric == m)).any()]
        parts.append(
            f"{label(method)}: mean AUPR {t.loc[i, 'mean']:.3f} with Dice on every annotated mask, {t.loc[s, 'mean']:.3f} "
            f"when Dice skips empty masks (SE {t.loc[i, 'SE']:.3f} vs {t.loc[s, 'SE']:.3f}); every lesion channel kept "
            f"on {t.loc[i, 'kept_all']} vs {t.loc[s, 'kept_all']} seeds; " + sentences(e, *comparisons))
    return ". ".join(parts) + "." + (SMOKE_NOTE if res["smoke"] else "")


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


# --------------------------------------------------------------------------- what we see
def _verdicts(claims: pd.DataFrame, with_id: bool = False) -> str:
    return "; ".join(f"{r.id} {r.metric}: {r.verdict}" if with_id else f"{r.metric}: {r.verdict}" for r in claims.itertuples())


def what_we_see_01(res: dict[str, Any]) -> str:
    """Notebook 01's "what we see", written from :func:`finding1`'s result: grading accuracy from each input, the
    controlled effects of ISR on grading and segmentation, the controls, the dial sweep (when run) and the verdicts."""
    g = res["grading"].set_index("method")
    s = res["segmentation"].set_index("method")
    effects, dial = res["effects"], res["dial"]
    n_seeds = int(g.loc["deepmt_dr", "n_seeds"])
    return (
        f"Grading accuracy from LR {g.loc['grader_lr', 'accuracy']:.3f}, bicubic {g.loc['grader_bicubic', 'accuracy']:.3f}, "
        f"DeepMT-DR without ISR {g.loc['deepmt_dr_noisr', 'accuracy']:.3f}, DeepMT-DR {g.loc['deepmt_dr', 'accuracy']:.3f}, "
        f"HR {g.loc['grader_hr', 'accuracy']:.3f}; a segmentation + grading multi-task net on HR {g.loc['foo_mt_hr', 'accuracy']:.3f} "
        f"(mean of {n_seeds} seed(s)). "
        + sentence(effects, "foo_mt_hr", "deepmt_dr_noisr", "accuracy") + " (the information lost at LR, for the lesion-supervised family). "
        + sentences(effects, ("deepmt_dr", "deepmt_dr_noisr", "accuracy"), ("deepmt_dr", "deepmt_dr_noisr", "qwk")) + ". "
        f"Segmentation AUPR (mean over lesions): LR U-Net {s.loc['unet_lr', 'aupr']:.3f}, bicubic U-Net {s.loc['unet_bicubic', 'aupr']:.3f}, "
        f"DeepMT-DR {s.loc['deepmt_dr', 'aupr']:.3f}, HR U-Net {s.loc['unet_hr', 'aupr']:.3f}; microaneurysm AUPR "
        f"{s.loc['unet_bicubic', 'aupr_MA']:.3f} (bicubic) vs {s.loc['deepmt_dr', 'aupr_MA']:.3f} (DeepMT-DR) vs {s.loc['unet_hr', 'aupr_MA']:.3f} (HR). "
        + sentence(effects[effects.task == "segmentation"], "deepmt_dr", "deepmt_dr_noisr", "aupr") + ". "
        + "Controls: " + "; ".join(f"{r.id} {r.value:.3f} ({r.status})" for r in res["controls"].itertuples()) + ". "
        + ("" if dial is None else "Dial sweep (gap HR - bicubic / DeepMT-DR gain, accuracy): " + "; ".join(
            f"smudge_match {r.smudge_match:g}: {r.gap:+.3f} / {r.gain:+.3f}" for r in dial.itertuples()) + ". ")
        + "Effects (verdicts before controls; notebook 11 applies them): " + _verdicts(res["claims"], with_id=True) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


def what_we_see_04(res: dict[str, Any]) -> str:
    """Notebook 04's "what we see", written from :func:`grading_table`'s result: DeepMT-DR against the best
    baseline on validation, the HR references and the C4 verdicts."""
    t = res["table"].set_index("method")
    best = res["best_baseline"]
    return (
        f"DeepMT-DR: accuracy {t.loc['deepmt_dr', 'accuracy']}, QWK {t.loc['deepmt_dr', 'qwk']}, macro-F1 {t.loc['deepmt_dr', 'macro_f1']} "
        f"(mean ± std over {int(t.loc['deepmt_dr', 'n_seeds'])} seed(s)). The best baseline on validation is {label(best)} "
        f"(accuracy {t.loc[best, 'accuracy']}, QWK {t.loc[best, 'qwk']}). "
        + sentences(res["effects"], ("deepmt_dr", best, "accuracy"), ("deepmt_dr", best, "qwk")) + ". "
        f"From HR photos the plain grader reaches accuracy {t.loc['grader_hr', 'accuracy']} and the multi-task net "
        f"{t.loc['foo_mt_hr', 'accuracy']}. "
        + "Verdicts (C4): " + _verdicts(res["claims"]) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


def what_we_see_05(res: dict[str, Any]) -> str:
    """Notebook 05's "what we see", written from :func:`isr_table`'s result: PSNR over the image and in lesion
    regions, DeepMT-DR against single-task ISR and bicubic, the ``sr_works`` controls and the C6 verdicts."""
    t = res["table"].set_index("method")
    return (
        f"PSNR over the whole image: bicubic {t.loc['bicubic', 'psnr']:.2f} dB, single-task ISR {t.loc['isr', 'psnr']:.2f} dB, "
        f"DeepMT-DR {t.loc['deepmt_dr', 'psnr']:.2f} dB; inside lesion regions: bicubic {t.loc['bicubic', 'psnr_lesion']:.2f} dB, "
        f"single-task ISR {t.loc['isr', 'psnr_lesion']:.2f} dB, DeepMT-DR {t.loc['deepmt_dr', 'psnr_lesion']:.2f} dB. "
        + sentences(res["effects"], ("deepmt_dr", "isr", "psnr_lesion"), ("deepmt_dr", "isr", "ssim_lesion"),
                    ("deepmt_dr", "bicubic", "psnr")) + ". "
        + "Controls: " + "; ".join(f"{r.id} {r.value:+.2f} dB ({r.status})" for r in res["controls"].itertuples()) + ". "
        + "Verdicts (C6, before controls): " + _verdicts(res["claims"]) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


def what_we_see_06(res: dict[str, Any]) -> str:
    """Notebook 06's "what we see", written from :func:`segmentation_table`'s result: microaneurysm and
    haemorrhage AUPR per input, and DeepMT-DR's MA AUPR against the bicubic U-Net and itself without ISR."""
    a = res["table"][res["table"].metric == "aupr"].set_index("method")
    return (
        f"Microaneurysm AUPR: U-Net on LR {a.loc['unet_lr', 'MA']:.3f}, on bicubic {a.loc['unet_bicubic', 'MA']:.3f}, "
        f"DeepMT-DR without ISR {a.loc['deepmt_dr_noisr', 'MA']:.3f}, DeepMT-DR {a.loc['deepmt_dr', 'MA']:.3f}, on HR {a.loc['unet_hr', 'MA']:.3f}. "
        f"Haemorrhage AUPR {a.loc['unet_bicubic', 'HE']:.3f} (bicubic U-Net) vs {a.loc['deepmt_dr', 'HE']:.3f} (DeepMT-DR). "
        + sentences(res["effects"], ("deepmt_dr", "unet_bicubic", "aupr_MA"), ("deepmt_dr", "deepmt_dr_noisr", "aupr_MA")) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )
