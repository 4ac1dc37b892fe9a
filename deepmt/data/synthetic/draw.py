"""Drawing primitives of the synthetic fundus benchmark: blob profiles, compositing, noise, the palette.

Everything works in float32 RGB in [0, 1] with pixel ``j`` covering ``[j - 0.5, j + 0.5]``.
Small lesions are stamped into local patches (never full-image ops); Gaussians are
*pixel-integrated* (erf differences), so a blob keeps its mass when it is smaller than a pixel
(at 64-px HR a microaneurysm has sigma ~0.25 px) and its LR peak can be predicted exactly
(:mod:`deepmt.data.synthetic.lr_peaks`).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy.special import erf

_SQRT2 = math.sqrt(2.0)

# --------------------------------------------------------------------------- palette
#: A dark red lesion darkens G and B more than R (multiplicative darkening per channel, :func:`darken`);
#: bright lesions are blended towards a target colour (:func:`blend`).
MA_COLOUR = (0.45, 0.95, 0.85)
HE_COLOUR = (0.55, 0.95, 0.85)
VEIN_COLOUR = (0.55, 0.9, 0.8)
ARTERY_COLOUR = (0.35, 0.7, 0.65)
PIGMENT_COLOUR = (0.8, 0.85, 0.85)
EX_TARGET = (1.0, 0.93, 0.5)
SE_TARGET = (0.95, 0.9, 0.8)


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
