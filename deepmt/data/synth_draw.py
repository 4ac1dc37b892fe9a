"""Drawing primitives of the synthetic fundus benchmark (used by :mod:`deepmt.data.synthetic`).

Everything works in float32 RGB in [0, 1] with pixel ``j`` covering ``[j - 0.5, j + 0.5]``.
Small lesions are stamped into local patches (never full-image ops); Gaussians are
*pixel-integrated* (erf differences), so a blob keeps its mass when it is smaller than a pixel
(at 64-px HR a microaneurysm has sigma ~0.25 px) and its LR peak can be predicted exactly.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from scipy.special import erf

_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- profiles
def erf_profile_1d(coords: np.ndarray, center: float, sigma: float) -> np.ndarray:
    """Pixel-averaged unit-peak Gaussian exp(-x^2/2s^2) over pixels centred at ``coords``."""
    s = sigma * _SQRT2
    return (erf((coords + 0.5 - center) / s) - erf((coords - 0.5 - center) / s)) * (math.sqrt(math.pi / 2) * sigma)


def patch_box(cx: float, cy: float, radius: float, h: int, w: int) -> tuple[int, int, int, int]:
    """Integer box ``(y0, y1, x0, x1)`` covering a disc of ``radius`` around (cx, cy), clipped to the image."""
    r = int(math.ceil(radius)) + 1
    x0, x1 = max(0, int(math.floor(cx)) - r), min(w, int(math.floor(cx)) + r + 2)
    y0, y1 = max(0, int(math.floor(cy)) - r), min(h, int(math.floor(cy)) + r + 2)
    return y0, y1, x0, x1


def gaussian_patch(cx: float, cy: float, sigma: float, h: int, w: int, k: float = 4.0):
    """A pixel-integrated isotropic Gaussian (peak 1 for large sigma) on its local box."""
    y0, y1, x0, x1 = patch_box(cx, cy, k * sigma, h, w)
    px = erf_profile_1d(np.arange(x0, x1, dtype=np.float64), cx, sigma)
    py = erf_profile_1d(np.arange(y0, y1, dtype=np.float64), cy, sigma)
    return (y0, y1, x0, x1), (py[:, None] * px[None, :]).astype(np.float32)


def rotated_patch(cx, cy, sx, sy, theta, h, w, ss: int = 3, power: float = 2.0):
    """Anisotropic blob exp(-(q)^(power/2) / 2) along angle ``theta``, supersampled ``ss`` x ``ss``."""
    y0, y1, x0, x1 = patch_box(cx, cy, 3.5 * max(sx, sy), h, w)
    off = (np.arange(ss) + 0.5) / ss - 0.5
    xs = (np.arange(x0, x1)[:, None] + off[None, :]).reshape(-1)
    ys = (np.arange(y0, y1)[:, None] + off[None, :]).reshape(-1)
    dx = xs[None, :] - cx
    dy = ys[:, None] - cy
    c, s = math.cos(theta), math.sin(theta)
    u = (dx * c + dy * s) / sx
    v = (-dx * s + dy * c) / sy
    q = u * u + v * v
    val = np.exp(-0.5 * q ** (power / 2.0))
    val = val.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return (y0, y1, x0, x1), val.astype(np.float32)


# --------------------------------------------------------------------------- compositing
def darken(img: np.ndarray, box, prof: np.ndarray, amount: float, colour) -> None:
    """img *= 1 - amount * prof * colour on the box (a dark red lesion darkens G and B more than R)."""
    y0, y1, x0, x1 = box
    col = np.asarray(colour, dtype=np.float32)
    img[y0:y1, x0:x1] *= 1.0 - (amount * prof)[..., None] * col


def blend(img: np.ndarray, box, prof: np.ndarray, amount: float, target) -> None:
    """img += amount * prof * (target - img) on the box (bright lesions: exudates, cotton wool, reflections)."""
    y0, y1, x0, x1 = box
    t = np.asarray(target, dtype=np.float32)
    sub = img[y0:y1, x0:x1]
    sub += (amount * prof)[..., None] * (t - sub)


def stamp_mask(mask: np.ndarray, box, prof: np.ndarray, thr: float, cx: float, cy: float) -> None:
    """Set mask = 1 where prof >= thr (always at least the pixel holding the centre)."""
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] |= prof >= thr
    iy, ix = int(round(cy)), int(round(cx))
    if 0 <= iy < mask.shape[0] and 0 <= ix < mask.shape[1]:
        mask[iy, ix] = True


# --------------------------------------------------------------------------- textures
def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise (channels, h, w), about unit variance: a ``cells`` x ``cells`` grid of N(0,1)
    upsampled bicubically (PIL, float images)."""
    cells = max(2, int(cells))
    z = rng.standard_normal((channels, cells, cells)).astype(np.float32)
    out = np.empty((channels, h, w), dtype=np.float32)
    for c in range(channels):
        out[c] = np.asarray(Image.fromarray(z[c]).resize((w, h), Image.BICUBIC))
    out /= max(float(out[:, ::4, ::4].std()), 1e-6)
    return out


# --------------------------------------------------------------------------- vessels
def grow_vessel_tree(rng: np.random.Generator, disc, macula, fov_c, R: float) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Random branching, tapering vessel tree leaving the optic disc (arteries and veins).

    Four trunks each for arteries and veins: superior/inferior temporal arcades that arch around
    the macula, and superior/inferior nasal vessels. Every vessel random-walks, tapers, branches
    (children thinner and diverging) and stops at the field-of-view rim, near the fovea (avascular
    zone) or when thinner than ~0.3% of the FOV radius. Returns ``[(points (n,2), widths (n,), kind)]``
    with kind 0 = vein, 1 = artery; widths in px.
    """
    dx, dy = disc
    mx, my = macula
    temporal = math.atan2(my - dy, mx - dx)  # direction disc -> macula
    out: list[tuple[np.ndarray, np.ndarray, int]] = []
    step = 0.03 * R
    min_w = 0.0035 * R
    fcx, fcy = fov_c

    max_steps = (70, 30, 16, 10)

    def grow(p, h, w, kind, arc_sign, depth):
        pts, ws = [p], [w]
        x, y = p
        arc_r = None
        omega = 0.0  # angular velocity: smooth tortuosity
        for _ in range(max_steps[depth]):
            if arc_sign:
                # arcade: steer towards the tangent of a circle around the macula
                rx, ry = x - mx, y - my
                rr = math.hypot(rx, ry) + 1e-6
                a_now = math.atan2(ry, rx)
                if arc_r is None:
                    arc_r, turned, last_a = min(max(rr, 0.45 * R), 0.6 * R), 0.0, a_now
                turned += abs((a_now - last_a + math.pi) % (2 * math.pi) - math.pi)
                last_a = a_now
                if turned > 2.0:  # arched past the macula: run on freely towards the temporal periphery
                    arc_sign = 0
                else:
                    tang = a_now + arc_sign * math.pi / 2 - 0.6 * (arc_r - rr) / arc_r * arc_sign
                    h += 0.25 * ((tang - h + math.pi) % (2 * math.pi) - math.pi)
            else:
                # branches drift outwards (away from the disc)
                radial = math.atan2(y - dy, x - dx)
                h += 0.06 * ((radial - h + math.pi) % (2 * math.pi) - math.pi)
            omega = 0.75 * omega + rng.normal(0.0, 0.07)
            h += omega
            x, y = x + step * math.cos(h), y + step * math.sin(h)
            w *= 0.99 if depth == 0 else 0.975
            if math.hypot(x - fcx, y - fcy) > 0.99 * R or math.hypot(x - mx, y - my) < 0.09 * R or w < min_w:
                break
            pts.append((x, y))
            ws.append(w)
            if depth < 3 and w > 2.5 * min_w and rng.random() < (0.08 if depth == 0 else 0.06):
                side = 1 if rng.random() < 0.5 else -1
                cw = w * rng.uniform(0.5, 0.8)
                w *= 0.9
                grow((x, y), h + side * rng.uniform(0.5, 1.0), cw, kind, 0, depth + 1)
                h -= side * rng.uniform(0.1, 0.3)  # the parent deflects the other way
        if len(pts) > 1:
            out.append((np.asarray(pts, dtype=np.float32), np.asarray(ws, dtype=np.float32), kind))

    for kind, w0 in ((0, 0.026 * R), (1, 0.019 * R)):
        for up in (-1, 1):
            # temporal arcade: leaves the disc up/down, then arches around the macula
            h0 = temporal + up * rng.uniform(0.9, 1.3)
            start = (dx + 0.05 * R * math.cos(h0) + rng.normal(0, 0.01 * R), dy + 0.05 * R * math.sin(h0))
            rho = math.atan2(start[1] - my, start[0] - mx)
            diff = [abs((rho + sg * math.pi / 2 - h0 + math.pi) % (2 * math.pi) - math.pi) for sg in (1, -1)]
            sign = 1 if diff[0] < diff[1] else -1
            grow(start, h0, w0 * rng.uniform(0.9, 1.1), kind, sign, 0)
            # nasal vessels
            hn = temporal + math.pi + up * rng.uniform(0.4, 1.0)
            grow((dx, dy), hn, w0 * rng.uniform(0.6, 0.8), kind, 0, 1)
            # small vessels towards the macula
            hm = temporal + up * rng.uniform(0.2, 0.5)
            grow((dx, dy), hm, w0 * rng.uniform(0.3, 0.45), kind, 0, 2)
    return out


def render_polylines(lines, h: int, w: int, kinds: int = 2, ss: int = 2) -> np.ndarray:
    """Rasterise tapering polylines into coverage maps (kinds, h, w) in [0,1], antialiased by ``ss`` supersampling."""
    canvases = [Image.new("L", (w * ss, h * ss), 0) for _ in range(kinds)]
    draws = [ImageDraw.Draw(c) for c in canvases]
    for pts, ws, kind in lines:
        d = draws[kind]
        P = (pts + 0.5) * ss - 0.5
        wpx = np.maximum(1, np.round(ws * ss)).astype(int)
        # one polyline call per run of equal (rounded) width
        start = 0
        for i in range(1, len(P) + 1):
            if i == len(P) or wpx[i] != wpx[start]:
                seg = P[start : min(i + 1, len(P))]
                if len(seg) > 1:
                    d.line([tuple(q) for q in seg], fill=255, width=int(wpx[start]), joint="curve" if wpx[start] > 2 else None)
                start = i
    maps = np.stack([np.asarray(c.resize((w, h), Image.BOX), dtype=np.float32) for c in canvases]) / 255.0
    return maps


def tuft_patch(rng: np.random.Generator, radius: float, line_w: float, n_seg: int, ss: int = 4) -> np.ndarray:
    """A neovascular tuft: ``n_seg`` fine, tortuous loops within ``radius`` px, as coverage in [0,1].

    Returns a square patch of side ``2 * ceil(radius + 2) + 1`` px centred on the tuft.
    """
    half = int(math.ceil(radius + 2))
    side = 2 * half + 1
    canvas = Image.new("L", (side * ss, side * ss), 0)
    d = ImageDraw.Draw(canvas)
    c = half + 0.5
    lw = max(1, int(round(line_w * ss)))
    for _ in range(n_seg):
        a = rng.uniform(0, 2 * math.pi)
        r0 = radius * math.sqrt(rng.uniform(0, 0.8))
        x, y = c + r0 * math.cos(a), c + r0 * math.sin(a)
        h = rng.uniform(0, 2 * math.pi)
        curl = rng.choice([-1, 1]) * rng.uniform(0.25, 0.6)
        n = int(rng.integers(6, 12))
        pts = [(x * ss, y * ss)]
        for _ in range(n):
            h += curl + rng.normal(0, 0.25)
            x += 0.18 * radius * math.cos(h)
            y += 0.18 * radius * math.sin(h)
            # keep the loop inside the tuft
            dx, dy = x - c, y - c
            rr = math.hypot(dx, dy)
            if rr > radius:
                x, y = c + dx * radius / rr, c + dy * radius / rr
            pts.append((x * ss, y * ss))
        d.line(pts, fill=255, width=lw, joint="curve")
    return np.asarray(canvas.resize((side, side), Image.BOX), dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- LR peak matching
@lru_cache(maxsize=32)
def lr_peak_table(scale: int, blur_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """LR peak of a unit pixel-integrated Gaussian blob after :func:`deepmt.data.degradation.degrade`.

    Returns ``(sigmas_hr_px, peaks)``, averaged over 9 sub-pixel phases of the blob w.r.t. the LR grid.
    Used to give smudge distractors the same LR peak as a microaneurysm (``docs/BENCHMARK.md``).
    """
    from deepmt.data.degradation import degrade

    sigmas = np.geomspace(0.08, 12.0, 40)
    size = int(scale * math.ceil(max(96, 10 * scale) / scale))
    phases = [(a, b) for a in (0.0, 1 / 3, 2 / 3) for b in (0.0, 1 / 3, 2 / 3)]
    coords = np.arange(size, dtype=np.float64)
    patches = []
    for s in sigmas:
        for a, b in phases:
            c0 = size / 2 + a * scale
            c1 = size / 2 + b * scale
            patches.append(np.outer(erf_profile_1d(coords, c1, s), erf_profile_1d(coords, c0, s)))
    x = torch.from_numpy(np.asarray(patches, dtype=np.float32))[:, None].expand(-1, 3, -1, -1)
    lr = degrade(x.contiguous(), scale, blur_sigma=blur_sigma)
    peaks = lr[:, 1].flatten(1).max(dim=1).values.numpy().reshape(len(sigmas), len(phases)).mean(axis=1)
    return sigmas, peaks


def lr_peak(sigma_hr: np.ndarray | float, scale: int, blur_sigma: float = 0.0) -> np.ndarray:
    """Interpolated :func:`lr_peak_table` at ``sigma_hr`` (HR px)."""
    s, p = lr_peak_table(int(scale), float(blur_sigma))
    return np.interp(np.log(np.asarray(sigma_hr, dtype=np.float64)), np.log(s), p)


def hr_peak(sigma_hr: np.ndarray | float) -> np.ndarray:
    """HR peak of a unit pixel-integrated Gaussian centred on a pixel."""
    return erf_profile_1d(np.zeros(1), 0.0, float(sigma_hr))[0] ** 2 if np.isscalar(sigma_hr) else np.array([hr_peak(float(v)) for v in np.ravel(sigma_hr)])


def lr_peak_of_patch(prof: np.ndarray, scale: int, blur_sigma: float = 0.0) -> float:
    """LR peak (after degrade) of a patch that is aligned to the LR grid (its side is padded to a multiple of ``scale``)."""
    from deepmt.data.degradation import degrade

    h, w = prof.shape
    pad = 2 * scale
    H = int(math.ceil((h + 2 * pad) / scale) * scale)
    W = int(math.ceil((w + 2 * pad) / scale) * scale)
    big = np.zeros((H, W), dtype=np.float32)
    big[pad : pad + h, pad : pad + w] = prof
    t = torch.from_numpy(big)[None].expand(3, -1, -1).contiguous()
    return float(degrade(t, scale, blur_sigma=blur_sigma)[1].max())
