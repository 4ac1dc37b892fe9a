"""What a sample shows besides its masked lesions: the grade-4 neovascular tuft (NV, not masked, as in real
datasets), decoy tufts whose LR peak matches a real one's (``nv_match``), brown pigment spots, white reflections
beside vessels and a pale haze near the disc. None of them is masked; only NV changes the grade.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from deepmt.data.synthetic.draw import PIGMENT_COLOUR, SE_TARGET, VEIN_COLOUR, blend, darken, gaussian_patch, rotated_patch
from deepmt.data.synthetic.lr_peaks import lr_peak_of_patch
from deepmt.data.synthetic.placement import Layout, inside_region
from deepmt.data.synthetic.vessels import tuft_patch


def draw_tufts(rng: np.random.Generator, scene, has_nv: bool, sc, scale: int, blur: float) -> dict[str, Any]:
    """The NV tuft of grade 4 (``has_nv``) and, with probability ``sc.nv_decoy_prob``, a decoy: the same kind
    of tuft blurred, its LR peak ``sc.nv_match`` x the real tuft's. Returns their centres (``nv_xy``, ``decoy_xy``)."""
    img, n, s = scene.img, scene.n, scene.s
    nv_xy, decoy_xy = [], []
    nv_match = float(sc.nv_match)
    n_decoy = int(nv_match > 0 and rng.random() < sc.nv_decoy_prob)
    for is_nv in [True] * int(has_nv) + [False] * n_decoy:
        prof = _tuft(rng, s)
        x, y = _tuft_site(rng, scene)
        amp = rng.uniform(0.6, 0.85)
        if not is_nv:  # decoy: the same tuft blurred, with a matched LR peak
            blurred = gaussian_filter(prof, sigma=0.6 * scale)  # ~ what x`scale` downsampling keeps
            ratio = lr_peak_of_patch(prof, scale, blur) / max(lr_peak_of_patch(blurred, scale, blur), 1e-6)
            amp = min(0.95 / max(float(blurred.max()), 1e-6), nv_match * amp * ratio)
            prof = blurred
        half = prof.shape[0] // 2
        x0, y0 = int(round(x)) - half, int(round(y)) - half
        y0c, x0c = max(0, y0), max(0, x0)
        y1c, x1c = min(n, y0 + prof.shape[0]), min(n, x0 + prof.shape[1])
        p = prof[y0c - y0 : y1c - y0, x0c - x0 : x1c - x0]
        darken(img, (y0c, y1c, x0c, x1c), p, amp, VEIN_COLOUR)
        (nv_xy if is_nv else decoy_xy).append((x, y))
    return dict(nv_xy=np.asarray(nv_xy, np.float32).reshape(-1, 2), decoy_xy=np.asarray(decoy_xy, np.float32).reshape(-1, 2))


def _tuft(rng: np.random.Generator, s: float) -> np.ndarray:
    radius = rng.uniform(8, 12) * s
    return tuft_patch(rng, radius, max(0.25, 0.7 * s), int(rng.integers(10, 15)))


def _tuft_site(rng: np.random.Generator, scene) -> tuple[float, float]:
    """At the disc rim (NVD, 70 %) or on the widest vessel trunk (NVE)."""
    disc, disc_r, lines = scene.disc, scene.disc_r, scene.lines
    if rng.random() < 0.7 or not lines:  # at the disc rim (NVD)
        a = rng.uniform(0, 2 * math.pi)
        return disc[0] + 1.05 * disc_r * math.cos(a), disc[1] + 1.05 * disc_r * math.sin(a)
    pts = max(lines, key=lambda l: l[1][0])[0]  # on the widest trunk (NVE)
    i = int(rng.integers(len(pts) // 4, max(len(pts) // 4 + 1, 3 * len(pts) // 4)))
    return float(pts[i][0]), float(pts[i][1])


def draw_other_distractors(rng: np.random.Generator, scene, layout: Layout) -> tuple[int, int]:
    """Pigment spots, reflections beside vessels and (half the images) a haze near the disc. Returns the numbers
    of pigment spots and reflections."""
    img, n, s, lines = scene.img, scene.n, scene.s, scene.lines
    c, R, disc, disc_r = scene.c, scene.R, scene.disc, scene.disc_r
    placer, gap = layout.placer, layout.gap
    n_pig = int(rng.integers(0, 5))
    for x, y, _ in placer.place(rng, n_pig, lambda: 2.0 * s, inside_region(c, R, 0.9, disc, disc_r), gap):
        box, p = gaussian_patch(x, y, rng.uniform(1.2, 2.5) * s, n, n)
        darken(img, box, np.minimum(1, 1.3 * p), rng.uniform(0.25, 0.45), PIGMENT_COLOUR)
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
        box, p = rotated_patch(x, y, rng.uniform(1.5, 3.5) * s, max(0.4, rng.uniform(0.6, 1.0) * s), rng.uniform(0, math.pi), n, n, ss=2)
        blend(img, box, p, rng.uniform(0.15, 0.3), (1.0, 0.95, 0.9))
        ref_done += 1
    if rng.random() < 0.5:
        hx, hy = disc[0] + rng.normal(0, 0.1 * R), disc[1] + rng.normal(0, 0.1 * R)
        box, p = gaussian_patch(hx, hy, rng.uniform(10, 18) * s, n, n, k=3)
        blend(img, box, p, rng.uniform(0.05, 0.12), SE_TARGET)
    return n_pig, ref_done
