"""ISR loss of DeepMT-DR: pixel loss (MSE in the authors' code, or L1) + ``tv`` x total variation.

TV here is the anisotropic squared form common in SR code (SRGAN's ``TVLoss``):
``mean((x[..., 1:, :] - x[..., :-1, :])^2) + mean((x[..., 1:] - x[..., :-1])^2)``; the paper weight
is 1e-6, so it only smooths slightly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    if sr.shape != hr.shape:
        raise ValueError(f"SR {tuple(sr.shape)} and HR {tuple(hr.shape)} differ in shape")
    if kind == "mse":
        return F.mse_loss(sr.float(), hr.float())
    if kind == "l1":
        return F.l1_loss(sr.float(), hr.float())
    raise ValueError(f"loss.isr_pixel must be 'mse' or 'l1', got {kind!r}")


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def isr_loss(sr: torch.Tensor, hr: torch.Tensor, loss_cfg) -> dict[str, torch.Tensor]:
    """``{"isr_pixel": ..., "isr_tv": tv * TV(SR)}`` (TV left out when its weight is 0)."""
    terms = {"isr_pixel": pixel_loss(sr, hr, loss_cfg.isr_pixel)}
    if loss_cfg.tv:
        terms["isr_tv"] = loss_cfg.tv * tv_loss(sr)
    return terms
