"""Qualitative figures in the paper's style (notebook 09).

    from deepmt.studies import qualitative as Q
    qual = Q.qualitative_study({"bicubic": r_bic, "isr": r_isr, "deepmt_dr": r_mt}, cfg, n_crops=4)
    Q.figure_sr_crops(qual); Q.figure_full_images(qual); qual.table   # PSNR of each SR method per crop
    real = Q.real_photo_study(r_mt)                                    # scikit-image's real fundus photo
    Q.figure_real_photo(real); real.table                              # grade probabilities
    print(Q.what_we_see(qual, real))                                   # notebook 09's "what we see"

**Crops.** :func:`pick_crops` scans the test split in order and picks images that contain the chosen lesion
type (default MA), one per grade 1-4 first. In each, the crop box (side ``2 * half`` HR px) is centred on
the lesion component whose box holds the most lesion pixels of any type, moved inside the image. Without
lesion masks (a real dataset that has none) it falls back to boxes at random points of the field of view
and says so. PSNR (:func:`deepmt.metrics.psnr`) is measured on each SR crop against the HR crop.

**Real photo.** :func:`real_photo_study` runs a trained method on ``skimage.data.retina()`` (a real, normal
eye) through :mod:`deepmt.engine.predict`: :func:`~deepmt.engine.predict.prepare_input` (the training data's
FOV crop, resize and degradation) for the maps, :func:`~deepmt.engine.predict.predict_images` (the CLI's
path, files written to a temporary folder) for the grade probabilities. A model trained on synthetic data
sees a domain it never saw: this checks the mechanics and shows the domain gap, not accuracy.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from deepmt import GRADES, LESIONS
from deepmt import metrics as M
from deepmt.errors import DataError
from deepmt.reporting import save_figure, save_table
from deepmt.studies.attention import PRED_THRESHOLD, batch_to, device_of, visualization_maps
from deepmt.studies.common import describe_config, label, run_methods, study_config

#: methods whose super-resolved image the crops compare, in column order
SR_METHODS = ("bicubic", "isr", "deepmt_dr")


# --------------------------------------------------------------------------- picking crops
def crop_half(hr_size: int, scale: int) -> int:
    """Half side of a crop box in HR px: about ``hr_size / 6``, a multiple of ``scale``, at least ``scale``."""
    return max(int(scale), (int(hr_size) // 6) // int(scale) * int(scale))


def best_centre(lesion_mask: np.ndarray, all_lesions: np.ndarray, half: int) -> tuple[int, int]:
    """(x, y) centre of a crop box: the centroid of the ``lesion_mask`` component whose box holds the most
    pixels of ``all_lesions``, then moved so that the box lies inside the image."""
    from scipy import ndimage

    lab, n = ndimage.label(lesion_mask)
    if n == 0:
        raise ValueError("best_centre: the lesion mask is empty")
    centres = ndimage.center_of_mass(lesion_mask, lab, range(1, n + 1))
    H, W = lesion_mask.shape
    integral = np.pad(np.asarray(all_lesions, dtype=np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    best, best_count = None, -1
    for cy, cx in centres:
        x = int(np.clip(round(cx), half, W - half))
        y = int(np.clip(round(cy), half, H - half))
        count = integral[y + half, x + half] - integral[y - half, x + half] - integral[y + half, x - half] + integral[y - half, x - half]
        if count > best_count:
            best, best_count = (x, y), int(count)
    return best  # type: ignore[return-value]


def pick_crops(dataset, n: int = 4, lesion: str = "MA", half: int | None = None, scale: int | None = None,
               max_scan: int = 400, seed: int = 0) -> tuple[list[dict[str, Any]], str]:
    """Up to ``n`` crops of the test ``dataset`` around a ``lesion`` ("MA", "HE", "EX", "SE" or "any"),
    one image per grade 1-4 first. Returns (picks, note): each pick has ``index``, ``id``, ``grade``, ``x``,
    ``y`` (HR px), ``half``, ``lesion``; ``note`` says what was done when no image had that lesion."""
    if lesion != "any" and lesion not in LESIONS:
        raise ValueError(f"lesion must be one of {LESIONS} or 'any', got {lesion!r}")
    first = dataset[0]
    H = first["hr"].shape[-1]
    scale = int(scale or H // first["lr"].shape[-1])
    half = int(half or crop_half(H, scale))
    wanted = [lesion] if lesion != "any" else []
    for attempt in (wanted, []) if wanted else ([],):
        by_grade: dict[int, dict] = {}
        others: list[dict] = []
        for i in range(min(len(dataset), max_scan)):
            s = first if i == 0 else dataset[i]
            present = s["mask_present"].numpy().astype(bool)
            masks = (s["masks"].numpy() > 0.5) & present[:, None, None] & (s["fov"].numpy()[0] > 0.5)
            union = masks.any(0)
            target = masks[LESIONS.index(attempt[0])] if attempt else union
            if not target.any():
                continue
            x, y = best_centre(target, union, half)
            g = int(s["grade"])
            pick = {"index": i, "id": str(s["id"]), "grade": g, "x": x, "y": y, "half": half, "lesion": attempt[0] if attempt else "any"}
            if 1 <= g <= 4 and g not in by_grade:
                by_grade[g] = pick
            elif len(others) < n:
                others.append(pick)
            if len(by_grade) >= min(n, 4) and len(by_grade) + len(others) >= n:
                break
        picks = [by_grade[g] for g in sorted(by_grade)][:n]
        picks += others[: n - len(picks)]
        if picks:
            note = "" if (not wanted or attempt) else f"no test image has a {lesion} mask: crops around any lesion instead"
            return picks, note
    # no lesion masks at all: random points inside the field of view
    rng = np.random.default_rng(seed)
    picks = []
    for i in range(min(n, len(dataset))):
        s = dataset[i]
        fov = s["fov"].numpy()[0] > 0.5
        inner = np.zeros_like(fov)
        inner[half:-half, half:-half] = fov[half:-half, half:-half]
        ys, xs = np.nonzero(inner) if inner.any() else (np.array([fov.shape[0] // 2]), np.array([fov.shape[1] // 2]))
        k = int(rng.integers(len(xs)))
        picks.append({"index": i, "id": str(s["id"]), "grade": int(s["grade"]), "x": int(xs[k]), "y": int(ys[k]), "half": half, "lesion": "none"})
    return picks, "no test image has lesion masks: crops at random points of the field of view instead"


# --------------------------------------------------------------------------- the study
@dataclass
class QualitativeStudy:
    """Crops of the picked test images: ``images[k]`` holds for pick k the full ``hr``, ``lr``, ``fov``,
    ``masks`` (HWC / CHW numpy), ``sr`` {method: HWC}, and the main method's ``probs``, ``vis``, ``grade_probs``.
    ``smoke``: made under the smoke profile (the models are barely trained)."""

    picks: list[dict[str, Any]]
    images: list[dict[str, Any]]
    table: pd.DataFrame
    methods: list[str]
    main: str
    scale: int
    note: str = ""
    smoke: bool = False


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def qualitative_study(results: Mapping[str, Any], cfg, *, n_crops: int = 4, lesion: str = "MA", main: str = "deepmt_dr",
                      dataset=None, half: int | None = None, device: str | None = None) -> QualitativeStudy:
    """Run each method of ``results`` ({name: ExperimentResult or trained Method}; those with an SR output
    are compared, ``main`` also gives lesion maps and its visualization map) on the picked test images."""
    from torch.utils.data import default_collate

    from deepmt.imaging import crop
    from deepmt.experiment_cache import ExperimentResult, load_method
    from deepmt.studies.attention import test_split

    ds = dataset if dataset is not None else test_split(cfg)
    scale = int(cfg.data.scale)
    picks, note = pick_crops(ds, n_crops, lesion, half=half, scale=scale)
    methods = {n: load_method(r, device=device or cfg.train.device) if isinstance(r, ExperimentResult) else r for n, r in results.items()}
    batch = default_collate([ds[p["index"]] for p in picks])
    outs: dict[str, Any] = {}
    for name, method in methods.items():
        b = batch_to(batch, device_of(method))
        if name == main:
            outs[name] = visualization_maps(method, b)
        else:
            with torch.no_grad():
                outs[name] = method(b)
    sr_methods = [n for n in methods if outs[n].sr is not None]
    images, rows = [], []
    for k, p in enumerate(picks):
        img = {
            "hr": _hwc(batch["hr"][k]), "lr": _hwc(batch["lr"][k]), "fov": batch["fov"][k, 0].numpy(),
            "masks": batch["masks"][k].numpy() * batch["mask_present"][k].numpy()[:, None, None],
            "sr": {n: _hwc(outs[n].sr[k]) for n in sr_methods},
        }
        mo = outs.get(main)
        if mo is not None:
            img["probs"] = mo.lesion_probs[k].float().cpu().numpy() if mo.lesion_probs is not None else None
            img["vis"] = mo.vis_map[k, 0].float().cpu().numpy() if mo.vis_map is not None else None
            img["grade_probs"] = torch.softmax(mo.grade_logits[k].float(), 0).cpu().numpy() if mo.grade_logits is not None else None
        images.append(img)
        hr_c = crop(img["hr"], p["x"], p["y"], p["half"])
        for n in sr_methods:
            rows.append({
                "crop": k, "id": p["id"], "grade": p["grade"], "lesion": p["lesion"], "x": p["x"], "y": p["y"],
                "size_px": 2 * p["half"], "method": n,
                "psnr_crop": float(M.psnr(crop(img["sr"][n], p["x"], p["y"], p["half"]), hr_c)),
                "psnr_image": float(M.psnr(img["sr"][n], img["hr"])),
            })
    table = pd.DataFrame(rows, columns=["crop", "id", "grade", "lesion", "x", "y", "size_px", "method", "psnr_crop", "psnr_image"])
    return QualitativeStudy(picks, images, table, sr_methods, main, scale, note, smoke=cfg.profile == "smoke")


def psnr_wide(table: pd.DataFrame) -> pd.DataFrame:
    """The crop table with one column of crop PSNR per method (rows: crops), plus the best method per crop."""
    if not len(table):
        return pd.DataFrame()
    order = list(dict.fromkeys(table["method"]))
    w = table.pivot_table(index=["crop", "id", "grade", "lesion", "x", "y", "size_px"], columns="method", values="psnr_crop")[order]
    w.columns = [f"psnr_{c}" for c in w.columns]
    w["best"] = [order[i] for i in np.nanargmax(w[[f"psnr_{c}" for c in order]].to_numpy(), axis=1)]
    return w.reset_index()


# --------------------------------------------------------------------------- real photo
@dataclass
class RealPhoto:
    """Results on one real photo: ``raw`` (the photo), ``hr``/``lr``/``sr`` (HWC), ``fov``, ``probs`` (4,H,W),
    ``vis`` (H,W), ``grade_probs`` (5,) from the fp32 forward, ``summary`` (``predict_images``' JSON) and
    ``table`` (grade probabilities from both paths)."""

    raw: np.ndarray
    hr: np.ndarray
    lr: np.ndarray
    sr: np.ndarray | None
    fov: np.ndarray
    probs: np.ndarray | None
    vis: np.ndarray | None
    grade_probs: np.ndarray | None
    summary: dict[str, Any]
    table: pd.DataFrame
    method: str
    name: str = "skimage.data.retina()"
    notes: list[str] = field(default_factory=list)


def real_photo_study(result, image: np.ndarray | None = None, name: str = "skimage.data.retina()", device: str | None = None) -> RealPhoto:
    """``result`` (ExperimentResult of a trained method, or a checkpoint path) on a real fundus photo (default
    ``skimage.data.retina()``) through :mod:`deepmt.engine.predict`. The photo is prepared with the run's own
    config (HR size, scale, degradation)."""
    from PIL import Image

    from deepmt.engine.checkpoint import checkpoint_config, load_checkpoint
    from deepmt.engine.predict import predict_images, prepare_input
    from deepmt.experiment_cache import ExperimentResult, load_method

    if image is None:
        import skimage.data

        image = skimage.data.retina()
    if isinstance(result, ExperimentResult):
        mcfg, ckpt = result.config, result.checkpoint
    else:
        ckpt = Path(result) / "final.pt" if Path(result).is_dir() else Path(result)
        mcfg = checkpoint_config(load_checkpoint(ckpt))
    method = load_method(result, device=device)
    batch = prepare_input(image, mcfg, name=name)
    out = visualization_maps(method, batch_to(batch, device_of(method)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.png"
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
        report = predict_images(method, mcfg, [path], Path(tmp) / "out", checkpoint=ckpt)
    if report.failed:
        raise DataError(f"{name}: {report.failed[0][1]}")
    summary = report.predictions[0]
    summary.pop("outputs", None)  # the files were temporary
    summary["image"] = name
    gp = torch.softmax(out.grade_logits[0].float(), 0).cpu().numpy() if out.grade_logits is not None else None
    table = pd.DataFrame({
        "grade": range(len(GRADES)), "grade_name": GRADES,
        "probability": [summary.get("grade_probs", {}).get(str(g), math.nan) for g in range(len(GRADES))],
        "probability_fp32": gp if gp is not None else [math.nan] * len(GRADES),
    })
    table["predicted"] = table["grade"] == summary.get("predicted_grade", -1)
    return RealPhoto(
        raw=np.asarray(image), hr=_hwc(batch["hr"][0]), lr=_hwc(batch["lr"][0]),
        sr=_hwc(out.sr[0]) if out.sr is not None else None, fov=batch["fov"][0, 0].numpy(),
        probs=out.lesion_probs[0].float().cpu().numpy() if out.lesion_probs is not None else None,
        vis=out.vis_map[0, 0].float().cpu().numpy() if out.vis_map is not None else None,
        grade_probs=gp, summary=summary, table=table, method=getattr(method, "name", "?"), name=name,
    )


# --------------------------------------------------------------------------- figures
def _show(ax, img, title: str = "", cmap=None, vmin=None, vmax=None) -> None:
    ax.imshow(img, interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _pred_masks(probs: np.ndarray | None, fov: np.ndarray) -> np.ndarray:
    if probs is None:
        return np.zeros((len(LESIONS), *fov.shape), bool)
    return (probs >= PRED_THRESHOLD) & (fov > 0.5)


def figure_sr_crops(study: QualitativeStudy):
    """The paper-style crop figure: per picked image a crop of LR (pixels enlarged), each SR method (crop PSNR
    in dB in the title), HR, the ground-truth lesion outlines, the main method's predicted lesion outlines
    (probability >= 0.5) and its visualization map."""
    import matplotlib.pyplot as plt

    from deepmt.imaging import MASK_LEGEND, crop, overlay_masks
    from deepmt.studies.common import label

    cols = ["LR"] + study.methods + ["HR", "lesions: ground truth", f"lesions: {label(study.main)}", f"vis. map: {label(study.main)}"]
    nr = max(1, len(study.picks))
    fig, axes = plt.subplots(nr, len(cols), figsize=(1.65 * len(cols), 1.85 * nr), squeeze=False)
    psnr = study.table.set_index(["crop", "method"])["psnr_crop"] if len(study.table) else None
    for k, (p, img) in enumerate(zip(study.picks, study.images)):
        x, y, h = p["x"], p["y"], p["half"]
        c = 0
        _show(axes[k, c], crop(img["lr"], x, y, h, study.scale), f"{p['id']} (grade {p['grade']})\nLR")
        for n in study.methods:
            c += 1
            _show(axes[k, c], crop(img["sr"][n], x, y, h), f"{label(n)}\n{psnr.loc[(k, n)]:.2f} dB")
        c += 1
        _show(axes[k, c], crop(img["hr"], x, y, h), "HR")
        c += 1
        _show(axes[k, c], crop(overlay_masks(_u8(img["hr"]), img["masks"] > 0.5), x, y, h), "ground truth")
        base = img["sr"].get(study.main, img["hr"])
        c += 1
        _show(axes[k, c], crop(overlay_masks(_u8(base), _pred_masks(img.get("probs"), img["fov"])), x, y, h), f"{label(study.main)} lesions")
        c += 1
        vis = img.get("vis")
        _show(axes[k, c], crop(np.asarray(base), x, y, h), "vis. map")
        if vis is not None:
            axes[k, c].imshow(crop(vis, x, y, h), cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(f"{2 * study.picks[0]['half'] if study.picks else 0}px crops around {study.picks[0]['lesion'] if study.picks else '-'} "
                 f"(x{study.scale}); lesion {MASK_LEGEND}" + (f"\n{study.note}" if study.note else ""), fontsize=8)
    fig.tight_layout()
    return fig


def figure_full_images(study: QualitativeStudy):
    """The picked images whole: HR with the crop box, ground-truth lesion outlines, the main method's SR with its
    predicted lesion outlines, its per-pixel maximum lesion probability, and its visualization map."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from deepmt.imaging import overlay_masks
    from deepmt.studies.common import label

    nr = max(1, len(study.picks))
    fig, axes = plt.subplots(nr, 5, figsize=(11, 2.3 * nr), squeeze=False)
    for k, (p, img) in enumerate(zip(study.picks, study.images)):
        gp = img.get("grade_probs")
        pred = f", predicted {int(np.argmax(gp))} (p={float(np.max(gp)):.2f})" if gp is not None else ""
        _show(axes[k, 0], img["hr"], f"{p['id']}: grade {p['grade']}{pred}")
        axes[k, 0].add_patch(Rectangle((p["x"] - p["half"] - 0.5, p["y"] - p["half"] - 0.5), 2 * p["half"], 2 * p["half"],
                                       fill=False, edgecolor="yellow", lw=1))
        _show(axes[k, 1], overlay_masks(_u8(img["hr"]), img["masks"] > 0.5), "ground-truth lesions")
        base = img["sr"].get(study.main, img["hr"])
        _show(axes[k, 2], overlay_masks(_u8(base), _pred_masks(img.get("probs"), img["fov"])), f"{label(study.main)}: SR + lesions >= {PRED_THRESHOLD}")
        probs = img.get("probs")
        _show(axes[k, 3], probs.max(0) * (img["fov"] > 0.5) if probs is not None else np.zeros_like(img["fov"]), "max lesion probability", cmap="magma", vmin=0, vmax=1)
        _show(axes[k, 4], base, "visualization map")
        if img.get("vis") is not None:
            axes[k, 4].imshow(np.ma.masked_where(img["fov"] <= 0.5, img["vis"]), cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
    fig.tight_layout()
    return fig


def figure_real_photo(real: RealPhoto):
    """The real photo through the trained method: original, LR input, SR, predicted lesions, visualization map
    and the predicted grade probabilities."""
    import matplotlib.pyplot as plt

    from deepmt.imaging import overlay_masks
    from deepmt.studies.common import label

    fig, axes = plt.subplots(1, 6, figsize=(15, 2.9), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1, 1.3]})
    _show(axes[0], real.raw, f"{real.name}\n{real.raw.shape[1]}x{real.raw.shape[0]} (a normal eye)")
    _show(axes[1], real.lr, f"LR input {real.lr.shape[1]}px")
    base = real.sr if real.sr is not None else real.hr
    _show(axes[2], base, f"{label(real.method)} SR {base.shape[1]}px" if real.sr is not None else "HR")
    area = real.summary.get("lesion_area_pct_fov", {})
    _show(axes[3], overlay_masks(_u8(base), _pred_masks(real.probs, real.fov)),
          "lesions >= 0.5: " + ", ".join(f"{k} {v:.1f}%" for k, v in area.items()) if area else "no lesion output")
    _show(axes[4], base, "visualization map")
    if real.vis is not None:
        axes[4].imshow(np.ma.masked_where(real.fov <= 0.5, real.vis), cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
    ax = axes[5]
    ax.bar(real.table["grade"], real.table["probability"], color="tab:blue")
    ax.set_xticks(real.table["grade"]), ax.set_ylim(0, 1)
    ax.set_xlabel("DR grade"), ax.set_ylabel("predicted probability")
    ax.set_title("grade probabilities (predict_images)", fontsize=7)
    fig.suptitle("A real, normal fundus photo through a model trained on synthetic data: mechanics and domain gap, not accuracy", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- what we see
def _crops_clause(study: QualitativeStudy) -> list[str]:
    """The crops in words: mean crop PSNR per SR method, how often each is best, DeepMT-DR against single-task
    ISR, and how many of the pictured images DeepMT-DR grades right."""
    if not len(study.table):
        return []
    crops = psnr_wide(study.table)
    mean = study.table.groupby("method", sort=False)["psnr_crop"].mean()
    wins = crops["best"].value_counts()
    order = mean.sort_values(ascending=False)
    parts = [f"Over the {len(crops)} crops around {study.picks[0]['lesion']} ({2 * study.picks[0]['half']} px), the mean crop PSNR is "
             + ", ".join(f"{label(m)} {v:.2f} dB" for m, v in order.items())
             + f"; {label(order.index[0])} is best in {int(wins.get(order.index[0], 0))} of {len(crops)} crops."]
    if {"deepmt_dr", "isr"} <= set(mean.index):
        d = mean["deepmt_dr"] - mean["isr"]
        parts.append(f"DeepMT-DR's SR is {abs(d):.2f} dB {'above' if d > 0 else 'below'} single-task ISR in these crops "
                     f"(a handful of crops: an illustration; notebook 05 has the test-set numbers with CIs).")
    correct = [int(np.argmax(im["grade_probs"])) == p["grade"] for p, im in zip(study.picks, study.images)
               if im.get("grade_probs") is not None]
    if correct:
        parts.append(f"DeepMT-DR grades {sum(correct)} of these {len(correct)} images correctly.")
    return parts


def _real_photo_clause(real: RealPhoto) -> str:
    """The real photo in words: the predicted grade, the lesion area flagged, the agreement of the two paths,
    and what a normal eye called diseased (or lesion-covered) says: the domain gap."""
    t = real.table
    g = int(t.loc[t["probability"].idxmax(), "grade"])
    area = real.summary.get("lesion_area_pct_fov", {})
    flagged = max(area.values()) if area else 0.0
    return (
        f"On the real photo (a normal eye) DeepMT-DR predicts grade {g} ({GRADES[g]}) with probability {t['probability'].max():.2f}"
        + (f" (P(no DR) = {t['probability'].iloc[0]:.2f})" if g != 0 else "") + ". "
        + (f"Its lesion maps flag {', '.join(f'{k} {v:.1f}%' for k, v in area.items())} of the field of view at p >= 0.5. " if area else "")
        + f"predict_images and the fp32 forward that made the maps agree to {np.abs(t['probability'] - t['probability_fp32']).max():.3f} "
        f"in probability, so the pipeline runs end to end on a real photo. "
        + ("A grade above 0 for a normal eye is the domain gap (or plain error), not disease. " if g != 0 else "")
        + (f"Lesions flagged over up to {flagged:.1f}% of a normal eye are the domain gap. " if flagged > 1 else "")
        + ("The normal eye is called normal and nearly lesion-free, but one photo proves no accuracy." if g == 0 and flagged <= 1 else "")
    )


def what_we_see(study: QualitativeStudy, real: RealPhoto | None = None) -> str:
    """Notebook 09's "what we see", written from the crops of ``study`` and the real photo ``real``: which SR
    method is closest to HR around the lesions, how DeepMT-DR grades the pictured images, and what it makes of
    a real, normal eye. A note of :func:`qualitative_study` (crops not around the chosen lesion) comes first."""
    parts = [f"Note: {study.note}."] if study.note else []
    parts += _crops_clause(study)
    if real is not None and real.grade_probs is not None:
        parts.append(_real_photo_clause(real))
    if study.smoke:
        parts.append("(smoke profile: tiny, barely trained models -- the figures check the mechanics; they are not results.)")
    return " ".join(parts)


__all__ = [
    "SR_METHODS", "crop_half", "best_centre", "pick_crops", "QualitativeStudy", "qualitative_study", "psnr_wide",
    "RealPhoto", "real_photo_study", "figure_sr_crops", "figure_full_images", "figure_real_photo", "what_we_see",
    # what notebook 09 calls besides
    "describe_config", "run_methods", "study_config", "save_figure", "save_table",
]
