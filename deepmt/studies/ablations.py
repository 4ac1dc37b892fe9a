"""Ablations of DeepMT-DR: the task-aware loss (notebook 07) and the structure (notebook 08).

An ablation is a config override of ``deepmt_dr`` (or another registered method), a :class:`Variant`.
Each variant is trained the cheapest way that gives the same model as a full run:

* a variant whose config differs from the base only in keys that first act in a later stage (the
  method class's ``stage_config_keys``, :func:`deepmt.experiments.warm_start_stage_keys`; e.g.
  ``loss.cls_aware`` -> ``stage2``, ``loss.vis_consistency`` or ``model.vis.feature_selection`` -> ``stage1b``)
  is **warm-started** from the base run of the same seed at that stage (:func:`deepmt.experiments.run_experiment` with
  ``warm_start``): it shares the earlier stages with the base (same weights, same random-number state),
  so its differences from the base come from the changed stages only;
* any other change (another method, ``model.grader.use_lesion_maps``, ``data.scale``) is a full run;
* a variant whose config trains exactly like the base's *is* the base (no run).

All variants and seeds train side by side once the base runs exist (:func:`deepmt.runner.run_jobs`).

The base is ``deepmt_dr`` under the notebook's config, the very run every other notebook uses (cached).
Effects are paired (same test images) ``variant - base`` with 95% bootstrap CIs over test images
(:func:`deepmt.studies.common.effects_table`); they do not include seed-to-seed training noise, which one
seed cannot measure.

How long each variant trained is a timing, not a result (a rerun changes it and nothing else): it is kept in
:attr:`Ablation.timing`, apart from the plan and the tables. Each notebook's "what we see" is written from a
study's result by :func:`what_we_see_07` / :func:`what_we_see_08`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt import metrics as M
from deepmt.claims import Claim, claims_table
from deepmt.config import Config
from deepmt.engine.checkpoint import RESUME_IGNORED_KEYS, config_diff
from deepmt.experiments import ExperimentResult, warm_start_stage_keys
from deepmt.runner import Job, run_jobs
from deepmt.studies.common import SMOKE_NOTE, Runs, effects_table, run_methods, summary_table

BASE = "deepmt_dr"
GRADING = ("accuracy", "qwk", "macro_f1")
ISR_LESION = ("psnr_lesion", "ssim_lesion")
SEGMENTATION = ("aupr", "dice", "aupr_MA")
METRICS = (*GRADING, *ISR_LESION, *SEGMENTATION)
#: the three feedback terms of the task-aware loss (into the ISR subnet, stage 2)
FEEDBACK_TERMS = ("seg_aware", "cls_aware", "grading_feedback")
C5_METRICS = ("accuracy", "qwk", "psnr_lesion", "ssim_lesion")
#: columns of :attr:`Ablation.timing` (seconds; kept out of the plan and the tables)
TIMING_COLUMNS = ("train_s", "shared_s")

# the studies' defaults, mirrored by the notebooks' parameters cells (tests/test_notebook_defaults.py)
#: notebook 07's sweep of ``loss.feedback_ratio`` (the calibrated loss; the config's own ratio is the base)
FEEDBACK_RATIOS = (0.1, 0.5, 2.0)
#: weight of the journal's unsupervised term in its variants (notebook 08, claim C7)
UNSUPERVISED = 0.5
#: claim C7: share of the training images that keep their lesion masks (DDR: 757 of 13,673)
MASK_FRACTION = 0.1
#: notebook 08: the scale factors compared (the config's own is the base; each other one is a full run on new
#: data) and the training seeds of the structural and scale variants (mostly full runs: one seed). C7 uses
#: :data:`deepmt.studies.common.SEEDS`.
STRUCTURE_SCALES = (4, 8)
STRUCTURE_SEEDS = (0,)


@dataclass(frozen=True)
class Variant:
    """One ablation: ``method`` under the study config plus ``overrides``."""

    name: str
    label: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    method: str = BASE
    group: str = ""


# --------------------------------------------------------------------------- variants
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


# --------------------------------------------------------------------------- planning and running
def start_stage(method: str, base_cfg: Config, cfg: Config, base_method: str = BASE) -> str | None:
    """How a variant is trained: ``"base"`` (it trains exactly like the base), ``"full"`` (a full run), or
    the stage to warm-start at (the earliest stage any differing config key acts in)."""
    if method != base_method:
        return "full"
    diff = config_diff(base_cfg.to_dict(), cfg.to_dict(), ignore=RESUME_IGNORED_KEYS)
    if not diff:
        return "base"
    table = warm_start_stage_keys(method)
    if not table:
        return "full"
    stages = list(table)
    first = min(next((i for i, s in enumerate(stages) if k in table[s]), 0) for k in diff)
    return "full" if first == 0 else stages[first]


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


@dataclass
class Ablation:
    """Runs of the base and its variants (``runs[name]``: one result per seed), how each was trained
    (``plan``) and how long (``timing``).

    A variant that trains exactly like the base or an earlier variant has no entry in ``runs``;
    ``alias[name]`` names the entry that stands for it (:meth:`results`)."""

    runs: Runs
    plan: pd.DataFrame
    variants: list[Variant]
    labels: dict[str, str]
    alias: dict[str, str] = field(default_factory=dict)
    timing: pd.DataFrame = field(default_factory=pd.DataFrame)

    def results(self, name: str) -> list[ExperimentResult] | None:
        """The runs of ``name`` (through ``alias``), or None when it was not run."""
        return self.runs.get(self.alias.get(name, name))


def run_ablation(cfg: Config, seeds: Sequence[int], variants: Sequence[Variant], skip: Mapping[str, str] | None = None) -> Ablation:
    """Train (or load) the base and every variant once per seed, warm-starting where possible.

    ``plan`` has one row per variant: its method, changes, how it was trained and a note. ``timing`` has the
    same rows with ``train_s`` (the variant's own training seconds, mean over seeds) and ``shared_s`` (the
    base's training seconds of the stages a warm start skipped).

    ``skip`` maps a variant name to the reason it is not run (it appears in ``plan`` only). A variant whose
    config equals the base's (or an earlier variant's) reuses those runs.
    """
    seeds = [int(s) for s in seeds]
    skip = dict(skip or {})
    runs: Runs = run_methods([BASE], cfg, seeds)
    base_cfg = cfg.replace({"train.seed": seeds[0]})
    labels = {BASE: "DeepMT-DR (full)"}
    alias: dict[str, str] = {}
    rows = [{"variant": BASE, "label": labels[BASE], "method": BASE, "changes": "", "trained": "base",
             "train_s": float(np.mean([r.train_seconds for r in runs[BASE]])), "shared_s": 0.0, "note": ""}]
    seen: dict[tuple[str, str], str] = {(BASE, base_cfg.key()): BASE}
    jobs: list[Job] = []
    to_run: list[tuple[int, str, int]] = []  # (row index, variant name, number of runs) of the variants trained
    for k, v in enumerate(variants, 1):
        changes = ", ".join(f"{key}={val}" for key, val in v.overrides.items()) or f"method {v.method}"
        row = {"variant": v.name, "label": v.label, "method": v.method, "changes": changes, "note": ""}
        labels[v.name] = v.label
        if v.name in skip:
            rows.append({**row, "trained": "not run", "train_s": math.nan, "shared_s": 0.0, "note": skip[v.name]})
            continue
        v_cfg0 = cfg.replace({**v.overrides, "train.seed": seeds[0]})
        how = start_stage(v.method, base_cfg, v_cfg0)
        same = seen.get((v.method, v_cfg0.key()))
        if how == "base" or same is not None:
            alias[v.name] = same or BASE
            rows.append({**row, "trained": f"same as {same or BASE}", "train_s": 0.0, "shared_s": 0.0})
            continue
        seen[(v.method, v_cfg0.key())] = v.name
        pairs = list(zip(seeds, runs[BASE]))
        for seed, base in pairs:
            v_cfg = cfg.replace({**v.overrides, "train.seed": seed})
            desc = f"variant {k}/{len(variants)} {v.name} seed {seed} ({'full run' if how == 'full' else 'warm start at ' + how})"
            if how == "full":
                jobs.append(Job(v.method, v_cfg, label=desc))
            else:
                jobs.append(Job(v.method, v_cfg, label=desc, warm_start=base, start_stage=how))
        to_run.append((len(rows), v.name, len(pairs)))
        rows.append({**row, "trained": "full run" if how == "full" else f"warm start at {how}"})
    results = iter(run_jobs(jobs))  # every variant and seed side by side
    for r, name, n in to_run:
        runs[name] = [next(results) for _ in range(n)]
        rows[r].update(train_s=float(np.mean([x.train_seconds for x in runs[name]])),
                       shared_s=float(np.mean([(x.warm_start or {}).get("earlier_stages_seconds", 0.0) for x in runs[name]])))
    table = pd.DataFrame(rows)
    return Ablation(runs=runs, plan=table.drop(columns=list(TIMING_COLUMNS)), variants=list(variants), labels=labels,
                    alias=alias, timing=table[["variant", "label", "trained", *TIMING_COLUMNS]])


# --------------------------------------------------------------------------- tables
def summary(ab: Ablation, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """One row per run variant: each metric as mean ± std over seeds (and its ``_mean``), how it was trained."""
    df = summary_table(ab.runs, metrics)
    df["label"] = [ab.labels.get(m, m) for m in df.method]
    plan = ab.plan.set_index("variant")
    df.insert(2, "trained", [plan.loc[m, "trained"] if m in plan.index else "" for m in df.method])
    return df.rename(columns={"method": "variant"})


def effects(ab: Ablation, metrics: Sequence[str] = METRICS, n_boot: int = 1000) -> pd.DataFrame:
    """Paired ``variant - base`` effects (95% CI over test images) for every run variant and metric; a
    metric a variant does not produce is left out."""
    frames = []
    for name in ab.runs:
        if name == BASE:
            continue
        for met in metrics:
            try:
                frames.append(effects_table(ab.runs, [(name, BASE)], [met], n_boot))
            except ValueError:  # the variant does not do that task (or not on the same images)
                continue
    if not frames:
        return pd.DataFrame(columns=["a", "b", "metric", "diff", "lo", "hi", "p_value", "value_a", "value_b", "n_seeds", "effect", "label"])
    out = pd.concat(frames, ignore_index=True)
    out.insert(1, "label", [ab.labels.get(a, a) for a in out.a])
    return out


def wide_effects(eff: pd.DataFrame) -> pd.DataFrame:
    """The effects as one row per variant, one ``effect [CI]`` column per metric."""
    if eff.empty:
        return pd.DataFrame()
    w = eff.pivot_table(index=["a", "label"], columns="metric", values="effect", aggfunc="first", sort=False)
    return w.reset_index().rename(columns={"a": "variant"})


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
    from deepmt.experiments import load_method

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
    score = {n: float(np.mean([r.val_metrics.get(metric, np.nan) for r in ab.results(n) or []] or [np.nan])) for n in names}
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
                         evidence=evidence, comparison=comparison, regime=regime)
        for r in eff.itertuples()
    ])


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


# --------------------------------------------------------------------------- sentences
def effect_clause(eff: pd.DataFrame, variant: str, metrics: str | Sequence[str], labels: Mapping[str, str] | None = None) -> str:
    """``"<label>: qwk -0.031 [-0.060, -0.004] (lower), psnr_lesion +0.010 [-0.020, +0.041] (n.s.)"``: variant − full,
    95% CI, and whether the interval excludes 0."""
    name = (labels or {}).get(variant, variant)
    parts = []
    for metric in [metrics] if isinstance(metrics, str) else metrics:
        r = eff[(eff.a == variant) & (eff.metric == metric)]
        if r.empty:
            parts.append(f"{metric} not measured")
            continue
        r = r.iloc[0]
        if not np.isfinite(r["diff"]):
            parts.append(f"{metric} undefined")
            continue
        word = "higher" if r["lo"] > 0 else ("lower" if r["hi"] < 0 else "n.s.")
        parts.append(f"{metric} {r['effect']} ({word})")
    return f"{name}: " + ", ".join(parts)


# --------------------------------------------------------------------------- figures
def plot_effects(eff: pd.DataFrame, metrics: Sequence[str], labels: Mapping[str, str], title: str = ""):
    """One panel per metric: a horizontal bar per variant, ``variant - full DeepMT-DR`` with its 95% CI."""
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(eff.a)) if not eff.empty else []
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 0.42 * max(1, len(variants)) + 1.6),
                             squeeze=False, sharey=True)
    y = np.arange(len(variants))
    for ax, met in zip(axes[0], metrics):
        e = eff[eff.metric == met].set_index("a").reindex(variants)
        d = e["diff"].to_numpy(float)
        err = np.vstack([d - e["lo"].to_numpy(float), e["hi"].to_numpy(float) - d])
        colors = ["#c0392b" if lo > 0 else ("#2e86c1" if hi < 0 else "#95a5a6")
                  for lo, hi in zip(e["lo"].to_numpy(float), e["hi"].to_numpy(float))]
        ax.barh(y, np.nan_to_num(d), xerr=np.nan_to_num(err), color=colors, capsize=2)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(met, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(y, [labels.get(v, v) for v in variants], fontsize=7)
    axes[0][0].invert_yaxis()
    fig.suptitle((title or "variant − full DeepMT-DR (test, 95% CI over images)")
                 + "\nred: variant higher, blue: variant lower, grey: the interval holds 0", fontsize=9)
    fig.tight_layout()
    return fig


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


# --------------------------------------------------------------------------- the two studies
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


C7_METRICS = ("accuracy", "qwk", "macro_f1", "aupr")


def unsupervised_study(cfg: Config, seeds: Sequence[int], mask_fraction: float = MASK_FRACTION,
                       unsupervised: float = UNSUPERVISED, n_boot: int = 1000,
                       evidence: str = "08_ablation_structure") -> dict[str, Any]:
    """The journal's unsupervised part where it can act (claim C7): only ``mask_fraction`` of the training
    images keep their lesion masks (``data.mask_fraction``; DDR: 757 of 13,673), DeepMT-DR with the
    unsupervised term (pseudo masks from the HR visualization map for the grade-only images, weight
    ``unsupervised``) vs the same run without it, warm-started at stage 2 from it (stages 1a/1b shared).
    Its control ``learnable`` is measured in the same regime (the multi-task net on HR, same masks)."""
    from deepmt.controls import control_row, controls_table, regime_of
    from deepmt.studies.common import method_ci

    cfg_p = cfg.replace({"data.mask_fraction": float(mask_fraction)})
    regime = regime_of(cfg_p)
    ab = run_ablation(cfg_p, seeds, [Variant("unsupervised", f"with the unsupervised part (weight {unsupervised:g})",
                                             {"loss.unsupervised": float(unsupervised)}, group="journal")])
    eff = effects_table(ab.runs, [("unsupervised", BASE)], C7_METRICS, n_boot)
    comparison = (f"DeepMT-DR with vs without the unsupervised term (pseudo masks), masks on {100 * float(mask_fraction):g}% "
                  "of the training images; stages 1a/1b shared (warm start)")
    claims = claims_table([Claim.from_paper("C7", metric=r.metric, effect=float(r.diff), lo=float(r.lo), hi=float(r.hi),
                                            n_seeds=int(r.n_seeds), evidence=evidence, comparison=comparison, regime=regime)
                           for r in eff.itertuples()])
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


# --------------------------------------------------------------------------- what we see
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
