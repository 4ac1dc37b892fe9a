"""Fundus preprocessing: find the field of view (FOV), crop it, pad to a square, resize to the HR size.

The paper resizes every photograph to 1024 x 1024 (HR) before the x4 bicubic degradation. Public fundus
photos are not square (IDRiD 4288 x 2848, with the FOV disc cut at the top and bottom) and carry wide black
borders, so a plain resize would stretch the retina and waste pixels. :func:`preprocess_fundus` instead

1. finds the FOV: pixels whose brightness (max over R, G, B; the red channel dominates in a fundus)
   exceeds a threshold (``max(10, 0.1 * 99th percentile)`` on 0-255), keeps the largest connected
   component (on a copy at most ~512 px wide, for speed), and fills its holes;
2. crops the image (and its lesion masks) to the FOV's bounding box;
3. pads the crop to a square with black, centred;
4. resizes to ``hr_size``: area averaging (PIL ``BOX``) when shrinking, bicubic when enlarging; lesion
   masks are area-averaged and a pixel is lesion when at least :data:`LESION_COVERAGE` of it was
   lesion (a lower bar than 1/2, so microaneurysms a few px wide in a 4288-px photo survive moderate
   downsizing without inflating large lesions much);
5. recomputes the FOV mask on the resized image (same threshold), so it is exactly aligned with it.

It works on any RGB photo (``predict`` uses it); an image with nothing above the threshold (all black)
has no FOV and raises :class:`deepmt.errors.DataError`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from deepmt.errors import DataError

#: Fraction of an HR pixel that must be covered by a lesion in the full-size mask for the pixel to count.
LESION_COVERAGE = 0.25
#: Smallest FOV (fraction of the image area) accepted as a fundus.
MIN_FOV_FRACTION = 0.01
_DETECT_SIZE = 512


def fov_threshold(brightness: np.ndarray) -> float:
    """Brightness threshold (0-255) separating the fundus from its black surround."""
    if brightness.size == 0:
        return 10.0
    return float(max(10.0, 0.1 * np.percentile(brightness, 99)))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    if n == 1:
        return labels == 1
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def find_fov(image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """FOV mask (H, W) bool of an RGB uint8 image: largest bright connected region, holes filled."""
    bright = image.max(axis=2)
    thr = fov_threshold(bright) if threshold is None else threshold
    return ndimage.binary_fill_holes(_largest_component(bright > thr))


def fov_bbox(image: np.ndarray, name: str = "image") -> tuple[int, int, int, int, float]:
    """``(top, bottom, left, right, threshold)`` of the FOV (bottom/right exclusive); DataError if none."""
    h, w = image.shape[:2]
    bright = image.max(axis=2)
    step = max(1, int(np.ceil(max(h, w) / _DETECT_SIZE)))
    small = bright[::step, ::step]
    thr = fov_threshold(small)
    fov_small = _largest_component(small > thr)
    if fov_small.sum() < MIN_FOV_FRACTION * fov_small.size:
        raise DataError(
            f"{name}: no field of view found (nothing brighter than {thr:.0f}/255 over at least "
            f"{MIN_FOV_FRACTION:.0%} of the image; is this a fundus photograph?)"
        )
    rows = np.flatnonzero(fov_small.any(axis=1))
    cols = np.flatnonzero(fov_small.any(axis=0))
    top, bottom = rows[0] * step, min(h, (rows[-1] + 1) * step)
    left, right = cols[0] * step, min(w, (cols[-1] + 1) * step)
    # refine the sub-sampled edges at full resolution (one band of `step` px on each side)
    if step > 1:
        band = bright[max(0, top - step) : bottom + step, max(0, left - step) : right + step] > thr
        r = np.flatnonzero(band.any(axis=1))
        c = np.flatnonzero(band.any(axis=0))
        if r.size and c.size:
            off_r, off_c = max(0, top - step), max(0, left - step)
            top, bottom = off_r + r[0], off_r + r[-1] + 1
            left, right = off_c + c[0], off_c + c[-1] + 1
    return int(top), int(bottom), int(left), int(right), thr


def _pad_square(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    side = max(h, w)
    pad_t, pad_l = (side - h) // 2, (side - w) // 2
    pad = [(pad_t, side - h - pad_t), (pad_l, side - w - pad_l)] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, pad, mode="constant", constant_values=0)


def _resize_image(img: np.ndarray, size: int) -> np.ndarray:
    filt = Image.Resampling.BOX if img.shape[0] >= size else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(img).resize((size, size), filt))


def _resize_binary(mask: np.ndarray, size: int, coverage: float) -> np.ndarray:
    """Area-resize a bool mask and threshold the covered fraction (nearest when enlarging)."""
    if mask.shape[0] < size:
        return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)) > 0
    frac = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX))
    return frac >= coverage - 1e-6


def preprocess_fundus(
    image: np.ndarray,
    hr_size: int,
    masks: np.ndarray | None = None,
    name: str = "image",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """FOV crop + square pad + resize of one fundus photo (and its lesion masks).

    Args:
        image: RGB ``np.uint8 (H, W, 3)`` (from :func:`deepmt.data.io.read_image`).
        hr_size: side of the output square (paper: 1024).
        masks: optional bool ``(L, H, W)`` lesion masks of the same size as ``image``.
        name: the file name used in error messages.

    Returns:
        ``(hr uint8 (hr_size, hr_size, 3), fov bool (hr_size, hr_size), masks bool (L, hr_size, hr_size) or None)``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"{name}: expected an RGB uint8 image (H, W, 3), got {image.dtype} {tuple(image.shape)}")
    if hr_size < 1:
        raise DataError(f"{name}: hr_size must be positive, got {hr_size}")
    if masks is not None:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
            raise DataError(
                f"{name}: lesion masks {tuple(masks.shape)} do not match the image size {image.shape[:2]}"
            )
    top, bottom, left, right, thr = fov_bbox(image, name)
    crop = _pad_square(image[top:bottom, left:right])
    hr = _resize_image(crop, hr_size)
    fov = find_fov(hr, thr)  # on the resized image: cheap, and exactly aligned with hr
    out_masks = None
    if masks is not None:
        out_masks = np.zeros((len(masks), hr_size, hr_size), dtype=bool)
        for i, m in enumerate(masks):
            m = m[top:bottom, left:right]
            if m.any():  # most lesion masks of an image are empty: skip their resize
                out_masks[i] = _resize_binary(_pad_square(m), hr_size, LESION_COVERAGE)
    return np.array(hr, copy=True), np.array(fov, copy=True), out_masks
