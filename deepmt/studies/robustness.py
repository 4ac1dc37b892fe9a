"""Notebook 10's robustness to harsher degradation: the same test images degraded again at each severity
level, every method evaluated on them (the study and the rest of notebook 10: :mod:`deepmt.studies.beyond`).

**Robustness: re-degrading the same test images.** Changing ``data.degradation`` in the config would make a
new synthetic split: the cache key of :mod:`deepmt.data.synthetic` hashes the degradation, so the whole split
(HR images included) is generated again, and the generator *uses* ``blur_sigma`` when it matches the
distractors' LR contrast to the lesions' -- the HR images themselves would change with the blur, mixing a
shift of content with the shift of degradation. :class:`DegradedDataset` instead keeps each test sample (HR,
masks, grade) and replaces only its LR image by :func:`deepmt.data.degradation.degrade` of its HR image with
the level's settings, rounded to 8 bits as a stored image is. This costs no generation and works for every
dataset (real ones degrade on the fly anyway). The clean level is the run's own test split, whose metrics are
the run's stored test metrics. Noise is seeded per image, so every method sees the same noisy images.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from deepmt.config import Config
from deepmt.data.degradation import degrade
from deepmt.experiment_cache import ExperimentResult, load_method
from deepmt.studies.common import label

#: metrics the robustness table reports (those a method lacks are nan)
ROBUST_METRICS = ("accuracy", "qwk", "ece", "auc_ovr", "psnr", "ssim", "aupr", "dice")
KINDS = ("blur", "noise", "jpeg")
_KIND_TEXT = {"blur": "Gaussian blur sigma (HR px)", "noise": "Gaussian noise std (LR, [0,1])",
              "jpeg": "JPEG quality of the LR image"}


class DegradedDataset(torch.utils.data.Dataset):
    """``base`` with each sample's LR image remade from its HR image by :func:`degrade` (see the module doc).

    ``seed`` seeds the noise of image ``i`` with ``seed * 1_000_003 + i``; ``quantize`` rounds the LR
    image to 8 bits. Everything else of the sample (HR, masks, grade, id) is unchanged.
    """

    def __init__(self, base, scale: int, blur_sigma: float = 0.0, noise_std: float = 0.0,
                 jpeg_quality: int | None = None, seed: int = 0, quantize: bool = True) -> None:
        self.base = base
        self.scale = int(scale)
        self.blur_sigma = float(blur_sigma or 0.0)
        self.noise_std = float(noise_std or 0.0)
        self.jpeg_quality = None if jpeg_quality is None else int(jpeg_quality)
        self.seed = int(seed)
        self.quantize = bool(quantize)
        self.grades = getattr(base, "grades", None)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        s = dict(self.base[i])
        lr = degrade(s["hr"], self.scale, blur_sigma=self.blur_sigma, noise_std=self.noise_std,
                     jpeg_quality=self.jpeg_quality, seed=self.seed * 1_000_003 + int(i))
        if self.quantize:
            lr = torch.round(lr * 255.0) / 255.0
        s["lr"] = lr
        return s


def severity_levels(cfg: Config, blur_sigmas: Sequence[float] = (), noise_stds: Sequence[float] = (),
                    jpeg_qualities: Sequence[int | None] = ()) -> pd.DataFrame:
    """The degradation levels to test: the clean level (``cfg.data.degradation``) first, then one level per
    value of each kind, the other two settings kept at the config's. A value equal to the config's own setting
    (blur 0, noise 0, JPEG ``None`` by default) is the clean level and is not repeated.

    Columns: ``level`` (a readable name), ``kind`` (clean | blur | noise | jpeg), ``value`` (the kind's setting;
    the clean level gets each kind's value in the row of that kind), ``severity`` (0 = clean, then 1, 2, ... in
    the given order within a kind), ``blur_sigma``, ``noise_std``, ``jpeg_quality``.
    """
    d = cfg.data.degradation
    base = {"blur_sigma": float(d.blur_sigma), "noise_std": float(d.noise_std), "jpeg_quality": d.jpeg_quality}
    rows = [{"level": "clean", "kind": "clean", "value": math.nan, "severity": 0, **base}]
    for kind, values, key in (("blur", blur_sigmas, "blur_sigma"), ("noise", noise_stds, "noise_std"),
                              ("jpeg", jpeg_qualities, "jpeg_quality")):
        k = 0
        for v in values:
            v = None if v is None else (int(v) if key == "jpeg_quality" else float(v))
            if v == base[key]:
                continue
            if key != "jpeg_quality" and (v is None or v < 0):
                raise ValueError(f"{key} must be >= 0, got {v!r}")
            if key == "jpeg_quality" and v is not None and not 1 <= v <= 100:
                raise ValueError(f"JPEG quality must be in 1..100, got {v}")
            k += 1
            rows.append({"level": f"{kind} {v:g}" if v is not None else f"{kind} none", "kind": kind,
                         "value": math.nan if v is None else float(v), "severity": k, **{**base, key: v}})
    return pd.DataFrame(rows)


def degraded_dataset(test_set, cfg: Config, level: Mapping[str, Any], seed: int = 0):
    """``test_set`` itself for the clean level, else a :class:`DegradedDataset` with the level's settings."""
    if level["kind"] == "clean":
        return test_set
    jq = level["jpeg_quality"]
    jq = None if jq is None or (isinstance(jq, float) and math.isnan(jq)) else int(jq)
    return DegradedDataset(test_set, cfg.data.scale, level["blur_sigma"], level["noise_std"], jq, seed=seed)


def _metric_row(metrics: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    return {m: float(metrics.get(m, math.nan)) for m in names}


def robustness(results: Mapping[str, ExperimentResult], test_set, cfg: Config, levels: pd.DataFrame,
               metrics: Sequence[str] = ROBUST_METRICS, device: str | None = None, seed: int = 0,
               verbose: bool = True) -> pd.DataFrame:
    """Evaluate each trained method of ``results`` on every level of ``levels`` (:func:`severity_levels`).

    The clean level takes the run's stored test metrics; the other levels run
    :func:`deepmt.engine.evaluate.evaluate` on :func:`degraded_dataset` (DeepMT-DR without its visualization
    map, which does not change the grades). Returns one row per (method, level) with the level's columns,
    ``metrics`` and ``eval_seconds``.
    """
    from deepmt.engine.evaluate import evaluate

    rows = []
    datasets = {i: degraded_dataset(test_set, cfg, lv, seed=seed) for i, lv in levels.iterrows()}
    for name, res in results.items():
        method = None
        for i, lv in levels.iterrows():
            row = {"method": name, "label": label(name), **lv.to_dict()}
            if lv["kind"] == "clean":
                row.update(_metric_row(res.metrics, metrics), eval_seconds=0.0)
            else:
                if method is None:
                    method = load_method(res, device=device or cfg.train.device)
                    if hasattr(method, "compute_vis"):
                        method.compute_vis = False
                t0 = time.perf_counter()
                m, _ = evaluate(method, datasets[i], res.config, progress=False, desc=f"{name} {lv['level']}")
                row.update(_metric_row(m, metrics), eval_seconds=time.perf_counter() - t0)
                if verbose:
                    print(f"{name:>16} {lv['level']:>12}: " + ", ".join(
                        f"{k} {row[k]:.3f}" for k in ("accuracy", "qwk", "psnr") if k in row and np.isfinite(row[k]))
                        + f" ({row['eval_seconds']:.1f} s)", flush=True)
            rows.append(row)
    return pd.DataFrame(rows)


def robustness_drops(table: pd.DataFrame, metric: str = "qwk") -> pd.DataFrame:
    """Per method and kind: ``metric`` on clean images, at the most severe level of the kind, and the change
    (severe - clean). Kinds without a level are left out."""
    rows = []
    for name, g in table.groupby("method", sort=False):
        clean = g[g["kind"] == "clean"]
        c = float(clean[metric].iloc[0]) if len(clean) and metric in clean else math.nan
        for kind in KINDS:
            gk = g[g["kind"] == kind]
            if gk.empty:
                continue
            worst = gk.loc[gk["severity"].idxmax()]
            rows.append({"method": name, "label": label(name), "kind": kind, "level": worst["level"],
                         "metric": metric, "clean": c, "severe": float(worst[metric]),
                         "change": float(worst[metric]) - c})
    return pd.DataFrame(rows)


def figure_robustness(table: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "qwk")):
    """Rows: metrics; columns: degradation kinds. Each panel: the metric of every method against the severity
    of that kind (the clean level first)."""
    import matplotlib.pyplot as plt

    kinds = [k for k in KINDS if (table["kind"] == k).any()] or ["clean"]
    metrics = [m for m in metrics if m in table and table[m].notna().any()] or list(metrics[:1])
    fig, axes = plt.subplots(len(metrics), len(kinds), figsize=(3.8 * len(kinds), 3.0 * len(metrics)),
                             squeeze=False, sharey="row")
    for c, kind in enumerate(kinds):
        for r, metric in enumerate(metrics):
            ax = axes[r][c]
            ticks = None
            for name, g in table.groupby("method", sort=False):
                d = pd.concat([g[g["kind"] == "clean"], g[g["kind"] == kind].sort_values("severity")])
                if metric not in d or d[metric].isna().all():
                    continue
                ax.plot(np.arange(len(d)), d[metric], marker="o", label=label(name))
                ticks = ["clean"] + [f"{v:g}" for v in d["value"].iloc[1:]]
            if ticks:
                ax.set_xticks(np.arange(len(ticks)), ticks)
            ax.set_xlabel(_KIND_TEXT.get(kind, kind), fontsize=9)
            if c == 0:
                ax.set_ylabel(f"test {metric}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


__all__ = ["ROBUST_METRICS", "KINDS", "DegradedDataset", "severity_levels", "degraded_dataset", "robustness",
           "robustness_drops", "figure_robustness"]
