"""Lesion segmentation subnet of DeepMT-DR (mid-level task), run on the SR image.

Paper: a U-Net with ``levels`` resolution levels (5 in the paper, base width 64) whose blocks run a
3x3 and a 5x5 convolution in parallel and concatenate them (multi-scale context for lesions from
tiny microaneurysms to large exudates); deep supervision from 1x1 side outputs at several decoder
scales, up-sampled to the image size and combined into the final maps (here: a learned 1x1
fusion conv over the concatenated side outputs, as in HED / DeepMT-DR's "combination" box).

Outputs: 4 lesion logits in :data:`deepmt.LESIONS` order (MA, HE, EX, SE). Lesions overlap and an
image may lack some annotations, so each channel is an independent **sigmoid** (multi-label), not a
softmax. The paper's background channel is derived: ``background = prod_c (1 - p_c)``, i.e. one
minus the probabilistic union of the lesion maps (:func:`background_prob`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepmt.losses.task_aware import lesion_union

N_LESIONS = 4


def background_prob(probs: torch.Tensor) -> torch.Tensor:
    """The paper's background channel: 1 - union of the lesion maps, (B,1,H,W)."""
    return 1 - lesion_union(probs)


#: widest multi-scale layer (output channels) computed as one 5x5 convolution (see :class:`MultiScaleConv`)
FUSE_MAX_CHANNELS = 16


class MultiScaleConv(nn.Module):
    """3x3 and 5x5 convolutions in parallel (half the output channels each), concatenated, BN, ReLU.

    Up to :data:`FUSE_MAX_CHANNELS` output channels the two branches run as **one** 5x5 convolution whose
    first ``c3`` filters are the 3x3 weights zero-padded to 5x5: the same function (a 3x3 kernel with padding 1
    is the padded 5x5 kernel with padding 2) and the same parameters (``conv3.weight``, ``conv5.weight``; the
    padding is rebuilt each call, so the border never learns), only summed in another order. Narrow layers run
    far below the CPU's peak, and one 8-channel convolution costs less than two of 4 channels plus the
    concatenation: 1.25-1.45x per layer at 8-16 channels (bf16 + channels_last, 1 thread, 2-core Xeon; forward
    and backward), about even or slower from 32 channels on, where the extra multiply-adds of the padded
    3x3 half count.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        c3 = c_out // 2
        self.conv3 = nn.Conv2d(c_in, c3, 3, padding=1, bias=False)
        self.conv5 = nn.Conv2d(c_in, c_out - c3, 5, padding=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.fused = c_out <= FUSE_MAX_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            weight = torch.cat([F.pad(self.conv3.weight, (1, 1, 1, 1)), self.conv5.weight], dim=0)
            y = F.conv2d(x, weight, padding=2)
        else:
            y = torch.cat([self.conv3(x), self.conv5(x)], dim=1)
        return F.relu(self.bn(y), inplace=True)


class MultiScaleBlock(nn.Sequential):
    """Two multi-scale conv layers: the U-Net block of the paper's segmentation subnet."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(MultiScaleConv(c_in, c_out), MultiScaleConv(c_out, c_out))


class LesionUNet(nn.Module):
    """U-Net with multi-scale blocks and deep supervision.

    ``forward(x)`` -> final logits (B,4,H,W); ``forward(x, return_sides=True)`` -> (final, sides)
    where ``sides`` is the list of side-output logits (each (B,4,H,W), coarse to fine; empty when
    ``deep_supervision`` is False), for the deep-supervision loss.
    ``encode(x)`` returns the encoder features (fine to coarse) for multi-task baselines.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, levels: int = 5, deep_supervision: bool = True, n_out: int = N_LESIONS):
        super().__init__()
        if levels < 2:
            raise ValueError(f"model.seg.levels must be >= 2, got {levels}")
        self.levels = levels
        self.deep_supervision = deep_supervision
        widths = [base_channels * 2**i for i in range(levels)]
        self.widths = widths
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(MultiScaleBlock(c, w))
            c = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_skip in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w_skip, 2, stride=2))
            self.dec.append(MultiScaleBlock(2 * w_skip, w_skip))
            c = w_skip
        dec_widths = list(reversed(widths[:-1]))  # coarse -> fine
        if deep_supervision:
            self.side = nn.ModuleList([nn.Conv2d(w, n_out, 1) for w in dec_widths])
            self.fuse = nn.Conv2d(n_out * len(dec_widths), n_out, 1)
        else:
            self.head = nn.Conv2d(widths[0], n_out, 1)

    @classmethod
    def from_config(cls, cfg, in_channels: int = 3) -> "LesionUNet":
        return cls(in_channels, cfg.base_channels, cfg.levels, cfg.deep_supervision)

    @property
    def divisor(self) -> int:
        return 2 ** (self.levels - 1)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(f"LesionUNet expects (B, C, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(
                f"LesionUNet with {self.levels} levels needs H and W divisible by 2**(levels-1) = {self.divisor}, "
                f"got {h}x{w}; change data.hr_size / data.crop_size or model.seg.levels"
            )

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        feats = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            feats.append(x)
        return feats

    def decode(self, feats: list[torch.Tensor], return_sides: bool = False):
        x = feats[-1]
        size = feats[0].shape[-2:]
        sides = []
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):
            skip = feats[-2 - i]
            x = dec(torch.cat([up(x), skip], dim=1))
            if self.deep_supervision:
                s = self.side[i](x)
                if s.shape[-2:] != size:
                    s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
                sides.append(s)
        final = self.fuse(torch.cat(sides, dim=1)) if self.deep_supervision else self.head(x)
        return (final, sides) if return_sides else final

    def forward(self, x: torch.Tensor, return_sides: bool = False):
        return self.decode(self.encode(x), return_sides=return_sides)
