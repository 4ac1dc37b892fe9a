"""Super-resolution (ISR) metrics: PSNR and SSIM (11-px Gaussian window, sigma 1.5, as scikit-image) on the
whole image, inside the field of view and inside the dilated lesion region."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepmt.metrics.base import images_per_chunk, nanmean_quiet, shape_error, to_numpy

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # as skimage with gaussian_weights=True: radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps


def _as_chw(x: Any, name: str) -> np.ndarray:
    """One image as (C, H, W) float64 from (H, W), (C, H, W) or (H, W, C) with C in {1, 3}."""
    a = to_numpy(x, name)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3:
        if a.shape[0] not in (1, 3) and a.shape[-1] in (1, 3):
            a = np.moveaxis(a, -1, 0)
        elif a.shape[0] not in (1, 3):
            raise shape_error(f"{name} must be (3, H, W), (H, W, 3) or (H, W)", **{name: a.shape})
    else:
        raise shape_error(f"{name} must be one image (3, H, W), (H, W, 3) or (H, W)", **{name: a.shape})
    return a.astype(np.float64)


def _as_mask(m: Any, hw: tuple[int, int], name: str) -> np.ndarray:
    """A mask for one image as (H, W) bool from (H, W), (1, H, W) or (H, W, 1); values > 0.5 are inside."""
    a = to_numpy(m, name)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.shape != hw:
        raise shape_error(f"{name} must be (H, W) or (1, H, W) matching the image", **{name: a.shape}, image_hw=hw)
    return a > 0.5


def _psnr_nchw(sr: np.ndarray, hr: np.ndarray, mask: np.ndarray | None, data_range: float) -> np.ndarray:
    """Per-image PSNR of (N, C, H, W) arrays; ``mask`` (N, H, W) bool restricts the squared error (nan if empty)."""
    se = ((sr - hr) ** 2).sum(1)  # (N, H, W), summed over channels
    c = sr.shape[1]
    if mask is None:
        mse = se.mean((1, 2)) / c
    else:
        cnt = mask.sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            mse = np.where(cnt > 0, (se * mask).sum((1, 2)) / (c * np.maximum(cnt, 1)), np.nan)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def _gaussian_taps(sigma: float = _SSIM_SIGMA, truncate: float = _SSIM_TRUNCATE) -> np.ndarray:
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _ssim_map_nchw(sr: np.ndarray, hr: np.ndarray, data_range: float, backend: str = "auto") -> np.ndarray:
    """SSIM maps of (N, C, H, W) arrays, averaged over channels: (N, H - 10, W - 10).

    Separable 11-tap Gaussian (sigma 1.5) in float64 over the whole batch at once, kept on the "valid"
    region only: that is the region skimage averages over (it crops (win_size - 1) / 2 px from each
    border), so the mean of this map equals ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. ``backend``: ``"scipy"``
    (``ndimage.correlate1d``, the fastest on a CPU), ``"torch"`` (conv2d on CUDA when present, else CPU) or
    ``"auto"`` (torch when CUDA is available, else scipy).
    """
    g = _gaussian_taps()
    r = len(g) // 2
    n, c, h, w = sr.shape
    if h < len(g) or w < len(g):
        raise ValueError(f"SSIM needs images of at least {len(g)} x {len(g)} px (11-px window), got {h} x {w}")
    if backend == "auto":
        import torch

        backend = "torch" if torch.cuda.is_available() else "scipy"
    if backend == "scipy":
        from scipy import ndimage

        x, y = np.asarray(sr, dtype=np.float64), np.asarray(hr, dtype=np.float64)
        f = np.stack([x, y, x * x, y * y, x * y])  # (5, N, C, H, W)
        f = ndimage.correlate1d(f, g, axis=3, mode="constant")[:, :, :, r : h - r]
        f = ndimage.correlate1d(f, g, axis=4, mode="constant")[..., r : w - r]
    elif backend == "torch":
        import torch
        import torch.nn.functional as F

        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        x = torch.as_tensor(np.asarray(sr, dtype=np.float64), device=dev).reshape(n * c, 1, h, w)
        y = torch.as_tensor(np.asarray(hr, dtype=np.float64), device=dev).reshape(n * c, 1, h, w)
        gt = torch.as_tensor(g, device=dev)
        f = torch.cat([x, y, x * x, y * y, x * y])
        f = F.conv2d(F.conv2d(f, gt.view(1, 1, -1, 1)), gt.view(1, 1, 1, -1))  # (5NC, 1, h', w')
        return _ssim_formula(f.reshape(5, n, c, h - 2 * r, w - 2 * r), data_range).mean(1).cpu().numpy()
    else:
        raise ValueError(f"backend must be 'auto', 'scipy' or 'torch', got {backend!r}")
    return _ssim_formula(f, data_range).mean(1)


def _ssim_formula(f: Any, data_range: float) -> Any:
    """SSIM from the stacked local means (mu_x, mu_y, E[x^2], E[y^2], E[xy]) (NumPy or torch)."""
    ux, uy, uxx, uyy, uxy = f
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def _masked_mean(maps: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Mean of (N, h, w) SSIM maps, inside (N, H, W) masks cropped to the valid region (nan if empty)."""
    if mask is None:
        return maps.mean((1, 2))
    r = (mask.shape[1] - maps.shape[1]) // 2
    m = mask[:, r : mask.shape[1] - r, r : mask.shape[2] - r]
    cnt = m.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (maps * m).sum((1, 2)) / np.maximum(cnt, 1), np.nan)


def _pair(sr: Any, hr: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """(N, C, H, W) float64 pair and an (N, H, W) mask from one image or a batch; also 'was a batch'."""
    a, b = to_numpy(sr, "sr"), to_numpy(hr, "hr")
    if a.ndim == 4:
        if a.shape != b.shape:
            raise shape_error("sr and hr must have the same shape", sr=a.shape, hr=b.shape)
        m = None
        if mask is not None:
            m = to_numpy(mask, "mask")
            m = m[:, 0] if m.ndim == 4 and m.shape[1] == 1 else m
            if m.shape != (a.shape[0], *a.shape[2:]):
                raise shape_error("mask must be (N, 1, H, W) or (N, H, W) matching sr", sr=a.shape, mask=np.shape(mask))
            m = m > 0.5
        return a.astype(np.float64), b.astype(np.float64), m, True
    a, b = _as_chw(a, "sr"), _as_chw(b, "hr")
    if a.shape != b.shape:
        raise shape_error("sr and hr must have the same shape", sr=a.shape, hr=b.shape)
    m = _as_mask(mask, a.shape[1:], "mask")[None] if mask is not None else None
    return a[None], b[None], m, False


def psnr(sr: Any, hr: Any, mask: Any = None, data_range: float = 1.0) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB of ``sr`` against ``hr`` (images in [0, ``data_range``]).

    One image: (3, H, W), (H, W, 3) or (H, W) -> float; a batch (N, C, H, W) -> (N,) per-image array.
    ``mask`` ((H, W) / (1, H, W), or (N, 1, H, W) for a batch; > 0.5 is inside) restricts the mean squared
    error to the pixels inside (all channels): nan when the mask is empty, inf when sr == hr there.
    Without a mask this is ``skimage.metrics.peak_signal_noise_ratio``.
    """
    a, b, m, batch = _pair(sr, hr, mask)
    out = _psnr_nchw(a, b, m, data_range)
    return out if batch else float(out[0])


def ssim(sr: Any, hr: Any, mask: Any = None, data_range: float = 1.0) -> float | np.ndarray:
    """Structural similarity with the paper's 11-px Gaussian window (sigma 1.5), mean over channels.

    Without ``mask`` it equals ``skimage.metrics.structural_similarity(sr, hr, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=...)``. With a mask it is the mean of
    the same SSIM map over the mask's pixels (the map exists 5 px away from the border, where skimage
    averages too); nan when no mask pixel is left. Shapes as :func:`psnr`.
    """
    a, b, m, batch = _pair(sr, hr, mask)
    k = images_per_chunk(a.shape)
    vals = np.concatenate(
        [
            _masked_mean(_ssim_map_nchw(a[i : i + k], b[i : i + k], data_range), None if m is None else m[i : i + k])
            for i in range(0, len(a), k)
        ]
    )
    return vals if batch else float(vals[0])


def lesion_region(lesion_masks: Any, dilation: int = 3, fov: Any = None) -> np.ndarray:
    """(N, H, W) bool: union of the lesion masks (N, 4, H, W), dilated by a disk of ``dilation`` px, inside the FOV.

    The lesion region is where the paper's task-aware loss should improve super-resolution most; the
    dilation takes in each lesion's immediate surroundings (its edges and the context a grader sees).
    """
    from scipy import ndimage

    m = to_numpy(lesion_masks, "lesion_masks")
    if m.ndim != 4:
        raise shape_error("lesion_masks must be (N, 4, H, W)", lesion_masks=m.shape)
    union = (m > 0.5).any(1)
    if dilation > 0:
        yy, xx = np.mgrid[-dilation : dilation + 1, -dilation : dilation + 1]
        disk = (yy**2 + xx**2) <= dilation**2
        union = ndimage.binary_dilation(union, structure=disk[None])
    if fov is not None:
        f = to_numpy(fov, "fov")
        f = f[:, 0] if f.ndim == 4 else f
        if f.shape != union.shape:
            raise shape_error("fov must be (N, 1, H, W) matching lesion_masks", fov=np.shape(fov), lesion_masks=m.shape)
        union &= f > 0.5
    return union


def _check_isr_shapes(sr: Any, hr: Any, fov: Any, lesion_masks: Any) -> tuple[int, int, int]:
    s, h = np.shape(sr), np.shape(hr)
    if len(s) != 4 or s != h:
        raise shape_error("sr and hr must be (N, 3, H, W) of the same shape", sr=s, hr=h)
    n, _, hh, ww = s
    if fov is not None and tuple(np.shape(fov)) not in ((n, 1, hh, ww), (n, hh, ww)):
        raise shape_error("fov must be (N, 1, H, W) matching sr", sr=s, fov=np.shape(fov))
    ls = tuple(np.shape(lesion_masks)) if lesion_masks is not None else None
    if ls is not None and (len(ls) != 4 or ls[0] != n or ls[2:] != (hh, ww)):
        raise shape_error("lesion_masks must be (N, 4, H, W) matching sr", sr=s, lesion_masks=np.shape(lesion_masks))
    return n, hh, ww


def isr_per_image(
    sr: Any, hr: Any, fov: Any = None, lesion_masks: Any = None, lesion_dilation: int = 3, data_range: float = 1.0
) -> dict[str, np.ndarray]:
    """Per-image ISR numbers (N,) for bootstrapping: ``psnr``, ``ssim`` (whole image), ``psnr_fov``,
    ``ssim_fov`` (inside the field of view), ``psnr_lesion``, ``ssim_lesion`` (inside :func:`lesion_region`;
    nan for an image without lesions) and ``has_lesion`` (bool). Missing ``fov`` / ``lesion_masks`` give nan
    columns. Works through the images in chunks, so memory stays small for large N.
    """
    n, _, _ = _check_isr_shapes(sr, hr, fov, lesion_masks)
    keys = ("psnr", "ssim", "psnr_fov", "ssim_fov", "psnr_lesion", "ssim_lesion")
    out = {k: np.full(n, np.nan) for k in keys}
    out["has_lesion"] = np.zeros(n, dtype=bool)
    k = images_per_chunk(np.shape(sr))
    for i in range(0, n, k):
        j = min(n, i + k)
        a = to_numpy(sr[i:j], "sr").astype(np.float64)
        b = to_numpy(hr[i:j], "hr").astype(np.float64)
        maps = _ssim_map_nchw(a, b, data_range)
        f = None
        if fov is not None:
            f = to_numpy(fov[i:j], "fov")
            f = (f[:, 0] if f.ndim == 4 else f) > 0.5
            out["psnr_fov"][i:j] = _psnr_nchw(a, b, f, data_range)
            out["ssim_fov"][i:j] = _masked_mean(maps, f)
        out["psnr"][i:j] = _psnr_nchw(a, b, None, data_range)
        out["ssim"][i:j] = _masked_mean(maps, None)
        if lesion_masks is not None:
            region = lesion_region(lesion_masks[i:j], dilation=lesion_dilation, fov=f)
            has = region.any((1, 2))
            out["has_lesion"][i:j] = has
            region[~has] = False
            out["psnr_lesion"][i:j] = _psnr_nchw(a, b, region, data_range)
            out["ssim_lesion"][i:j] = _masked_mean(maps, region)
    return out


def isr_metrics(
    sr: Any, hr: Any, fov: Any = None, lesion_masks: Any = None, lesion_dilation: int = 3, data_range: float = 1.0
) -> dict[str, float]:
    """ISR metrics averaged over images: ``psnr``, ``ssim``, ``psnr_fov``, ``ssim_fov``, ``psnr_lesion``,
    ``ssim_lesion`` (over the images that have lesions), ``n`` and ``n_lesion_images``.

    ``sr``, ``hr``: (N, 3, H, W) in [0, 1]; ``fov``: (N, 1, H, W); ``lesion_masks``: (N, 4, H, W), dilated by
    ``lesion_dilation`` px (see :func:`lesion_region`). Per-image numbers: :func:`isr_per_image`.
    """
    per = isr_per_image(sr, hr, fov, lesion_masks, lesion_dilation, data_range)
    out = {k: float(nanmean_quiet(v)) if len(v) else math.nan for k, v in per.items() if k != "has_lesion"}
    out["n"] = float(len(per["psnr"]))
    out["n_lesion_images"] = float(per["has_lesion"].sum())
    return out
