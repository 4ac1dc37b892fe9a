"""DR grading subnet of DeepMT-DR (high-level task).

Paper: the SR image concatenated with the 4 lesion probability maps (7 channels) goes into a
ResNet-18 whose first conv is widened to 7 inputs, followed by spatial pyramid pooling (SPP),
FC-512, ReLU, dropout 0.5 and FC-5. Trained from scratch here (``weights=None``: no download).

* width 64: torchvision's own ``ResNet(BasicBlock, [2, 2, 2, 2])`` with ``conv1`` replaced by a
  7-input conv; other widths ``w``: the same ResNet-18 layout (stem conv7x7/2 + max-pool, four
  stages of two torchvision ``BasicBlock`` s with widths w, 2w, 4w, 8w) – same attribute names.
* SPP: **max** pooling to each level's ``l x l`` grid (He et al. 2014's SPP-net), concatenated.
* ``use_lesion_maps=False`` gives the 3-channel ablation "without segmentation" (and the plain
  grader baselines).

The activations of ResNet stages 1-4 (``layer1``..``layer4``) are exposed for the visualization
map (:mod:`deepmt.models.visualization`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, ResNet

N_GRADES = 5


class _ResNet18Trunk(nn.Module):
    """ResNet-18 layout at any width, built from torchvision's BasicBlock (same names as ResNet)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inplanes = width
        self.layer1 = self._make_layer(width, 1)
        self.layer2 = self._make_layer(2 * width, 2)
        self.layer3 = self._make_layer(4 * width, 2)
        self.layer4 = self._make_layer(8 * width, 2)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*layers)


def last_feature_map_side(hr_size: int) -> int:
    """The side of the ResNet-18 trunk's last feature map for a square input of ``hr_size`` px: five stride-2 steps
    (conv1, maxpool, layer2-4), each padded so that it keeps ceil(n / 2) cells (80 px gives 3, not 80 // 32)."""
    side = int(hr_size)
    for _ in range(5):
        side = (side + 1) // 2
    return side


def resnet18_trunk(in_channels: int, width: int) -> nn.Module:
    """A from-scratch ResNet-18 body (conv1, bn1, relu, maxpool, layer1..4) with ``in_channels`` inputs."""
    if width == 64:
        net = ResNet(BasicBlock, [2, 2, 2, 2])
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        del net.fc, net.avgpool  # replaced by SPP + our FC head
        return net
    return _ResNet18Trunk(in_channels, width)


def adaptive_max_pool2d_by_slices(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.adaptive_max_pool2d(x, size)`` computed as the max over each bin's slice (the same bins: rows
    ``floor(i*H/size)`` to ``ceil((i+1)*H/size)``, columns likewise), so its backward is deterministic.

    Why it exists: torch has no deterministic CUDA backward for adaptive max pooling, so with
    ``train.deterministic`` on, two CUDA runs of one config drifted apart (measured on an H200). The forward
    values are the same; the gradient is the same except where a bin's maximum is tied (``amax`` splits it
    among the ties, adaptive pooling gives it to one). Used on CUDA with deterministic algorithms only, so
    CPU runs keep their numbers."""
    h, w = x.shape[-2:]
    rows = []
    for i in range(size):
        r0, r1 = (i * h) // size, -(-((i + 1) * h) // size)
        cells = [x[..., r0:r1, (j * w) // size:-(-((j + 1) * w) // size)].amax(dim=(-2, -1)) for j in range(size)]
        rows.append(torch.stack(cells, dim=-1))
    return torch.stack(rows, dim=-2)


def spatial_pyramid_pool(x: torch.Tensor, levels: tuple[int, ...], pool: str = "max") -> torch.Tensor:
    """Max-pool (``pool="avg"``: average-pool) (B,C,H,W) to an l x l grid for each level l, flatten and concatenate
    -> (B, C*sum(l^2)). On CUDA with torch's deterministic algorithms on, max pooling uses
    :func:`adaptive_max_pool2d_by_slices` (same values, deterministic backward)."""
    if pool == "avg":
        return torch.cat([F.adaptive_avg_pool2d(x, l).flatten(1) for l in levels], dim=1)
    if pool != "max":
        raise ValueError(f"spp pool must be 'max' or 'avg', got {pool!r}")
    pool = adaptive_max_pool2d_by_slices if x.is_cuda and torch.are_deterministic_algorithms_enabled() else F.adaptive_max_pool2d
    return torch.cat([pool(x, l).flatten(1) for l in levels], dim=1)


@dataclass
class GraderOutput:
    """``logits`` (B,5) as trained (dropout active in train mode); ``clean_logits`` the same head
    without dropout (the score Grad-CAM differentiates); ``features`` {stage: activation}."""

    logits: torch.Tensor
    clean_logits: torch.Tensor
    features: dict[int, torch.Tensor]


class GradingNet(nn.Module):
    """ResNet-18 + SPP + FC-hidden-ReLU-dropout-FC-5 on [image, lesion probs] (or the image only)."""

    def __init__(self, width: int = 64, spp_levels: tuple[int, ...] = (1, 2, 4), fc_hidden: int = 512, dropout: float = 0.5, use_lesion_maps: bool = True, n_lesions: int = 4,
                 spp_pool: str = "max"):
        super().__init__()
        self.use_lesion_maps = use_lesion_maps
        self.spp_pool = spp_pool
        self.in_channels = 3 + (n_lesions if use_lesion_maps else 0)
        self.spp_levels = tuple(int(l) for l in spp_levels)
        self.trunk = resnet18_trunk(self.in_channels, width)
        self.stage_channels = {1: width, 2: 2 * width, 3: 4 * width, 4: 8 * width}
        self.fc1 = nn.Linear(8 * width * sum(l * l for l in self.spp_levels), fc_hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(fc_hidden, N_GRADES)

    @classmethod
    def from_config(cls, cfg, use_lesion_maps: bool | None = None) -> "GradingNet":
        use = cfg.use_lesion_maps if use_lesion_maps is None else use_lesion_maps
        return cls(cfg.width, cfg.spp_levels, cfg.fc_hidden, cfg.dropout, use, spp_pool=getattr(cfg, "spp_pool", "max"))

    def make_input(self, image: torch.Tensor, lesion_probs: torch.Tensor | None) -> torch.Tensor:
        """Concatenate the image with the lesion probability maps when this grader uses them."""
        if not self.use_lesion_maps:
            return image
        if lesion_probs is None:
            raise ValueError("this GradingNet uses lesion maps (model.grader.use_lesion_maps=True) but none were given")
        if lesion_probs.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"lesion maps {tuple(lesion_probs.shape)} do not match the image {tuple(image.shape)}")
        return torch.cat([image, lesion_probs.to(image.dtype)], dim=1)

    def _head(self, feat: torch.Tensor, dropout: bool) -> torch.Tensor:
        h = F.relu(self.fc1(spatial_pyramid_pool(feat, self.spp_levels, self.spp_pool)))
        return self.fc2(self.dropout(h) if dropout else h)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """``x`` (B, in_channels, H, W) -> logits (B,5), or a :class:`GraderOutput` if ``return_features``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"GradingNet expects (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        feats = {}
        for i, layer in enumerate((t.layer1, t.layer2, t.layer3, t.layer4), start=1):
            x = layer(x)
            feats[i] = x
        logits = self._head(x, dropout=True)
        if not return_features:
            return logits
        clean = self._head(x, dropout=False) if (self.training and self.dropout.p > 0) else logits
        return GraderOutput(logits, clean, feats)
