"""Finding 2 (notebook 02): do the regions that drive the grading decision fall on the lesions?

    from deepmt.studies import attention as A
    study = A.attention_study({"grader_hr": runs_hr, "deepmt_dr": runs_mt}, cfg, n_images=200)  # a run or a list per seed

The tables, claim C3, the text and the figures are notebook 02's, in :mod:`deepmt.studies.finding2`; the maps and
their helpers here serve notebooks 01 and 09 too (:mod:`deepmt.studies.lesion_identity`, :mod:`~deepmt.studies.qualitative`).

**Maps.** :func:`visualization_maps` gives the (B,1,H,W) map of a trained method from the package's own
code (:meth:`Method.visualize <deepmt.models.methods.Method.visualize>`): for DeepMT-DR its visualization
map (:meth:`DeepMTDR.grade_and_visualize`: Grad-CAM of ResNet
stages fused coarse-to-fine, lesion-oriented feature selection) from the **LR** input; for a plain grader
(``grader_hr``, ``grader_bicubic``, ``grader_lr``) the same fusion without feature selection and with
equal (untrained) stage weights, i.e. plain multi-stage Grad-CAM (:class:`~deepmt.models.visualization.VisualizationMap`).
The Grad-CAM target is the predicted grade (``target="pred"``, the decision being explained) or the true
grade (``target="true"``; ungraded images fall back to the prediction).

**Measures, per test image with at least one lesion pixel in the field of view (FOV):**

* ``energy``: share of the map's energy (sum of map values) inside the lesion region (the union of the
  four lesion masks dilated by a disk of ``dilation`` px, :func:`deepmt.metrics.lesion_region`), out of its
  energy inside the FOV. A uniform map scores the region's area share (``area_share``).
* ``energy_random``: the same for the **same region at random positions**: rotated by a uniform random
  angle about the FOV centroid, mirrored with probability 1/2, cut to the FOV, averaged over
  ``n_random`` draws (:func:`random_rotations`). This keeps each image's lesion count, sizes, area and
  distances from the FOV centre, and moves only *where* the lesions are: a map that merely prefers the
  FOV's interior or the image's bright parts gains nothing from it. The effect of claim C3 is
  ``mean(energy) - mean(energy_random)``, paired bootstrap over images.
* ``auc``: the map as a pixel-level lesion detector: ROC-AUC (scikit-learn) of the map values inside
  the FOV against the (undilated) union of the lesion masks; ``auc_<L>`` per lesion type where that
  mask is annotated and non-empty; ``auc_random`` the AUC against the rotated masks (about 0.5).
* for a method that also segments (DeepMT-DR): ``energy_pred`` / ``energy_pred_random``, the same
  energy share inside its **own predicted** lesion regions (probability >= 0.5, dilated) -- the paper's
  wording of Finding 2 (segmentation regions vs grading regions). DeepMT-DR is trained to make its map
  agree with its lesion maps (``loss.vis_consistency``), so this agreement is partly by construction;
  the HR grader, trained on grades only, is the unbiased test.

**Seeds.** Each method may come as several trained runs (one per training seed): every run's map is
measured on the same images, ``per_image`` gets a ``seed`` column, and the tables average each image's
measures over the seeds (:func:`seed_means`) before the bootstrap over images -- the metric averaged over
seeds, the interval over test images, as :func:`deepmt.studies.common.paired_effect` does for the other
claims. The example maps are those of the first seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from deepmt import LESIONS
from deepmt import metrics as M
from deepmt.engine.ddp import unwrap
from deepmt.models.methods import MethodOutput

#: evidence name of the claim rows (the notebook)
EVIDENCE = "02_finding2_lesions_vs_attention"
#: probability at which a predicted lesion map counts as a lesion region
PRED_THRESHOLD = 0.5


# --------------------------------------------------------------------------- maps
def device_of(method) -> torch.device:
    """The device a method's parameters live on (CPU for a method without parameters)."""
    try:
        return next(method.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def batch_to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """A collated Sample batch with its tensors on ``device`` (fp32, contiguous)."""
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def visualization_maps(method, batch: Mapping[str, Any], target: str = "pred") -> MethodOutput:
    """Run a trained method (plain or DDP-wrapped) on ``batch`` and return its :class:`MethodOutput` with
    ``vis_map`` (B,1,H,W) set: :meth:`deepmt.models.methods.Method.visualize`.

    DeepMT-DR (and ``deepmt_dr_noisr``): its visualization map from the LR input. A plain grader baseline:
    multi-stage Grad-CAM (no feature selection). ``target``: "pred" (Grad-CAM of the predicted grade, what
    ``forward`` does) or "true" (the true grade where known). Raises ``ValueError`` for a method without a
    grader that has a map.
    """
    m = unwrap(method)
    if not hasattr(m, "visualize"):
        raise ValueError(f"method {getattr(m, 'name', type(m).__name__)!r} has no grader with a visualization map")
    return m.visualize(batch, target)


# --------------------------------------------------------------------------- measures
def energy_share(vis: np.ndarray, region: np.ndarray, fov: np.ndarray) -> np.ndarray | float:
    """Share of the map's energy inside ``region`` out of its energy inside ``fov``.

    (H,W) arrays -> float, or a stack of regions (..., H, W) with one map -> array. nan when the map has no
    energy in the FOV.
    """
    v = np.clip(np.asarray(vis, dtype=np.float64), 0, None) * (np.asarray(fov) > 0.5)
    total = v.sum()
    if not total > 0:
        return np.full(np.shape(region)[:-2], np.nan) if np.ndim(region) > 2 else math.nan
    inside = (np.asarray(region, dtype=bool) * v).sum(axis=(-2, -1))
    out = inside / total
    return float(out) if np.ndim(out) == 0 else out


def random_rotations(masks: np.ndarray, fov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random placements of the (C,H,W) bool ``masks`` inside the field of view -> (n,C,H,W) bool.

    Each draw rotates all C masks together by one uniform random angle about the FOV centroid and
    mirrors them (left-right about the centroid) with probability 1/2 -- nearest-neighbour resampling --
    then cuts them to the FOV. Distances from the FOV centre, sizes and (for a circular FOV) areas are kept.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (C, H, W), got shape {masks.shape}")
    fov = np.asarray(fov) > 0.5
    C, H, W = masks.shape
    if not fov.any():
        fov = np.ones((H, W), bool)
    ys, xs = np.nonzero(fov)
    cy, cx = ys.mean(), xs.mean()
    yy, xx = np.mgrid[0:H, 0:W]
    dy, dx = (yy - cy).ravel(), (xx - cx).ravel()
    out = np.zeros((n, C, H * W), bool)
    flat = masks.reshape(C, H * W)
    for k in range(n):
        theta = rng.uniform(0.0, 2 * np.pi)
        mirror = rng.random() < 0.5
        c, s = math.cos(theta), math.sin(theta)
        # output pixel p takes the source pixel c + R(-theta)(p - c), mirrored in x
        sx = c * dx + s * dy
        sy = -s * dx + c * dy
        if mirror:
            sx = -sx
        ix = np.rint(sx + cx).astype(np.int64)
        iy = np.rint(sy + cy).astype(np.int64)
        ok = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H)
        out[k][:, ok] = flat[:, iy[ok] * W + ix[ok]]
    return out.reshape(n, C, H, W) & fov


def pixel_auc(score: np.ndarray, positive: np.ndarray, valid: np.ndarray | None = None) -> float:
    """ROC-AUC (scikit-learn) of ``score`` as a detector of ``positive`` pixels, over the ``valid`` pixels;
    nan when one class is missing."""
    from sklearn.metrics import roc_auc_score

    valid = np.ones(np.shape(score), bool) if valid is None else np.asarray(valid) > 0.5
    y = np.asarray(positive, dtype=bool)[valid]
    if y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, np.asarray(score, dtype=np.float64)[valid]))


def rank_auc(ranks: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """ROC-AUC of many label vectors against one score vector, from the score's average ranks (1-based,
    ``scipy.stats.rankdata``): Mann-Whitney U / (n_pos n_neg), equal to scikit-learn's AUC with ties.
    ``positives`` (K, n) bool -> (K,) AUCs (nan where one class is missing)."""
    pos = np.atleast_2d(np.asarray(positives, dtype=bool))
    n = pos.shape[1]
    n_pos = pos.sum(1).astype(np.float64)
    n_neg = n - n_pos
    r = pos @ np.asarray(ranks, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (r - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def auto_dilation(hr_size: int) -> int:
    """Default lesion-region dilation in px: ``hr_size // 32`` (3 px at 96, 32 at 1024), at least 1."""
    return max(1, int(hr_size) // 32)


def image_agreement(
    vis: np.ndarray,
    masks: np.ndarray,
    fov: np.ndarray,
    *,
    mask_present: np.ndarray | None = None,
    lesion_probs: np.ndarray | None = None,
    dilation: int = 3,
    n_random: int = 20,
    rng: np.random.Generator | None = None,
) -> dict[str, float] | None:
    """The measures of one image (see the module docstring): map ``vis`` (H,W), ``masks`` (4,H,W),
    ``fov`` (H,W), optional ``lesion_probs`` (4,H,W) of the same method. None when the image has no
    annotated lesion pixel inside the FOV."""
    from scipy.stats import rankdata

    rng = rng if rng is not None else np.random.default_rng(0)
    vis = np.asarray(vis, dtype=np.float64)
    fov_b = np.asarray(fov) > 0.5
    present = np.ones(len(LESIONS), bool) if mask_present is None else np.asarray(mask_present, dtype=bool)
    m = (np.asarray(masks) > 0.5) & present[:, None, None] & fov_b
    union = m.any(0)
    if not union.any():
        return None
    region = M.lesion_region(m[None], dilation=dilation, fov=fov_b[None, None])[0]
    placed = random_rotations(np.stack([region, union]), fov_b, n_random, rng)
    ranks = rankdata(vis[fov_b])
    row: dict[str, float] = {
        "lesion_px": float(union.sum()),
        "area_share": float(region.sum() / max(fov_b.sum(), 1)),
        "energy": energy_share(vis, region, fov_b),
        "energy_random": float(np.nanmean(energy_share(vis, placed[:, 0], fov_b))) if n_random else math.nan,
        "auc": pixel_auc(vis, union, fov_b),
        "auc_random": float(np.nanmean(rank_auc(ranks, placed[:, 1][:, fov_b]))) if n_random else math.nan,
    }
    for k, name in enumerate(LESIONS):
        row[f"auc_{name}"] = pixel_auc(vis, m[k], fov_b) if present[k] and m[k].any() else math.nan
    row["energy_pred"] = row["energy_pred_random"] = math.nan
    if lesion_probs is not None:
        pred = (np.asarray(lesion_probs) >= PRED_THRESHOLD).any(0) & fov_b
        row["pred_lesion_px"] = float(pred.sum())
        if pred.any():
            pred_region = M.lesion_region(pred[None, None], dilation=dilation, fov=fov_b[None, None])[0]
            placed_pred = random_rotations(pred_region[None], fov_b, n_random, rng)[:, 0]
            row["energy_pred"] = energy_share(vis, pred_region, fov_b)
            row["energy_pred_random"] = float(np.nanmean(energy_share(vis, placed_pred, fov_b))) if n_random else math.nan
    return row


# --------------------------------------------------------------------------- the study
@dataclass
class AttentionStudy:
    """What :func:`attention_study` measured: one row per method and image, and example images."""

    per_image: pd.DataFrame
    examples: list[dict[str, Any]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    dilation: int = 0
    n_random: int = 0
    target: str = "pred"
    n_scanned: int = 0
    n_without_lesions: int = 0
    notes: list[str] = field(default_factory=list)
    #: the training seeds measured, per method
    seeds: dict[str, list[int]] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(self.per_image["id"].nunique()) if len(self.per_image) else 0


def test_split(cfg):
    """The test split of ``cfg``'s dataset (built or loaded from the cache)."""
    from deepmt.data import build_datasets

    return build_datasets(cfg.data, ("test",))["test"]


def has_lesions(sample: Mapping[str, Any]) -> bool:
    """Whether a (single) sample has an annotated lesion pixel inside its field of view."""
    present = np.asarray(sample["mask_present"], dtype=bool)
    if not present.any():
        return False
    m = np.asarray(sample["masks"])[present] > 0.5
    return bool((m.any(0) & (np.asarray(sample["fov"])[0] > 0.5)).any())


def attention_study(
    results: Mapping[str, Any],
    cfg,
    *,
    n_images: int = 200,
    dilation: int = 0,
    n_random: int = 20,
    target: str = "pred",
    seed: int = 0,
    n_examples: int = 4,
    dataset=None,
    batch_size: int | None = None,
    device: str | None = None,
) -> AttentionStudy:
    """Visualization maps of each method in ``results`` on the first ``n_images`` test images that have
    lesion annotations, measured against the lesion masks.

    ``results`` maps a method name to an ExperimentResult or a trained Method, or to a list of those (one
    per training seed; ``per_image`` then has one row per seed, ``seed`` being the run's training seed or,
    for a Method, its position in the list). ``dilation`` 0 means :func:`auto_dilation`; ``n_random``
    random placements per image and run; ``seed`` seeds the placements; ``n_examples`` images (one per
    grade 1-4 where possible) keep the first seed's maps for figures. ``dataset`` defaults to the test
    split of ``cfg``.
    """
    from deepmt.experiment_cache import ExperimentResult, load_method

    ds = dataset if dataset is not None else test_split(cfg)
    dilation = int(dilation) or auto_dilation(cfg.data.hr_size)
    methods: dict[str, list[tuple[int, Any]]] = {}  # name -> [(training seed, method)]
    for name, runs in results.items():
        runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
        if not runs:
            raise ValueError(f"method {name!r}: no trained run given")
        methods[name] = [
            (int(r.config.train.seed), load_method(r, device=device or cfg.train.device)) if isinstance(r, ExperimentResult)
            else (k, r) for k, r in enumerate(runs)
        ]
    bs = int(batch_size or cfg.train.eval_batch_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=False, num_workers=int(cfg.data.num_workers))
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    by_grade: dict[int, dict[str, Any]] = {}  # the first image of each grade 1-4, for the figure
    others: list[dict[str, Any]] = []  # further images, should some grade be missing
    n_done = n_scanned = n_without = 0
    for batch in loader:
        if n_done >= n_images:
            break
        B = len(batch["id"])
        n_scanned += B
        keep = [i for i in range(B) if has_lesions({k: batch[k][i] for k in ("masks", "mask_present", "fov")})]
        n_without += B - len(keep)
        keep = keep[: n_images - n_done]
        if not keep:
            continue
        idx = torch.tensor(keep)
        sub = {k: (v[idx] if isinstance(v, torch.Tensor) else [v[i] for i in keep]) for k, v in batch.items()}
        masks, fov, present = sub["masks"].numpy(), sub["fov"].numpy()[:, 0], sub["mask_present"].numpy()
        grades = sub["grade"].numpy()
        outs: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # name -> [(seed, maps)], first seed first
        for name, seeded in methods.items():
            outs[name] = []
            for run_seed, method in seeded:
                out = visualization_maps(method, batch_to(sub, device_of(method)), target=target)
                outs[name].append((run_seed, {
                    "vis": out.vis_map[:, 0].float().cpu().numpy(),
                    "probs": out.lesion_probs.float().cpu().numpy() if out.lesion_probs is not None else None,
                    "grade_pred": out.grade_logits.float().argmax(1).cpu().numpy(),
                }))
        for j, sid in enumerate(sub["id"]):
            g = int(grades[j])
            for name, seeded_outs in outs.items():
                for run_seed, o in seeded_outs:
                    row = image_agreement(
                        o["vis"][j], masks[j], fov[j], mask_present=present[j],
                        lesion_probs=o["probs"][j] if o["probs"] is not None else None,
                        dilation=dilation, n_random=n_random, rng=rng,
                    )
                    if row is None:
                        continue
                    rows.append({"method": name, "seed": run_seed, "id": str(sid), "grade": g,
                                 "grade_pred": int(o["grade_pred"][j]), **row})
            if (1 <= g <= 4 and g not in by_grade) or len(others) < n_examples:
                first = {n: so[0][1] for n, so in outs.items()}
                ex = {
                    "id": str(sid), "grade": g, "hr": sub["hr"][j].permute(1, 2, 0).numpy(),
                    "masks": masks[j] * present[j][:, None, None], "fov": fov[j], "seed": {n: so[0][0] for n, so in outs.items()},
                    "maps": {n: o["vis"][j] for n, o in first.items()},
                    "lesion_probs": {n: o["probs"][j] for n, o in first.items() if o["probs"] is not None},
                    "grade_pred": {n: int(o["grade_pred"][j]) for n, o in first.items()},
                }
                if 1 <= g <= 4 and g not in by_grade:
                    by_grade[g] = ex
                else:
                    others.append(ex)
        n_done += len(keep)
    chosen = [by_grade[g] for g in sorted(by_grade)][:n_examples]
    chosen += others[: max(0, n_examples - len(chosen))]
    for ex in chosen:
        ex["measures"] = {r["method"]: r for r in rows if r["id"] == ex["id"] and r["seed"] == ex["seed"][r["method"]]}
    notes = []
    if not rows:
        notes.append(
            f"none of the {n_scanned} test images scanned has an annotated lesion inside its field of view: "
            "Finding 2 needs lesion masks (use a dataset with masks, e.g. synthetic, idrid-seg or ddr-seg)"
        )
    per_image = pd.DataFrame(rows)
    return AttentionStudy(per_image, chosen, list(methods), dilation, n_random, target, n_scanned, n_without, notes,
                          {n: [sd for sd, _ in seeded] for n, seeded in methods.items()})
