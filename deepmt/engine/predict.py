"""Predict on fundus photographs: super-resolve, segment lesions and grade DR with a trained checkpoint.

Each image is prepared exactly as the training data: field-of-view crop, square pad and resize to
``cfg.data.hr_size`` (``deepmt.data.preprocess.preprocess_fundus``), then LR = ``degrade(HR)`` with the
checkpoint's degradation (scale, blur, noise, JPEG) -- unless the photo already *is* the
low-resolution input (``input_is_lr``), in which case it is resized to the LR size directly.

Per image ``<stem>`` the output folder receives ``<stem>_sr.png`` (the super-resolved image, for
methods with an ISR part), ``<stem>_lesions.png`` (the lesions at probability >= threshold drawn on
the SR/HR image; MA magenta, HE blue, EX green, SE cyan) and ``<stem>.json`` (grade probabilities,
predicted grade, lesion areas in px and in % of the field of view).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from deepmt import GRADES, LESIONS
from deepmt.errors import DataError
from deepmt.utils import atomic_path, atomic_write_text


def _png(path: Path, rgb01_or_uint8: np.ndarray) -> Path:
    from PIL import Image

    arr = rgb01_or_uint8
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return path


def prepare_input(image: np.ndarray, cfg, *, input_is_lr: bool = False, name: str = "image") -> dict[str, Any]:
    """A one-image Sample batch (B=1) from an RGB uint8 photo, prepared as the training data."""
    import torch.nn.functional as F

    from deepmt.data.degradation import bicubic_upsample, degrade_config
    from deepmt.data.preprocess import preprocess_fundus

    hr_size, scale = cfg.data.hr_size, cfg.data.scale
    if input_is_lr:
        lr_u8, fov_lr, _ = preprocess_fundus(image, hr_size // scale, name=name)
        lr = torch.from_numpy(lr_u8).permute(2, 0, 1).float().div(255)
        hr = bicubic_upsample(lr, scale)  # stands in for HR (HR-input methods then see bicubic)
        fov = F.interpolate(torch.from_numpy(fov_lr)[None, None].float(), scale_factor=scale, mode="nearest")[0]
    else:
        hr_u8, fov_np, _ = preprocess_fundus(image, hr_size, name=name)
        hr = torch.from_numpy(hr_u8).permute(2, 0, 1).float().div(255)
        lr = degrade_config(hr, cfg.data, seed=0)
        fov = torch.from_numpy(fov_np)[None].float()
    return {
        "hr": hr[None], "lr": lr[None], "fov": fov[None],
        "masks": torch.zeros(1, len(LESIONS), *hr.shape[1:]), "mask_present": torch.zeros(1, len(LESIONS), dtype=torch.bool),
        "grade": torch.tensor([-1]), "id": [name],
    }


@torch.no_grad()
def predict_images(
    method: torch.nn.Module,
    cfg,
    images: Sequence[str | Path],
    out_dir: str | Path,
    *,
    input_is_lr: bool = False,
    threshold: float = 0.5,
    checkpoint: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run ``method`` on each image file and write the SR PNG, lesion overlay PNG and JSON summary."""
    from deepmt.data.io import read_image
    from deepmt.data.synthetic import overlay_masks
    from deepmt.engine.device import resolve_precision, to_device

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        device = next(method.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    prec = resolve_precision(device, cfg.train.precision, cfg.train.channels_last)
    method.eval()
    summaries = []
    stems: set[str] = set()
    for path in map(Path, images):
        image = read_image(path)  # DataError naming the file if unreadable
        stem = path.stem
        while stem in stems:  # same file name from two folders
            stem += "_"
        stems.add(stem)
        batch = prepare_input(image, cfg, input_is_lr=input_is_lr, name=str(path))
        with prec.autocast():
            out = method(to_device(batch, prec))
        fov = batch["fov"][0, 0].numpy() > 0.5
        base = out.sr if out.sr is not None else batch["hr"]
        base_np = base[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        summary: dict[str, Any] = {
            "image": str(path), "method": getattr(method, "name", "?"), "checkpoint": str(checkpoint) if checkpoint else None,
            "input_is_lr": input_is_lr, "hr_size": cfg.data.hr_size, "scale": cfg.data.scale, "outputs": {},
        }
        if out.sr is not None:
            summary["outputs"]["sr"] = str(_png(out_dir / f"{stem}_sr.png", base_np))
        if out.grade_logits is not None:
            p = torch.softmax(out.grade_logits.float(), 1)[0].cpu().numpy()
            g = int(p.argmax())
            summary.update(
                grade_probs={str(k): float(v) for k, v in enumerate(p)}, predicted_grade=g, predicted_grade_name=GRADES[g]
            )
        probs = out.lesion_probs if out.lesion_probs is not None else (
            torch.sigmoid(out.lesion_logits.float()) if out.lesion_logits is not None else None
        )
        if probs is not None:
            masks = (probs[0].float().cpu().numpy() >= threshold) & fov[None]
            fov_px = int(fov.sum())
            summary["threshold"] = threshold
            summary["fov_px"] = fov_px
            summary["lesion_area_px"] = {l: int(m.sum()) for l, m in zip(LESIONS, masks)}
            summary["lesion_area_pct_fov"] = {l: 100.0 * float(m.sum()) / max(fov_px, 1) for l, m in zip(LESIONS, masks)}
            overlay = overlay_masks((base_np * 255 + 0.5).astype(np.uint8), masks)
            summary["outputs"]["lesions"] = str(_png(out_dir / f"{stem}_lesions.png", overlay))
        json_path = out_dir / f"{stem}.json"
        summary["outputs"]["json"] = str(json_path)
        atomic_write_text(json_path, json.dumps(summary, indent=2))
        summaries.append(summary)
    if not summaries:
        raise DataError("predict: no input images given")
    return summaries
