"""What every study shares: its config, its seeds, running a set of methods, and effects with CIs.

    from deepmt.studies.common import study_config, run_methods, summary_table, paired_effect

    cfg = study_config(profile, dataset, data_root)             # notebook parameters -> Config
    runs = run_methods(["grader_bicubic", "deepmt_dr"], cfg, seeds=[0, 1, 2])
    summary_table(runs, ["accuracy", "qwk"])                    # mean ± std over seeds
    paired_effect(runs["deepmt_dr"], runs["grader_bicubic"], "accuracy")   # diff, 95% CI, p
    hierarchical_effect(runs["deepmt_dr"], runs["grader_bicubic"], "accuracy")   # the same over seeds and images

Every run comes from the experiment cache (:func:`deepmt.experiment_cache.run_experiment`), so a method trained
by one notebook is reused by every later one with the same config and seed.

**Effects across seeds.** :func:`paired_effect` resamples the paired *test images* and, for each resample,
averages the metric over each method's seeds: the interval covers image sampling only (report the seed spread
beside it, :func:`summary_table`). :func:`hierarchical_effect` pairs A and B by training seed and resamples seeds,
then images (or takes the seed-level t interval when wider): its interval covers training noise too (issue 27).
:func:`effect` picks between them; :func:`effects_table` (every notebook's effects, claims and effect controls) uses
it, over seeds and images wherever A and B share their seeds.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt import LESIONS
from deepmt import metrics as M
from deepmt.config import Config, get_config
from deepmt.experiment_cache import ExperimentResult
from deepmt.metrics.uncertainty import hierarchical_bootstrap_ci, hierarchical_paired_bootstrap
from deepmt.studies.stages import best_info, stage2_fallbacks, stage2_notes, stage2_rising, stage_order  # noqa: F401 - re-exported
from deepmt.worker_pool import Job, run_jobs

#: readable names of the methods in tables and figures
LABELS: dict[str, str] = {
    "bicubic": "Bicubic",
    "srcnn": "SRCNN",
    "edsr": "EDSR-style",
    "isr": "Single-task ISR",
    "unet_lr": "U-Net on LR",
    "unet_bicubic": "U-Net on bicubic",
    "unet_hr": "U-Net on HR",
    "grader_lr": "Grader on LR",
    "grader_bicubic": "Grader on bicubic",
    "grader_hr": "Grader on HR",
    "two_stage": "Two-stage (ISR, then grader)",
    "foo_mt": "Seg+grade multi-task on bicubic",
    "foo_mt_hr": "Seg+grade multi-task on HR",
    "deepmt_dr": "DeepMT-DR",
    "deepmt_dr_noisr": "DeepMT-DR without ISR",
    # DeepMT-DR's trained segmentation and grading subnets fed another image (deepmt.studies.pathway)
    "deepmt_dr_on_hr": "DeepMT-DR's grading pathway on HR",
    "deepmt_dr_on_bicubic": "DeepMT-DR's grading pathway on bicubic",
}
#: notebook 06's loss check trains a method again with the other ``loss.seg_dice_empty`` setting under the name
#: ``METHOD_dice_SETTING``; its label is the method's followed by these words
DICE_EMPTY_WORDS: dict[str, str] = {"include": "Dice on every mask", "skip": "Dice skips empty masks"}

#: the sentence that ends a notebook's "what we see" under the smoke profile
SMOKE_NOTE = " (smoke profile: mechanics only, these numbers are not results.)"

#: the training seeds of the studies' runs (the notebooks' ``seeds``; the smoke profile keeps the first,
#: :func:`study_seeds`): every notebook that trains a method with these seeds shares its cache entries
SEEDS = (0, 1, 2)

GRADING_METRICS = ("accuracy", "qwk", "macro_f1", "auc_ovr")
ISR_METRICS = ("psnr", "ssim", "psnr_lesion", "ssim_lesion")
SEG_METRICS = ("aupr", "auc", "dice")


def label(name: str) -> str:
    """The readable name of a method (:data:`LABELS`), of a loss-check run (``unet_hr_dice_skip``: "U-Net on HR,
    Dice skips empty masks"), of a tuned configuration, or the name itself."""
    if name in LABELS:
        return LABELS[name]
    method, sep, setting = name.rpartition("_dice_")
    if sep and method in LABELS and setting in DICE_EMPTY_WORDS:
        return f"{LABELS[method]}, {DICE_EMPTY_WORDS[setting]}"
    method, sep, change = name.partition(" (")  # a configuration tuned on validation (table 04): "foo_mt (lr x2)"
    return f"{LABELS[method]} ({change}" if sep and method in LABELS else name


# --------------------------------------------------------------------------- config and seeds
def study_config(profile: str = "", dataset: str = "synthetic", data_root: str = "", device: str = "auto",
                 overrides: Mapping[str, Any] | None = None) -> Config:
    """The Config of a notebook from its parameters cell (literals): ``profile`` "" means
    ``$DEEPMT_PROFILE`` (``smoke`` in CI, else ``quick``); ``data_root`` "" means none."""
    base = {"data.dataset": dataset, "data.root": data_root or None, "train.device": device}
    base.update(dict(overrides or {}))
    cfg = get_config(profile or None, base)
    if dataset != "synthetic" and not data_root:
        raise ValueError(f"dataset {dataset!r} needs data_root (the folder holding it in its published layout)")
    return cfg


#: environment variable: ``all`` keeps every seed under ``smoke`` too (:func:`study_seeds`)
STUDY_SEEDS_ENV = "DEEPMT_STUDY_SEEDS"


def recording_grid_shape(cfg: Config) -> bool:
    """Whether a ``smoke`` run asks for the quick grid's shape (``$DEEPMT_STUDY_SEEDS=all``: ``python -m deepmt plan
    --record-inventory`` records the quick grid that way, in minutes): every seed, and no choice left to chance."""
    return cfg.profile == "smoke" and os.environ.get(STUDY_SEEDS_ENV, "").strip().lower() == "all"


def study_seeds(cfg: Config, seeds: Sequence[int]) -> list[int]:
    """The training seeds a study uses: all of ``seeds``, under ``smoke`` only the first (unless recording the grid)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one training seed")
    return seeds[:1] if cfg.profile == "smoke" and not recording_grid_shape(cfg) else seeds


def describe_config(cfg: Config) -> str:
    d = cfg.data
    return (f"profile {cfg.profile}: {d.dataset}, HR {d.hr_size}px, LR {d.lr_size}px (x{d.scale}), "
            f"{d.n_train}/{d.n_val}/{d.n_test} train/val/test" if d.dataset == "synthetic" else
            f"profile {cfg.profile}: {d.dataset} at {d.root}, HR {d.hr_size}px, LR {d.lr_size}px (x{d.scale})")


# --------------------------------------------------------------------------- running
Runs = dict[str, list[ExperimentResult]]


def run_methods(methods: Iterable[str], cfg: Config, seeds: Sequence[int] = (0,),
                overrides: Mapping[str, Mapping[str, Any]] | None = None, names: Mapping[str, str] | None = None) -> Runs:
    """Train (or load from the cache) each method once per seed. Returns ``{name: [result per seed]}``.

    ``overrides`` maps a method to extra config overrides (e.g. an ablation of ``deepmt_dr``); ``names``
    maps a method entry to the registered method it runs (so ``{"no_seg_aware": "deepmt_dr"}`` with
    ``overrides={"no_seg_aware": {"loss.seg_aware": 0}}`` runs an ablation under its own name). A method may be
    given by an alias (``seg_grade_mt``): it runs, and loads from the cache, the registered method it stands for
    (``foo_mt``), returned under the name given.
    The runs train side by side in worker processes (:func:`deepmt.worker_pool.run_jobs`; ``$DEEPMT_JOBS``).
    """
    methods = list(methods)
    overrides = dict(overrides or {})
    names = dict(names or {})
    jobs = [Job(names.get(m, m), cfg.replace({**overrides.get(m, {}), "train.seed": int(s)}), label=f"{m} seed {s}")
            for m in methods for s in seeds]
    results = iter(run_jobs(jobs))
    out: Runs = {}
    for m in methods:
        out[m] = [next(results) for _ in seeds]
    return out


# --------------------------------------------------------------------------- per-image values
def _check_aligned(results: Sequence[ExperimentResult]) -> np.ndarray:
    ids = results[0].predictions["id"]
    for r in results[1:]:
        if not np.array_equal(r.predictions["id"], ids):
            raise ValueError(f"{r.method}: test predictions are not on the same images as {results[0].method}")
    return ids


def _metric_spec(metric: str) -> tuple[str, Any]:
    """(kind, spec): kind 'grading' -> the registered Metric (fn(y, probs)); 'isr' -> key of pred; 'seg' -> (key,
    lesion index or None)."""
    if metric in ("accuracy", "qwk", "macro_f1", "auc_ovr", "linear_kappa"):
        return "grading", M.METRICS[metric]
    if metric in ("psnr", "ssim", "psnr_fov", "ssim_fov", "psnr_lesion", "ssim_lesion"):
        return "isr", metric
    base, _, lesion = metric.partition("_")
    if base in ("aupr", "auc", "dice", "iou") and (not lesion or lesion in LESIONS):
        return "seg", (base, LESIONS.index(lesion) if lesion else None)
    raise ValueError(f"unknown metric {metric!r}")


def _seg_value(per: np.ndarray, lesion: int | None) -> float:
    """The split's number from per-image, per-lesion values (N, 4): mean over images (per lesion), then lesions."""
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(per, axis=0)
            return float(means[lesion]) if lesion is not None else float(np.nanmean(means))


def metric_value(res: ExperimentResult, metric: str) -> float:
    """``metric`` of one run on the test split (from its stored metrics)."""
    key = {"auc_ovr": "auc_ovr", "linear_kappa": "kappa_linear"}.get(metric, metric)
    return float(res.metrics.get(key, math.nan))


def mean_val(results: Sequence[ExperimentResult], metric: str) -> float:
    """Mean *validation* ``metric`` over ``results`` (one per seed), the split a choice may be made on; nan for none."""
    return float(np.mean([float(r.val_metrics.get(metric, math.nan)) for r in results])) if len(results) else math.nan


def per_image_metric(results: Sequence[ExperimentResult], metric: str) -> tuple[M.Metric, tuple[Any, ...]]:
    """(fn, arrays) such that ``fn(*arrays)`` is ``metric`` averaged over the seeds of ``results``
    and the arrays' rows are the test images: ``fn`` is a :class:`deepmt.metrics.Metric` with its
    vectorised path, ready for :func:`deepmt.metrics.bootstrap_ci` / :func:`deepmt.metrics.paired_bootstrap`."""
    results = list(results)
    _check_aligned(results)
    kind, spec = _metric_spec(metric)
    if kind == "grading":
        y = results[0].predictions["grade_true"]
        p = np.stack([r.predictions["grade_probs"] for r in results], 1)  # (N, S, 5)

        def fn(yy, pp):
            return float(np.mean([spec(yy, pp[:, s]) for s in range(pp.shape[1])]))

        def batched(w, yy, pp):
            return np.mean([spec.batched(w, yy, pp[:, s]) for s in range(pp.shape[1])], axis=0)

        return M.Metric(fn, batched), (y, p)
    key = f"isr_{spec}" if kind == "isr" else f"seg_{spec[0]}"
    missing = [r.method for r in results if key not in r.predictions]
    if missing:
        raise ValueError(f"{missing[0]}: no per-image {metric!r} in its predictions (does it do that task?)")
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v = np.nanmean(np.stack([r.predictions[key] for r in results]), 0)
    if kind == "isr":
        return M.as_metric(np.nanmean), (v,)
    lesion = spec[1]

    def seg_fn(vv):
        return _seg_value(vv, lesion)

    def seg_batched(w, vv):  # weights (B, N) of the resampled rows -> (B,) values, all resamples at once
        ok = np.isfinite(vv)
        with np.errstate(all="ignore"):
            means = (w @ np.where(ok, vv, 0.0)) / (w @ ok.astype(np.float64))  # (B, 4) per-lesion means
            if lesion is not None:
                return means[:, lesion]
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanmean(means, axis=1)

    return M.Metric(seg_fn, seg_batched), (v,)


def method_ci(results: Sequence[ExperimentResult], metric: str, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(value, lo, hi): ``metric`` on the test split averaged over seeds, with a 95% CI over the training seeds and
    the test images where the runs were trained with 2 seeds or more (:func:`hierarchical_bootstrap_ci`: seeds,
    then images; or the seed-level t interval when wider), over the images alone for one run."""
    results = list(results)
    if len({r.config.train.seed for r in results}) > 1:  # one per_image_metric function serves every seed
        per = [per_image_metric([r], metric) for r in results]
        return hierarchical_bootstrap_ci(per[0][0], [x for _, x in per], n_boot=n_boot, seed=seed)
    fn, arrays = per_image_metric(results, metric)
    return M.bootstrap_ci(fn, *arrays, n_boot=n_boot, seed=seed)


def paired_effect(a: Sequence[ExperimentResult], b: Sequence[ExperimentResult], metric: str,
                  n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, float]:
    """metric(A) - metric(B) on the same test images, each averaged over its seeds, with a paired
    bootstrap CI over images and a two-sided p-value. Returns diff, lo, hi, p_value, a, b, n_seeds, n_images."""
    a, b = list(a), list(b)
    ids = _check_aligned(a + b)
    fa, arrays_a = per_image_metric(a, metric)
    fb, arrays_b = per_image_metric(b, metric)
    e = M.paired_bootstrap(fa, arrays_a, fb, arrays_b, n_boot=n_boot, seed=seed, alpha=alpha)
    return _effect_record(e, min(len(a), len(b)), len(ids))


def hierarchical_effect(a: Sequence[ExperimentResult], b: Sequence[ExperimentResult], metric: str,
                        n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """metric(A) - metric(B) on the same test images with an interval over training seeds and images:
    ``a[i]`` and ``b[i]`` are one run each trained with the same seed (``train.seed``), and the effect is the
    mean over seeds of their difference, with :func:`deepmt.metrics.uncertainty.hierarchical_paired_bootstrap`'s
    interval (seeds, then paired images, resampled; or the seed-level t interval when that is wider). Returns
    what :func:`paired_effect` returns (``a``/``b`` each metric averaged over its seeds), plus ``interval``:
    ``"hierarchical"`` or ``"seed t"``, the one that gave ``lo``, ``hi`` and ``p_value``."""
    a, b = list(a), list(b)
    if not seed_paired(a, b):
        seeds = [[r.config.train.seed for r in x] for x in (a, b)]
        raise ValueError(f"A and B must be paired by training seed, in the same order: {seeds[0]} vs {seeds[1]}")
    ids = _check_aligned(a + b)
    per_a = [per_image_metric([r], metric) for r in a]
    per_b = [per_image_metric([r], metric) for r in b]
    # per_image_metric's function depends on the metric only (the data are in the arrays): one serves every seed
    e = hierarchical_paired_bootstrap(per_a[0][0], [x for _, x in per_a], per_b[0][0], [x for _, x in per_b],
                                      n_boot=n_boot, seed=seed, alpha=alpha)
    return {**_effect_record(e, len(a), len(ids)), "interval": e["interval"]}


def _effect_record(e: Mapping[str, Any], n_seeds: int, n_images: int) -> dict[str, float]:
    return {"diff": e["diff"], "lo": e["lo"], "hi": e["hi"], "p_value": e["p_value"], "a": e["a"], "b": e["b"],
            "n_seeds": n_seeds, "n_images": n_images, "n_boot": e["n_boot"]}


def _effect_metric(a: Sequence[ExperimentResult], b: Sequence[ExperimentResult], metric: str) -> tuple[M.Metric, tuple[Any, ...]]:
    """(fn, arrays) such that ``fn(*arrays)`` = metric(A) - metric(B) (each averaged over its seeds), rows the test images."""
    fa, xa = per_image_metric(a, metric)
    fb, xb = per_image_metric(b, metric)
    k = len(xa)

    def fn(*x):
        return fa(*x[:k]) - fb(*x[k:])

    def batched(w, *x):
        return fa.batched(w, *x[:k]) - fb.batched(w, *x[k:])

    return M.Metric(fn, batched if fa.batched is not None and fb.batched is not None else None), (*xa, *xb)


def effect_change(a1: Sequence[ExperimentResult], b1: Sequence[ExperimentResult], a2: Sequence[ExperimentResult],
                  b2: Sequence[ExperimentResult], metric: str, n_boot: int = 1000, seed: int = 0,
                  alpha: float = 0.05) -> dict[str, float]:
    """How much an effect changes between two settings scored on the same test images: (metric(A1) - metric(B1))
    - (metric(A2) - metric(B2)), e.g. DeepMT-DR's gain over its no-ISR twin with few labels minus the same gain with
    all labels. Paired bootstrap over the images (each resample draws the same images for all four), so the CI is
    that of the change itself, not two intervals to compare by eye; when all four were trained with the same seeds,
    over seeds too (:func:`hierarchical_paired_bootstrap`, as :func:`effect`). Returns what :func:`paired_effect`
    returns, ``a`` and ``b`` being the two effects, and ``interval``."""
    a1, b1, a2, b2 = list(a1), list(b1), list(a2), list(b2)
    ids = _check_aligned(a1 + b1 + a2 + b2)
    if seed_paired(a1, b1) and seed_paired(a1, a2) and seed_paired(a1, b2):
        # one seed's four runs per draw: the interval covers training noise too (as :func:`effect`)
        per = [(_effect_metric([x1], [y1], metric), _effect_metric([x2], [y2], metric)) for x1, y1, x2, y2 in zip(a1, b1, a2, b2)]
        e = hierarchical_paired_bootstrap(per[0][0][0], [p1[1] for p1, _ in per], per[0][1][0], [p2[1] for _, p2 in per],
                                          n_boot=n_boot, seed=seed, alpha=alpha)
        return {**_effect_record(e, len(a1), len(ids)), "interval": _interval(e, len(a1))}
    f1, arrays1 = _effect_metric(a1, b1, metric)
    f2, arrays2 = _effect_metric(a2, b2, metric)
    e = M.paired_bootstrap(f1, arrays1, f2, arrays2, n_boot=n_boot, seed=seed, alpha=alpha)
    return {**_effect_record(e, min(len(a1), len(b1), len(a2), len(b2)), len(ids)), "interval": "images"}


# --------------------------------------------------------------------------- tables
def long_table(runs: Runs, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per method, seed and metric (test split), plus training time."""
    rows = []
    for m, results in runs.items():
        for r in results:
            for met in metrics:
                rows.append({"method": m, "label": label(m), "seed": r.config.train.seed, "metric": met,
                             "value": metric_value(r, met), "train_s": r.train_seconds})
    return pd.DataFrame(rows)


def summary_table(runs: Runs, metrics: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """One row per method: ``<metric>`` as "mean ± std" over seeds, ``<metric>_mean``/``_std`` numbers and
    the number of seeds (no training time: a timing is not a result)."""
    rows = []
    for m, results in runs.items():
        row: dict[str, Any] = {"method": m, "label": label(m), "n_seeds": len(results)}
        for met in metrics:
            vals = [metric_value(r, met) for r in results]
            mean, std = M.mean_std(vals)
            row[met] = M.format_mean_std(vals, digits=digits)
            row[f"{met}_mean"], row[f"{met}_std"] = mean, std
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(e: Mapping[str, Any], n_seeds: int) -> str:
    """What a hierarchical interval resampled: its own kind, or ``"images"`` for one seed (nothing else to draw)."""
    return e["interval"] if n_seeds > 1 else "images"


def seed_paired(a: Sequence[ExperimentResult], b: Sequence[ExperimentResult]) -> bool:
    """Whether A and B were trained with the same seeds in the same order (so :func:`hierarchical_effect` pairs them)."""
    return bool(a) and [r.config.train.seed for r in a] == [r.config.train.seed for r in b]


def effect(a: Sequence[ExperimentResult], b: Sequence[ExperimentResult], metric: str, n_boot: int = 1000,
           seed: int = 0) -> dict[str, Any]:
    """metric(A) - metric(B) on the same test images with the tables' interval (issue 27): over seeds and images
    (:func:`hierarchical_effect`) when A and B share their training seeds, else over the images (:func:`paired_effect`).
    ``interval``: ``"hierarchical"`` or ``"seed t"``, or ``"images"`` (one seed, or runs not paired by seed)."""
    a, b = list(a), list(b)
    if seed_paired(a, b):
        e = hierarchical_effect(a, b, metric, n_boot=n_boot, seed=seed)
        return {**e, "interval": _interval(e, len(a))}
    return {**paired_effect(a, b, metric, n_boot=n_boot, seed=seed), "interval": "images"}


def effects_table(runs: Runs, pairs: Sequence[tuple[str, str]], metrics: Sequence[str], n_boot: int = 1000) -> pd.DataFrame:
    """Effects A - B with 95% CIs and p-values for each (A, B) pair and metric (:func:`effect`: over seeds and
    images where A and B share their training seeds; ``interval`` says which), and ``stage2_fallbacks``: on how many
    of A's seeds the last stage kept its starting weights (:func:`stage2_fallbacks`); ``stage2_rising`` /
    ``stage2_rising_b``: on how many of A's / B's seeds it was still rising (:func:`stage2_rising`)."""
    rows = []
    for a, b in pairs:
        notes = stage2_notes(runs[a], runs[b])  # reads each run's result.json once per pair, not per metric
        for met in metrics:
            e = effect(runs[a], runs[b], met, n_boot=n_boot)
            rows.append({"a": a, "b": b, "metric": met, "diff": e["diff"], "lo": e["lo"], "hi": e["hi"],
                         "p_value": e["p_value"], "value_a": e["a"], "value_b": e["b"], "n_seeds": e["n_seeds"],
                         "interval": e["interval"], **notes,
                         "effect": M.format_ci(e["diff"], e["lo"], e["hi"], signed=True)})
    return pd.DataFrame(rows, columns=["a", "b", "metric", "diff", "lo", "hi", "p_value", "value_a", "value_b", "n_seeds",
                                       "interval", "stage2_fallbacks", "stage2_rising", "stage2_rising_b", "effect"])


def sentence(effects: pd.DataFrame, a: str, b: str, metric: str) -> str:
    """A "what we see" clause written from an effects row: direction, size, CI and significance."""
    row = effects[(effects.a == a) & (effects.b == b) & (effects.metric == metric)]
    if row.empty:
        return f"{label(a)} vs {label(b)}: {metric} not measured"
    r = row.iloc[0]
    if not np.isfinite(r["diff"]):
        return f"{label(a)} vs {label(b)}: {metric} undefined on this split"
    word = "better than" if r["lo"] > 0 else "worse than" if r["hi"] < 0 else "not distinguishable from"
    return (f"{label(a)} is {word} {label(b)} in {metric} ({r['value_a']:.3f} vs {r['value_b']:.3f}, "
            f"difference {r['effect']}, p = {r['p_value']:.3f})")


def sentences(effects: pd.DataFrame, *comparisons: tuple[str, str, str]) -> str:
    """The :func:`sentence` of each ``(a, b, metric)`` comparison, joined by "; ": one "what we see" sentence
    that reports several effects side by side."""
    return "; ".join(sentence(effects, a, b, metric) for a, b, metric in comparisons)
