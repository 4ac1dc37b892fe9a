"""Notebook 10, beyond the paper: robustness to harsher degradation, calibration, compute cost.

    from deepmt.studies.beyond import (severity_levels, robustness, calibration_table, reliability_table,
                                       cost_table, machine_table)
    results = {m: rs[0] for m, rs in run_methods(["deepmt_dr", "grader_bicubic"], cfg).items()}
    test = build_datasets(cfg.data, ("test",))["test"]
    levels = severity_levels(cfg, blur_sigmas=[0, 1, 2], noise_stds=[0, 0.02], jpeg_qualities=[50, 20])
    rob = robustness(results, test, cfg, levels)     # one row per (method, level): accuracy, qwk, ece, psnr, ...
    calibration_table(results)                       # ECE (with a bootstrap CI), confidence, Brier, NLL
    cost_table(results, test, cfg)                   # parameters, GFLOPs, training and inference images/s
    study = beyond_study(results, cfg, blur_sigmas=[1, 2]); what_we_see(study)   # notebook 10: all, and the text

Evaluation only: every model comes from the experiment cache and is never trained here.

**Timings apart.** Seconds and images/s change from run to run while every metric stays the same, so
:func:`beyond_study` keeps them (evaluation seconds, :data:`THROUGHPUT_COLUMNS`, the machine) out of its result
tables, for ``results/timing/`` and :func:`figure_throughput` (:func:`figure_cost`: parameters and GFLOPs only).

**Robustness** (re-degrading the same test images): :mod:`deepmt.studies.robustness`.

**Training images/s** of a cached run (:func:`training_throughput`): the trainer records, per epoch,
``seconds`` (optimisation only, validation excluded) and ``images_per_s`` = images drawn from the training
loader / seconds; images = sum(images_per_s x seconds) over all epochs of all stages and the rate is images /
sum(seconds). A step can push an image through a network more than once (DeepMT-DR's stage 1a segments SR and HR;
stage 2 runs Grad-CAM on SR and HR), so images/s is not a FLOP rate. The seconds were measured on whichever
machine trained the run (cached runs may come from another machine).

**Inference images/s** (:func:`inference_throughput`): the test split's batches are loaded onto the device
first, one batch warms up, then ``method(batch)`` runs over all batches under ``torch.no_grad`` and the
engine's autocast (as :func:`deepmt.engine.evaluate.evaluate` does), timed with device synchronisation; data
loading and metrics are excluded. DeepMT-DR's forward includes its visualization map (one backward pass through
the grader, Grad-CAM); ``grade_only`` times it without (``compute_vis = False``: same grades).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from deepmt import metrics as M
from deepmt.config import Config
from deepmt.engine.device import synchronize
from deepmt.experiment_cache import ExperimentResult, load_method
from deepmt.reporting import save_figure, save_table
from deepmt.studies.common import describe_config, label, run_methods, study_config
from deepmt.studies.robustness import (
    KINDS,
    ROBUST_METRICS,
    DegradedDataset,
    degraded_dataset,
    figure_robustness,
    robustness,
    robustness_drops,
    severity_levels,
)
from deepmt.utils import seed_everything

#: notebook 10's methods and degradation levels per kind (:func:`beyond_study`'s own defaults sweep none)
METHODS = ("deepmt_dr", "grader_bicubic", "foo_mt")
BLUR_SIGMAS, NOISE_STDS, JPEG_QUALITIES = (0.0, 1.0, 2.0), (0.0, 0.02, 0.05), (95, 50, 20)
#: columns of :func:`cost_table` that are timings (or what a timing depends on): kept out of the cost table
THROUGHPUT_COLUMNS = ("train_images", "train_seconds", "train_img_s", "infer_images", "infer_seconds", "infer_img_s",
                      "infer_img_s_grade_only", "threads", "load_avg_1min")


# --------------------------------------------------------------------------- calibration
def _graded(res: ExperimentResult) -> tuple[np.ndarray, np.ndarray] | None:
    p = res.predictions
    if "grade_probs" not in p:
        return None
    y = np.asarray(p["grade_true"], dtype=np.int64)
    keep = y >= 0
    if not keep.any():
        return None
    return y[keep], np.asarray(p["grade_probs"], dtype=np.float64)[keep]


def calibration_table(results: Mapping[str, ExperimentResult], n_bins: int = 10, n_boot: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Per grading method, from its cached test predictions (graded images only): top-label ``ece`` with a
    95% bootstrap CI over images (``ece_lo``, ``ece_hi``), ``accuracy``, ``mean_confidence``,
    ``overconfidence`` (mean confidence - accuracy: > 0 means over-confident), the multi-class ``brier``
    score and the negative log-likelihood ``nll``. Methods without grades are left out."""
    rows = []
    for name, res in results.items():
        g = _graded(res)
        if g is None:
            continue
        y, p = g
        onehot = np.eye(p.shape[1])[y]

        def ece(yy, pp):
            return M.expected_calibration_error(yy, pp, n_bins=n_bins)

        val, lo, hi = M.bootstrap_ci(ece, y, p, n_boot=n_boot, seed=seed, use_batched=False)
        acc = float((p.argmax(1) == y).mean())
        conf = float(p.max(1).mean())
        rows.append({"method": name, "label": label(name), "n_graded": int(len(y)), "ece": val, "ece_lo": lo,
                     "ece_hi": hi, "accuracy": acc, "mean_confidence": conf, "overconfidence": conf - acc,
                     "brier": float(((p - onehot) ** 2).sum(1).mean()),
                     "nll": float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean()), "n_bins": n_bins})
    return pd.DataFrame(rows)


def reliability_table(results: Mapping[str, ExperimentResult], n_bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data per grading method (:func:`deepmt.metrics.reliability_curve`): one row per
    (method, confidence bin) with ``bin_lower``, ``bin_upper``, ``confidence``, ``accuracy``, ``count``."""
    rows = []
    for name, res in results.items():
        g = _graded(res)
        if g is None:
            continue
        rc = M.reliability_curve(*g, n_bins=n_bins)
        for b in range(n_bins):
            rows.append({"method": name, "label": label(name), "bin_lower": rc["bin_lower"][b],
                         "bin_upper": rc["bin_upper"][b], "confidence": rc["confidence"][b],
                         "accuracy": rc["accuracy"][b], "count": int(rc["count"][b])})
    return pd.DataFrame(rows, columns=["method", "label", "bin_lower", "bin_upper", "confidence", "accuracy", "count"])


def figure_reliability(reliability: pd.DataFrame, calibration: pd.DataFrame):
    """One reliability diagram per method: accuracy per confidence bin (bars) against the diagonal, the gap
    to it shaded, and the share of images per bin below."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(reliability["method"])) if len(reliability) else []
    n = max(1, len(names))
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n, 4.6), squeeze=False, gridspec_kw={"height_ratios": [3, 1]},
                             sharex=True)
    for c, name in enumerate(names):
        d = reliability[reliability["method"] == name]
        width = (d["bin_upper"] - d["bin_lower"]).to_numpy()
        mid = (d["bin_lower"] + d["bin_upper"]).to_numpy() / 2
        acc = d["accuracy"].fillna(0).to_numpy()
        ax = axes[0][c]
        ax.bar(mid, acc, width=width, edgecolor="k", color="C0", alpha=0.8, label="accuracy")
        conf = d["confidence"].to_numpy()
        ok = np.isfinite(conf)
        ax.bar(mid[ok], (conf - acc)[ok], bottom=acc[ok], width=width[ok], color="C3", alpha=0.3, label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        row = calibration[calibration["method"] == name]
        ece = f"ECE {row['ece'].iloc[0]:.3f}" if len(row) else ""
        ax.set_title(f"{label(name)}\n{ece}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        axes[1][c].bar(mid, d["count"] / max(1, d["count"].sum()), width=width, color="0.5")
        axes[1][c].set_xlabel("confidence (max probability)")
    axes[0][0].set_ylabel("accuracy")
    axes[1][0].set_ylabel("share")
    if names:
        axes[0][0].legend(fontsize=7, loc="upper left")
    else:
        axes[0][0].text(0.5, 0.5, "no graded test images", ha="center", va="center")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- compute cost
def training_throughput(res: ExperimentResult) -> dict[str, float]:
    """``train_images`` (drawn from the training loader over all epochs), ``train_seconds`` (optimisation
    only) and ``train_img_s`` of a cached run, from its history (see the module doc)."""
    h = res.history
    if h.empty or "seconds" not in h or "images_per_s" not in h:
        return {"train_images": math.nan, "train_seconds": float(res.train_seconds), "train_img_s": math.nan}
    seconds = float(h["seconds"].sum())
    images = float((h["images_per_s"] * h["seconds"]).sum())
    return {"train_images": round(images), "train_seconds": seconds, "train_img_s": images / seconds if seconds > 0 else math.nan}


def inference_throughput(method, dataset, cfg: Config, max_images: int | None = None, repeats: int = 1) -> dict[str, float]:
    """Images/s of ``method(batch)`` over ``dataset`` (at most ``max_images``), best of ``repeats`` timed passes
    after one warm-up batch; batches are on the device beforehand (see the module doc)."""
    from deepmt.engine.device import eval_mode, make_loader, resolve_precision, to_device

    device = next(method.parameters()).device if any(True for _ in method.parameters()) else torch.device("cpu")
    prec = resolve_precision(device, cfg.train.precision, cfg.train.channels_last)
    if max_images is not None and len(dataset) > max_images:
        dataset = torch.utils.data.Subset(dataset, range(int(max_images)))
    loader = make_loader(dataset, cfg.train.eval_batch_size, prec=prec, num_workers=0)
    batches, n = [], 0
    for batch in loader:
        batches.append(to_device(batch, prec))
        n += int(batch["lr"].shape[0])
    if not batches:
        return {"infer_images": 0, "infer_seconds": math.nan, "infer_img_s": math.nan}
    best = math.inf
    with eval_mode(method), torch.no_grad():
        with prec.autocast():
            method(batches[0])
        synchronize(device)
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            for b in batches:
                with prec.autocast():
                    method(b)
            synchronize(device)
            best = min(best, time.perf_counter() - t0)
    return {"infer_images": n, "infer_seconds": best, "infer_img_s": n / best}


def cost_table(results: Mapping[str, ExperimentResult], test_set, cfg: Config, device: str | None = None,
               max_images: int | None = None, repeats: int = 1, threads: int = 0) -> pd.DataFrame:
    """One row per method: parameters per part and GFLOPs per image (:func:`deepmt.models.cost.method_cost`
    under the run's config), training images/s of the cached run, inference images/s measured here (full
    forward, and ``grade_only`` without DeepMT-DR's visualization map), and the test QWK for reference.

    ``threads`` > 0 times inference with that many torch CPU threads (restored afterwards); 0 keeps torch's
    setting. On a shared CPU, OpenMP threads that wait for each other can make a 2-thread pass 10-100x slower
    than a 1-thread one while other processes hold the cores: check ``load_avg_1min`` of :func:`machine_table`.
    """
    from deepmt.models.cost import method_cost

    before = torch.get_num_threads()
    if threads and threads > 0:
        torch.set_num_threads(int(threads))
    try:
        return _cost_rows(results, test_set, cfg, device, max_images, repeats, method_cost)
    finally:
        torch.set_num_threads(before)


def _cost_rows(results, test_set, cfg, device, max_images, repeats, method_cost) -> pd.DataFrame:
    rows = []
    for name, res in results.items():
        row: dict[str, Any] = {"label": label(name), **method_cost(name, res.config)}
        row.update(training_throughput(res))
        method = load_method(res, device=device or cfg.train.device)
        row.update(inference_throughput(method, test_set, res.config, max_images=max_images, repeats=repeats))
        if getattr(method, "compute_vis", False):
            method.compute_vis = False
            row["infer_img_s_grade_only"] = inference_throughput(method, test_set, res.config, max_images=max_images,
                                                                 repeats=repeats)["infer_img_s"]
        else:
            row["infer_img_s_grade_only"] = row["infer_img_s"]
        row["device"] = str(next(method.parameters()).device) if any(True for _ in method.parameters()) else "cpu"
        row["precision"] = res.config.train.precision
        row["threads"] = torch.get_num_threads()
        row["load_avg_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else math.nan
        row["test_qwk"] = float(res.metrics.get("qwk", math.nan))
        rows.append(row)
        del method
    return pd.DataFrame(rows)


def machine_table(device: str = "auto") -> pd.DataFrame:
    """The machine the inference timings ran on (:func:`deepmt.bench.machine_info`) as a two-column table."""
    from deepmt.bench import machine_info
    from deepmt.engine.device import resolve_device, resolve_precision

    dev = resolve_device(device)
    info = machine_info(dev)
    info["autocast"] = resolve_precision(dev, "auto").name
    if hasattr(os, "getloadavg"):  # a shared machine's timings are only trustworthy at a load below its cores
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return pd.DataFrame({"item": list(info), "value": [str(v) for v in info.values()]})


def figure_cost(cost: pd.DataFrame):
    """Bars per method: parameters (millions) and GFLOPs per image (inference, and a training step)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.7, 3.4))
    x = np.arange(len(cost))
    axes[0].bar(x, cost["params_total"] / 1e6, color="C0")
    axes[0].set_ylabel("parameters (millions)")
    axes[1].bar(x, cost["gflops_forward"], color="C1", label="inference")
    axes[1].bar(x, cost["gflops_train"], color="C1", alpha=0.35, label="training step (fwd+bwd)", bottom=0, zorder=0)
    axes[1].set_ylabel("GFLOPs per image")
    axes[1].legend(fontsize=7)
    _method_ticks(axes, x, cost["label"].tolist())
    fig.tight_layout()
    return fig


def figure_throughput(throughput: pd.DataFrame):
    """Bars per method: images/s of training (the cached run) and of inference here, full and grade-only."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    x = np.arange(len(throughput))
    w = 0.27
    ax.bar(x - w, throughput["train_img_s"], w, label="training (cached run)", color="C2")
    ax.bar(x, throughput["infer_img_s"], w, label="inference", color="C4")
    ax.bar(x + w, throughput["infer_img_s_grade_only"], w, label="inference, grade only", color="C4", alpha=0.45)
    ax.set_ylabel("images / s")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    _method_ticks([ax], x, throughput["label"].tolist())
    fig.tight_layout()
    return fig


def _method_ticks(axes, x: np.ndarray, names: Sequence[str]) -> None:
    for ax in axes:
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")


# --------------------------------------------------------------------------- the study
@dataclass
class BeyondStudy:
    """Notebook 10's tables. Results: ``levels`` (:func:`severity_levels`), ``robustness`` (one row per method and
    level), ``drops`` (:func:`robustness_drops` of accuracy and QWK), ``calibration``, ``reliability`` and ``cost``
    (parameters and GFLOPs). Timings (``results/timing/``): ``robustness_seconds`` (evaluation seconds per method and
    level), ``throughput`` (training and inference images/s) and ``machine`` (:func:`machine_table`). ``n_test`` /
    ``n_graded``: test images, and those with a grade; ``hr_size``: the HR side in px; ``smoke``: the smoke profile."""

    levels: pd.DataFrame
    robustness: pd.DataFrame
    drops: pd.DataFrame
    calibration: pd.DataFrame
    reliability: pd.DataFrame
    cost: pd.DataFrame
    robustness_seconds: pd.DataFrame
    throughput: pd.DataFrame
    machine: pd.DataFrame
    n_test: int
    n_graded: int
    hr_size: int
    smoke: bool = False


def beyond_study(results: Mapping[str, ExperimentResult], cfg: Config, blur_sigmas: Sequence[float] = (),
                 noise_stds: Sequence[float] = (), jpeg_qualities: Sequence[int | None] = (), n_bins: int = 10,
                 n_boot: int = 1000, seed: int = 0, timing_images: int | None = 128, timing_repeats: int = 3,
                 timing_threads: int = 0, device: str = "auto") -> BeyondStudy:
    """Robustness, calibration and cost of the trained ``results`` ({name: ExperimentResult}) on ``cfg``'s test
    split: :func:`robustness` over :func:`severity_levels`, :func:`calibration_table` / :func:`reliability_table`
    (``n_bins``, ``n_boot``), :func:`machine_table` and :func:`cost_table` (inference timed on ``timing_images`` test
    images, best of ``timing_repeats`` passes, ``timing_threads`` torch threads). Seeds everything with ``seed``
    first (the noise of the degraded images and the bootstrap are seeded by it too).

    Under the smoke profile (mechanics only) each kind keeps its most severe level only, the bootstrap draws 200
    resamples and inference is timed once on 8 images."""
    from deepmt.data import build_datasets

    smoke = cfg.profile == "smoke"
    if smoke:
        blur_sigmas, noise_stds, jpeg_qualities = list(blur_sigmas)[-1:], list(noise_stds)[-1:], list(jpeg_qualities)[-1:]
        n_boot, timing_images, timing_repeats = 200, 8, 1
    seed_everything(seed)
    test = build_datasets(cfg.data, ("test",))["test"]
    levels = severity_levels(cfg, blur_sigmas, noise_stds, jpeg_qualities)
    grades = np.asarray(test.grades if getattr(test, "grades", None) is not None else [int(test[i]["grade"]) for i in range(len(test))])
    rob = robustness(results, test, cfg, levels, seed=seed)
    drops = pd.concat([robustness_drops(rob, m) for m in ("accuracy", "qwk")], ignore_index=True)
    calibration = calibration_table(results, n_bins=n_bins, n_boot=n_boot, seed=seed)
    reliability = reliability_table(results, n_bins=n_bins)
    machine = machine_table(device)
    cost = cost_table(results, test, cfg, max_images=timing_images, repeats=timing_repeats, threads=timing_threads)
    return BeyondStudy(
        levels=levels, robustness=rob.drop(columns="eval_seconds"), drops=drops, calibration=calibration,
        reliability=reliability, cost=cost.drop(columns=list(THROUGHPUT_COLUMNS)),
        robustness_seconds=rob[["method", "label", "level", "eval_seconds"]],
        throughput=cost[["method", "label", *THROUGHPUT_COLUMNS]], machine=machine, n_test=len(test),
        n_graded=int((grades >= 0).sum()), hr_size=int(cfg.data.hr_size), smoke=smoke,
    )


# --------------------------------------------------------------------------- what we see
def _robustness_clause(study: BeyondStudy) -> list[str]:
    """QWK from clean to the most severe level of each kind per method, DeepMT-DR's losses against the
    baselines' mean, and its SR PSNR per level."""
    q = study.drops[study.drops.metric == "qwk"] if len(study.drops) else study.drops
    if not len(q) or not q["clean"].notna().any():
        return ["Robustness: the test split has no graded images, so accuracy and QWK are undefined."]
    per = []
    for name, g in q.groupby("method", sort=False):
        worst = g.loc[g["change"].idxmin()] if g["change"].notna().any() else None
        per.append(f"{label(name)} goes from QWK {g['clean'].iloc[0]:.3f} on clean images to "
                   + ", ".join(f"{r.severe:.3f} at {r.level}" for r in g.itertuples())
                   + (f" (largest drop: {worst['change']:+.3f}, {worst['kind']})" if worst is not None else ""))
    text = ["Robustness: " + "; ".join(per) + "."]
    if "deepmt_dr" in q.method.values and len(q.method.unique()) > 1:
        dm = q[q.method == "deepmt_dr"].set_index("kind")["change"]
        base = q[q.method != "deepmt_dr"].groupby("kind")["change"].mean()
        worse = [k for k in dm.index if k in base.index and dm[k] < base[k]]
        text.append(f"DeepMT-DR loses more QWK than the baselines' mean under {', '.join(worse) or 'no kind'} "
                    f"and less or equally under {', '.join(k for k in dm.index if k not in worse) or 'no kind'}.")
    rob = study.robustness
    if "psnr" in rob and rob.loc[rob.method == "deepmt_dr", "psnr"].notna().any():
        r = rob[rob.method == "deepmt_dr"].set_index("level")["psnr"]
        text.append(f"DeepMT-DR's SR PSNR: {r['clean']:.2f} dB clean, "
                    + ", ".join(f"{v:.2f} dB at {k}" for k, v in r.drop("clean").items()) + ".")
    return text


def _cost_clause(study: BeyondStudy) -> list[str]:
    """Parameters, GFLOPs and images/s per method, and the machine and load the timings were taken under."""
    mach = dict(zip(study.machine["item"], study.machine["value"]))
    cc = study.cost.merge(study.throughput, on=["method", "label"]).set_index("method")
    load = float(study.throughput["load_avg_1min"].max())
    gpu = mach.get("gpu_name")
    return [
        f"Cost per image at HR {study.hr_size}px: " + ", ".join(
            f"{label(m)} {cc.loc[m, 'params_total'] / 1e6:.3f} M parameters, {cc.loc[m, 'gflops_forward']:.3f} GFLOPs inference "
            f"({cc.loc[m, 'infer_img_s']:.0f} img/s here, {cc.loc[m, 'infer_img_s_grade_only']:.0f} without the visualization map), "
            f"trained at {cc.loc[m, 'train_img_s']:.0f} img/s" for m in cc.index) + ".",
        f"Timings on {mach.get('cpu_model')} ({mach.get('usable_cores')} usable cores, {int(study.throughput['threads'].iloc[0])} torch "
        f"threads, device {mach.get('device')}{', GPU ' + gpu if gpu not in (None, 'None') else ''}, "
        f"autocast {mach.get('autocast')}), 1-min load average up to {load:.1f} while timing"
        + (" -- above the core count: the machine was shared, and the inference rates can be far too low "
           "(waiting OpenMP threads; rerun on a quiet machine or with timing_threads = 1)."
           if load > float(mach.get("usable_cores", 1) or 1) else "."),
    ]


def what_we_see(study: BeyondStudy) -> str:
    """Notebook 10's "what we see", written from ``study``: robustness (QWK under each degradation, DeepMT-DR
    against the baselines), calibration (ECE with its CI, over- or under-confidence, Brier) and cost (parameters,
    GFLOPs, images/s, and whether the machine was quiet enough for the rates to mean anything)."""
    text = [f"On the {study.n_test} test images ({study.n_graded} graded), {len(study.levels) - 1} degraded level(s) besides clean."]
    text += _robustness_clause(study)
    if len(study.calibration):
        c = study.calibration.sort_values("ece")
        text.append("Calibration (ECE, 95% CI over images; lower is better): " + ", ".join(
            f"{r.label} {r.ece:.3f} [{r.ece_lo:.3f}, {r.ece_hi:.3f}] ({'over' if r.overconfidence > 0 else 'under'}-confident by "
            f"{abs(r.overconfidence):.3f}, Brier {r.brier:.3f})" for r in c.itertuples()) + ".")
    text += _cost_clause(study)
    if study.smoke:
        text.append("(smoke profile: not results; untrained models on a handful of images.)")
    return " ".join(text)


__all__ = [
    "ROBUST_METRICS", "KINDS", "METHODS", "BLUR_SIGMAS", "NOISE_STDS", "JPEG_QUALITIES", "DegradedDataset", "severity_levels", "degraded_dataset", "robustness",
    "robustness_drops", "figure_robustness", "calibration_table", "reliability_table", "figure_reliability",
    "training_throughput", "inference_throughput", "cost_table", "machine_table", "figure_cost", "figure_throughput",
    "THROUGHPUT_COLUMNS", "BeyondStudy", "beyond_study", "what_we_see",
    # what notebook 10 calls besides
    "describe_config", "run_methods", "study_config", "save_figure", "save_table",
]
