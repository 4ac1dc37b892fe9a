"""ISR subnet of DeepMT-DR (low-level task): LR fundus image -> SR image at x2 / x4 / x8.

Paper / authors' code (``XiaofeiWang2018/DR``): conv3x3 3->C + LeakyReLU stem, ``n`` residual
blocks, ``log2(scale)`` learned x2 up-sampling stages, conv3x3 C->3, output ``(tanh + 1) / 2``
in [0, 1] (paper: C = 32, 5 blocks, x4).

Choices made here (configurable in :class:`deepmt.config.ISRConfig`):

* **Up-sampling** – transposed convolutions (kernel 4, stride 2, padding 1, each followed by a
  LeakyReLU) as in the authors' code; ``upsampler="pixelshuffle"`` swaps in conv + PixelShuffle(2).
* **Global skip** (``global_skip=True``, default) – residual learning around the bicubic
  up-sampling of the input. To keep the paper's ``(tanh + 1)/2`` output range we add the network's
  output to the bicubic image *before* the tanh: ``SR = (tanh(atanh(2 B - 1) + r) + 1) / 2`` with
  ``B`` the (clamped) bicubic image and ``r`` the network output. The last conv is zero-initialised,
  so an untrained subnet returns exactly the bicubic image and training from scratch starts at the
  bicubic baseline instead of a grey image. ``global_skip=False`` is the authors' plain version.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SCALES = (2, 4, 8)


def check_scale(scale: int) -> int:
    """Return ``scale`` as int, or raise ValueError if it is not 2, 4 or 8."""
    if int(scale) != scale or int(scale) not in SCALES:
        raise ValueError(f"super-resolution scale must be one of {SCALES}, got {scale!r}")
    return int(scale)


class ResidualBlock(nn.Module):
    """conv3x3 - LeakyReLU - conv3x3 + identity (no batch norm, as in SR networks since EDSR)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def _upsample_stage(channels: int, kind: str) -> nn.Module:
    if kind == "transposed":
        return nn.Sequential(nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True))
    raise ValueError(f"model.isr.upsampler must be 'transposed' or 'pixelshuffle', got {kind!r}")


class ISRNet(nn.Module):
    """The ISR subnet: ``forward(lr (B,3,h,w)) -> sr (B,3,h*scale,w*scale)`` in [0, 1]."""

    def __init__(
        self,
        scale: int = 4,
        channels: int = 32,
        n_resblocks: int = 5,
        upsampler: str = "transposed",
        global_skip: bool = True,
    ):
        super().__init__()
        self.scale = check_scale(scale)
        self.global_skip = bool(global_skip)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.body = nn.Sequential(*[ResidualBlock(channels) for _ in range(n_resblocks)])
        self.body_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsample = nn.Sequential(*[_upsample_stage(channels, upsampler) for _ in range(int(math.log2(self.scale)))])
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        if self.global_skip:  # start exactly at the bicubic image
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    @classmethod
    def from_config(cls, cfg, scale: int) -> "ISRNet":
        """Build from :class:`deepmt.config.ISRConfig`."""
        return cls(
            scale=scale,
            channels=cfg.channels,
            n_resblocks=cfg.n_resblocks,
            upsampler=cfg.upsampler,
            global_skip=cfg.global_skip,
        )

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ValueError(f"ISRNet expects LR images (B, 3, h, w), got shape {tuple(lr.shape)}")
        feat = self.stem(lr)
        feat = feat + self.body_conv(self.body(feat))  # long skip over the residual blocks
        out = self.tail(self.upsample(feat))
        if self.global_skip:
            h, w = lr.shape[-2:]
            base = F.interpolate(lr, size=(h * self.scale, w * self.scale), mode="bicubic", align_corners=False)
            base = base.clamp(1e-3, 1 - 1e-3)
            out = out + torch.atanh(2 * base - 1)
        return (torch.tanh(out) + 1) / 2
