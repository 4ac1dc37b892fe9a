"""Notebook 08: ablations of DeepMT-DR's structure -- without ISR, without segmentation input, without feature
selection, the grader trained on SR in stage 1b, the journal's unsupervised part (claim C7) and other scales. How a
variant is trained, and the tables both ablation notebooks share: :mod:`deepmt.studies.ablations`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.config import Config, GraderConfig
from deepmt.controls import CONTROLS, control_row, controls_table, regime_of
from deepmt.models.grading import last_feature_map_side
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
from deepmt.studies.common import (
    SMOKE_NOTE,
    describe_config,
    effects_table,
    hierarchical_effect,
    mean_val,
    method_ci,
    metric_value,
    run_methods,
    study_config,
    study_seeds,
)
from deepmt.studies.paper_tables import effect_claims
from deepmt.studies.pathway import pathway_runs

# the studies' defaults, mirrored by the notebooks' parameters cells (tests/test_notebook_defaults.py)
#: weight of the journal's unsupervised term in its variants (notebook 08, claim C7)
UNSUPERVISED = 0.5
#: claim C7: share of the training images that keep their lesion masks (DDR: 757 of 13,673)
MASK_FRACTION = 0.1
#: notebook 08: the scale factors compared (the config's own is the base; each other one is a full run on new
#: data) and the training seeds of the structural and scale variants (mostly full runs: one seed). C7 uses
#: :data:`deepmt.studies.common.SEEDS`.
STRUCTURE_SCALES = (4, 8)
STRUCTURE_SEEDS = (0,)
C7_METRICS = ("accuracy", "qwk", "macro_f1", "aupr")


def structure_variants(scales: Sequence[int] = (), base_scale: int = 4, unsupervised: float = UNSUPERVISED) -> list[Variant]:
    """Notebook 08: without ISR, without segmentation input, without feature selection, the grader trained on
    the SR path in stage 1b instead of HR (does the HR-trained grader lose on SR input?), the journal's
    unsupervised part, and other scales (``data.scale``; the base's scale is the base itself)."""
    out = [
        Variant("no_isr", "without ISR (bicubic input)", {}, method="deepmt_dr_noisr", group="structure"),
        Variant("no_seg", "without segmentation maps in the grader", {"model.grader.use_lesion_maps": False}, group="structure"),
        Variant("no_feature_selection", "without lesion-oriented feature selection", {"model.vis.feature_selection": False},
                group="structure"),
        Variant("stage1b_on_sr", "grader trained on SR in stage 1b (paper: on HR)", {"loss.stage1b_input": "sr"},
                group="schedule"),
        Variant("unsupervised", f"with the unsupervised part (weight {unsupervised:g})", {"loss.unsupervised": float(unsupervised)},
                group="journal"),
    ]
    out += [Variant(f"scale_x{int(s)}", f"scale x{int(s)}", {"data.scale": int(s)}, group="scale")
            for s in scales if int(s) != int(base_scale)]
    return out


# --------------------------------------------------------------------------- the grading pathway (issue 27)
#: notebook 08's diagnosis of DeepMT-DR's grading pathway: its training seeds, and the accuracy its grader must
#: reach on the HR pathway with ground-truth lesion maps for claims C1 and C4 to be testable at this size (below
#: it, even a perfect segmentation and a perfect super-resolution would leave the grader short of the
#: lesion-supervised network on HR, 0.94-0.96 on the synthetic benchmark)
PATHWAY_SEEDS = (0, 1, 2)
#: the variant that feeds the grader the ground-truth lesion maps (a diagnosis: never a fix, it reads the truth)
ORACLE_VARIANT = "oracle_maps"
#: the diagnosis table's name for the method's own input (LR -> SR -> grader), beside "HR pathway"
METHOD_INPUT = "SR (the method)"
#: the control that carries the floor (its threshold: :data:`ORACLE_FLOOR`), gating C1 and C4
ORACLE_CONTROL = "learnable:deepmt_dr_oracle"
ORACLE_FLOOR = CONTROLS[ORACLE_CONTROL].threshold
#: the paper's SPP levels (the config's default)
PAPER_SPP_LEVELS = tuple(GraderConfig().spp_levels)


def fitting_spp_levels(cfg: Config) -> tuple[int, ...]:
    """The SPP levels of ``cfg``'s grader no finer than its last feature map (``data.hr_size`` / 32 on a side, rounded up:
    the stages that grade see whole images). A finer level repeats the map's cells: at 64 px (a 2 x 2 map) the
    paper's (1, 2, 4) pools 4 x 4 copies of 4 values."""
    side = last_feature_map_side(cfg.data.hr_size)
    return tuple(int(l) for l in cfg.model.grader.spp_levels if int(l) <= side) or (1,)


def pathway_variants(cfg: Config) -> list[Variant]:
    """Notebook 08's diagnosis of DeepMT-DR's grading pathway (issue 27): each one change to the full DeepMT-DR,
    warm-started from its cached stage-1 weights where the change acts later. The SPP variant changes the levels to
    those that fit the grader's last feature map; where the profile already takes them and they differ from the
    paper's (quick), it is the paper's levels instead (``spp_paper``); where the two agree (paper) it equals the base
    and reuses the base's runs."""
    levels = fitting_spp_levels(cfg)
    if tuple(cfg.model.grader.spp_levels) == levels != PAPER_SPP_LEVELS:
        # the profile already takes the levels that fit (quick: a named scale-down): the paper's are the change
        spp = Variant("spp_paper", f"the paper's SPP levels {PAPER_SPP_LEVELS} (finer than the grader's last feature map)",
                      {"model.grader.spp_levels": PAPER_SPP_LEVELS}, group="pathway")
    else:
        spp = Variant("spp_fit", f"SPP levels {levels} (fit the grader's last feature map)",
                      {"model.grader.spp_levels": levels}, group="pathway")
    return [
        Variant(ORACLE_VARIANT, "ground-truth lesion maps into the grader (oracle)", {"model.grader.oracle_maps": True},
                group="pathway"),
        Variant("spp_avg", "average- instead of max-pooled SPP", {"model.grader.spp_pool": "avg"}, group="pathway"),
        spp,
        Variant("stage1b_on_sr", "grader trained on SR in stage 1b (paper: on HR)", {"loss.stage1b_input": "sr"},
                group="pathway"),
        Variant("maps_attached", "lesion maps attached in stage 2 (grading also trains segmentation)",
                {"loss.grading_into_seg": True}, group="pathway"),
    ]


def pathway_diagnosis(cfg: Config, seeds: Sequence[int] = PATHWAY_SEEDS, n_boot: int = 1000,
                      evidence: str = "08_ablation_structure") -> dict[str, Any]:
    """Train (or load) :func:`pathway_variants` over ``seeds`` and measure each on two inputs: the method's own
    (LR -> SR -> grader: what the claims judge) and its grading pathway fed ``[HR, Seg(HR)]``
    (:mod:`deepmt.studies.pathway`: what the grader can do when the image is perfect). ``table``: per variant and
    input, test accuracy and QWK as means over seeds and, for each variant, variant − full with a hierarchical
    interval (seeds, then images: :func:`deepmt.studies.common.hierarchical_effect`), and on the method's input its
    validation accuracy and QWK (``val_accuracy``, ``val_qwk``: what a fix is chosen on). ``oracle_hr_accuracy``: the
    oracle variant on the HR pathway; ``testable``: whether it reaches :data:`ORACLE_FLOOR`; ``controls``: that
    measurement as the control :data:`ORACLE_CONTROL` (with its CI over seeds and images), which gates C1 and C4."""
    ab = run_ablation(cfg, seeds, pathway_variants(cfg))
    inputs = {METHOD_INPUT: ab.runs,
              "HR pathway": {name: next(iter(pathway_runs(res, cfg, sources=("hr",)).values())) for name, res in ab.runs.items()}}
    rows = []
    for name in ab.runs:
        for where, runs in inputs.items():
            row = {"variant": name, "label": ab.labels.get(name, name), "input": where, "n_seeds": len(runs[name])}
            for met in ("accuracy", "qwk"):
                row[met] = float(np.mean([metric_value(r, met) for r in runs[name]]))
                if name != BASE:
                    e = hierarchical_effect(runs[name], runs[BASE], met, n_boot=n_boot)
                    row.update({f"{met}_effect": e["diff"], f"{met}_lo": e["lo"], f"{met}_hi": e["hi"]})
                # validation, the split a fix may be chosen on: the method's own input only (the HR pathway has none)
                row[f"val_{met}"] = mean_val(runs[name], met) if where == METHOD_INPUT else math.nan
            rows.append(row)
    table = pd.DataFrame(rows)
    oracle = table[(table.variant == ORACLE_VARIANT) & (table.input == "HR pathway")]
    oracle_hr = float(oracle.accuracy.iloc[0]) if len(oracle) else math.nan
    hr_oracle = inputs["HR pathway"].get(ORACLE_VARIANT, [])
    acc, lo, hi = method_ci(hr_oracle, "accuracy", n_boot=n_boot) if hr_oracle else (math.nan,) * 3
    controls = controls_table([control_row(ORACLE_CONTROL, value=acc, lo=lo, hi=hi, n_seeds=len(hr_oracle),
                                           evidence=evidence, regime=regime_of(cfg))])
    return {"ablation": ab, "plan": ab.plan, "timing": ab.timing, "table": table, "oracle_hr_accuracy": oracle_hr,
            "testable": bool(oracle_hr >= ORACLE_FLOOR), "floor": ORACLE_FLOOR, "controls": controls,
            "smoke": cfg.profile == "smoke"}


def what_we_see_pathway(diag: Mapping[str, Any]) -> str:
    """The diagnosis in words, from :func:`pathway_diagnosis`'s result: the full method's accuracy on both inputs,
    each variant's change with its interval, and whether the oracle reaches the floor C1 and C4 need."""
    t = diag["table"]
    full = t[t.variant == BASE].set_index("input")

    def clause(r) -> str:
        if not np.isfinite(r.get("accuracy_effect", math.nan)):
            return f"{r['label']} ({r['input']}): {r['accuracy']:.3f}"
        return (f"{r['label']} ({r['input']}): {r['accuracy']:.3f}, {r['accuracy_effect']:+.3f} "
                f"[{r['accuracy_lo']:+.3f}, {r['accuracy_hi']:+.3f}]")

    text = (f"The full DeepMT-DR grades with accuracy {full.loc[METHOD_INPUT, 'accuracy']:.3f} from LR and "
            f"{full.loc['HR pathway', 'accuracy']:.3f} when its pathway reads [HR, Seg(HR)] ({int(full['n_seeds'].iloc[0])} "
            "seed(s); variant − full, hierarchical 95% interval over seeds and images): "
            + "; ".join(clause(r) for r in t[t.variant != BASE].to_dict("records")) + ".")
    val = t[(t.input == METHOD_INPUT) & np.isfinite(t.get("val_qwk", pd.Series(np.nan, index=t.index)))]
    fixes = val[~val.variant.isin([BASE, ORACLE_VARIANT])]  # the oracle reads ground truth: a diagnosis, not a fix
    if len(fixes):
        best = fixes.loc[fixes["val_qwk"].idxmax()]
        base = val[val.variant == BASE]
        text += (f" On validation, the split a fix may be chosen on, the highest QWK from LR among the fixes (the oracle "
                 f"left out: it reads the ground truth) is {best['label']}'s "
                 f"({best['val_qwk']:.3f}" + (f" against {base['val_qwk'].iloc[0]:.3f} for the full method" if len(base) else "")
                 + ").")
    oracle = diag["oracle_hr_accuracy"]
    if np.isfinite(oracle):
        text += (f" With ground-truth lesion maps the grader reaches {oracle:.3f} on HR: "
                 + (f"at least {diag['floor']:.2f}, so the pathway can grade this benchmark and C1 / C4 are testable here."
                    if diag["testable"] else
                    f"below {diag['floor']:.2f}, so even perfect super-resolution and segmentation would leave it short: "
                    "C1 and C4 cannot be tested at this size."))
    if diag.get("smoke"):
        text += " (smoke profile: the numbers mean nothing.)"
    return text


def annotated_everywhere(cfg: Config) -> bool:
    """Whether every training image has lesion annotations (then the journal's unsupervised term, which
    trains on images without any, selects nothing). True for the synthetic benchmark by construction."""
    if float(cfg.data.mask_fraction) < 1.0:
        return False
    if cfg.data.dataset == "synthetic":
        return True
    from deepmt.data import build_datasets

    train = build_datasets(cfg.data, ("train",))["train"]
    return all(bool(train[i]["mask_present"].any()) for i in range(len(train)))


def scale_alignment(ab: Ablation, cfg: Config, scale_of: Mapping[str, int], n_check: int = 32) -> pd.DataFrame:
    """Whether each scale variant's test split holds the same images as the base's: same ids and grades (from
    the stored predictions), and how much the HR images differ (max |difference| over the first ``n_check``
    test images: the synthetic benchmark re-matches its LR-matched distractors to each scale)."""
    from deepmt.data import build_datasets

    base = ab.runs[BASE][0].predictions
    ref = build_datasets(cfg.data, ("test",))["test"]
    rows = []
    for name, s in scale_of.items():
        if name == BASE or name not in ab.runs:
            continue
        p = ab.runs[name][0].predictions
        ids = bool(np.array_equal(p["id"], base["id"]))
        grades = bool(ids and np.array_equal(p["grade_true"], base["grade_true"]))
        ds = build_datasets(cfg.replace({"data.scale": int(s)}).data, ("test",))["test"]
        n = min(n_check, len(ds), len(ref))
        hr = max((float((ds[i]["hr"] - ref[i]["hr"]).abs().max()) for i in range(n)), default=math.nan)
        rows.append({"variant": name, "scale": int(s), "lr_size": cfg.data.hr_size // int(s), "n_test": int(len(p["id"])),
                     "ids_match": ids, "grades_match": grades, "hr_max_abs_diff": hr, "hr_images_checked": n})
    return pd.DataFrame(rows, columns=["variant", "scale", "lr_size", "n_test", "ids_match", "grades_match", "hr_max_abs_diff",
                                       "hr_images_checked"])


def plot_scales(summ: pd.DataFrame, scale_of: Mapping[str, int], metrics: Sequence[str], title: str = ""):
    """Each metric (mean over seeds) against the scale factor."""
    import matplotlib.pyplot as plt

    s = summ[summ.variant.isin(list(scale_of))].assign(scale=lambda d: [scale_of[v] for v in d.variant]).sort_values("scale")
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.8 * len(metrics), 2.6), squeeze=False)
    for ax, met in zip(axes[0], metrics):
        ax.plot(s["scale"], s[f"{met}_mean"], marker="o", color="#2e86c1")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(s["scale"]), [f"x{x}" for x in s["scale"]])
        ax.set_title(met, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def unsupervised_study(cfg: Config, seeds: Sequence[int], mask_fraction: float = MASK_FRACTION,
                       unsupervised: float = UNSUPERVISED, n_boot: int = 1000,
                       evidence: str = "08_ablation_structure") -> dict[str, Any]:
    """The journal's unsupervised part where it can act (claim C7): only ``mask_fraction`` of the training
    images keep their lesion masks (``data.mask_fraction``; DDR: 757 of 13,673), DeepMT-DR with the
    unsupervised term (pseudo masks from the HR visualization map for the grade-only images, weight
    ``unsupervised``) vs the same run without it, warm-started at stage 2 from it (stages 1a/1b shared).
    Its control ``learnable`` is measured in the same regime (the multi-task net on HR, same masks)."""
    cfg_p = cfg.replace({"data.mask_fraction": float(mask_fraction)})
    regime = regime_of(cfg_p)
    ab = run_ablation(cfg_p, seeds, [Variant("unsupervised", f"with the unsupervised part (weight {unsupervised:g})",
                                             {"loss.unsupervised": float(unsupervised)}, group="journal")])
    eff = effects_table(ab.runs, [("unsupervised", BASE)], C7_METRICS, n_boot)
    comparison = (f"DeepMT-DR with vs without the unsupervised term (pseudo masks), masks on {100 * float(mask_fraction):g}% "
                  "of the training images; stages 1a/1b shared (warm start)")
    claims = effect_claims("C7", eff, "unsupervised", BASE, C7_METRICS, evidence, comparison=comparison, regime=regime)
    hr = run_methods(["foo_mt_hr"], cfg_p, seeds)["foo_mt_hr"]
    acc, lo, hi = method_ci(hr, "accuracy", n_boot=n_boot)
    controls = controls_table([control_row("learnable", value=acc, lo=lo, hi=hi, n_seeds=len(hr), evidence=evidence, regime=regime)])
    return {"ablation": ab, "plan": ab.plan, "timing": ab.timing, "summary": summary(ab, C7_METRICS), "effects": eff,
            "claims": claims, "controls": controls, "regime": regime}


def structure_study(cfg: Config, seeds: Sequence[int], scales: Sequence[int] = (4,), unsupervised: float = UNSUPERVISED,
                    n_boot: int = 1000) -> dict[str, Any]:
    """Notebook 08: the structural ablations and other scales, against the full DeepMT-DR."""
    variants = structure_variants(scales, cfg.data.scale, unsupervised)
    skip = {}
    if annotated_everywhere(cfg):
        skip["unsupervised"] = ("every training image has lesion annotations: the unsupervised term trains only on images "
                                "without any, so it would select none and the run would equal the base")
    ab = run_ablation(cfg, seeds, variants, skip=skip)
    eff = effects(ab, METRICS, n_boot)
    scale_of = {BASE: int(cfg.data.scale), **{f"scale_x{int(s)}": int(s) for s in scales if int(s) != int(cfg.data.scale)}}
    return {"ablation": ab, "plan": ab.plan, "timing": ab.timing, "summary": summary(ab), "effects": eff,
            "wide": wide_effects(eff), "scale_check": scale_alignment(ab, cfg, scale_of), "scale_of": scale_of,
            "synthetic": cfg.data.dataset == "synthetic", "smoke": cfg.profile == "smoke"}


def what_we_see_08(res: Mapping[str, Any], c7: Mapping[str, Any]) -> str:
    """Notebook 08's "what we see", written from :func:`structure_study`'s result ``res`` and
    :func:`unsupervised_study`'s ``c7``: each structural variant against the full DeepMT-DR, the variants not run
    and why, the other scales (and whether their test images match the base's), and claim C7 with its control."""
    s = res["summary"].set_index("variant")
    plan, check = res["plan"], res["scale_check"]
    ran = [v for v in ("no_isr", "no_seg", "no_feature_selection", "stage1b_on_sr", "unsupervised") if v in s.index]
    scale_text = ""
    if len(check):
        scale_text = " Other scales: " + "; ".join(
            f"x{r.scale} (LR {r.lr_size} px) has accuracy {s.loc[r.variant, 'accuracy']}, QWK {s.loc[r.variant, 'qwk']}, lesion PSNR "
            f"{s.loc[r.variant, 'psnr_lesion']} dB (test ids {'match' if r.ids_match else 'DIFFER'}, grades "
            f"{'match' if r.grades_match else 'DIFFER'}, HR images differ by up to {r.hr_max_abs_diff:.3f}"
            + (" because the synthetic benchmark re-matches its distractors to each scale's LR"
               if res["synthetic"] and r.hr_max_abs_diff > 0 else "")
            + ")" for r in check.itertuples()) + "."
    return (
        f"The full DeepMT-DR reaches accuracy {s.loc[BASE, 'accuracy']}, QWK {s.loc[BASE, 'qwk']}, lesion PSNR "
        f"{s.loc[BASE, 'psnr_lesion']} dB and AUPR {s.loc[BASE, 'aupr']}. Variant − full: "
        + "; ".join(effect_clause(res["effects"], v, ["accuracy", "qwk", "psnr_lesion", "aupr"], res["ablation"].labels) for v in ran) + "."
        + "".join(f" Not run: {r.label} ({r.note})." for r in plan[plan.trained == "not run"].itertuples())
        + scale_text
        + f" Claim C7 ({c7['regime']}, {len(c7['ablation'].runs[BASE])} seed(s)): "
        + "; ".join(f"{r.metric} {r.effect:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] ({r.verdict} before controls)" for r in c7["claims"].itertuples())
        + "; control learnable: " + "; ".join(f"{r.value:.3f} ({r.status})" for r in c7["controls"].itertuples()) + "."
        + f" Intervals cover test-image sampling only ({len(res['ablation'].runs[BASE])} seed(s); training noise is not measured)."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


__all__ = [
    "UNSUPERVISED", "MASK_FRACTION", "STRUCTURE_SCALES", "STRUCTURE_SEEDS", "C7_METRICS", "structure_variants",
    "annotated_everywhere", "scale_alignment", "plot_scales", "unsupervised_study", "structure_study", "what_we_see_08",
    "PATHWAY_SEEDS", "ORACLE_VARIANT", "METHOD_INPUT", "ORACLE_CONTROL", "ORACLE_FLOOR", "fitting_spp_levels", "pathway_variants", "pathway_diagnosis", "what_we_see_pathway",
    # what notebook 08 calls besides
    "METRICS", "plot_effects", "describe_config", "study_config", "study_seeds", "save_figure", "save_table",
]
