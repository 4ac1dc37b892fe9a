"""Does a method's microaneurysm map tell MAs from their look-alike smudges? Notebook 01's segmentation-level
negative control (``negative:identity``) and its table across the dial, on the synthetic benchmark only.

    from deepmt.studies import lesion_identity as LI
    centres = LI.lesion_centres(test_split(cfg), cfg.data)     # one row per MA / smudge of the test split
    LI.lesion_scores(method, test_split(cfg), centres)         # ... with the method's MA score there
    LI.identity_table(dial_runs, cfg)                          # per dial setting and method: AUC MA vs smudge [CI]
    LI.identity_control(dial_runs[1.0], cfg_at_1)              # the control: DeepMT-DR's AUC minus its no-ISR twin's

**Why.** MA AUPR is a pixel metric: it rises when a map finds MA-sized dark dots *and* when it outlines them
more sharply. The benchmark's smudges (``data.synth.smudge_match``) are dots that match an MA's LR peak; at 1
("nothing left") LR cannot tell the two apart. A method that only sharpens dots gains MA AUPR there too,
without recovering anything about which dot is an MA. This measures the identity part alone.

**How.** The generator knows every MA and smudge centre (:func:`deepmt.data.synthetic.generate_sample`
regenerates test image ``i`` exactly). A lesion's *score* is the method's MA probability at its centre, the
maximum over a (2 :data:`WINDOW` + 1)-pixel square at HR (the map may be off by a pixel). *AUC* is
scikit-learn's ROC-AUC of MA (1) vs smudge (0) over all test lesions, with a percentile bootstrap interval
over test images (:func:`deepmt.metrics.bootstrap_ci`). 0.5: the map scores smudges like MAs; 1: it separates
them. Several seeds: each lesion's score is averaged over them first (as every other metric here). The HR
reference (``foo_mt_hr``) shows what there is to find.

**The control** (:func:`identity_control`, issue 27). Where LR carries no MA information (``smudge_match`` = 1),
DeepMT-DR's AUC minus that of the same network without ISR (``deepmt_dr_noisr``) must not be measurably above 0
(:data:`deepmt.controls.CONTROLS` ``negative:identity``): the paired difference on the same lesions, its interval
from a bootstrap over test images that draws the same images for both. It replaced the pixel MA AUPR negative
control, which this measure was first added to explain: pixel AUPR mixes telling MAs from smudges with outlining
1-2 px dots.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from deepmt import LESIONS
from deepmt import metrics as M
from deepmt.config import Config
from deepmt.controls import ControlResult, control_row, regime_of
from deepmt.experiment_cache import ExperimentResult, load_method
from deepmt.metrics.uncertainty import hierarchical_paired_bootstrap
from deepmt.studies.attention import batch_to, device_of, test_split
from deepmt.studies.common import label, seed_paired

#: half-width (HR px) of the square around a lesion centre over which its MA probability is maximised
WINDOW = 1
#: the methods compared: DeepMT-DR on its SR, the same network on bicubic, the seg+grade net on bicubic and on HR
METHODS = ("deepmt_dr", "deepmt_dr_noisr", "foo_mt", "foo_mt_hr")


def lesion_centres(dataset, data_cfg) -> pd.DataFrame:
    """One row per MA and smudge of the synthetic ``dataset``: ``image`` (index), ``kind`` ("MA"/"smudge"),
    ``x``, ``y`` (HR px), from the generator (test image ``i`` is regenerated exactly). They do not depend on
    the method: compute them once per split and pass them to :func:`lesion_scores`."""
    from deepmt.data.synthetic import generate_sample

    rows = []
    for i in range(len(dataset)):
        les = generate_sample(i, data_cfg, dataset.split)["lesions"]
        for kind, xy in (("MA", les["ma_xy"]), ("smudge", les["smudge_xy"])):
            rows += [{"image": i, "kind": kind, "x": float(x), "y": float(y)}
                     for x, y in np.asarray(xy, dtype=np.float64).reshape(-1, 2)]
    return pd.DataFrame(rows, columns=["image", "kind", "x", "y"])


def lesion_scores(method, dataset, centres: pd.DataFrame, window: int = WINDOW, batch_size: int = 25) -> pd.DataFrame:
    """``centres`` (:func:`lesion_centres` of ``dataset``) with ``score``: the MA probability of ``method``'s
    lesion map at each centre, the maximum over the window. ``method`` is a trained Method in eval mode."""
    from torch.utils.data import default_collate

    ma = LESIONS.index("MA")
    dev = device_of(method)
    by_image = {i: d for i, d in centres.groupby("image")}
    scores = pd.Series(np.nan, index=centres.index)
    for start in range(0, len(dataset), batch_size):
        idx = list(range(start, min(start + batch_size, len(dataset))))
        batch = batch_to(default_collate([dataset[i] for i in idx]), dev)
        with torch.no_grad():
            out = method(batch)
        if out.lesion_probs is None:
            raise ValueError(f"{type(method).__name__}: no lesion maps, so no MA scores")
        probs = out.lesion_probs[:, ma].float().cpu().numpy()
        h, w = probs.shape[-2:]
        for k, i in enumerate(idx):
            d = by_image.get(i)
            if d is None:
                continue
            for row, x, y in zip(d.index, d["x"], d["y"]):
                cx, cy = int(round(x)), int(round(y))
                box = probs[k, max(cy - window, 0): min(cy + window + 1, h), max(cx - window, 0): min(cx + window + 1, w)]
                scores[row] = float(box.max()) if box.size else np.nan
    return centres.assign(score=scores.to_numpy())


def _per_image(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per test image: its lesions' labels (MA = 1) and scores, as object arrays (one row per image, for the
    image-level bootstrap)."""
    images = sorted(scores["image"].unique())
    g = scores.groupby("image")
    labels, values = np.empty(len(images), dtype=object), np.empty(len(images), dtype=object)
    for j, i in enumerate(images):
        d = g.get_group(i)
        labels[j], values[j] = (d["kind"] == "MA").to_numpy(np.int64), d["score"].to_numpy(np.float64)
    return labels, values


def _pooled_auc(labels: np.ndarray, values: np.ndarray) -> float:
    """ROC-AUC (scikit-learn) of MA vs smudge over the lesions of the given images; nan without both kinds."""
    from sklearn.metrics import roc_auc_score

    y, s = np.concatenate(list(labels)), np.concatenate(list(values))
    ok = np.isfinite(s)
    y, s = y[ok], s[ok]
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def identity_auc(scores: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """AUC of MA vs smudge from :func:`lesion_scores` (or their mean over seeds), with a percentile bootstrap
    interval over test images: ``auc``, ``lo``, ``hi``, ``n_ma``, ``n_smudge``."""
    n_ma, n_sm = int((scores["kind"] == "MA").sum()), int((scores["kind"] == "smudge").sum())
    if not n_ma or not n_sm:
        return {"auc": np.nan, "lo": np.nan, "hi": np.nan, "n_ma": n_ma, "n_smudge": n_sm}
    labels, values = _per_image(scores)
    auc, lo, hi = M.bootstrap_ci(_pooled_auc, labels, values, n_boot=n_boot, seed=seed, use_batched=False)
    return {"auc": auc, "lo": lo, "hi": hi, "n_ma": n_ma, "n_smudge": n_sm}


def seed_mean_scores(results: Sequence[ExperimentResult | Any], dataset, centres: pd.DataFrame) -> pd.DataFrame:
    """:func:`lesion_scores` of each trained run (an ExperimentResult or a trained Method), each lesion's score
    averaged over them."""
    scores = [lesion_scores(load_method(r, device="cpu") if isinstance(r, ExperimentResult) else r, dataset, centres)["score"]
              for r in results]
    return centres.assign(score=np.mean([sc.to_numpy() for sc in scores], axis=0))


def identity_table(runs_by_setting: Mapping[float, Mapping[str, Sequence[Any]]], cfg: Config,
                   methods: Sequence[str] = METHODS, n_boot: int = 1000) -> pd.DataFrame:
    """Per dial setting with smudges (``data.synth.smudge_match`` > 0) and method of ``methods`` present in its
    runs (``{smudge_match: {method: [runs per seed]}}``, notebook 01's ``dial_runs``): ``smudge_match``,
    ``method``, ``label``, ``n_seeds``, ``auc``, ``lo``, ``hi``, ``auc [95% CI]``, ``n_ma``, ``n_smudge``."""
    rows = []
    for sm, runs in runs_by_setting.items():
        if float(sm) <= 0:
            continue  # no smudges: nothing to tell apart
        c = cfg.replace({"data.synth.smudge_match": float(sm)})
        ds = test_split(c)
        centres = lesion_centres(ds, c.data)
        for m in methods:
            if not runs.get(m):
                continue
            a = identity_auc(seed_mean_scores(runs[m], ds, centres), n_boot=n_boot)
            rows.append({"smudge_match": float(sm), "method": m, "label": label(m), "n_seeds": len(runs[m]), **a,
                         "auc [95% CI]": M.format_ci(a["auc"], a["lo"], a["hi"])})
    return pd.DataFrame(rows, columns=["smudge_match", "method", "label", "n_seeds", "auc", "lo", "hi", "auc [95% CI]",
                                       "n_ma", "n_smudge"])


def identity_control(runs: Mapping[str, Sequence[Any]], cfg: Config, n_boot: int = 1000,
                     evidence: str = "01_finding1_isr_helps") -> ControlResult:
    """The control ``negative:identity`` from ``runs`` trained at ``cfg``'s setting (notebook 01's runs at
    ``smudge_match`` = 1, ``{method: [runs per seed]}`` holding ``deepmt_dr`` and ``deepmt_dr_noisr``): the AUC of
    MA vs smudge of DeepMT-DR's MA map minus its no-ISR twin's. With the twins trained on the same 2 seeds or more:
    the mean over seeds of each seed's AUC difference, with the interval over seeds and test images of
    :func:`deepmt.metrics.uncertainty.hierarchical_paired_bootstrap` (as every effect of the tables, issue 27);
    otherwise each lesion's score averaged over the seeds, with a paired percentile bootstrap over test images
    (:func:`deepmt.metrics.paired_bootstrap`). Regime from ``cfg``."""
    ds = test_split(cfg)
    centres = lesion_centres(ds, cfg.data)
    a_runs, b_runs = list(runs["deepmt_dr"]), list(runs["deepmt_dr_noisr"])
    # a bare trained Method (no config) does not say its seed: then the runs cannot be paired by seed
    if len(a_runs) > 1 and all(hasattr(r, "config") for r in a_runs + b_runs) and seed_paired(a_runs, b_runs):
        # each seed's twin pair on the same lesions: the interval covers training noise too (issue 27)
        per = [[_per_image(seed_mean_scores([r], ds, centres)) for r in rs] for rs in (a_runs, b_runs)]
        e = hierarchical_paired_bootstrap(_pooled_auc, per[0], _pooled_auc, per[1], n_boot=n_boot, use_batched=False)
    else:
        a, b = (_per_image(seed_mean_scores(rs, ds, centres)) for rs in (a_runs, b_runs))
        e = M.paired_bootstrap(_pooled_auc, a, _pooled_auc, b, n_boot=n_boot, use_batched=False)
    return control_row("negative:identity", value=e["diff"], lo=e["lo"], hi=e["hi"],
                       n_seeds=min(len(runs["deepmt_dr"]), len(runs["deepmt_dr_noisr"])), evidence=evidence,
                       regime=regime_of(cfg))


def what_we_see(table: pd.DataFrame) -> str:
    """The table in words: per dial setting, each method's AUC with its interval (0.5: no separation)."""
    if not len(table):
        return "No dial setting with smudges was run: nothing to tell apart."
    parts = []
    for sm, d in table.groupby("smudge_match", sort=True):
        parts.append(f"smudge_match {sm:g}: " + ", ".join(f"{n} {ci}" for n, ci in zip(d["label"], d["auc [95% CI]"])))
    return ("MA vs smudge AUC of each method's MA map at the generator's lesion centres (0.5: it scores smudges "
            "like MAs; mean over seeds): " + "; ".join(parts) + ".")


__all__ = ["WINDOW", "METHODS", "lesion_centres", "lesion_scores", "identity_auc", "seed_mean_scores", "identity_table",
           "identity_control", "what_we_see"]
