"""The fundus a sample's lesions are drawn on: a procedural one (pigment, texture, macula, optic disc, vessel
tree) or scikit-image's real fundus photo, randomly transformed (``data.synth.background``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from deepmt.data.synthetic.draw import ARTERY_COLOUR, VEIN_COLOUR, blend, darken, gaussian_patch, patch_box, smooth_noise
from deepmt.data.synthetic.vessels import grow_vessel_tree, render_polylines
from deepmt.errors import DataError


@dataclass
class Scene:
    """One sample being drawn: the image (float32 RGB in [0, 1], drawn on in place), its field of view, the
    landmarks lesions are placed around, the lesion masks and the lesion counts per type and quadrant."""

    img: np.ndarray  # (n, n, 3)
    fov: np.ndarray  # (n, n) float32 coverage of the field of view
    disc: tuple[float, float]  # optic disc centre (x, y)
    mac: tuple[float, float]  # macula centre (x, y)
    c: tuple[float, float]  # field-of-view centre (x, y)
    R: float  # field-of-view radius
    disc_r: float  # optic disc radius
    lines: list  # vessel polylines ``[(points, widths, kind)]`` (none on the real photo)
    s: float  # lesion size factor: hr_size / size_reference
    masks: np.ndarray = field(init=False)  # (4, n, n) bool, MA/HE/EX/SE
    counts: np.ndarray = field(init=False)  # (4, 4) int32, lesion type x quadrant

    def __post_init__(self) -> None:
        n = self.img.shape[0]
        self.masks = np.zeros((4, n, n), dtype=bool)
        self.counts = np.zeros((4, 4), dtype=np.int32)

    @property
    def n(self) -> int:
        return self.img.shape[0]


def draw_background(rng: np.random.Generator, n: int, synth_cfg) -> Scene:
    """The ``n`` x ``n`` background of ``synth_cfg.background`` ("procedural" or "retina"), vessels included."""
    s = n / float(synth_cfg.size_reference)
    if synth_cfg.background == "retina":
        img, fov, disc, mac, c, R = _background_retina(rng, n)
        return Scene(img, fov, disc, mac, c, R, disc_r=0.14 * R, lines=[], s=s)
    if synth_cfg.background == "procedural":
        img, fov, disc, mac, c, R, (rx, ry) = _background_procedural(rng, n)
        lines = _draw_vessels(rng, img, disc, mac, c, R, ss=4 if n < 256 else 2)
        return Scene(img, fov, disc, mac, c, R, disc_r=max(rx, ry), lines=lines, s=s)
    raise DataError(f"data.synth.background={synth_cfg.background!r}: choose 'procedural' or 'retina'")


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
    noise = smooth_noise(rng, n, n, 5, channels=2)  # low-frequency pigment/illumination variation
    tex = smooth_noise(rng, n, n, max(6, n // 6), channels=1)[0]  # choroidal texture
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
    box, p = gaussian_patch(mac[0], mac[1], mr, n, n, k=3.0)
    darken(img, box, p, rng.uniform(0.3, 0.45), (0.35, 0.8, 0.9))
    box, p = gaussian_patch(mac[0], mac[1], 0.045 * R, n, n)
    darken(img, box, p, rng.uniform(0.15, 0.3), (0.5, 0.9, 0.9))
    box, p = gaussian_patch(mac[0], mac[1], max(0.35, 0.006 * R), n, n)
    blend(img, box, p, rng.uniform(0.15, 0.35), (1.0, 0.9, 0.7))

    # optic disc: bright soft ellipse with a paler cup and a faint peripapillary halo
    rx, ry = 0.13 * R * rng.uniform(0.9, 1.1), 0.15 * R * rng.uniform(0.9, 1.1)
    y0, y1, x0, x1 = patch_box(disc[0], disc[1], 1.6 * ry, n, n)
    ex = (np.arange(x0, x1, dtype=np.float32)[None, :] - disc[0]) / rx
    ey = (np.arange(y0, y1, dtype=np.float32)[:, None] - disc[1]) / ry
    rho = np.sqrt(ex * ex + ey * ey)
    soft = max(0.05, 1.2 / rx)  # edge width ~1 px
    disc_p = 1.0 / (1.0 + np.exp((rho - 1.0) / soft))
    blend(img, (y0, y1, x0, x1), np.clip(1.3 - rho, 0, 1) * 0.5, 0.3, (0.9, 0.55, 0.3))  # halo
    blend(img, (y0, y1, x0, x1), disc_p, rng.uniform(0.55, 0.7), (0.98, 0.72, 0.45))
    cup = rng.uniform(0.3, 0.55)
    cex = (ex + rng.normal(0, 0.1)) / cup
    cup_p = 1.0 / (1.0 + np.exp((np.sqrt(cex * cex + (ey / cup) ** 2) - 1.0) / 0.2))
    blend(img, (y0, y1, x0, x1), cup_p, rng.uniform(0.4, 0.65), (1.0, 0.9, 0.72))
    return img, fov, disc, mac, (cx, cy), R, (rx, ry)


def _draw_vessels(rng, img, disc, mac, c, R, ss):
    n = img.shape[0]
    lines = grow_vessel_tree(rng, disc, mac, c, R)
    cover = render_polylines(lines, n, n, kinds=2, ss=ss)
    vein_amt, art_amt = rng.uniform(0.7, 0.85), rng.uniform(0.5, 0.65)
    for k, (amt, col) in enumerate(((vein_amt, VEIN_COLOUR), (art_amt, ARTERY_COLOUR))):
        ys, xs = np.nonzero(cover[k] > 0)  # vessels cover a small part of the image
        img[ys, xs] *= 1.0 - (amt * cover[k][ys, xs])[:, None] * np.asarray(col, np.float32)
    return lines
