"""Baselines of the DeepMT-DR comparison, built from the same parts (see ``methods.METHODS``).

* ``bicubic`` – no training: SR = bicubic up-sampling of the LR image (zero stages).
* ``srcnn`` – SRCNN 9-1-5 (Dong et al. 2014; 64 and 32 filters) on the bicubic image. With
  ``model.isr.global_skip`` (default) it predicts the residual to the bicubic image (VDSR-style) so
  it trains in the few epochs a CPU affords; ``global_skip=False`` is the original.
* ``edsr`` – EDSR-style single-task ISR (Lim et al. 2017): conv, residual blocks without BN
  (residual scaling 0.1), conv + long skip, pixel-shuffle up-sampling, conv; same width and depth
  as our ISR subnet (``model.isr``), linear output (clamped to [0,1] at inference only).
* ``isr`` – our ISR subnet alone, trained with pixel + TV loss only (no task-aware feedback).
* ``unet_lr`` / ``unet_bicubic`` / ``unet_hr`` – the lesion U-Net alone on the LR image (logits
  up-sampled bilinearly to the HR size), on the bicubic image, or on the HR image (upper bound).
* ``grader_lr`` / ``grader_bicubic`` / ``grader_hr`` – the ResNet-18 + SPP grader with a 3-channel
  input on LR / bicubic / HR images (HR = upper bound). ``method.visualize(batch)`` (or
  ``method.compute_vis = True``) gives plain Grad-CAM visualization maps (no feature selection;
  untrained equal fusion weights).
* ``two_stage`` – ISR subnet trained first with the pixel loss (stage ``"isr"``), then frozen, and
  a grader trained on its SR images (stage ``"grade"``).
* ``foo_mt`` / ``foo_mt_hr`` – Foo et al. (AAAI 2020) style multi-task net without ISR: one shared
  encoder (the lesion U-Net's), the segmentation decoder and a classification head (global average
  pooling of the bottleneck, FC-hidden, ReLU, dropout, FC-5); input bicubic image / HR image;
  loss = segmentation loss + CE.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepmt.data.degradation import bicubic_upsample
from deepmt.losses.grading import weighted_cross_entropy
from deepmt.losses.isr import isr_loss
from deepmt.losses.segmentation import segmentation_loss
from deepmt.models.grading import N_GRADES, GradingNet
from deepmt.models.isr import ISRNet
from deepmt.models.base import Method, MethodOutput
from deepmt.models.segmentation import LesionUNet
from deepmt.models.visualization import VisualizationMap, gradcam_target

INPUTS = ("lr", "bicubic", "hr")


def _check_input_kind(kind: str) -> str:
    if kind not in INPUTS:
        raise ValueError(f"baseline input must be one of {INPUTS}, got {kind!r}")
    return kind


def _image(batch: dict, kind: str, scale: int) -> torch.Tensor:
    """The input image of a baseline: the LR image, its bicubic up-sampling, or the HR image."""
    if kind == "hr":
        return batch["hr"]
    return batch["lr"] if kind == "lr" else bicubic_upsample(batch["lr"], scale)


# ------------------------------------------------------------------------- SR networks
class SRCNN(nn.Module):
    """SRCNN 9-1-5 (64/32 filters) on the bicubic image; predicts the residual to it when
    ``residual`` (``model.isr.global_skip``), the image itself otherwise (the original)."""

    def __init__(self, scale: int, f1: int = 64, f2: int = 32, residual: bool = True):
        super().__init__()
        self.scale = scale
        self.residual = residual
        self.conv1 = nn.Conv2d(3, f1, 9, padding=4)
        self.conv2 = nn.Conv2d(f1, f2, 1)
        self.conv3 = nn.Conv2d(f2, 3, 5, padding=2)
        if residual:
            nn.init.normal_(self.conv3.weight, std=1e-3)
            nn.init.zeros_(self.conv3.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = bicubic_upsample(lr, self.scale)
        y = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return x + y if self.residual else y


class EDSRBlock(nn.Module):
    def __init__(self, c: int, res_scale: float = 0.1):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class EDSR(nn.Module):
    """EDSR-style ISR: head conv, residual blocks (no BN), conv + long skip, pixel shuffle, conv.

    With ``residual`` (default, as for SRCNN and the ISR subnet: ``model.isr.global_skip``) the network
    predicts the residual over bicubic up-sampling, so it starts at bicubic quality; without it, it had not
    reached bicubic PSNR after the quick profile's epochs (27.9 dB vs 28.2 at 6 epochs, 29.3 at 30).
    """

    def __init__(self, scale: int, channels: int = 64, n_resblocks: int = 16, residual: bool = True):
        super().__init__()
        self.scale = scale
        self.residual = residual
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[EDSRBlock(channels) for _ in range(n_resblocks)], nn.Conv2d(channels, channels, 3, padding=1))
        ups = []
        for _ in range(scale.bit_length() - 1):
            ups += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2)]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.head(lr - 0.5)
        x = x + self.body(x)
        base = bicubic_upsample(lr, self.scale) if self.residual else 0.5
        return self.tail(self.upsample(x)) + base


# ------------------------------------------------------------------------- methods
class BicubicBaseline(Method):
    """SR = bicubic up-sampling; nothing to train."""

    tasks = frozenset({"isr"})
    stages = ()

    def __init__(self, cfg, class_counts=None):
        super().__init__("bicubic", cfg, class_counts)

    def stage_modules(self, stage):
        return []

    def selection_metric(self, stage):
        self.check_stage(stage)
        return "psnr"

    def _stage_loss(self, batch, stage):  # pragma: no cover - no stages
        raise RuntimeError("the bicubic baseline has no training stage")

    def forward(self, batch):
        return MethodOutput(sr=bicubic_upsample(batch["lr"], self.scale))


class SRBaseline(Method):
    """Single-task ISR (``srcnn``, ``edsr`` or our ``isr`` subnet), pixel + TV loss."""

    tasks = frozenset({"isr"})
    stages = ("single",)

    def __init__(self, arch: str, cfg, class_counts=None):
        super().__init__(arch, cfg, class_counts)
        c = cfg.model.isr
        if arch == "srcnn":
            self.isr = SRCNN(self.scale, residual=c.global_skip)
        elif arch == "edsr":
            self.isr = EDSR(self.scale, c.channels, c.n_resblocks, residual=c.global_skip)
        elif arch == "isr":
            self.isr = ISRNet.from_config(c, self.scale)
        else:
            raise ValueError(f"unknown SR baseline {arch!r}")

    def stage_modules(self, stage):
        return [self.isr]

    def stage_uses_unlabelled(self, stage):
        """Pixel + TV loss against the HR image: no labels needed."""
        self.check_stage(stage)
        return True

    def selection_metric(self, stage):
        self.check_stage(stage)
        return "psnr"

    def _stage_loss(self, batch, stage):
        return isr_loss(self.isr(batch["lr"]), batch["hr"], self.cfg.loss)

    def forward(self, batch):
        sr = self.isr(batch["lr"])
        return MethodOutput(sr=sr if self.training else sr.clamp(0, 1))


class SegBaseline(Method):
    """Single-task lesion segmentation on LR / bicubic / HR images."""

    tasks = frozenset({"seg"})
    stages = ("single",)

    def __init__(self, kind: str, cfg, class_counts=None):
        super().__init__(f"unet_{_check_input_kind(kind)}", cfg, class_counts)
        self.kind = kind
        self.seg = LesionUNet.from_config(cfg.model.seg)

    def stage_modules(self, stage):
        return [self.seg]

    def selection_metric(self, stage):
        self.check_stage(stage)
        return "aupr"  # mean AUPR over lesions: threshold-free, stable where mean Dice collapsed on one lesion

    def _logits(self, batch, return_sides=False):
        x = _image(batch, self.kind, self.scale)
        size = batch["lr"].shape[-2] * self.scale, batch["lr"].shape[-1] * self.scale
        out = self.seg(x, return_sides=return_sides)
        final, sides = out if return_sides else (out, [])
        if final.shape[-2:] != size:  # LR input: up-sample the logits to the HR size
            final = F.interpolate(final, size=size, mode="bilinear", align_corners=False)
            sides = [F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in sides]
        return final, sides

    def _stage_loss(self, batch, stage):
        logits, sides = self._logits(batch, return_sides=True)
        return segmentation_loss(logits, batch["masks"], batch["mask_present"], self.cfg.loss, sides)

    def forward(self, batch):
        logits, _ = self._logits(batch)
        return MethodOutput(lesion_logits=logits, lesion_probs=torch.sigmoid(logits.float()))


class GraderBaseline(Method):
    """Single-task grading (3-channel ResNet-18 + SPP) on LR / bicubic / HR images."""

    tasks = frozenset({"grade"})
    stages = ("single",)

    def __init__(self, kind: str, cfg, class_counts=None):
        super().__init__(f"grader_{_check_input_kind(kind)}", cfg, class_counts)
        self.kind = kind
        self.grader = GradingNet.from_config(cfg.model.grader, use_lesion_maps=False)
        v = cfg.model.vis
        self.vis = VisualizationMap(v.stages, feature_selection=False)
        #: also return plain Grad-CAM maps from ``forward`` (costs one backward pass through the grader)
        self.compute_vis = False

    def stage_modules(self, stage):
        return [self.grader]

    def _stage_loss(self, batch, stage):
        logits = self.grader(_image(batch, self.kind, self.scale))
        return {"grade_ce": weighted_cross_entropy(logits, batch["grade"], self.class_weight)}

    def _grade_and_visualize(self, batch, grade):
        """(grader output, plain multi-stage Grad-CAM map at the HR size) for the target ``grade`` (None:
        the predicted grade)."""
        x = _image(batch, self.kind, self.scale)
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            out = self.grader(xi, return_features=True)
            target = gradcam_target(out.clean_logits, grade)
            score = out.clean_logits.gather(1, target[:, None]).squeeze(1)
            size = (batch["lr"].shape[-2] * self.scale, batch["lr"].shape[-1] * self.scale)
            vis = self.vis(score, out.features, size, None, create_graph=False)
        return out, vis

    def forward(self, batch):
        if not self.compute_vis:
            return MethodOutput(grade_logits=self.grader(_image(batch, self.kind, self.scale)))
        grad_on = torch.is_grad_enabled()
        out, vis = self._grade_and_visualize(batch, None)
        logits = out.logits if grad_on else out.logits.detach()
        return MethodOutput(grade_logits=logits, vis_map=vis.detach())

    def _visualize(self, batch, grade):
        out, vis = self._grade_and_visualize(batch, grade)
        return MethodOutput(grade_logits=out.logits.detach(), vis_map=vis.detach())


class TwoStage(Method):
    """ISR trained first (pixel + TV), then frozen; a 3-channel grader trained on its SR images."""

    tasks = frozenset({"isr", "grade"})
    stages = ("isr", "grade")

    def __init__(self, cfg, class_counts=None):
        super().__init__("two_stage", cfg, class_counts)
        self.isr = ISRNet.from_config(cfg.model.isr, self.scale)
        self.grader = GradingNet.from_config(cfg.model.grader, use_lesion_maps=False)

    def stage_modules(self, stage):
        return {"isr": [self.isr], "grade": [self.grader]}[stage]

    def stage_uses_unlabelled(self, stage):
        """The ISR stage learns from HR images alone; the grading stage needs grades."""
        self.check_stage(stage)
        return stage == "isr"

    def stage_grades(self, stage):
        """The ISR stage does not grade (it may train on crops); the grading stage does."""
        self.check_stage(stage)
        return stage == "grade"

    def stage_trains_grader_only(self, stage):
        """The grading stage trains the grader alone on the frozen ISR's images."""
        self.check_stage(stage)
        return stage == "grade"

    def selection_metric(self, stage):
        self.check_stage(stage)
        return "psnr" if stage == "isr" else self.cfg.train.selection_metric

    def _stage_loss(self, batch, stage):
        if stage == "isr":
            return isr_loss(self.isr(batch["lr"]), batch["hr"], self.cfg.loss)
        with torch.no_grad():
            sr = self.isr(batch["lr"])
        return {"grade_ce": weighted_cross_entropy(self.grader(sr), batch["grade"], self.class_weight)}

    def forward(self, batch):
        sr = self.isr(batch["lr"])
        return MethodOutput(sr=sr, grade_logits=self.grader(sr))


def foo_classification_head(in_channels: int, grader_cfg) -> nn.Sequential:
    """Classification branch on the shared encoder's bottleneck: GAP, FC-hidden, ReLU, dropout, FC-5."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(in_channels, grader_cfg.fc_hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(grader_cfg.dropout),
        nn.Linear(grader_cfg.fc_hidden, N_GRADES),
    )


class FooMT(Method):
    """Foo et al. (AAAI 2020) style multi-task segmentation + grading without ISR: the lesion U-Net
    (shared encoder + segmentation decoder) and a classification head on its bottleneck."""

    tasks = frozenset({"seg", "grade"})
    stages = ("single",)

    def __init__(self, kind: str, cfg, class_counts=None):
        if kind not in ("bicubic", "hr"):
            raise ValueError(f"foo_mt input must be 'bicubic' or 'hr', got {kind!r}")
        super().__init__("foo_mt" if kind == "bicubic" else "foo_mt_hr", cfg, class_counts)
        self.kind = kind
        self.seg = LesionUNet.from_config(cfg.model.seg)
        self.grader = foo_classification_head(self.seg.widths[-1], cfg.model.grader)

    def stage_modules(self, stage):
        return [self.seg, self.grader]

    def _run(self, batch, return_sides=False):
        feats = self.seg.encode(_image(batch, self.kind, self.scale))
        return self.seg.decode(feats, return_sides=return_sides), self.grader(feats[-1])

    def _stage_loss(self, batch, stage):
        (logits, sides), grade_logits = self._run(batch, return_sides=True)
        terms = segmentation_loss(logits, batch["masks"], batch["mask_present"], self.cfg.loss, sides)
        terms["grade_ce"] = weighted_cross_entropy(grade_logits, batch["grade"], self.class_weight)
        return terms

    def forward(self, batch):
        logits, grade_logits = self._run(batch)
        return MethodOutput(lesion_logits=logits, lesion_probs=torch.sigmoid(logits.float()), grade_logits=grade_logits)
