"""The masked lesions of a sample, drawn on its :class:`~deepmt.data.synthetic.background.Scene`: soft and
hard exudates, haemorrhages (dot, blot, flame; the grade-4 preretinal one), and the microaneurysms with the
MA-coloured smudges that are count-matched with them and LR-peak-matched to them (``smudge_match``).

Each function draws into ``scene.img``, stamps ``scene.masks``, counts into ``scene.counts`` and places new
lesions clear of the placed ones through the sample's :class:`~deepmt.data.synthetic.placement.Layout`.
They are called in a fixed order by :func:`~deepmt.data.synthetic.generate.generate_sample`: each draws
from the sample's one random stream, so the order is part of the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepmt.data.synthetic.draw import (
    EX_TARGET,
    HE_COLOUR,
    MA_COLOUR,
    SE_TARGET,
    blend,
    darken,
    gaussian_patch,
    patch_box,
    rotated_patch,
    smooth_noise,
    stamp_mask,
)
from deepmt.data.synthetic.lr_peaks import lr_peak
from deepmt.data.synthetic.placement import Layout, inside_region, near_region
from deepmt.data.synthetic.rules import quadrant_of


def draw_soft_exudates(rng: np.random.Generator, scene, layout: Layout) -> None:
    """Soft exudates (cotton-wool spots): pale fluffy patches near the disc and the arcades."""
    img, masks, counts, n, s = scene.img, scene.masks, scene.counts, scene.n, scene.s
    c, R, disc, disc_r = scene.c, scene.R, scene.disc, scene.disc_r
    plan, placer, gap = layout.plan, layout.placer, layout.gap
    se_masks = masks[3]
    for _ in range(plan["n_se"]):
        rad = rng.uniform(3.5, 7.0) * s
        got = placer.place(rng, 1, lambda r=rad: 1.8 * r, near_region(disc, 1.5 * disc_r, 0.75 * R, c, R, 0.8), gap)
        if not got:
            continue
        x, y, _ = got[0]
        box, p = rotated_patch(x, y, rad, rad * rng.uniform(0.6, 0.9), rng.uniform(0, math.pi), n, n, ss=2)
        h_, w_ = p.shape
        fluff = 1.0 + 0.35 * smooth_noise(rng, h_, w_, 4)[0]
        p = np.clip(p * fluff * 1.3, 0, 1)
        blend(img, box, p, rng.uniform(0.35, 0.55), SE_TARGET)
        stamp_mask(se_masks, box, p, 0.45, x, y)
        counts[3, quadrant_of(x, y, *c)] += 1


def draw_hard_exudates(rng: np.random.Generator, scene, layout: Layout) -> None:
    """Hard exudates: bright yellow spots in clusters or circinate rings near the macula."""
    img, masks, counts, n, s = scene.img, scene.masks, scene.counts, scene.n, scene.s
    c, R, mac = scene.c, scene.R, scene.mac
    plan, placer = layout.plan, layout.placer
    for _ in range(plan["n_ex_clusters"]):
        ring = rng.random() < 0.35
        got = placer.place(rng, 1, lambda: 0.0, near_region(mac, 0.12 * R, 0.5 * R, c, R, 0.8), 0)
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
            box, p = gaussian_patch(x, y, sig, n, n)
            p = np.minimum(1.0, 1.25 * p)
            blend(img, box, p, rng.uniform(0.55, 0.8), EX_TARGET)
            stamp_mask(masks[2], box, p, 0.5, x, y)
            counts[2, quadrant_of(x, y, *c)] += 1


def draw_haemorrhages(rng: np.random.Generator, scene, layout: Layout) -> dict[str, int]:
    """The placed haemorrhages: dot, blot (three merged blobs) and flame-shaped (along the nerve fibres,
    radial from the disc). Returns how many of each kind."""
    img, masks, counts, n, s, disc = scene.img, scene.masks, scene.counts, scene.n, scene.s, scene.disc
    he_kinds = {"dot": 0, "blot": 0, "flame": 0}
    for kind, size, (x, y, _), q in layout.he:
        amt = rng.uniform(0.55, 0.85)
        if kind == "dot":
            box, p = gaussian_patch(x, y, size, n, n)
            p = np.minimum(1.0, 1.4 * p)
        elif kind == "blot":
            y0, y1, x0, x1 = patch_box(x, y, 2.2 * size, n, n)
            acc = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
            for _ in range(3):
                ox, oy = rng.uniform(-0.45, 0.45, 2) * size
                _, g = gaussian_patch(x + ox - x0, y + oy - y0, size * rng.uniform(0.5, 0.7), y1 - y0, x1 - x0, k=1e9)
                acc += g
            p = (1.0 - np.exp(-1.6 * acc)).astype(np.float32)
            box = (y0, y1, x0, x1)
        else:
            theta = math.atan2(y - disc[1], x - disc[0])
            box, p = rotated_patch(x, y, size / 1.5, max(0.4, rng.uniform(0.9, 1.3) * s), theta, n, n, power=1.6)
            p = np.minimum(1.0, 1.3 * p)
        darken(img, box, p, amt, HE_COLOUR)
        stamp_mask(masks[1], box, p, 0.5, x, y)
        counts[1, q] += 1
        he_kinds[kind] += 1
    return he_kinds


def draw_preretinal_haemorrhages(rng: np.random.Generator, scene, layout: Layout) -> None:
    """Grade 4's preretinal haemorrhage: a horizontal ellipse cut flat above its centre (fluid level)."""
    img, masks, counts, n = scene.img, scene.masks, scene.counts, scene.n
    for a, (x, y, _), q in layout.prh:
        box, p = rotated_patch(x, y, a, 0.6 * a, 0.0, n, n, power=4.0)
        level = y - rng.uniform(0.1, 0.35) * a
        rows = np.arange(box[0], box[1], dtype=np.float32) + 0.5
        p = p * np.clip(rows - level, 0.0, 1.0)[:, None].astype(np.float32)
        p = np.minimum(1.0, 1.3 * p)
        darken(img, box, p, rng.uniform(0.75, 0.9), HE_COLOUR)
        stamp_mask(masks[1], box, p, 0.5, x, y)
        counts[1, q] += 1


def draw_dots(rng: np.random.Generator, scene, layout: Layout, sc, scale: int, blur: float) -> dict[str, Any]:
    """Microaneurysms and MA-coloured smudges (count-matched; a smudge's LR peak is ``sc.smudge_match`` x that
    of an MA drawn from the MA prior). Returns their centres, sigmas and amplitudes (``sample["lesions"]``)."""
    img, masks, counts, n, s = scene.img, scene.masks, scene.counts, scene.n, scene.s
    c, R, disc, disc_r = scene.c, scene.R, scene.disc, scene.disc_r
    plan, placer, gap = layout.plan, layout.placer, layout.gap
    ma_lo, ma_hi = (v * s for v in sc.ma_sigma)
    ma_pts = placer.place(rng, plan["n_ma"], lambda: 1.0, inside_region(c, R, 0.88, disc, disc_r + 2), gap)
    ma_xy, ma_sig, ma_amp = [], [], []
    for x, y, _ in ma_pts:
        sig = rng.uniform(ma_lo, ma_hi)
        amp = rng.uniform(*sc.ma_contrast)
        box, p = gaussian_patch(x, y, sig, n, n)
        darken(img, box, p, amp, MA_COLOUR)
        stamp_mask(masks[0], box, p, 0.32, x, y)
        counts[0, quadrant_of(x, y, *c)] += 1
        ma_xy.append((x, y)), ma_sig.append(sig), ma_amp.append(amp)
    sm_lo, sm_hi = (v * s for v in sc.smudge_sigma)
    sm_pts = placer.place(rng, plan["n_smudge"], lambda: 1.5, inside_region(c, R, 0.88, disc, disc_r + 2), gap)
    sm_xy, sm_sig, sm_amp = [], [], []
    for x, y, _ in sm_pts:
        sig = rng.uniform(sm_lo, sm_hi)
        ref_sig, ref_amp = rng.uniform(ma_lo, ma_hi), rng.uniform(*sc.ma_contrast)
        amp = float(sc.smudge_match) * ref_amp * float(lr_peak(ref_sig, scale, blur) / lr_peak(sig, scale, blur))
        amp = min(amp, 0.95)
        box, p = gaussian_patch(x, y, sig, n, n)
        darken(img, box, p, amp, MA_COLOUR)
        sm_xy.append((x, y)), sm_sig.append(sig), sm_amp.append(amp)
    return dict(
        ma_xy=np.asarray(ma_xy, np.float32).reshape(-1, 2), ma_sigma=np.asarray(ma_sig, np.float32), ma_amp=np.asarray(ma_amp, np.float32),
        smudge_xy=np.asarray(sm_xy, np.float32).reshape(-1, 2), smudge_sigma=np.asarray(sm_sig, np.float32), smudge_amp=np.asarray(sm_amp, np.float32),
    )
