"""Ablations of DeepMT-DR: the task-aware loss (notebook 07) and the structure (notebook 08).

An ablation is a config override of ``deepmt_dr`` (or another registered method), a :class:`Variant`.
Each variant is trained the cheapest way that gives the same model as a full run:

* a variant whose config differs from the base only in keys that first act in a later stage (the
  method class's ``stage_config_keys``, :func:`deepmt.experiment_cache.warm_start_stage_keys`; e.g.
  ``loss.cls_aware`` -> ``stage2``, ``loss.vis_consistency`` or ``model.vis.feature_selection`` -> ``stage1b``)
  is **warm-started** from the base run of the same seed at that stage (:func:`deepmt.experiment_cache.run_experiment` with
  ``warm_start``): it shares the earlier stages with the base (same weights, same random-number state),
  so its differences from the base come from the changed stages only;
* any other change (another method, ``model.grader.use_lesion_maps``, ``data.scale``) is a full run;
* a variant whose config trains exactly like the base's *is* the base (no run).

All variants and seeds train side by side once the base runs exist (:func:`deepmt.worker_pool.run_jobs`).

The base is ``deepmt_dr`` under the notebook's config, the very run every other notebook uses (cached).
Effects are paired (same test images) ``variant - base`` with 95% bootstrap CIs over test images
(:func:`deepmt.studies.common.effects_table`); they do not include seed-to-seed training noise, which one
seed cannot measure.

How long each variant trained is a timing, not a result (a rerun changes it and nothing else): it is kept in
:attr:`Ablation.timing`, apart from the plan and the tables. Each notebook's "what we see" is written from a
study's result by :func:`~deepmt.studies.ablation_loss.what_we_see_07` / :func:`~deepmt.studies.ablation_structure.what_we_see_08`.

This module holds what both share (variants, planning and running, tables, the effect figure); notebook 07's
study is :mod:`deepmt.studies.ablation_loss`, notebook 08's :mod:`deepmt.studies.ablation_structure`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.config import Config
from deepmt.engine.checkpoint import RESUME_IGNORED_KEYS, config_diff
from deepmt.experiment_cache import ExperimentResult, warm_start_stage_keys
from deepmt.studies.common import Runs, effects_table, run_methods, summary_table
from deepmt.worker_pool import Job, run_jobs

BASE = "deepmt_dr"
GRADING = ("accuracy", "qwk", "macro_f1")
ISR_LESION = ("psnr_lesion", "ssim_lesion")
SEGMENTATION = ("aupr", "dice", "aupr_MA")
METRICS = (*GRADING, *ISR_LESION, *SEGMENTATION)
#: columns of :attr:`Ablation.timing` (seconds; kept out of the plan and the tables)
TIMING_COLUMNS = ("train_s", "shared_s")


@dataclass(frozen=True)
class Variant:
    """One ablation: ``method`` under the study config plus ``overrides``."""

    name: str
    label: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    method: str = BASE
    group: str = ""


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


# --------------------------------------------------------------------------- sentences and figures
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


__all__ = ["BASE", "GRADING", "ISR_LESION", "SEGMENTATION", "METRICS", "TIMING_COLUMNS", "Variant", "start_stage", "Ablation",
           "run_ablation", "summary", "effects", "wide_effects", "effect_clause", "plot_effects"]
