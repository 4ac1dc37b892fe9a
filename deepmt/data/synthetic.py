"""The synthetic fundus benchmark: fundus-like photos with lesion masks and a DR grade, made on the fly.

No public package ships DR grades or lesion masks, so deepmt generates its own labelled benchmark,
designed (rationale: ``docs/BENCHMARK.md``) so that the paper's premise can be *measured*: the grade depends on
small lesions that nearly vanish after the paper's x4 bicubic downsampling.

What an image holds (sizes in px at :attr:`SynthConfig.size_reference` = 256 and scaled with ``hr_size``)
---------------------------------------------------------------------------------------------------------
* **Fundus**: circular field of view (FOV) on black, orange-red pigment with smooth colour variation and
  choroidal texture, vignetting, a darker macula with a foveal reflex, a bright optic disc with a cup,
  a branching, tapering tree of arteries and veins whose temporal arcades arch around the macula, camera
  grain. With ``background="retina"`` the lesions are composited on scikit-image's real fundus photo
  (``skimage.data.retina()``), randomly rotated, flipped, scaled and colour-jittered.
* **Lesions (masked)**: MA = microaneurysms, tiny dark-red dots (Gaussian sigma ``ma_sigma`` 0.8-1.1 px,
  darkening ``ma_contrast`` 0.6-0.85); HE = haemorrhages: dot (sigma 1.2-2 px), blot (irregular,
  radius 2.5-4.5 px) and flame-shaped (elongated along the nerve fibres, radial from the disc);
  EX = hard exudates, bright yellow spots in clusters or circinate rings near the macula;
  SE = soft exudates (cotton-wool spots), pale fluffy patches near the disc and arcades.
* **Neovascularisation (NV)**: in grade 4 only, a tuft of fine tortuous loops at the disc rim (NVD) or on
  an arcade (NVE). NOT masked (real datasets do not mask NV); ``has_nv`` is in the metadata.
* **Preretinal haemorrhage** (``preretinal_he``, on by default): in grade 4 only, one large boat-shaped
  haemorrhage with a flat upper edge (blood settled under gravity; radius 8-12 px), masked as HE. The
  ICDR scale counts vitreous/preretinal haemorrhage as a sign of PDR, as NV. It makes grade 4 learnable
  from the lesion masks: an unmasked NV tuft alone is a cue that a grader trained from grade labels does
  not find (the lesion-supervised grader on HR stayed below 0.8 accuracy, its grade 3/4 recall 0.3-0.6,
  and even the true lesion counts per quadrant only reached 0.78 without ``has_nv``). With
  ``preretinal_he=False`` grade 4 is signalled by the unmasked NV tuft alone (generator version 2's
  benchmark, apart from the random draws).
* **Distractors (not lesions, not masked)**, in every grade: MA-coloured smudges (sigma ``smudge_sigma``
  1.6-2 px) whose peak after degradation equals that of an MA drawn from the MA prior times
  ``smudge_match`` (at HR a smudge peaks at about half an MA; at LR they look alike at 1.0, while the
  default 0.8 leaves an MA about 1.3x darker than a smudge on average: degraded but present), brown pigment
  spots, white reflections beside vessels, a pale haze near the disc, natural vessel crossings, and (with
  probability ``nv_decoy_prob``) a *decoy* NV tuft: the same tuft blurred, with its LR peak set to
  ``nv_match`` x the real tuft's, so NV is a cue at HR but not at LR.
* **Count matching**: MA + smudges together are drawn uniformly from ``dot_total`` (15-27) in every grade,
  so counting dark dots says nothing about the grade; only their shape (visible at HR) does.

Grades (ICDR-like rules, see :func:`grade_rules_text`; the grade is drawn first from the class prior,
then lesions satisfying its rule, and the rule is re-checked by :func:`grade_from_lesions`).

Class priors: ``balanced`` (1/5 each; the default, because with DDR's imbalance grade 1 is 5% of the data
and the key effect drowns) and ``ddr``: the gradable DDR images (Li et al. 2019: 6266 / 630 / 4477 / 236 /
913 of grades 0-4, the 1151 ungradable left out) -> [0.500, 0.050, 0.358, 0.019, 0.073].
Grades are assigned by a golden-ratio low-discrepancy sequence, so any n has close to the prior's
proportions and every sample is still a pure function of (seed, split, index).

Storage and cache
-----------------
A split is generated once and cached under ``deepmt.utils.cache_dir("synthetic", key)/<split>-n<N>/`` as
``.npy`` files (memory-mapped on load): ``hr`` (N,H,W,3) uint8, ``lr`` (N,H/s,W/s,3) uint8 = ``degrade(hr)``,
``masks`` (N,4,H,ceil(W/8)) bit-packed 0/1, ``fov`` (N,H,ceil(W/8)) bit-packed, ``grade`` (N,), ``meta``
(N,K) int32 (columns in the manifest), and ``manifest.json`` (shapes, CRC32 of every file, the config).
The key hashes every field that changes the data. A missing or corrupt file is detected on load (CRC32)
and the split regenerated; folders are written under a temporary name and renamed when complete.

``python -m deepmt data synth OUT`` writes a folder a person can open::

    OUT/README.txt                       layout, grade rules, the config used
    OUT/{split}/labels.csv               id, grade, has_nv, lesion counts (per type and quadrant), distractors
    OUT/{split}/hr/<id>.png              HR image
    OUT/{split}/lr/<id>.png              LR image (antialiased bicubic / scale, as used for training)
    OUT/{split}/fov/<id>.png             field of view (255 inside)
    OUT/{split}/masks/{MA,HE,EX,SE}/<id>.png   lesion masks (255 = lesion)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmt import LESIONS
from deepmt.data import synth_draw as D
from deepmt.data.degradation import degrade
from deepmt.errors import DataError

#: Bump when the generator changes its output (invalidates caches).
GENERATOR_VERSION = 3

#: Class priors over grades 0-4. DDR: gradable images of the DDR dataset (6266/630/4477/236/913).
GRADE_PRIORS: dict[str, tuple[float, ...]] = {
    "balanced": (0.2, 0.2, 0.2, 0.2, 0.2),
    "ddr": tuple(float(c) / 12522 for c in (6266, 630, 4477, 236, 913)),
}

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
QUADRANTS = ("upper-left", "upper-right", "lower-left", "lower-right")

#: Colours: a dark red lesion darkens G and B more than R (multiplicative darkening per channel).
MA_COLOUR = (0.45, 0.95, 0.85)
HE_COLOUR = (0.55, 0.95, 0.85)
VEIN_COLOUR = (0.55, 0.9, 0.8)
ARTERY_COLOUR = (0.35, 0.7, 0.65)
PIGMENT_COLOUR = (0.8, 0.85, 0.85)
EX_TARGET = (1.0, 0.93, 0.5)
SE_TARGET = (0.95, 0.9, 0.8)

META_COLUMNS = (
    [f"{les}_{q}" for les in LESIONS for q in ("q0", "q1", "q2", "q3")]
    + [f"n_{les}" for les in LESIONS]
    + ["has_nv", "has_preretinal_he", "n_smudge", "n_nv_decoy", "n_pigment", "n_reflection", "n_he_dot", "n_he_blot", "n_he_flame"]
)


# =========================================================================== grade rules
def grade_rules_text(severe_he_per_quadrant: int = 3) -> str:
    """The grading rules of the benchmark in plain text (for README.txt, the notebook and the docs)."""
    t = severe_he_per_quadrant
    return "\n".join(
        [
            "Grades follow the international (ICDR) scale, scaled down to a small image:",
            "  0 No DR        : no lesion at all (distractors only).",
            "  1 Mild NPDR    : microaneurysms (MA) only.",
            "  2 Moderate NPDR: MA plus at least one haemorrhage (HE), hard exudate (EX) or soft exudate (SE),",
            f"                   but fewer than {t} haemorrhages in at least one of the four quadrants, no NV.",
            f"  3 Severe NPDR  : at least {t} haemorrhages in each of the four quadrants (the ICDR '4-2-1' rule's",
            "                   'haemorrhages in all 4 quadrants'), no neovascularisation.",
            "  4 PDR          : neovascularisation (NV, a tuft of fine new vessels at the disc or on an arcade),",
            "                   drawn on top of grade-3 lesions. NV is not in the masks, as in real datasets.",
            "                   With preretinal_he (default) every grade-4 image also has one large boat-shaped",
            "                   preretinal haemorrhage (an ICDR sign of PDR), masked as HE.",
            "Quadrants are the image quadrants about the centre of the field of view; a haemorrhage counts in the",
            "quadrant of its centre (every haemorrhage lies wholly inside one quadrant).",
            "Rule order: NV -> 4; else HE in all 4 quadrants -> 3; else any HE/EX/SE -> 2; else any MA -> 1; else 0.",
            "Distractors never change the grade: MA-coloured smudges, pigment spots, reflections, a haze near the",
            "disc, vessel crossings and decoy (blurred) NV tufts appear in every grade.",
        ]
    )


def grade_from_lesions(n_ma: int, he_per_quadrant, n_ex: int, n_se: int, has_nv: bool, severe_he_per_quadrant: int = 3) -> int:
    """Apply the benchmark's grade rules (:func:`grade_rules_text`) to lesion counts."""
    he_q = np.asarray(he_per_quadrant)
    if has_nv:
        return 4
    if np.all(he_q >= severe_he_per_quadrant):
        return 3
    if he_q.sum() + n_ex + n_se > 0:
        return 2
    if n_ma > 0:
        return 1
    return 0


def quadrant_of(x, y, cx: float, cy: float):
    """Quadrant index 0..3 (upper-left, upper-right, lower-left, lower-right) of points about (cx, cy)."""
    return (np.asarray(y) >= cy).astype(int) * 2 + (np.asarray(x) >= cx).astype(int)


def grade_for_index(index: int, prior: str, seed: int, split: str) -> int:
    """The grade of sample ``index``: a golden-ratio sequence mapped through the prior's CDF."""
    if prior not in GRADE_PRIORS:
        raise DataError(f"data.synth.class_prior={prior!r}: choose one of {sorted(GRADE_PRIORS)}")
    u0 = np.random.default_rng([int(seed), SPLIT_IDS.get(split, 9), 7919]).random()
    u = (u0 + index * 0.6180339887498949) % 1.0
    cdf = np.cumsum(GRADE_PRIORS[prior])
    return int(min(np.searchsorted(cdf, u, side="right"), 4))


# =========================================================================== generation
class _Placer:
    """Rejection sampling of lesion centres with minimum gaps (vectorised candidate draws)."""

    def __init__(self) -> None:
        self.x: list[float] = []
        self.y: list[float] = []
        self.r: list[float] = []

    def place(self, rng, n, radius_fn, region_fn, gap: float, tries: int = 40):
        """Place ``n`` points; ``region_fn(rng, k) -> (xs, ys, ok)`` proposes; ``radius_fn()`` draws a radius."""
        out = []
        for _ in range(tries):
            if len(out) >= n:
                break
            xs, ys, ok = region_fn(rng, 64)
            for x, y in zip(xs[ok], ys[ok]):
                r = radius_fn()
                if self.x:
                    d = np.hypot(np.asarray(self.x) - x, np.asarray(self.y) - y)
                    if np.any(d < np.asarray(self.r) + r + gap):
                        continue
                self.x.append(float(x))
                self.y.append(float(y))
                self.r.append(float(r))
                out.append((float(x), float(y), float(r)))
                if len(out) >= n:
                    break
        return out


@lru_cache(maxsize=8)
def _retina_base(size: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float], tuple[float, float], float]:
    """skimage's real fundus photo resized to ``size``: (image float32, fov float32, disc xy, macula xy, radius)."""
    import skimage.data
    from PIL import Image

    img = skimage.data.retina()  # 1411 x 1411, disc at about (248, 656), fovea at about (705, 705)
    f = size / img.shape[0]
    small = np.asarray(Image.fromarray(img).resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    fov = (small.max(axis=2) > 0.06).astype(np.float32)
    return small, fov, (248 * f, 656 * f), (705 * f, 705 * f), 0.492 * size


def _background_retina(rng, n: int):
    """Real photo background: rotation +-25 deg, left/right flip, scale 0.95-1.08, colour jitter."""
    from PIL import Image

    base, fov, disc, mac, R0 = _retina_base(n)
    ang = math.radians(rng.uniform(-25, 25))
    zoom = rng.uniform(0.95, 1.08)
    flip = rng.random() < 0.5
    shift = rng.uniform(-0.02, 0.02, size=2) * n
    c = (n - 1) / 2
    # output -> input affine: p_in = c + A^-1 (p_out - c - shift), with flip applied in input space
    ca, sa = math.cos(ang) / zoom, math.sin(ang) / zoom
    a, b, d, e = ca, sa, -sa, ca
    tx = c - a * (c + shift[0]) - b * (c + shift[1])
    ty = c - d * (c + shift[0]) - e * (c + shift[1])
    coeffs = (a, b, tx, d, e, ty)
    if flip:  # x_in -> n-1-x_in
        coeffs = (-a, -b, n - 1 - tx, d, e, ty)
    img8 = Image.fromarray((base * 255).astype(np.uint8))
    out = np.asarray(img8.transform((n, n), Image.AFFINE, coeffs, resample=Image.BILINEAR), dtype=np.float32) / 255.0
    fov_out = np.asarray(Image.fromarray((fov * 255).astype(np.uint8)).transform((n, n), Image.AFFINE, coeffs, resample=Image.BILINEAR), dtype=np.float32) / 255.0

    def fwd(p):  # input -> output point
        x, y = p
        if flip:
            x = n - 1 - x
        M = np.array([[a, b], [d, e]])
        q = np.linalg.solve(M, np.array([x - tx, y - ty]))
        return float(q[0]), float(q[1])

    gain = rng.uniform(0.85, 1.12, size=3).astype(np.float32)
    gamma = rng.uniform(0.85, 1.15)
    out = np.clip(out * gain, 0, 1) ** gamma
    cx, cy = fwd((c, c))
    return out.astype(np.float32), fov_out, fwd(disc), fwd(mac), (cx, cy), R0 * zoom


def _background_procedural(rng, n: int):
    """A procedural fundus: pigment, texture, vignetting, macula, optic disc (vessels are added later)."""
    R = n * rng.uniform(0.455, 0.48)
    cx, cy = (n - 1) / 2 + rng.normal(0, 0.006 * n, size=2)
    ax = np.arange(n, dtype=np.float32)
    dx, dy = (ax - np.float32(cx))[None, :], (ax - np.float32(cy))[:, None]
    r = np.sqrt(dx * dx + dy * dy)
    fov = np.clip(R - r + 0.5, 0, 1).astype(np.float32)

    # optic disc and macula (left or right eye); fovea near the centre, disc ~0.75 R nasal
    side = 1 if rng.random() < 0.5 else -1
    mac = (cx + side * rng.uniform(0.0, 0.08) * R, cy + rng.normal(0, 0.03) * R)
    disc = (mac[0] - side * rng.uniform(0.72, 0.82) * R, mac[1] - rng.uniform(0.0, 0.08) * R)

    # pigment colour: between a light orange and a dark red-brown fundus
    t = rng.uniform(0, 1)
    light, dark = np.array([0.95, 0.45, 0.22]), np.array([0.66, 0.2, 0.08])
    base = (light * (1 - t) + dark * t + rng.normal(0, 0.025, 3)).astype(np.float32)
    noise = D.smooth_noise(rng, n, n, 5, channels=2)  # low-frequency pigment/illumination variation
    tex = D.smooth_noise(rng, n, n, max(6, n // 6), channels=1)[0]  # choroidal texture
    f32 = np.float32
    rr3 = (r / f32(R)) ** 3
    lum = (f32(1.0) + f32(0.07) * noise[0]) * (f32(1.0) - f32(rng.uniform(0.25, 0.45)) * rr3)
    lum *= f32(rng.uniform(0.85, 1.08)) * (1.0 + (f32(rng.uniform(-0.08, 0.08) / R) * dx + f32(rng.uniform(-0.08, 0.08) / R) * dy))
    tex_amp = f32(rng.uniform(0.015, 0.035))
    img = np.empty((n, n, 3), dtype=np.float32)
    img[..., 0] = lum * (f32(base[0]) + (base[0] * tex_amp) * tex)
    img[..., 1] = lum * (f32(base[1]) + f32(0.06 * base[1]) * noise[1] + f32(1.5 * base[1]) * tex_amp * tex)
    img[..., 2] = lum * (f32(base[2]) + f32(0.08 * base[2]) * noise[1])

    # macula (darker, more in G/B: macular pigment), fovea, foveal reflex
    mr = 0.17 * R
    box, p = D.gaussian_patch(mac[0], mac[1], mr, n, n, k=3.0)
    D.darken(img, box, p, rng.uniform(0.3, 0.45), (0.35, 0.8, 0.9))
    box, p = D.gaussian_patch(mac[0], mac[1], 0.045 * R, n, n)
    D.darken(img, box, p, rng.uniform(0.15, 0.3), (0.5, 0.9, 0.9))
    box, p = D.gaussian_patch(mac[0], mac[1], max(0.35, 0.006 * R), n, n)
    D.blend(img, box, p, rng.uniform(0.15, 0.35), (1.0, 0.9, 0.7))

    # optic disc: bright soft ellipse with a paler cup and a faint peripapillary halo
    rx, ry = 0.13 * R * rng.uniform(0.9, 1.1), 0.15 * R * rng.uniform(0.9, 1.1)
    y0, y1, x0, x1 = D.patch_box(disc[0], disc[1], 1.6 * ry, n, n)
    ex = (np.arange(x0, x1, dtype=np.float32)[None, :] - disc[0]) / rx
    ey = (np.arange(y0, y1, dtype=np.float32)[:, None] - disc[1]) / ry
    rho = np.sqrt(ex * ex + ey * ey)
    soft = max(0.05, 1.2 / rx)  # edge width ~1 px
    disc_p = 1.0 / (1.0 + np.exp((rho - 1.0) / soft))
    D.blend(img, (y0, y1, x0, x1), np.clip(1.3 - rho, 0, 1) * 0.5, 0.3, (0.9, 0.55, 0.3))  # halo
    D.blend(img, (y0, y1, x0, x1), disc_p, rng.uniform(0.55, 0.7), (0.98, 0.72, 0.45))
    cup = rng.uniform(0.3, 0.55)
    cex = (ex + rng.normal(0, 0.1)) / cup
    cup_p = 1.0 / (1.0 + np.exp((np.sqrt(cex * cex + (ey / cup) ** 2) - 1.0) / 0.2))
    D.blend(img, (y0, y1, x0, x1), cup_p, rng.uniform(0.4, 0.65), (1.0, 0.9, 0.72))
    return img, fov, disc, mac, (cx, cy), R, (rx, ry)


def _draw_vessels(rng, img, disc, mac, c, R, ss):
    n = img.shape[0]
    lines = D.grow_vessel_tree(rng, disc, mac, c, R)
    cover = D.render_polylines(lines, n, n, kinds=2, ss=ss)
    vein_amt, art_amt = rng.uniform(0.7, 0.85), rng.uniform(0.5, 0.65)
    for k, (amt, col) in enumerate(((vein_amt, VEIN_COLOUR), (art_amt, ARTERY_COLOUR))):
        ys, xs = np.nonzero(cover[k] > 0)  # vessels cover a small part of the image
        img[ys, xs] *= 1.0 - (amt * cover[k][ys, xs])[:, None] * np.asarray(col, np.float32)
    return lines


def _lesion_plan(rng, grade: int, sc) -> dict[str, Any]:
    """How many lesions of each kind a sample of ``grade`` gets (before placement)."""
    t = sc.severe_he_per_quadrant
    lo, hi = sc.ma_count
    n_ma = 0 if grade == 0 else int(rng.integers(lo, hi + 1) if grade <= 2 else rng.integers(lo + 2, hi + 6))
    if sc.smudge_match > 0:
        tot_lo, tot_hi = sc.dot_total
        total = int(rng.integers(max(tot_lo, 0), tot_hi + 1))
        n_ma = min(n_ma, total)
        n_smudge = total - n_ma
    else:
        n_smudge = 0
    if grade > 0:
        n_ma = max(n_ma, 1)
    he_q = np.zeros(4, dtype=int)
    n_ex_clusters = n_se = 0
    if grade == 2:
        mode = rng.random()
        if mode < 0.35:  # HE in all 4 quadrants, but too few in at least one (counting dots decides 2 vs 3)
            he_q = rng.integers(1, t + 3, size=4)
            k = rng.integers(1, 3)
            he_q[rng.choice(4, size=k, replace=False)] = rng.integers(1, t, size=k)
        elif mode < 0.85:  # HE in 1-3 quadrants
            k = int(rng.integers(1, 4))
            he_q[rng.choice(4, size=k, replace=False)] = rng.integers(1, t + 3, size=k)
        if rng.random() < 0.45:
            n_ex_clusters = int(rng.integers(1, 3))
        if rng.random() < 0.3:
            n_se = int(rng.integers(1, 3))
        if he_q.sum() + n_ex_clusters + n_se == 0:
            n_ex_clusters = 1 if rng.random() < 0.5 else 0
            n_se = 1 - n_ex_clusters
    elif grade >= 3:
        he_q = rng.integers(t, t + 4, size=4)
        n_ex_clusters = int(rng.integers(1, 4)) if rng.random() < 0.6 else 0
        n_se = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
    return dict(n_ma=n_ma, n_smudge=n_smudge, he_q=he_q, n_ex_clusters=n_ex_clusters, n_se=n_se, nv=grade == 4)


def _inside_region(c, R, rmax, disc, disc_r, quadrant=None, axis_margin=0.0):
    cx, cy = c

    def propose(rng, k):
        if quadrant is None:
            a = rng.uniform(0, 2 * math.pi, k)
        else:
            qa = {0: math.pi, 1: 1.5 * math.pi, 2: 0.5 * math.pi, 3: 0.0}[quadrant]
            a = qa + rng.uniform(0, math.pi / 2, k)
        rr = rmax * R * np.sqrt(rng.uniform(0, 1, k))
        xs, ys = cx + rr * np.cos(a), cy + rr * np.sin(a)
        ok = np.hypot(xs - disc[0], ys - disc[1]) > disc_r
        if quadrant is not None:
            ok &= (np.abs(xs - cx) > axis_margin) & (np.abs(ys - cy) > axis_margin)
            ok &= quadrant_of(xs, ys, cx, cy) == quadrant
        return xs, ys, ok

    return propose


def _near_region(center, r_in, r_out, c, R, rmax=0.9):
    def propose(rng, k):
        a = rng.uniform(0, 2 * math.pi, k)
        rr = rng.uniform(r_in, r_out, k)
        xs, ys = center[0] + rr * np.cos(a), center[1] + rr * np.sin(a)
        ok = np.hypot(xs - c[0], ys - c[1]) < rmax * R
        return xs, ys, ok

    return propose


def _draw_tuft(rng, s, scale, blur_sigma):
    radius = rng.uniform(8, 12) * s
    prof = D.tuft_patch(rng, radius, max(0.25, 0.7 * s), int(rng.integers(10, 15)))
    return prof, radius


def generate_sample(index: int, data_cfg, split: str = "train") -> dict[str, Any]:
    """Generate sample ``index`` of ``split`` (a pure function of ``data_cfg.seed``, ``split``, ``index``).

    Returns numpy arrays: ``hr`` (H,W,3) uint8, ``lr`` (H/s,W/s,3) uint8 (= ``degrade`` of the HR),
    ``masks`` (4,H,W) uint8 0/1 in MA/HE/EX/SE order, ``fov`` (H,W) uint8 0/1, ``grade`` int, ``id`` str,
    ``meta`` dict (lesion counts per type and quadrant, ``has_nv``, distractor counts) and ``lesions``
    (centres, sigmas and HR contrasts of MA, smudges, NV and decoys, for measurements and figures).
    """
    sc = data_cfg.synth
    n = int(data_cfg.hr_size)
    scale = int(data_cfg.scale)
    if not 64 <= n <= 1024:
        raise DataError(f"data.hr_size={n}: the synthetic benchmark supports 64..1024 px")
    if n % scale:
        raise DataError(f"data.hr_size={n} is not divisible by data.scale={scale}")
    if split not in SPLIT_IDS:
        raise DataError(f"unknown split {split!r}; choose one of {tuple(SPLIT_IDS)}")
    grade = grade_for_index(index, sc.class_prior, data_cfg.seed, split)
    rng = np.random.default_rng([int(data_cfg.seed), SPLIT_IDS[split], int(index), 1])
    s = n / float(sc.size_reference)
    blur = float(data_cfg.degradation.blur_sigma)

    # ---------------------------------------------------------------- background
    if sc.background == "retina":
        img, fov, disc, mac, c, R = _background_retina(rng, n)
        disc_r = 0.14 * R
        lines = []
    elif sc.background == "procedural":
        img, fov, disc, mac, c, R, (rx, ry) = _background_procedural(rng, n)
        disc_r = max(rx, ry)
        lines = _draw_vessels(rng, img, disc, mac, c, R, ss=4 if n < 256 else 2)
    else:
        raise DataError(f"data.synth.background={sc.background!r}: choose 'procedural' or 'retina'")
    masks = np.zeros((4, n, n), dtype=bool)

    for _attempt in range(6):
        plan = _lesion_plan(rng, grade, sc)
        placer = _Placer()
        placer.place(rng, 1, lambda: disc_r + 2, lambda r, k: (np.array([disc[0]]), np.array([disc[1]]), np.array([True])), 0)
        gap = 1.5 + 0.5 * s
        # ---- grade 4: one large preretinal haemorrhage, placed first (it needs the most room)
        prh = []
        if plan["nv"] and sc.preretinal_he:
            a = rng.uniform(8.0, 12.0) * s
            q = int(rng.integers(0, 4))  # wholly inside one quadrant, like every haemorrhage
            got = placer.place(rng, 1, lambda e=1.3 * a: e, _inside_region(c, R, 0.8, disc, disc_r + 1.3 * a, q, 1.3 * a + 1.0), gap)
            if not got:
                continue
            prh.append((a, got[0], q))
        # ---- haemorrhages: quadrant by quadrant, each wholly inside its quadrant
        he = []
        for q in range(4):
            for _ in range(int(plan["he_q"][q])):
                u = rng.random()
                kind = "dot" if u < 0.55 else ("blot" if u < 0.85 else "flame")
                if kind == "dot":
                    size = rng.uniform(1.2, 2.0) * s
                    ext = 1.5 * size
                elif kind == "blot":
                    size = rng.uniform(2.5, 4.5) * s
                    ext = 1.7 * size
                else:
                    size = rng.uniform(3.0, 6.0) * s
                    ext = size * 1.5
                ext = max(ext, 0.75)
                got = placer.place(rng, 1, lambda e=ext: e, _inside_region(c, R, 0.85, disc, disc_r + ext, q, ext + 1.0), gap)
                if got:
                    he.append((kind, size, got[0], q))
        placed_q = np.bincount([h[3] for h in he], minlength=4)
        ok_grade = grade_from_lesions(plan["n_ma"], placed_q, plan["n_ex_clusters"], plan["n_se"], plan["nv"], sc.severe_he_per_quadrant) == grade
        if ok_grade:
            break
    else:  # pragma: no cover - only with extreme settings
        raise DataError(f"synthetic sample {split}/{index}: could not place the lesions of grade {grade}")

    lesions: dict[str, Any] = {}
    counts = np.zeros((4, 4), dtype=np.int32)
    he_kinds = {"dot": 0, "blot": 0, "flame": 0}

    # ---- soft exudates (cotton-wool spots), near the disc / arcades
    se_masks = masks[3]
    for _ in range(plan["n_se"]):
        rad = rng.uniform(3.5, 7.0) * s
        got = placer.place(rng, 1, lambda r=rad: 1.8 * r, _near_region(disc, 1.5 * disc_r, 0.75 * R, c, R, 0.8), gap)
        if not got:
            continue
        x, y, _ = got[0]
        box, p = D.rotated_patch(x, y, rad, rad * rng.uniform(0.6, 0.9), rng.uniform(0, math.pi), n, n, ss=2)
        h_, w_ = p.shape
        fluff = 1.0 + 0.35 * D.smooth_noise(rng, h_, w_, 4)[0]
        p = np.clip(p * fluff * 1.3, 0, 1)
        D.blend(img, box, p, rng.uniform(0.35, 0.55), SE_TARGET)
        D.stamp_mask(se_masks, box, p, 0.45, x, y)
        counts[3, quadrant_of(x, y, *c)] += 1

    # ---- hard exudates: clusters or circinate rings near the macula
    for _ in range(plan["n_ex_clusters"]):
        ring = rng.random() < 0.35
        got = placer.place(rng, 1, lambda: 0.0, _near_region(mac, 0.12 * R, 0.5 * R, c, R, 0.8), 0)
        if not got:
            continue
        ccx, ccy, _ = got[0]
        k = int(rng.integers(4, 11))
        if ring:
            rr = rng.uniform(0.06, 0.1) * R
            a0 = rng.uniform(0, 2 * math.pi)
            a = a0 + rng.uniform(0, rng.uniform(math.pi, 2 * math.pi), k)
            xs, ys = ccx + rr * np.cos(a), ccy + rr * np.sin(a)
        else:
            xs, ys = ccx + rng.normal(0, 0.04 * R, k), ccy + rng.normal(0, 0.04 * R, k)
        for x, y in zip(xs, ys):
            if math.hypot(x - c[0], y - c[1]) > 0.92 * R:
                continue
            sig = rng.uniform(0.8, 2.0) * s
            box, p = D.gaussian_patch(x, y, sig, n, n)
            p = np.minimum(1.0, 1.25 * p)
            D.blend(img, box, p, rng.uniform(0.55, 0.8), EX_TARGET)
            D.stamp_mask(masks[2], box, p, 0.5, x, y)
            counts[2, quadrant_of(x, y, *c)] += 1

    # ---- haemorrhages (placed above)
    for kind, size, (x, y, _), q in he:
        amt = rng.uniform(0.55, 0.85)
        if kind == "dot":
            box, p = D.gaussian_patch(x, y, size, n, n)
            p = np.minimum(1.0, 1.4 * p)
        elif kind == "blot":
            y0, y1, x0, x1 = D.patch_box(x, y, 2.2 * size, n, n)
            acc = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
            for _ in range(3):
                ox, oy = rng.uniform(-0.45, 0.45, 2) * size
                _, g = D.gaussian_patch(x + ox - x0, y + oy - y0, size * rng.uniform(0.5, 0.7), y1 - y0, x1 - x0, k=1e9)
                acc += g
            p = (1.0 - np.exp(-1.6 * acc)).astype(np.float32)
            box = (y0, y1, x0, x1)
        else:
            theta = math.atan2(y - disc[1], x - disc[0])
            box, p = D.rotated_patch(x, y, size / 1.5, max(0.4, rng.uniform(0.9, 1.3) * s), theta, n, n, power=1.6)
            p = np.minimum(1.0, 1.3 * p)
        D.darken(img, box, p, amt, HE_COLOUR)
        D.stamp_mask(masks[1], box, p, 0.5, x, y)
        counts[1, q] += 1
        he_kinds[kind] += 1

    # ---- preretinal haemorrhage (grade 4): a horizontal ellipse cut flat above its centre (fluid level)
    for a, (x, y, _), q in prh:
        box, p = D.rotated_patch(x, y, a, 0.6 * a, 0.0, n, n, power=4.0)
        level = y - rng.uniform(0.1, 0.35) * a
        rows = np.arange(box[0], box[1], dtype=np.float32) + 0.5
        p = p * np.clip(rows - level, 0.0, 1.0)[:, None].astype(np.float32)
        p = np.minimum(1.0, 1.3 * p)
        D.darken(img, box, p, rng.uniform(0.75, 0.9), HE_COLOUR)
        D.stamp_mask(masks[1], box, p, 0.5, x, y)
        counts[1, q] += 1

    # ---- microaneurysms and MA-coloured smudges (count-matched, LR peak matched)
    ma_lo, ma_hi = (v * s for v in sc.ma_sigma)
    ma_pts = placer.place(rng, plan["n_ma"], lambda: 1.0, _inside_region(c, R, 0.88, disc, disc_r + 2), gap)
    ma_xy, ma_sig, ma_amp = [], [], []
    for x, y, _ in ma_pts:
        sig = rng.uniform(ma_lo, ma_hi)
        amp = rng.uniform(*sc.ma_contrast)
        box, p = D.gaussian_patch(x, y, sig, n, n)
        D.darken(img, box, p, amp, MA_COLOUR)
        D.stamp_mask(masks[0], box, p, 0.32, x, y)
        counts[0, quadrant_of(x, y, *c)] += 1
        ma_xy.append((x, y)), ma_sig.append(sig), ma_amp.append(amp)
    sm_lo, sm_hi = (v * s for v in sc.smudge_sigma)
    sm_pts = placer.place(rng, plan["n_smudge"], lambda: 1.5, _inside_region(c, R, 0.88, disc, disc_r + 2), gap)
    sm_xy, sm_sig, sm_amp = [], [], []
    for x, y, _ in sm_pts:
        sig = rng.uniform(sm_lo, sm_hi)
        ref_sig, ref_amp = rng.uniform(ma_lo, ma_hi), rng.uniform(*sc.ma_contrast)
        amp = float(sc.smudge_match) * ref_amp * float(D.lr_peak(ref_sig, scale, blur) / D.lr_peak(sig, scale, blur))
        amp = min(amp, 0.95)
        box, p = D.gaussian_patch(x, y, sig, n, n)
        D.darken(img, box, p, amp, MA_COLOUR)
        sm_xy.append((x, y)), sm_sig.append(sig), sm_amp.append(amp)
    lesions.update(
        ma_xy=np.asarray(ma_xy, np.float32).reshape(-1, 2), ma_sigma=np.asarray(ma_sig, np.float32), ma_amp=np.asarray(ma_amp, np.float32),
        smudge_xy=np.asarray(sm_xy, np.float32).reshape(-1, 2), smudge_sigma=np.asarray(sm_sig, np.float32), smudge_amp=np.asarray(sm_amp, np.float32),
    )

    # ---- neovascularisation (grade 4) and decoy tufts (every grade)
    def tuft_site(rng):
        if rng.random() < 0.7 or not lines:  # at the disc rim (NVD)
            a = rng.uniform(0, 2 * math.pi)
            return disc[0] + 1.05 * disc_r * math.cos(a), disc[1] + 1.05 * disc_r * math.sin(a)
        pts = max(lines, key=lambda l: l[1][0])[0]  # on the widest trunk (NVE)
        i = int(rng.integers(len(pts) // 4, max(len(pts) // 4 + 1, 3 * len(pts) // 4)))
        return float(pts[i][0]), float(pts[i][1])

    nv_xy, decoy_xy = [], []
    nv_match = float(sc.nv_match)
    n_decoy = int(nv_match > 0 and rng.random() < sc.nv_decoy_prob)
    for is_nv in [True] * int(plan["nv"]) + [False] * n_decoy:
        prof, radius = _draw_tuft(rng, s, scale, blur)
        x, y = tuft_site(rng)
        amp = rng.uniform(0.6, 0.85)
        if not is_nv:  # decoy: the same tuft blurred, with a matched LR peak
            from scipy.ndimage import gaussian_filter

            blurred = gaussian_filter(prof, sigma=0.6 * scale)  # ~ what x`scale` downsampling keeps
            ratio = D.lr_peak_of_patch(prof, scale, blur) / max(D.lr_peak_of_patch(blurred, scale, blur), 1e-6)
            amp = min(0.95 / max(float(blurred.max()), 1e-6), nv_match * amp * ratio)
            prof = blurred
        half = prof.shape[0] // 2
        x0, y0 = int(round(x)) - half, int(round(y)) - half
        y0c, x0c = max(0, y0), max(0, x0)
        y1c, x1c = min(n, y0 + prof.shape[0]), min(n, x0 + prof.shape[1])
        p = prof[y0c - y0 : y1c - y0, x0c - x0 : x1c - x0]
        D.darken(img, (y0c, y1c, x0c, x1c), p, amp, VEIN_COLOUR)
        (nv_xy if is_nv else decoy_xy).append((x, y))
    lesions.update(nv_xy=np.asarray(nv_xy, np.float32).reshape(-1, 2), decoy_xy=np.asarray(decoy_xy, np.float32).reshape(-1, 2))

    # ---- other distractors: pigment spots, reflections, haze near the disc
    n_pig = int(rng.integers(0, 5))
    for x, y, _ in placer.place(rng, n_pig, lambda: 2.0 * s, _inside_region(c, R, 0.9, disc, disc_r), gap):
        box, p = D.gaussian_patch(x, y, rng.uniform(1.2, 2.5) * s, n, n)
        D.darken(img, box, np.minimum(1, 1.3 * p), rng.uniform(0.25, 0.45), PIGMENT_COLOUR)
    n_ref = int(rng.integers(0, 6))
    ref_done = 0
    for _ in range(n_ref):
        if lines:
            pts, ws, _k = lines[int(rng.integers(0, len(lines)))]
            i = int(rng.integers(0, len(pts)))
            x, y = float(pts[i][0]) + rng.normal(0, 2 * s), float(pts[i][1]) + rng.normal(0, 2 * s)
        else:
            a, rr = rng.uniform(0, 2 * math.pi), R * math.sqrt(rng.uniform(0.05, 0.7))
            x, y = c[0] + rr * math.cos(a), c[1] + rr * math.sin(a)
        box, p = D.rotated_patch(x, y, rng.uniform(1.5, 3.5) * s, max(0.4, rng.uniform(0.6, 1.0) * s), rng.uniform(0, math.pi), n, n, ss=2)
        D.blend(img, box, p, rng.uniform(0.15, 0.3), (1.0, 0.95, 0.9))
        ref_done += 1
    if rng.random() < 0.5:
        hx, hy = disc[0] + rng.normal(0, 0.1 * R), disc[1] + rng.normal(0, 0.1 * R)
        box, p = D.gaussian_patch(hx, hy, rng.uniform(10, 18) * s, n, n, k=3)
        D.blend(img, box, p, rng.uniform(0.05, 0.12), SE_TARGET)

    # ---------------------------------------------------------------- camera grain, FOV, quantise
    grain = rng.standard_normal((n, n), dtype=np.float32)
    grain *= np.float32(0.008 * 255.0)
    img *= np.float32(255.0)
    img += grain[..., None]
    img *= fov[..., None]
    img += np.float32(0.5)
    hr = np.clip(img, 0, 255, out=img).astype(np.uint8)
    fov_bin = fov >= 0.5
    masks &= fov_bin[None]
    hr_t = torch.from_numpy(hr).permute(2, 0, 1).float().div_(255.0)
    d = data_cfg.degradation
    lr_t = degrade(hr_t, scale, blur_sigma=d.blur_sigma, noise_std=d.noise_std, jpeg_quality=d.jpeg_quality,
                   seed=int(np.random.default_rng([int(data_cfg.seed), SPLIT_IDS[split], int(index), 2]).integers(2**31)))
    lr = (lr_t.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)

    meta = {f"{les}_q{q}": int(counts[i, q]) for i, les in enumerate(LESIONS) for q in range(4)}
    meta.update({f"n_{les}": int(counts[i].sum()) for i, les in enumerate(LESIONS)})
    meta.update(has_nv=int(bool(plan["nv"])), has_preretinal_he=len(prh), n_smudge=len(sm_xy), n_nv_decoy=len(decoy_xy), n_pigment=n_pig, n_reflection=ref_done,
                n_he_dot=he_kinds["dot"], n_he_blot=he_kinds["blot"], n_he_flame=he_kinds["flame"])
    lesions.update(fov_center=np.asarray(c, np.float32), fov_radius=float(R), disc_xy=np.asarray(disc, np.float32), macula_xy=np.asarray(mac, np.float32))
    assert grade_from_lesions(meta["n_MA"], counts[1], meta["n_EX"], meta["n_SE"], bool(meta["has_nv"]), sc.severe_he_per_quadrant) == grade
    return {
        "id": sample_id(split, index),
        "hr": hr,
        "lr": lr,
        "masks": masks.astype(np.uint8),
        "fov": fov_bin.astype(np.uint8),
        "grade": int(grade),
        "meta": meta,
        "lesions": lesions,
    }


def sample_id(split: str, index: int) -> str:
    return f"synth_{split}_{index:05d}"


# =========================================================================== cache
def cache_key(data_cfg) -> str:
    """Hash of every field that changes the generated images (not the split sizes: see :func:`_split_dir`)."""
    blob = {
        "version": GENERATOR_VERSION,
        "hr_size": data_cfg.hr_size,
        "scale": data_cfg.scale,
        "seed": data_cfg.seed,
        "synth": dataclasses.asdict(data_cfg.synth),
        "degradation": dataclasses.asdict(data_cfg.degradation),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_size(data_cfg, split: str) -> int:
    try:
        return int({"train": data_cfg.n_train, "val": data_cfg.n_val, "test": data_cfg.n_test}[split])
    except KeyError:
        raise DataError(f"unknown split {split!r}; choose one of {tuple(SPLIT_IDS)}") from None


def _split_dir(data_cfg, split: str) -> Path:
    from deepmt.utils import cache_dir

    return cache_dir("synthetic", cache_key(data_cfg)) / f"{split}-n{split_size(data_cfg, split)}"


_FILES = ("hr", "lr", "masks", "fov", "grade", "meta")


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _verify(folder: Path) -> dict | None:
    """The manifest if every file is present with the recorded shape and CRC32, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        for name in _FILES:
            info = manifest["files"][name]
            path = folder / f"{name}.npy"
            arr = np.load(path, mmap_mode="r")
            if list(arr.shape) != info["shape"] or str(arr.dtype) != info["dtype"] or _crc32(path) != info["crc32"]:
                return None
        return manifest
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError):
        return None


def _generate_split(data_cfg, split: str, folder: Path, progress: bool = True) -> None:
    """Generate a whole split into ``folder`` (written under a temporary name, then renamed)."""
    from numpy.lib.format import open_memmap
    from tqdm.auto import tqdm

    n_img = split_size(data_cfg, split)
    H = data_cfg.hr_size
    h = H // data_cfg.scale
    wb = (H + 7) // 8
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        arrays = {
            "hr": open_memmap(tmp / "hr.npy", "w+", np.uint8, (n_img, H, H, 3)),
            "lr": open_memmap(tmp / "lr.npy", "w+", np.uint8, (n_img, h, h, 3)),
            "masks": open_memmap(tmp / "masks.npy", "w+", np.uint8, (n_img, 4, H, wb)),
            "fov": open_memmap(tmp / "fov.npy", "w+", np.uint8, (n_img, H, wb)),
        }
        grades = np.zeros(n_img, dtype=np.int64)
        meta = np.zeros((n_img, len(META_COLUMNS)), dtype=np.int32)
        desc = f"synthetic {split} ({H}px, x{data_cfg.scale})"
        for i in tqdm(range(n_img), desc=desc, disable=not progress, mininterval=1.0, leave=False):
            smp = generate_sample(i, data_cfg, split)
            arrays["hr"][i] = smp["hr"]
            arrays["lr"][i] = smp["lr"]
            arrays["masks"][i] = np.packbits(smp["masks"], axis=-1)
            arrays["fov"][i] = np.packbits(smp["fov"], axis=-1)
            grades[i] = smp["grade"]
            meta[i] = [smp["meta"][k] for k in META_COLUMNS]
        for a in arrays.values():
            a.flush()
        del arrays
        np.save(tmp / "grade.npy", grades)
        np.save(tmp / "meta.npy", meta)
        files = {}
        for name in _FILES:
            arr = np.load(tmp / f"{name}.npy", mmap_mode="r")
            files[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "crc32": _crc32(tmp / f"{name}.npy")}
        manifest = {
            "split": split,
            "n": n_img,
            "hr_size": H,
            "scale": data_cfg.scale,
            "meta_columns": list(META_COLUMNS),
            "files": files,
            "data_config": dataclasses.asdict(data_cfg),
            "generator_version": GENERATOR_VERSION,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
        if folder.exists():  # corrupt copy (or a concurrent writer finished first)
            if _verify(folder) is not None:
                return
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_synthetic_splits(cfg, splits=("train", "val", "test"), progress: bool = True) -> dict[str, "SyntheticFundus"]:
    """Generate (with a progress bar) or load from the cache the requested splits of the benchmark.

    ``cfg`` is a :class:`deepmt.config.DataConfig`. Splits use disjoint random streams (seed, split, index).
    """
    out = {}
    for split in splits:
        folder = _split_dir(cfg, split)
        if _verify(folder) is None:
            _generate_split(cfg, split, folder, progress=progress)
            if _verify(folder) is None:  # pragma: no cover
                raise DataError(f"{folder}: the synthetic cache could not be written or read back")
        out[split] = SyntheticFundus(folder)
    return out


class SyntheticFundus(Dataset):
    """One cached split of the synthetic benchmark; items are :class:`deepmt.data.sample.Sample` dicts."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.split = self.manifest["split"]
        self.scale = int(self.manifest["scale"])
        self.hr_size = int(self.manifest["hr_size"])
        self._arrays: dict[str, np.ndarray] | None = None
        self.grades = np.load(self.folder / "grade.npy")
        self.meta_array = np.load(self.folder / "meta.npy")

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:  # opened lazily (per DataLoader worker)
            self._arrays = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r") for k in ("hr", "lr", "masks", "fov")}
        return self._arrays

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return int(self.manifest["n"])

    @property
    def meta(self):
        """Per-image metadata as a pandas DataFrame (id, grade, lesion counts per type and quadrant, has_nv, ...)."""
        import pandas as pd

        df = pd.DataFrame(self.meta_array, columns=self.manifest["meta_columns"])
        df.insert(0, "grade", self.grades)
        df.insert(0, "id", [sample_id(self.split, i) for i in range(len(self))])
        return df

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for synthetic {self.split} split of {len(self)} images")
        a = self._load()
        H = self.hr_size
        hr = torch.from_numpy(np.array(a["hr"][i])).permute(2, 0, 1).float().div_(255.0)
        lr = torch.from_numpy(np.array(a["lr"][i])).permute(2, 0, 1).float().div_(255.0)
        masks = torch.from_numpy(np.unpackbits(a["masks"][i], axis=-1, count=H)).float()
        fov = torch.from_numpy(np.unpackbits(a["fov"][i], axis=-1, count=H)).float()[None]
        return {
            "hr": hr,
            "lr": lr,
            "masks": masks,
            "mask_present": torch.ones(len(LESIONS), dtype=torch.bool),
            "fov": fov,
            "grade": torch.tensor(int(self.grades[i]), dtype=torch.int64),
            "id": sample_id(self.split, i),
        }


# =========================================================================== command
def run_synth_command(args: argparse.Namespace) -> int:
    """``python -m deepmt data synth OUT``: write the benchmark as PNGs + labels.csv + README.txt."""
    import pandas as pd
    from PIL import Image
    from tqdm.auto import tqdm

    from deepmt.config import get_config
    from deepmt.utils import staged_dir

    overrides: dict[str, Any] = {}
    for item in args.set or []:
        if "=" not in item:
            raise DataError(f"--set {item!r}: expected KEY=VALUE, e.g. data.synth.smudge_match=0.5")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v.strip()
    for attr, key in (("hr_size", "data.hr_size"), ("scale", "data.scale"), ("seed", "data.seed"),
                      ("class_prior", "data.synth.class_prior"), ("background", "data.synth.background")):
        if getattr(args, attr, None) is not None:
            overrides[key] = getattr(args, attr)
    if getattr(args, "n", None) is not None:
        overrides.update({"data.n_train": args.n, "data.n_val": args.n, "data.n_test": args.n})
    try:
        cfg = get_config(args.profile, overrides)
    except (KeyError, ValueError) as exc:
        raise DataError(f"bad setting: {exc}") from None
    data = cfg.data
    if not 64 <= data.hr_size <= 1024 or data.hr_size % data.scale:
        raise DataError(f"--hr-size {data.hr_size}: must be in 64..1024 and divisible by --scale {data.scale}")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    for s in splits:
        split_size(data, s)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output folder exists and is not empty; choose a new or empty folder")
    t0 = time.time()
    with staged_dir(out) as tmp:  # inside OUT, moved into it at the end: OUT may be an empty mount point
        for split in splits:
            rows = []
            for sub in ["hr", "lr", "fov"] + [f"masks/{les}" for les in LESIONS]:
                (tmp / split / sub).mkdir(parents=True)
            for i in tqdm(range(split_size(data, split)), desc=f"synth {split}", mininterval=1.0):
                smp = generate_sample(i, data, split)
                sid = smp["id"]
                Image.fromarray(smp["hr"]).save(tmp / split / "hr" / f"{sid}.png", compress_level=1)
                Image.fromarray(smp["lr"]).save(tmp / split / "lr" / f"{sid}.png", compress_level=1)
                Image.fromarray(smp["fov"] * 255).save(tmp / split / "fov" / f"{sid}.png", compress_level=1)
                for k, les in enumerate(LESIONS):
                    Image.fromarray(smp["masks"][k] * 255).save(tmp / split / "masks" / les / f"{sid}.png", compress_level=1)
                rows.append({"id": sid, "grade": smp["grade"], **smp["meta"]})
            pd.DataFrame(rows).to_csv(tmp / split / "labels.csv", index=False)
        readme = _readme_text(cfg, splits)
        (tmp / "README.txt").write_text(readme)
    n_total = sum(split_size(data, s) for s in splits)
    print(f"wrote {n_total} synthetic images ({', '.join(splits)}) to {out} in {time.time() - t0:.1f}s; see {out / 'README.txt'}")
    return 0


def _readme_text(cfg, splits) -> str:
    d = cfg.data
    return "\n".join(
        [
            "deepmt synthetic fundus benchmark",
            "=================================",
            "",
            f"HR {d.hr_size} x {d.hr_size} px, LR {d.lr_size} x {d.lr_size} px (antialiased bicubic x{d.scale}), seed {d.seed},",
            f"class prior {d.synth.class_prior!r}, background {d.synth.background!r}. Splits: {', '.join(splits)}.",
            "",
            "Layout",
            "------",
            "  README.txt                          this file",
            "  {split}/labels.csv                  one row per image: id, grade (0-4), lesion counts per type and quadrant",
            "                                      (MA_q0..SE_q3; q0 upper-left, q1 upper-right, q2 lower-left, q3 lower-right),",
            "                                      n_MA/n_HE/n_EX/n_SE, has_nv (neovascularisation, not masked), distractor counts",
            "  {split}/hr/<id>.png                 HR RGB image",
            "  {split}/lr/<id>.png                 LR RGB image = degrade(HR) (what the models see)",
            "  {split}/fov/<id>.png                field of view, 255 inside",
            "  {split}/masks/{MA,HE,EX,SE}/<id>.png  lesion masks, 255 = lesion (MA microaneurysms, HE haemorrhages,",
            "                                      EX hard exudates, SE soft exudates)",
            "",
            "Grade rules",
            "-----------",
            grade_rules_text(d.synth.severe_he_per_quadrant),
            "",
            "Regenerate with the same seed to get identical bytes. Config used (deepmt.config, data section):",
            json.dumps(dataclasses.asdict(d), indent=1, default=str),
            "",
        ]
    )


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
    This measures the benchmark's mechanism (``docs/BENCHMARK.md``): MA separate from smudges at HR but not at LR.
    """
    import pandas as pd

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


def contrast_summary(df) -> "Any":
    """Mean/std contrast per kind and resolution, and the MA-vs-smudge separability (ROC-AUC) at HR and LR."""
    import pandas as pd
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


# =========================================================================== figures (notebook 00)
def overlay_masks(hr: np.ndarray, masks: np.ndarray, alpha: float = 0.8) -> np.ndarray:
    """HR image with lesion masks outlined in colour (MA magenta, HE blue, EX green, SE cyan)."""
    from scipy.ndimage import binary_dilation

    colours = np.array([[1.0, 0.0, 1.0], [0.1, 0.3, 1.0], [0.1, 1.0, 0.1], [0.0, 1.0, 1.0]], dtype=np.float32)
    out = hr.astype(np.float32) / 255.0
    for k in range(4):
        m = masks[k].astype(bool)
        if not m.any():
            continue
        ring = binary_dilation(m, iterations=1 + hr.shape[0] // 256)
        out[ring] = (1 - alpha) * out[ring] + alpha * colours[k]
    return out


MASK_LEGEND = "outlines: MA magenta, HE blue, EX green, SE cyan"


def crop(image: np.ndarray, x: float, y: float, half: int, factor: int = 1) -> np.ndarray:
    """Square crop of side 2*half/factor around HR point (x, y) of an image at 1/factor resolution (zero padded)."""
    hh = max(1, half // factor)
    cx = int(round((x - (factor - 1) / 2) / factor))
    cy = int(round((y - (factor - 1) / 2) / factor))
    pad = [(hh, hh), (hh, hh)] + [(0, 0)] * (image.ndim - 2)
    p = np.pad(image, pad)
    return p[cy : cy + 2 * hh, cx : cx + 2 * hh]


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


def information_dial(data_cfg, smudge_matches=(0.0, 0.25, 0.5, 1.0), scales=(2, 4, 8), n_images: int = 6):
    """How much MA information survives at LR, as the dials move: MA-vs-smudge AUC and MA contrast at HR and LR.

    One row per (smudge_match, scale). With ``smudge_match=0`` there are no smudges (AUC undefined):
    the row still reports how faint MA become at LR.
    """
    import pandas as pd

    rows = []
    for sm in smudge_matches:
        for sc in scales:
            if data_cfg.hr_size % sc or data_cfg.hr_size // sc < 16:
                continue
            cfg = dataclasses.replace(data_cfg, scale=sc, synth=dataclasses.replace(data_cfg.synth, smudge_match=sm))
            summ = contrast_summary(ma_smudge_contrast(cfg, n_images=n_images)).set_index("resolution")
            rows.append({"smudge_match": sm, "scale": sc, "lr_size": data_cfg.hr_size // sc,
                         "MA contrast HR": summ.loc["HR", "MA mean"], "MA contrast LR": summ.loc["LR", "MA mean"],
                         "AUC MA vs smudge HR": summ.loc["HR", "AUC MA vs smudge"],
                         "AUC MA vs smudge LR": summ.loc["LR", "AUC MA vs smudge"]})
    return pd.DataFrame(rows)


__all__ = [
    "GRADE_PRIORS",
    "GENERATOR_VERSION",
    "META_COLUMNS",
    "QUADRANTS",
    "SyntheticFundus",
    "build_synthetic_splits",
    "cache_key",
    "contrast_summary",
    "figure_contrast",
    "figure_grade_distribution",
    "figure_ma_crops",
    "figure_real_photo",
    "figure_samples_per_grade",
    "first_index_of_grade",
    "information_dial",
    "crop",
    "generate_sample",
    "grade_for_index",
    "grade_from_lesions",
    "grade_rules_text",
    "ma_smudge_contrast",
    "overlay_masks",
    "peak_contrast",
    "quadrant_of",
    "run_synth_command",
    "sample_id",
]
