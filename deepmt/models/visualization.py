"""Visualization map of DeepMT-DR: where the grading subnet looks, for the task-aware loss.

Paper (framework figure): gradient-weighted activation maps (Grad-CAM, Selvaraju et al. 2017) of
several ResNet stages, a **lesion-oriented feature selection** that removes feature maps whose IoU
with the lesion maps is below a threshold, and a coarse-to-fine "x2 upscale + weighted combine"
fusion into one map.

Implementation:

1. Grad-CAM weights per stage ``s`` and channel ``k``: ``alpha_k = mean_xy d y_c / d A_k`` where
   ``y_c`` is the (dropout-free) logit of the target grade – the true grade when known (training),
   otherwise the predicted one – computed with ``torch.autograd.grad`` (``create_graph=True`` when
   the map enters a loss, so the map is differentiable w.r.t. the activations *and* the weights).
2. Feature selection (:func:`select_lesion_features`): each activation map is max-normalised per
   image, binarised at ``vis.binarize_threshold`` and compared with the union of the lesion maps
   (binarised at the same threshold after **max-pooling** down to the stage's resolution, so tiny
   microaneurysms survive the down-sampling). Maps with IoU < ``vis.iou_threshold`` are zeroed.
   If an image has no lesion pixel at that stage, or every map would be dropped, all maps are kept
   (selection is undefined there; keeping them falls back to plain Grad-CAM).
3. Per stage: ``cam_s = ReLU(sum_k keep_k alpha_k A_k)``, max-normalised per image.
4. Fusion coarse to fine: ``m <- a_s * up(m) + b_s * cam_s`` with learned weights made positive by
   softplus (initialised to 1), ``up`` bilinear to the finer stage's size (x2 for ResNet stages).
5. ReLU, bilinear up-sampling to the image size, max-normalisation per image to [0, 1]
   (``m / (max m + eps)``; an all-zero map stays zero).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6


def max_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Divide each (C,H,W) map of a (B,C,H,W) tensor by its spatial max (per image and channel)."""
    return x / (x.amax(dim=(-2, -1), keepdim=True) + eps)


def select_lesion_features(
    activations: torch.Tensor, lesion_union: torch.Tensor, binarize_threshold: float = 0.5, iou_threshold: float = 0.05
) -> torch.Tensor:
    """Lesion-oriented feature selection: a bool (B,K) mask of the feature maps to keep.

    Args:
        activations: (B,K,h,w) activations of one ResNet stage (non-negative, post-ReLU).
        lesion_union: (B,1,H,W) union of the lesion probability maps (any resolution >= h,w).
    """
    a = max_normalize(activations.detach().float().clamp_min(0))
    fmap = a > binarize_threshold
    les = F.adaptive_max_pool2d(lesion_union.detach().float(), activations.shape[-2:]) > binarize_threshold
    inter = (fmap & les).sum(dim=(-2, -1)).float()
    union = (fmap | les).sum(dim=(-2, -1)).float()
    iou = inter / union.clamp_min(1)
    keep = iou >= iou_threshold
    has_lesion = les.flatten(1).any(dim=1, keepdim=True)
    keep = keep | ~has_lesion  # no lesion at this stage: nothing to select against
    keep = keep | ~keep.any(dim=1, keepdim=True)  # never drop every map
    return keep


def gradcam_target(clean_logits: torch.Tensor, grade: torch.Tensor | None = None) -> torch.Tensor:
    """Target class per image: the true grade where known (>= 0), else the predicted grade."""
    pred = clean_logits.detach().argmax(dim=1)
    if grade is None:
        return pred
    grade = grade.to(pred.device).long()
    return torch.where(grade >= 0, grade, pred)


class VisualizationMap(nn.Module):
    """Fuses Grad-CAM maps of ``stages`` (ResNet stage indices) into one (B,1,H,W) map in [0,1]."""

    def __init__(self, stages: tuple[int, ...] = (2, 3, 4), feature_selection: bool = True, iou_threshold: float = 0.05, binarize_threshold: float = 0.5):
        super().__init__()
        if not stages or any(s not in (1, 2, 3, 4) for s in stages):
            raise ValueError(f"model.vis.stages must be ResNet stages in 1..4, got {stages!r}")
        self.stages = tuple(sorted(set(int(s) for s in stages), reverse=True))  # coarse -> fine
        self.feature_selection = feature_selection
        self.iou_threshold = iou_threshold
        self.binarize_threshold = binarize_threshold
        init = math.log(math.e - 1)  # softplus(init) == 1
        # one (a_s, b_s) pair per finer stage: m <- a_s * up(m) + b_s * cam_s
        self.fusion_raw = nn.Parameter(torch.full((max(len(self.stages) - 1, 1), 2), init))

    @classmethod
    def from_config(cls, cfg) -> "VisualizationMap":
        return cls(cfg.stages, cfg.feature_selection, cfg.iou_threshold, cfg.binarize_threshold)

    def fusion_weights(self) -> torch.Tensor:
        return F.softplus(self.fusion_raw)

    def forward(
        self,
        score: torch.Tensor,
        features: dict[int, torch.Tensor],
        image_size: tuple[int, int],
        lesion_union: torch.Tensor | None = None,
        create_graph: bool = True,
    ) -> torch.Tensor:
        """Build the map.

        Args:
            score: (B,) target-grade scores (must depend on ``features`` through autograd).
            features: {stage: (B,K,h,w) activation}, must require grad.
            image_size: (H, W) of the output map.
            lesion_union: (B,1,H,W) lesion union for feature selection (None: no selection).
            create_graph: keep the Grad-CAM gradients differentiable (needed when the map is in a loss).
        """
        acts = [features[s] for s in self.stages]
        if not all(a.requires_grad for a in acts):
            raise RuntimeError("visualization map: the grader activations do not require grad (run the grader under torch.enable_grad())")
        grads = torch.autograd.grad(score.sum(), acts, create_graph=create_graph, retain_graph=True)
        if not create_graph:
            acts = [a.detach() for a in acts]
        cams = []
        for a, g in zip(acts, grads):
            alpha = g.float().mean(dim=(-2, -1), keepdim=True)  # (B,K,1,1)
            a = a.float()
            if self.feature_selection and lesion_union is not None:
                keep = select_lesion_features(a, lesion_union, self.binarize_threshold, self.iou_threshold)
                alpha = alpha * keep[..., None, None].to(alpha.dtype)
            cams.append(max_normalize(F.relu((alpha * a).sum(dim=1, keepdim=True))))
        w = self.fusion_weights()
        m = cams[0]
        for i, cam in enumerate(cams[1:]):
            m = w[i, 0] * F.interpolate(m, size=cam.shape[-2:], mode="bilinear", align_corners=False) + w[i, 1] * cam
        m = F.interpolate(F.relu(m), size=tuple(image_size), mode="bilinear", align_corners=False)
        return max_normalize(F.relu(m))
