"""Notebook 00's study: the synthetic benchmark measured and shown.

    from deepmt.studies import benchmark as B
    study = B.benchmark_study(cfg, build_datasets(cfg.data))   # grades, lesions, MA/smudge contrast, the dial
    study.contrast_table; study.dial; print(B.what_we_see(study))
    B.ma_smudge_contrast(cfg.data, n_images=40)                # peak contrast of every MA and smudge at HR and LR
    B.figure_samples_per_grade(cfg.data); B.figure_ma_crops(cfg.data); B.figure_contrast(study.contrast)

The data layer (:mod:`deepmt.data.synthetic`) generates and loads the benchmark; what it is *for* -- small
lesions that separate from look-alike distractors at HR but hardly at LR -- is measured here, on samples it
generates, with the lesion centres it records (``sample["lesions"]``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from deepmt.config import get_config
from deepmt.data import build_datasets
from deepmt.data.degradation import degrade
from deepmt.data.synthetic import generate_sample, grade_for_index, grade_rules_text
from deepmt.errors import DataError
from deepmt.imaging import MASK_LEGEND, crop, overlay_masks
from deepmt.reporting import save_figure, save_table
from deepmt.utils import seed_everything


# =========================================================================== measurements
def peak_contrast(image: np.ndarray, xy: np.ndarray, factor: int = 1, channel: int = 1) -> np.ndarray:
    """Local darkening of point lesions: (background - peak value) / background.

    Measured in ``channel`` (green, where red lesions show best). ``xy`` are HR pixel coordinates;
    ``factor`` = 1 for the HR image, the scale for the LR image (an HR point x lies at (x - (s-1)/2)/s in
    LR pixels). The peak is the darkest of the 2 x 2 pixels around the centre (as in the LR-peak matching
    of the smudges); the background is the median of a ring 3-5 px (at that resolution) away.
    """
    img = image[..., channel].astype(np.float32)
    h, w = img.shape
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    out = np.full(len(xy), np.nan, dtype=np.float32)
    yy, xx = np.mgrid[-5:6, -5:6]
    ring = (np.hypot(yy, xx) >= 3) & (np.hypot(yy, xx) <= 5)
    for k, (x, y) in enumerate(xy):
        fx, fy = (x - (factor - 1) / 2) / factor, (y - (factor - 1) / 2) / factor
        cx, cy = int(round(fx)), int(round(fy))
        if not (5 <= cx < w - 5 and 5 <= cy < h - 5):
            continue
        bg = float(np.median(img[cy - 5 : cy + 6, cx - 5 : cx + 6][ring]))
        if bg <= 1:
            continue
        x0, y0 = int(math.floor(fx)), int(math.floor(fy))
        val = float(img[y0 : y0 + 2, x0 : x0 + 2].min())  # the peak: darkest of the 4 pixels around the centre
        out[k] = (bg - val) / bg
    return out


def ma_smudge_contrast(data_cfg, n_images: int = 20, split: str = "test", grades=(1, 2, 3, 4)):
    """Peak contrast of every MA and smudge at HR and at LR over ``n_images`` generated samples.

    Returns a pandas DataFrame with one row per lesion: kind (MA/smudge), sigma (HR px), hr, lr.
    This measures the benchmark's mechanism: MA separate from smudges at HR but not at LR.
    """
    rows = []
    i = 0
    done = 0
    while done < n_images and i < 50 * n_images:
        if grade_for_index(i, data_cfg.synth.class_prior, data_cfg.seed, split) in grades:
            smp = generate_sample(i, data_cfg, split)
            L = smp["lesions"]
            for kind, xy, sig in (("MA", L["ma_xy"], L["ma_sigma"]), ("smudge", L["smudge_xy"], L["smudge_sigma"])):
                hr = peak_contrast(smp["hr"], xy, 1)
                lr = peak_contrast(smp["lr"], xy, data_cfg.scale)
                rows += [{"image": smp["id"], "kind": kind, "sigma": float(s), "hr": float(a), "lr": float(b)} for s, a, b in zip(sig, hr, lr)]
            done += 1
        i += 1
    return pd.DataFrame(rows, columns=["image", "kind", "sigma", "hr", "lr"]).dropna()


def contrast_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean/std contrast per kind and resolution, and the MA-vs-smudge separability (ROC-AUC) at HR and LR."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for res in ("hr", "lr"):
        ma, sm = df[df.kind == "MA"][res], df[df.kind == "smudge"][res]
        y = np.r_[np.ones(len(ma)), np.zeros(len(sm))]
        auc = roc_auc_score(y, np.r_[ma, sm]) if len(ma) and len(sm) else float("nan")
        rows.append({"resolution": res.upper(), "MA mean": ma.mean(), "MA std": ma.std(), "smudge mean": sm.mean(),
                     "smudge std": sm.std(), "MA/smudge ratio": ma.mean() / sm.mean() if len(sm) else float("nan"),
                     "AUC MA vs smudge": auc, "n MA": len(ma), "n smudge": len(sm)})
    return pd.DataFrame(rows)


def information_dial(data_cfg, smudge_matches=(0.0, 0.25, 0.5, 1.0), scales=(2, 4, 8), n_images: int = 6):
    """How much MA information survives at LR, as the dials move: MA-vs-smudge AUC and MA contrast at HR and LR.

    One row per (smudge_match, scale). With ``smudge_match=0`` there are no smudges (AUC undefined):
    the row still reports how faint MA become at LR.
    """
    rows = []
    for sm in smudge_matches:
        for sc in scales:
            if data_cfg.hr_size % sc or data_cfg.hr_size // sc < MIN_LR_SIZE:
                continue
            cfg = dataclasses.replace(data_cfg, scale=sc, synth=dataclasses.replace(data_cfg.synth, smudge_match=sm))
            summ = contrast_summary(ma_smudge_contrast(cfg, n_images=n_images)).set_index("resolution")
            rows.append({"smudge_match": sm, "scale": sc, "lr_size": data_cfg.hr_size // sc,
                         "MA contrast HR": summ.loc["HR", "MA mean"], "MA contrast LR": summ.loc["LR", "MA mean"],
                         "AUC MA vs smudge HR": summ.loc["HR", "AUC MA vs smudge"],
                         "AUC MA vs smudge LR": summ.loc["LR", "AUC MA vs smudge"]})
    return pd.DataFrame(rows)


# =========================================================================== the study
#: the dial skips scales whose LR image would be smaller than this (px): at 12 px (the quick profile's x8) the peak
#: contrast can be read for a handful of lesions only (10 of about 150 at 12 images), too few to measure anything
MIN_LR_SIZE = 16
#: What the smoke profile measures, whatever the parameters ask: two dial settings at the profile's scale, to
#: stay within seconds (its numbers are mechanics, not results).
SMOKE_SIZES = {"n_images": 3, "smudge_matches": (0.5, 1.0), "dial_images": 2}
#: the LR-information dial: the ``data.synth.smudge_match`` settings and scales it measures
DIAL_SMUDGE_MATCHES = (0.0, 0.25, 0.5, 0.8, 1.0)
DIAL_SCALES = (2, 4, 8)


@dataclass
class BenchmarkStudy:
    """Everything notebook 00 shows: the grade distribution of the cached splits (and of the DDR-like prior),
    the mean lesion counts per grade, the peak contrast of every measured MA and smudge and its summary, the
    LR-information dial, and the settings they were measured at."""

    grades: pd.DataFrame  # prior, split, grade, n, fraction
    lesions: pd.DataFrame  # mean lesion and distractor counts per grade (index: grade)
    contrast: pd.DataFrame  # one row per lesion (:func:`ma_smudge_contrast`)
    contrast_table: pd.DataFrame  # :func:`contrast_summary` of ``contrast``
    dial: pd.DataFrame  # :func:`information_dial`
    measure_cfg: Any  # the DataConfig the contrast was measured at (:func:`measure_config`)
    scale: int  # the profile's scale (the dial row compared in the text)
    class_prior: str
    train_grades: list[int]  # images per grade in the training split
    smoke: bool = False


def measure_config(cfg):
    """The DataConfig the lesion contrast is measured at: the profile's own, the size its networks train at (its
    lesions are ``data.synth.size_reference``-relative, so measuring at another HR size would measure other lesions:
    until 2026-12-06 notebook 00 measured at 256 px, where the quick profile's lesions are 2.67x their trained size)."""
    return cfg.data


def describe(cfg) -> str:
    """One line: the profile's benchmark (sizes, split sizes, class prior)."""
    d = cfg.data
    return (f"profile {cfg.profile}: HR {d.hr_size}px, LR {d.lr_size}px (x{d.scale}), "
            f"{d.n_train}/{d.n_val}/{d.n_test} train/val/test images, prior {d.synth.class_prior!r}")


def grade_distribution(splits: Mapping[str, Any], prior: str, seed: int, n_prior: int = 10_000) -> pd.DataFrame:
    """Images per grade in each split (``splits``: name -> dataset with ``grades``), and the DDR-like prior's
    grades on ``n_prior`` indices (grades only: no images are generated). Columns prior, split, grade, n, fraction."""
    rows = []
    for name, ds in splits.items():
        counts = np.bincount(ds.grades, minlength=5)
        rows += [{"prior": prior, "split": name, "grade": g, "n": int(c), "fraction": c / counts.sum()} for g, c in enumerate(counts)]
    ddr = np.bincount([grade_for_index(i, "ddr", seed, "train") for i in range(n_prior)], minlength=5)
    rows += [{"prior": "ddr", "split": f"{n_prior} draws", "grade": g, "n": int(c), "fraction": c / n_prior} for g, c in enumerate(ddr)]
    return pd.DataFrame(rows)


def lesions_per_grade(splits: Mapping[str, Any]) -> pd.DataFrame:
    """Mean lesion and distractor counts per grade over every image of ``splits`` (their ``meta``)."""
    meta = pd.concat([ds.meta.assign(split=name) for name, ds in splits.items()], ignore_index=True)
    return meta.groupby("grade")[["n_MA", "n_HE", "n_EX", "n_SE", "has_nv", "n_smudge", "n_nv_decoy"]].mean().round(2)


def benchmark_study(cfg, splits: Mapping[str, Any], *, n_images: int = 40, smudge_matches: Sequence[float] = DIAL_SMUDGE_MATCHES,
                    scales: Sequence[int] = DIAL_SCALES, dial_images: int = 12) -> BenchmarkStudy:
    """Notebook 00's numbers: the grades and lesions of ``splits`` (the profile's cached splits), the MA/smudge
    contrast over ``n_images`` test images and the dial over ``smudge_matches`` x ``scales`` (``dial_images``
    each), measured at :func:`measure_config`. The smoke profile measures :data:`SMOKE_SIZES` instead."""
    smoke = cfg.profile == "smoke"
    if smoke:
        n_images, smudge_matches, dial_images = SMOKE_SIZES["n_images"], SMOKE_SIZES["smudge_matches"], SMOKE_SIZES["dial_images"]
        scales = (cfg.data.scale,)
    mcfg = measure_config(cfg)
    contrast = ma_smudge_contrast(mcfg, n_images=n_images)
    return BenchmarkStudy(
        grades=grade_distribution(splits, cfg.data.synth.class_prior, cfg.data.seed), lesions=lesions_per_grade(splits),
        contrast=contrast, contrast_table=contrast_summary(contrast),
        dial=information_dial(mcfg, smudge_matches=tuple(smudge_matches), scales=tuple(scales), n_images=dial_images),
        measure_cfg=mcfg, scale=int(cfg.data.scale), class_prior=cfg.data.synth.class_prior,
        train_grades=np.bincount(splits["train"].grades, minlength=5).tolist(), smoke=smoke,
    )


def what_we_see(result: BenchmarkStudy) -> str:
    """Notebook 00's "what we see", written from the numbers of ``result``: how dark an MA is at HR and at LR,
    how well MA and smudges separate at each, what the dial does at the profile's scale, the training grades."""
    c = result.contrast_table.set_index("resolution")
    dial = result.dial
    m = result.measure_cfg
    matched = dial[(dial.smudge_match == 1.0) & (dial.scale == result.scale)]
    weak = dial[(dial.smudge_match == dial.smudge_match[dial.smudge_match > 0].min()) & (dial.scale == result.scale)]
    return (
        f"Over {int(c.loc['HR', 'n MA'])} microaneurysms and {int(c.loc['HR', 'n smudge'])} smudges at HR "
        f"{m.hr_size}px, an MA darkens the green channel by {c.loc['HR', 'MA mean']:.2f} at HR but only "
        f"{c.loc['LR', 'MA mean']:.2f} after x{m.scale} bicubic downsampling "
        f"({c.loc['LR', 'MA mean'] / c.loc['HR', 'MA mean']:.0%} of it survives). Smudges peak at "
        f"{c.loc['HR', 'smudge mean']:.2f} at HR and {c.loc['LR', 'smudge mean']:.2f} at LR, so MA and smudges separate at HR "
        f"(ROC-AUC {c.loc['HR', 'AUC MA vs smudge']:.2f}) and hardly at LR (AUC {c.loc['LR', 'AUC MA vs smudge']:.2f}; 0.5 = chance). "
        f"Since MA + smudges are count-matched in every grade, telling grade 0 from 1 needs the HR detail. "
        + (f"The dial works: with smudges at {weak['smudge_match'].iloc[0]:g} x the matched strength the LR AUC is "
           f"{weak['AUC MA vs smudge LR'].iloc[0]:.2f} (matched: {matched['AUC MA vs smudge LR'].iloc[0]:.2f}). "
           if len(matched) and len(weak) else "")
        + f"Grades in the {result.class_prior} training split: {result.train_grades}."
        + (" (smoke profile: few images, the numbers are not results.)" if result.smoke else "")
    )


# =========================================================================== figures
def _show(ax, img, title=None):
    ax.imshow(img, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def first_index_of_grade(data_cfg, grade: int, split: str = "test", start: int = 0) -> int:
    """The first sample index >= ``start`` of ``split`` whose (pre-drawn) grade is ``grade``."""
    for i in range(start, start + 10_000):
        if grade_for_index(i, data_cfg.synth.class_prior, data_cfg.seed, split) == grade:
            return i
    raise DataError(f"no sample of grade {grade} in the first 10000 of {split} (class prior {data_cfg.synth.class_prior!r})")


def figure_samples_per_grade(data_cfg, split: str = "test"):
    """One sample per grade: HR, LR (as the model sees it, pixels enlarged), bicubic x s, HR with mask outlines."""
    import matplotlib.pyplot as plt

    from deepmt import GRADES
    from deepmt.data.degradation import bicubic_upsample

    fig, axes = plt.subplots(5, 4, figsize=(9, 11.5))
    for g in range(5):
        smp = generate_sample(first_index_of_grade(data_cfg, g, split), data_cfg, split)
        lr_t = torch.from_numpy(smp["lr"]).permute(2, 0, 1).float() / 255
        bic = bicubic_upsample(lr_t, data_cfg.scale).permute(1, 2, 0).numpy()
        m = smp["meta"]
        _show(axes[g, 0], smp["hr"], f"grade {g} ({GRADES[g]}): HR {data_cfg.hr_size}px")
        _show(axes[g, 1], smp["lr"], f"LR {data_cfg.lr_size}px (x{data_cfg.scale})")
        _show(axes[g, 2], bic, "bicubic back to HR size")
        _show(axes[g, 3], overlay_masks(smp["hr"], smp["masks"]),
              f"MA {m['n_MA']} HE {m['n_HE']} EX {m['n_EX']} SE {m['n_SE']}" + (" + NV" if m["has_nv"] else ""))
    fig.suptitle("Synthetic benchmark, one image per grade (" + MASK_LEGEND + ")", fontsize=9)
    fig.tight_layout()
    return fig


def figure_grade_distribution(table):
    """Bar chart of grade fractions per class prior / split (``table``: columns prior, split, grade, fraction)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    groups = list(table.groupby(["prior", "split"]))
    width = 0.8 / max(1, len(groups))
    for k, ((prior, split), df) in enumerate(groups):
        ax.bar(df["grade"] + (k - (len(groups) - 1) / 2) * width, df["fraction"], width, label=f"{prior} / {split}")
    ax.set_xlabel("DR grade"), ax.set_ylabel("fraction of images"), ax.set_xticks(range(5))
    ax.legend(fontsize=7)
    ax.set_title("Grade distribution", fontsize=9)
    fig.tight_layout()
    return fig


def figure_ma_crops(data_cfg, n_each: int = 3, split: str = "test"):
    """Close-ups of microaneurysms and MA-coloured smudges: HR, LR and bicubic, with their measured peak contrast."""
    import matplotlib.pyplot as plt

    from deepmt.data.degradation import bicubic_upsample

    smp = generate_sample(first_index_of_grade(data_cfg, 1, split), data_cfg, split)
    L = smp["lesions"]
    s = data_cfg.scale
    lr_t = torch.from_numpy(smp["lr"]).permute(2, 0, 1).float() / 255
    bic = (bicubic_upsample(lr_t, s).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    half = max(4 * s, int(round(12 * data_cfg.hr_size / data_cfg.synth.size_reference)))
    rows = [("MA", xy) for xy in L["ma_xy"][:n_each]] + [("smudge", xy) for xy in L["smudge_xy"][:n_each]]
    fig, axes = plt.subplots(len(rows), 3, figsize=(5.4, 1.9 * max(1, len(rows))), squeeze=False)
    for r, (kind, (x, y)) in enumerate(rows):
        c_hr = peak_contrast(smp["hr"], np.array([[x, y]]), 1)[0]
        c_lr = peak_contrast(smp["lr"], np.array([[x, y]]), s)[0]
        _show(axes[r, 0], crop(smp["hr"], x, y, half), f"{kind} HR (contrast {c_hr:.2f})")
        _show(axes[r, 1], crop(smp["lr"], x, y, half, s), f"LR (contrast {c_lr:.2f})")
        _show(axes[r, 2], crop(bic, x, y, half), "bicubic")
    fig.suptitle(f"A {2 * half}px window around each lesion (centre); HR {data_cfg.hr_size}px, x{s}", fontsize=8)
    fig.tight_layout()
    return fig


def figure_contrast(df):
    """Histograms of the peak contrast of MA and smudges at HR and at LR (``df`` from :func:`ma_smudge_contrast`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True)
    bins = np.linspace(min(-0.1, float(df[["hr", "lr"]].min().min())), max(1.0, float(df[["hr", "lr"]].max().max())), 36)
    for ax, res in zip(axes, ("hr", "lr")):
        for kind, colour in (("MA", "tab:red"), ("smudge", "tab:gray")):
            ax.hist(df[df.kind == kind][res], bins=bins, alpha=0.6, color=colour, label=kind, density=True)
        ax.set_title(f"{res.upper()}: peak darkening (green channel)", fontsize=9)
        ax.set_xlabel("(background - peak) / background")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_real_photo(hr_size: int, scale: int, data_cfg=None):
    """scikit-image's real fundus photo through the preprocessing (FOV crop, square, resize) and the degradation,
    beside a synthetic sample composited on it (``background="retina"``)."""
    import matplotlib.pyplot as plt
    import skimage.data

    from deepmt.data.degradation import bicubic_upsample
    from deepmt.data.preprocess import preprocess_fundus

    raw = skimage.data.retina()
    hr, fov, _ = preprocess_fundus(raw, hr_size, name="skimage.data.retina()")
    hr_t = torch.from_numpy(hr).permute(2, 0, 1).float() / 255
    lr = degrade(hr_t, scale)
    bic = bicubic_upsample(lr, scale)
    n_panels = 5 if data_cfg is not None else 4
    fig, axes = plt.subplots(1, n_panels, figsize=(2.6 * n_panels, 2.9))
    _show(axes[0], raw, f"original {raw.shape[1]}x{raw.shape[0]}")
    _show(axes[1], hr, f"preprocessed HR {hr_size}px (FOV {fov.mean():.0%})")
    _show(axes[2], lr.permute(1, 2, 0).numpy(), f"LR {hr_size // scale}px")
    _show(axes[3], bic.permute(1, 2, 0).numpy(), "bicubic")
    if data_cfg is not None:
        cfg_r = dataclasses.replace(data_cfg, synth=dataclasses.replace(data_cfg.synth, background="retina"))
        smp = generate_sample(first_index_of_grade(cfg_r, 3), cfg_r, "test")
        _show(axes[4], overlay_masks(smp["hr"], smp["masks"], alpha=0.5), "synthetic lesions on it (grade 3)")
    fig.tight_layout()
    return fig


__all__ = [
    "MIN_LR_SIZE",
    "SMOKE_SIZES",
    "DIAL_SMUDGE_MATCHES",
    "DIAL_SCALES",
    "BenchmarkStudy",
    "benchmark_study",
    "describe",
    "grade_distribution",
    "lesions_per_grade",
    "measure_config",
    "what_we_see",
    "contrast_summary",
    "figure_contrast",
    "figure_grade_distribution",
    "figure_ma_crops",
    "figure_real_photo",
    "figure_samples_per_grade",
    "first_index_of_grade",
    "information_dial",
    "ma_smudge_contrast",
    "peak_contrast",
    # what notebook 00 calls besides
    "get_config",
    "build_datasets",
    "grade_rules_text",
    "seed_everything",
    "save_figure",
    "save_table",
]
