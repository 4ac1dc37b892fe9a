"""Losses of DeepMT-DR: ISR (pixel + TV), segmentation (Dice + focal, deep supervision), grading
(class-weighted CE) and the task-aware feedback terms. Each returns fp32 scalars; terms whose
weight is 0 are not computed."""

from deepmt.losses.grading import class_weights, weighted_cross_entropy
from deepmt.losses.isr import isr_loss, pixel_loss, tv_loss
from deepmt.losses.segmentation import dice_loss, focal_loss, lesion_pairs, masked_mean, segmentation_loss
from deepmt.losses.task_aware import (
    cls_aware_loss,
    cut,
    feedback_terms,
    pseudo_masks,
    seg_aware_loss,
    unsupervised_seg_loss,
    vis_consistency_loss,
)

__all__ = [
    "class_weights",
    "weighted_cross_entropy",
    "isr_loss",
    "pixel_loss",
    "tv_loss",
    "dice_loss",
    "lesion_pairs",
    "focal_loss",
    "masked_mean",
    "segmentation_loss",
    "cls_aware_loss",
    "cut",
    "feedback_terms",
    "pseudo_masks",
    "seg_aware_loss",
    "unsupervised_seg_loss",
    "vis_consistency_loss",
]
