"""Predict on fundus photographs: super-resolve, segment lesions and grade DR with a trained checkpoint.

Each image is prepared exactly as the training data: field-of-view crop, square pad and resize to
``cfg.data.hr_size`` (``deepmt.data.preprocess.preprocess_fundus``), then LR = ``degrade(HR)`` with the
checkpoint's degradation (scale, blur, noise, JPEG) -- unless the photo already *is* the
low-resolution input (``input_is_lr``), in which case it is resized to the LR size directly.

Per image ``<stem>`` (:func:`output_stems`: the file name without its extension, or with it, and with its folders'
names, where inputs share one) the output folder receives ``<stem>_sr.png`` (the super-resolved image, for
methods with an ISR part), ``<stem>_lesions.png`` (the lesions at probability >= threshold drawn on
the SR/HR image; MA magenta, HE blue, EX green, SE cyan) and ``<stem>.json`` (grade probabilities,
predicted grade, lesion areas in px and in % of the field of view).

A batch survives bad files: an image that cannot be read or prepared is reported in
:attr:`PredictReport.failed` with the reason and the others are still predicted. Two kinds of input the
model cannot judge are refused unless ``force=True`` (then they are predicted with a warning in their
JSON): photos far below the size the model works at (:data:`MIN_UPSCALE_REFUSED`, e.g. a 1 x 1 image,
whose whole area would be taken as retina), and grayscale photos (the model saw only colour).
Failures to *write* (disk full, read-only folder) are not per-image problems: they stop the batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from deepmt import GRADES, LESIONS
from deepmt.errors import DataError
from deepmt.utils import atomic_path, atomic_write_text

#: Refuse (unless forced) a photo that must be enlarged more than this to the model's size.
MIN_UPSCALE_REFUSED = 2.0


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


def input_problems(image: np.ndarray, cfg, *, input_is_lr: bool = False) -> tuple[list[str], list[str]]:
    """``(refusals, notes)`` about a photo before prediction: what makes its prediction meaningless
    (refused unless forced) and what merely lowers its quality.

    * grayscale (all three channels equal): refused -- the model was trained on colour fundus photos;
    * the photo's longer side (a bound on its field of view's) enlarged more than :data:`MIN_UPSCALE_REFUSED` x
      to the model's size (``hr_size``, or the LR size with ``input_is_lr``): refused; enlarged at all: a note.
    """
    refusals, notes = [], []
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]):
        refusals.append("grayscale image (R = G = B everywhere); the model was trained on colour fundus photos")
    side = max(image.shape[:2])
    target = cfg.data.hr_size // cfg.data.scale if input_is_lr else cfg.data.hr_size
    if side * MIN_UPSCALE_REFUSED < target:
        hint = "" if input_is_lr else "; if it already is the low-resolution input, pass --input-is-lr"
        refusals.append(f"{image.shape[1]}x{image.shape[0]} px is far below the model's input of {target} px "
                        f"(it would be enlarged {target / side:.1f}x){hint}")
    elif side < target:
        notes.append(f"{image.shape[1]}x{image.shape[0]} px enlarged {target / side:.1f}x to the model's {target} px")
    return refusals, notes


def output_stems(paths: Sequence[str | Path]) -> list[str]:
    """The ``<stem>`` of each input's output files: its file name without the extension where that is unique
    among the inputs; inputs that share a stem keep their extension (``eye.png``, ``eye.jpg`` -> ``eye_png``,
    ``eye_jpg``), and then, where the file names themselves are equal, their folders' names too
    (``a/eye.png``, ``b/eye.png`` -> ``a_eye_png``, ``b_eye_png``); the same file given twice gets ``_2``, ``_3``."""
    paths = [Path(p) for p in paths]

    def name(path: Path, level: int) -> str:
        if level == 0:
            return path.stem
        ext = path.suffix.lstrip(".")
        base = f"{path.stem}_{ext}" if ext else path.stem
        parents = [q.name for q in path.parents if q.name][: level - 1][::-1]
        return "_".join([*parents, base])

    levels = [0] * len(paths)
    for _ in range(64):  # deepen the name of every input that shares it, until no two do (or nothing changes)
        names = [name(p, k) for p, k in zip(paths, levels)]
        clash = {n for n in names if names.count(n) > 1}
        new = [k + 1 if n in clash and name(p, k + 1) != n else k for p, k, n in zip(paths, levels, names)]
        if new == levels:
            break
        levels = new
    out: list[str] = []
    for n in (name(p, k) for p, k in zip(paths, levels)):
        stem, i = n, 1
        while stem in out:  # the same path twice
            i += 1
            stem = f"{n}_{i}"
        out.append(stem)
    return out


@dataclass
class PredictReport:
    """What :func:`predict_images` did: one summary per predicted image, and ``(image, reason)`` per failure."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


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
    force: bool = False,
) -> PredictReport:
    """Run ``method`` on each image file and write the SR PNG, lesion overlay PNG and JSON summary.

    An image that cannot be read or prepared (or is refused by :func:`input_problems`, unless ``force``)
    goes to ``report.failed`` and the batch goes on; write failures (``OSError``) stop it.
    """
    from deepmt.engine.device import resolve_precision, to_device

    if not images:
        raise DataError("predict: no input images given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        device = next(method.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    prec = resolve_precision(device, cfg.train.precision, cfg.train.channels_last)
    method.eval()
    report = PredictReport()
    paths = [Path(p) for p in images]
    for path, stem in zip(paths, output_stems(paths)):
        try:
            batch, notes = _prepared(path, cfg, input_is_lr=input_is_lr, force=force)
        except DataError as exc:
            report.failed.append((str(path), str(exc)))
            continue
        with prec.autocast():
            out = method(to_device(batch, prec))
        summary: dict[str, Any] = {
            "image": str(path), "method": getattr(method, "name", "?"), "checkpoint": str(checkpoint) if checkpoint else None,
            "input_is_lr": input_is_lr, "hr_size": cfg.data.hr_size, "scale": cfg.data.scale, "warnings": notes, "outputs": {},
        }
        _write_outputs(out, batch, summary, out_dir, stem, threshold)
        report.predictions.append(summary)
    return report


def _prepared(path: Path, cfg, *, input_is_lr: bool, force: bool) -> tuple[dict[str, Any], list[str]]:
    """The model's input batch of one image file, and the notes about it; DataError if unusable."""
    from deepmt.data.io import read_image

    image = read_image(path)  # DataError naming the file if unreadable
    refusals, notes = input_problems(image, cfg, input_is_lr=input_is_lr)
    if refusals and not force:
        raise DataError(f"{path}: {'; '.join(refusals)} (--force predicts it anyway)")
    batch = prepare_input(image, cfg, input_is_lr=input_is_lr, name=str(path))
    return batch, refusals + notes


def _write_outputs(out, batch: dict[str, Any], summary: dict[str, Any], out_dir: Path, stem: str, threshold: float) -> None:
    """Fill ``summary`` from the method's output and write ``<stem>_sr.png``, ``<stem>_lesions.png`` and ``<stem>.json``."""
    from deepmt.imaging import overlay_masks

    fov = batch["fov"][0, 0].numpy() > 0.5
    base = out.sr if out.sr is not None else batch["hr"]
    base_np = base[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    if out.sr is not None:
        summary["outputs"]["sr"] = str(_png(out_dir / f"{stem}_sr.png", base_np))
    if out.grade_logits is not None:
        p = torch.softmax(out.grade_logits.float(), 1)[0].cpu().numpy()
        g = int(p.argmax())
        summary.update(grade_probs={str(k): float(v) for k, v in enumerate(p)}, predicted_grade=g, predicted_grade_name=GRADES[g])
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
