"""Notebook 07: ablations of the task-aware loss -- every feedback term off in turn, all feedback off, the authors'
weights vs the calibrated loss, sweeps of the weights and of ``loss.feedback_ratio``; claim C5. How a variant is
trained, and the tables both ablation notebooks share: :mod:`deepmt.studies.ablations`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.claims import Claim, claims_table, stage2_counts
from deepmt.config import Config
from deepmt.reporting import save_figure, save_table
from deepmt.studies.ablations import (
    BASE,
    METRICS,
    Ablation,
    Variant,
    effect_clause,
    effects,
    plot_effects,
    run_ablation,
    summary,
    wide_effects,
)
from deepmt.studies.common import SMOKE_NOTE, describe_config, effects_table, mean_val, study_config, study_seeds

#: the three feedback terms of the task-aware loss (into the ISR subnet, stage 2)
FEEDBACK_TERMS = ("seg_aware", "cls_aware", "grading_feedback")
C5_METRICS = ("accuracy", "qwk", "psnr_lesion", "ssim_lesion")

# the studies' defaults, mirrored by the notebooks' parameters cells (tests/test_notebook_defaults.py)
#: notebook 07's sweep of ``loss.feedback_ratio`` (the calibrated loss; the config's own ratio is the base)
FEEDBACK_RATIOS = (0.1, 0.5, 2.0)


def task_aware_variants(cls_aware_weights: Sequence[float] = (), seg_aware_weights: Sequence[float] = (),
                        feedback_ratios: Sequence[float] = ()) -> list[Variant]:
    """Notebook 07: each term of the task-aware loss off in turn, all feedback off, the authors' uncalibrated
    weights, and sweeps (``loss.feedback_ratio`` of the calibrated loss; the authors' weights of a term)."""
    out = [
        Variant("authors_weights", "the authors' weights (1 / 10 / 1, not calibrated)", {"loss.feedback_scaling": "authors"},
                group="weighting"),
        Variant("no_seg_aware", "without segmentation-aware term", {"loss.seg_aware": 0.0}, group="term off"),
        Variant("no_cls_aware", "without classification-aware term", {"loss.cls_aware": 0.0}, group="term off"),
        Variant("no_grading_feedback", "without grading feedback", {"loss.grading_feedback": 0.0}, group="term off"),
        Variant("no_vis_consistency", "without vis-map consistency", {"loss.vis_consistency": 0.0}, group="term off"),
        Variant("no_task_aware", "without task-aware loss (plain joint fine-tuning)",
                {f"loss.{t}": 0.0 for t in FEEDBACK_TERMS}, group="all feedback off"),
    ]
    out += [Variant(f"cls_aware={w:g}", f"cls_aware = {w:g}", {"loss.cls_aware": float(w)}, group="sweep cls_aware")
            for w in cls_aware_weights]
    out += [Variant(f"seg_aware={w:g}", f"seg_aware = {w:g}", {"loss.seg_aware": float(w)}, group="sweep seg_aware")
            for w in seg_aware_weights]
    out += [Variant(f"feedback_ratio={r:g}", f"feedback ratio = {r:g}", {"loss.feedback_ratio": float(r)}, group="sweep feedback_ratio")
            for r in feedback_ratios]
    return out


def sweep_table(ab: Ablation, term: str, weights: Sequence[float], base_cfg: Config, metrics: Sequence[str] = METRICS,
                n_boot: int = 1000) -> pd.DataFrame:
    """One row per weight of ``loss.<term>``: each metric with its 95% CI over test images."""
    from deepmt.studies.common import method_ci

    base_w = float(getattr(base_cfg.loss, term))
    rows = []
    for w in sorted({float(x) for x in weights} | {base_w}):
        name = BASE if w == base_w else f"{term}={w:g}"
        results = ab.results(name)
        if results is None:
            continue
        row: dict[str, Any] = {"term": term, "weight": w, "variant": ab.alias.get(name, name), "is_base": w == base_w}
        for met in metrics:
            try:
                v, lo, hi = method_ci(results, met, n_boot=n_boot)
            except ValueError:
                v = lo = hi = math.nan
            row[met], row[f"{met}_lo"], row[f"{met}_hi"] = v, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def feedback_gradients(ab: Ablation, names: Sequence[str] = (BASE, "authors_weights")) -> pd.DataFrame:
    """Per run of ``names`` (and seed): the task-aware feedback's gradient norms on the ISR parameters per term,
    measured over the first stage-2 batches, and the weight each term got (``DeepMTDR.feedback_summary``);
    ``ratio_<term>`` = that term's weighted gradient / the pixel term's (what calibration sets)."""
    from deepmt.experiment_cache import load_method

    rows = []
    for name in names:
        for res in ab.results(name) or []:
            s = load_method(res).feedback_summary()
            row = {"variant": name, "label": ab.labels.get(name, name), "seed": res.config.train.seed, **s}
            if "grad_norm_isr_pixel" in s:
                for t in FEEDBACK_TERMS:
                    pix = s["grad_norm_isr_pixel"]
                    row[f"ratio_{t}"] = s[f"scale_{t}"] * s[f"grad_norm_{t}"] / pix if pix else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def selected_on_validation(ab: Ablation, names: Sequence[str], metric: str = "qwk") -> str:
    """The variant among ``names`` with the best mean *validation* ``metric`` over seeds (never test)."""
    score = {n: mean_val(ab.results(n) or [], metric) for n in names}
    score = {n: v for n, v in score.items() if np.isfinite(v)}
    return max(score, key=score.get) if score else ""


def c5_claims(ab: Ablation, n_seeds: int, n_boot: int = 1000, evidence: str = "07_ablation_task_aware_loss",
              regime: str = "") -> pd.DataFrame:
    """Claim C5 rows: full DeepMT-DR minus the same network without the three feedback terms."""
    eff = effects_table(ab.runs, [(BASE, "no_task_aware")], C5_METRICS, n_boot)
    comparison = ("DeepMT-DR vs the same run with the three feedback terms (seg-aware, cls-aware, grading feedback) "
                  "off in stage 2; stages 1a/1b shared (warm start)")
    return claims_table([
        Claim.from_paper("C5", metric=r.metric, effect=float(r.diff), lo=float(r.lo), hi=float(r.hi), n_seeds=n_seeds,
                         p_value=float(r.p_value), interval=r.interval, **stage2_counts(r._asdict()),
                         evidence=evidence, comparison=comparison,
                         regime=regime)
        for r in eff.itertuples()
    ])


def plot_sweep(sweep: pd.DataFrame, metrics: Sequence[str], title: str = ""):
    """Each metric against the weight of one term (symlog x axis, so weight 0 is shown), with 95% CIs."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 2.8), squeeze=False)
    for ax, met in zip(axes[0], metrics):
        if sweep.empty:
            continue
        s = sweep.sort_values("weight")
        v = s[met].to_numpy(float)
        err = np.vstack([v - s[f"{met}_lo"].to_numpy(float), s[f"{met}_hi"].to_numpy(float) - v])
        ax.errorbar(s["weight"], v, yerr=np.nan_to_num(err), marker="o", capsize=3, color="#2e86c1")
        b = s[s.is_base]
        ax.plot(b["weight"], b[met], "o", color="#c0392b", ms=8, zorder=5, label="the base run (the config's value)")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel(f"loss.{s['term'].iloc[0]}")
        ax.set_title(met, fontsize=9)
    if not sweep.empty:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def task_aware_study(cfg: Config, seeds: Sequence[int], cls_aware_weights: Sequence[float] = (),
                     seg_aware_weights: Sequence[float] = (), feedback_ratios: Sequence[float] = FEEDBACK_RATIOS,
                     n_boot: int = 1000) -> dict[str, Any]:
    """Notebook 07: every task-aware term off in turn, all feedback off, the authors' weights vs the calibrated
    loss (with the per-term gradient norms), sweeps; claim C5 (calibrated loss, the config's ratio).

    ``ratio_on_validation`` is the feedback ratio with the best mean validation QWK over the sweep (the
    config's own ratio included): the rule for choosing the calibrated default, validation only."""
    variants = task_aware_variants(cls_aware_weights, seg_aware_weights, feedback_ratios)
    ab = run_ablation(cfg, seeds, variants)
    eff = effects(ab, METRICS, n_boot)
    sweeps = {t: sweep_table(ab, t, w, cfg, METRICS, n_boot)
              for t, w in (("cls_aware", cls_aware_weights), ("seg_aware", seg_aware_weights), ("feedback_ratio", feedback_ratios)) if len(w)}
    base_r = float(cfg.loss.feedback_ratio)
    names = {BASE if float(r) == base_r else f"feedback_ratio={float(r):g}": float(r) for r in [*feedback_ratios, base_r]}
    best = selected_on_validation(ab, list(names))
    from deepmt.controls import regime_of

    return {"ablation": ab, "plan": ab.plan, "timing": ab.timing, "summary": summary(ab), "effects": eff,
            "wide": wide_effects(eff), "sweeps": sweeps, "gradients": feedback_gradients(ab),
            "ratio_on_validation": names.get(best, math.nan), "feedback_ratio": base_r,
            "claims": c5_claims(ab, len(ab.runs[BASE]), n_boot, regime=regime_of(cfg)), "smoke": cfg.profile == "smoke"}


def describe_loss(cfg: Config) -> str:
    """The base run's task-aware loss and stage-2 schedule in one line (what every variant changes)."""
    L, t = cfg.loss, cfg.train
    return (f"base loss weights: seg_aware {L.seg_aware:g}, cls_aware {L.cls_aware:g}, grading_feedback {L.grading_feedback:g}, "
            f"vis_consistency {L.vis_consistency:g}; feedback {L.feedback_scaling} (ratio {L.feedback_ratio:g}); "
            f"stage-2 epochs {t.epochs_stage2}, lr x{t.lr_stage2_factor:g}")


def what_we_see_07(res: Mapping[str, Any]) -> str:
    """Notebook 07's "what we see", written from :func:`task_aware_study`'s result: the full DeepMT-DR against
    plain joint fine-tuning (claim C5), each term off in turn, the cls_aware sweep (described, never used to
    choose), the feedback ratio chosen on validation, and what the warm starts saved."""
    s = res["summary"].set_index("variant")
    c5 = res["claims"].set_index("metric")
    timing = res["timing"]
    warm = timing[timing.trained.str.startswith("warm")]
    n_seeds = len(res["ablation"].runs[BASE])
    terms = ["authors_weights", "no_seg_aware", "no_cls_aware", "no_grading_feedback", "no_vis_consistency"]
    sweep = res["sweeps"].get("cls_aware")
    best_w = ""
    if sweep is not None and len(sweep) > 1 and sweep.qwk.notna().any() and sweep.psnr_lesion.notna().any():
        best_w = (f" Over the cls_aware weights {sorted(sweep.weight.tolist())}, test QWK (described, not used to choose anything) "
                  f"is highest at {sweep.loc[sweep.qwk.idxmax(), 'weight']:g} (QWK {sweep.qwk.max():.3f}; the paper's weight "
                  f"{sweep.loc[sweep.is_base, 'weight'].iloc[0]:g} gives {sweep.loc[sweep.is_base, 'qwk'].iloc[0]:.3f}), PSNR in "
                  f"lesions is highest at {sweep.loc[sweep.psnr_lesion.idxmax(), 'weight']:g}.")
    return (
        f"The full DeepMT-DR reaches accuracy {s.loc[BASE, 'accuracy']}, QWK {s.loc[BASE, 'qwk']} and PSNR "
        f"{s.loc[BASE, 'psnr_lesion']} dB in lesion regions. Without the three feedback terms (plain joint fine-tuning, "
        f"same stages 1a/1b) it reaches accuracy {s.loc['no_task_aware', 'accuracy']}, QWK {s.loc['no_task_aware', 'qwk']}, "
        f"lesion PSNR {s.loc['no_task_aware', 'psnr_lesion']} dB. Claim C5 (full − without, 95% CI over test images, "
        f"{n_seeds} seed(s)): " + "; ".join(f"{m} {c5.loc[m, 'effect']:+.3f} [{c5.loc[m, 'lo']:+.3f}, {c5.loc[m, 'hi']:+.3f}] -> "
                                            f"{c5.loc[m, 'verdict']}" for m in c5.index) + ". "
        + "Each term off in turn (variant − full, 95% CI): "
        + "; ".join(effect_clause(res["effects"], t, ["qwk", "psnr_lesion", "aupr"], res["ablation"].labels) for t in terms) + "."
        + best_w
        + f" Over the calibrated loss's feedback ratios, validation QWK is best at {res['ratio_on_validation']:g} (the config uses "
          f"{res['feedback_ratio']:g})."
        + f" {len(warm)} variant(s) were warm-started from the base and trained {warm.train_s.sum():.0f} s in all; "
          f"training them from scratch would have repeated {warm.shared_s.sum():.0f} s of the base's earlier stages."
        + f" The intervals cover test-image sampling only; with {n_seeds} seed(s) training noise is not measured, so a small"
          " effect whose interval barely excludes 0 is weak evidence."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


__all__ = [
    "FEEDBACK_TERMS", "C5_METRICS", "FEEDBACK_RATIOS", "task_aware_variants", "sweep_table", "feedback_gradients",
    "selected_on_validation", "c5_claims", "plot_sweep", "task_aware_study", "describe_loss", "what_we_see_07",
    # what notebook 07 calls besides
    "METRICS", "plot_effects", "describe_config", "study_config", "study_seeds", "save_figure", "save_table",
]
