"""HR -> LR degradation: the one function that makes every low-resolution image in deepmt.

Paper setting (DeepMT-DR, Wang et al. AAAI 2021): the HR fundus photo is resized to 1024 x 1024
and the LR input is its **bicubic downsampling by 4** (256 x 256); the authors' code also uses x8.
We use antialiased bicubic (``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``,
the same filter as PIL's ``Image.resize(..., BICUBIC)``), so a lesion smaller than an LR pixel is
averaged away rather than aliased. Optional extras for robustness studies, off by default:
Gaussian blur before the downsampling (camera/optics), additive Gaussian noise and JPEG compression
after it (sensor, storage).

Public API:

* :func:`degrade` – HR float tensor (3,H,W) or (B,3,H,W) in [0,1] -> LR tensor, clamped to [0,1].
* :func:`bicubic_upsample` – the "bicubic" baseline: LR -> HR size by bicubic interpolation.
* :func:`degrade_config` – :func:`degrade` with ``cfg.data.scale`` and ``cfg.data.degradation``.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from deepmt.config import DataConfig

SCALES = (2, 4, 8)


def _check_image(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``x`` as a 4-D float tensor and whether it was 3-D; raise ValueError on bad input."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.ndim == 3:
        x, single = x.unsqueeze(0), True
    elif x.ndim == 4:
        single = False
    else:
        raise ValueError(f"{name} must be (3, H, W) or (B, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels, got shape {tuple(x.shape)}")
    return x, single


def _check_scale(scale: int) -> int:
    if int(scale) != scale or int(scale) not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return int(scale)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (B,C,H,W) tensor, kernel radius ceil(3 sigma), reflect padding."""
    if sigma <= 0:
        return x
    from torchvision.transforms.v2 import functional as TF

    radius = max(1, int(math.ceil(3.0 * sigma)))
    radius = min(radius, (min(x.shape[-2:]) - 1) // 2) or 1
    return TF.gaussian_blur(x, kernel_size=[2 * radius + 1, 2 * radius + 1], sigma=[float(sigma), float(sigma)])


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip (PIL) of each image in a (B,3,h,w) float tensor."""
    from PIL import Image

    if not 1 <= int(quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {quality!r}")
    arr = (x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    out = np.empty_like(arr)
    for i, img in enumerate(arr):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255.0


def degrade(
    hr: torch.Tensor,
    scale: int,
    blur_sigma: float = 0.0,
    noise_std: float = 0.0,
    jpeg_quality: int | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Make the LR image from an HR image (paper: antialiased bicubic x4).

    Args:
        hr: float tensor (3,H,W) or (B,3,H,W) with values in [0,1]; any device.
        scale: 2, 4 or 8; H and W must be divisible by it.
        blur_sigma: Gaussian blur (HR px) applied before downsampling; 0 = none.
        noise_std: std of additive Gaussian noise on the LR image ([0,1] units); 0 = none.
        jpeg_quality: JPEG-compress the LR image at this quality (1..100); None = none.
        seed: seeds the noise (a private ``torch.Generator``, so the global RNG is untouched);
            None draws from the global torch RNG.

    Returns:
        LR tensor (3,H/s,W/s) or (B,3,H/s,W/s), same dtype and device, clamped to [0,1].
    """
    x, single = _check_image(hr, "hr")
    scale = _check_scale(scale)
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not divisible by scale {scale}; crop or resize it to a multiple of {scale}")
    dtype = x.dtype
    x = x.float()
    if blur_sigma and blur_sigma > 0:
        x = gaussian_blur(x, float(blur_sigma))
    lr = F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    if noise_std and noise_std > 0:
        gen = torch.Generator(device="cpu")
        if seed is not None:
            gen.manual_seed(int(seed))
        else:
            gen.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        noise = torch.randn(lr.shape, generator=gen, dtype=torch.float32)
        lr = lr + float(noise_std) * noise.to(lr.device)
    lr = lr.clamp(0.0, 1.0)
    if jpeg_quality is not None:
        lr = _jpeg(lr, int(jpeg_quality)).clamp(0.0, 1.0)
    lr = lr.to(dtype)
    return lr[0] if single else lr


def bicubic_upsample(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The "bicubic" baseline of the paper: LR (3,h,w)/(B,3,h,w) -> (.., h*s, w*s), clamped to [0,1]."""
    x, single = _check_image(lr, "lr")
    scale = _check_scale(scale)
    h, w = x.shape[-2:]
    up = F.interpolate(x.float(), size=(h * scale, w * scale), mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    up = up.to(x.dtype)
    return up[0] if single else up


def degrade_config(hr: torch.Tensor, data_cfg: "DataConfig", seed: int | None = None) -> torch.Tensor:
    """:func:`degrade` with the scale and degradation settings of ``cfg.data``."""
    d = data_cfg.degradation
    return degrade(
        hr,
        data_cfg.scale,
        blur_sigma=d.blur_sigma,
        noise_std=d.noise_std,
        jpeg_quality=d.jpeg_quality,
        seed=seed,
    )


__all__ = ["degrade", "bicubic_upsample", "degrade_config", "gaussian_blur", "SCALES"]
