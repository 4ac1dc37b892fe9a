"""Evaluation of a trained Method on one split: batched inference, then the paper's metrics.

Metrics follow the paper (``deepmt.metrics``): grading (accuracy, QWK, ...) over the graded
images, ISR (PSNR/SSIM on [0, 1] images) and lesion segmentation (per-lesion AUC/AUPR averaged
over the images that contain the lesion) per image, then averaged. Outputs are cast to fp32
before any metric is computed, whatever the autocast dtype of the forward pass.

``evaluate`` runs ``method.forward`` under ``torch.no_grad()``; a method that needs gradients
inside ``forward`` (e.g. Grad-CAM visualization maps) enables them locally.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from deepmt.engine.ddp import unwrap
from deepmt.engine.device import Precision, eval_mode, make_loader, resolve_device, resolve_precision, to_device



@torch.no_grad()
def predict_batches(
    method: torch.nn.Module,
    dataset,
    cfg,
    *,
    prec: Precision | None = None,
    keep_lesion_maps: bool = False,
    progress: bool | None = None,
    desc: str = "evaluate",
) -> dict[str, Any]:
    """Run ``method.forward`` over ``dataset`` and collect per-image results (fp32 numpy)."""
    method = unwrap(method)
    if prec is None:
        device = next(method.parameters()).device
        prec = resolve_precision(device, cfg.train.precision, cfg.train.channels_last)
    tasks = set(method.tasks)
    loader = make_loader(dataset, cfg.train.eval_batch_size, prec=prec, num_workers=cfg.data.num_workers)
    show = cfg.train.progress if progress is None else progress
    ids: list[str] = []
    grades: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    isr_rows: list[dict[str, np.ndarray]] = []  # per batch: key -> (B,) from metrics.isr_per_image
    seg_rows: list[dict[str, np.ndarray]] = []  # per batch: key -> (B, 4) from metrics.segmentation_per_image
    maps: list[np.ndarray] = []
    # visualization maps (Grad-CAM, a backward pass per batch) are not collected here: skip them
    had_vis = getattr(method, "compute_vis", None)
    if had_vis is not None:
        method.compute_vis = False
    try:
        _collect(method, loader, show, desc, prec, tasks, keep_lesion_maps, ids, grades, probs, isr_rows, seg_rows, maps)
    finally:
        if had_vis is not None:
            method.compute_vis = had_vis
    pred: dict[str, Any] = {"id": np.asarray(ids), "grade_true": np.concatenate(grades) if grades else np.zeros(0, np.int64)}
    if probs:
        pred["grade_probs"] = np.concatenate(probs).astype(np.float32)
        pred["grade_pred"] = pred["grade_probs"].argmax(1).astype(np.int64)
    for prefix, rows in (("isr", isr_rows), ("seg", seg_rows)):
        for key in rows[0] if rows else ():
            pred[f"{prefix}_{key}"] = np.concatenate([r[key] for r in rows])
    if maps:
        pred["lesion_probs"] = np.concatenate(maps)
    return pred


def _collect(method, loader, show, desc, prec, tasks, keep_lesion_maps, ids, grades, probs, isr_rows, seg_rows, maps) -> None:
    from deepmt import metrics as M

    with eval_mode(method):
        for batch in tqdm(loader, desc=desc, leave=False, disable=not show or len(loader) < 4):
            ids.extend(str(i) for i in batch["id"])
            grades.append(batch["grade"].numpy().astype(np.int64))
            dev_batch = to_device(batch, prec)
            with prec.autocast():
                out = method(dev_batch)
            if "grade" in tasks and out.grade_logits is not None:
                probs.append(torch.softmax(out.grade_logits.float(), dim=1).cpu().numpy())
            if "isr" in tasks and out.sr is not None:
                sr = out.sr.float().clamp(0, 1).cpu().numpy()
                isr_rows.append(M.isr_per_image(sr, batch["hr"].numpy(), batch["fov"].numpy(), batch["masks"].numpy()))
            if "seg" in tasks and (out.lesion_probs is not None or out.lesion_logits is not None):
                lp = out.lesion_probs if out.lesion_probs is not None else torch.sigmoid(out.lesion_logits.float())
                lp = lp.float().cpu().numpy()
                seg_rows.append(M.segmentation_per_image(lp, batch["masks"].numpy(), batch["mask_present"].numpy()))
                if keep_lesion_maps:
                    maps.append(lp.astype(np.float16))


def _nanmean(x: np.ndarray, axis: int | None = None):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def metrics_from_predictions(pred: dict[str, Any], tasks) -> dict[str, float]:
    """Aggregate per-image predictions into the split's metrics (flat dict of floats).

    Grading: :func:`deepmt.metrics.grading_metrics` over the graded images (its ``n`` is ``n_graded``).
    ISR: the per-image numbers of :func:`deepmt.metrics.isr_per_image` averaged over images (``psnr``,
    ``ssim``, ``psnr_fov``, ..., ``psnr_lesion`` over the images with lesions), as ``isr_metrics`` does.
    Segmentation: per lesion L, ``aupr_L``/``auc_L``/``dice_L``/``iou_L`` averaged over the images whose
    mask of L is annotated and non-empty (the paper's protocol, as ``segmentation_metrics``), their mean
    over lesions (``aupr``, ``auc``, ``dice``, ``iou``) and ``n_images_L``. Pixel-pooled numbers are left
    out: they would need every lesion map of the split in memory.
    """
    from deepmt import LESIONS
    from deepmt import metrics as M

    out: dict[str, float] = {"n_images": float(len(pred["id"]))}
    if "grade" in tasks and "grade_probs" in pred:
        for k, v in M.grading_metrics(pred["grade_true"], pred["grade_probs"]).items():
            if np.ndim(v) == 0:
                out["n_graded" if k == "n" else k] = float(v)
    if "isr" in tasks and "isr_psnr" in pred:
        for key in [k for k in pred if k.startswith("isr_") and k != "isr_has_lesion"]:
            out[key[4:]] = float(_nanmean(pred[key])) if len(pred[key]) else float("nan")
        if "isr_has_lesion" in pred:
            out["n_lesion_images"] = float(np.sum(pred["isr_has_lesion"]))
    if "seg" in tasks and "seg_dice" in pred:
        for k in ("aupr", "auc", "dice", "iou"):
            per = pred.get(f"seg_{k}")
            if per is None:
                continue
            lesion_means = _nanmean(per, axis=0) if len(per) else np.full(len(LESIONS), np.nan)
            for l, name in enumerate(LESIONS):
                out[f"{k}_{name}"] = float(lesion_means[l])
            out[k] = float(_nanmean(lesion_means))
        for l, name in enumerate(LESIONS):
            out[f"n_images_{name}"] = float(np.isfinite(pred["seg_dice"][:, l]).sum())
    return out


def evaluate(
    method: torch.nn.Module,
    dataset,
    cfg,
    *,
    keep_lesion_maps: bool = False,
    progress: bool | None = None,
    desc: str = "evaluate",
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics of ``method`` on ``dataset`` for the tasks it has, and per-image predictions.

    Returns ``(metrics, predictions)``: ``metrics`` is a flat dict of floats (grading keys from
    ``grading_metrics``, ISR/segmentation keys averaged over images); ``predictions`` holds numpy
    arrays per image (``id``, ``grade_true``, ``grade_probs``, ``grade_pred``, ``isr_psnr``,
    ``isr_ssim``, ``seg_*``; ``lesion_probs`` (N, 4, H, W) float16 only if ``keep_lesion_maps``)
    for bootstrap confidence intervals and paired tests.
    """
    base = unwrap(method)
    try:
        device = next(base.parameters()).device
    except StopIteration:  # parameter-free method (e.g. bicubic)
        device = resolve_device(cfg.train.device)
    prec = resolve_precision(device, cfg.train.precision, cfg.train.channels_last)
    pred = predict_batches(base, dataset, cfg, prec=prec, keep_lesion_maps=keep_lesion_maps, progress=progress, desc=desc)
    return metrics_from_predictions(pred, set(base.tasks)), pred
