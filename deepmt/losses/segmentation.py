"""Lesion segmentation loss of DeepMT-DR: Dice + focal (alpha 0.25, gamma 2), with deep supervision.

Every term is computed per (image, lesion channel) and averaged only over the pairs whose
``mask_present`` flag is True: an un-annotated channel is *unknown*, not empty, so it is excluded
(flags, not zeros). Logits are cast to fp32 first (safe under bf16 autocast).

An annotated but *empty* mask (the image has none of that lesion) is where the two terms differ. With
``loss.seg_dice_empty = "include"`` the soft Dice of such a pair, ``1 - 1 / (sum p + 1)``, is near 1 unless the
map is all zero; a rare lesion is absent from most images, so these pairs pull its channel towards predicting
nothing, and on the synthetic benchmark that killed the SE channel of U-Net on HR (notebook 03's lesion-channel
check). ``"skip"`` averages Dice only over pairs with a lesion pixel (:func:`lesion_pairs`) and leaves the
empty ones to the focal loss, which every annotated pair still enters.
"""

from __future__ import annotations

import torch
from torchvision.ops import sigmoid_focal_loss

DICE_SMOOTH = 1.0


def masked_mean(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean of (B,C) ``values`` over the True entries of ``present`` (0, still in the graph, if none)."""
    w = present.to(values.dtype)
    return (values * w).sum() / w.sum().clamp_min(1.0)


def dice_per_channel(logits: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 sum pg + s) / (sum p + sum g + s)`` per image and channel -> (B,C)."""
    p = torch.sigmoid(logits.float())
    g = target.float()
    inter = (p * g).sum(dim=(-2, -1))
    return 1 - (2 * inter + smooth) / (p.sum(dim=(-2, -1)) + g.sum(dim=(-2, -1)) + smooth)


def focal_per_channel(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017, torchvision) averaged over pixels -> (B,C)."""
    fl = sigmoid_focal_loss(logits.float(), target.float(), alpha=alpha, gamma=gamma, reduction="none")
    return fl.mean(dim=(-2, -1))


def lesion_pairs(target: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(B,C) True where the channel is annotated (``present``) and its mask has at least one lesion pixel."""
    return present.bool() & (target.flatten(2).amax(dim=-1) > 0)


def dice_loss(logits, target, present, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    return masked_mean(dice_per_channel(logits, target, smooth), present)


def focal_loss(logits, target, present, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    return masked_mean(focal_per_channel(logits, target, alpha, gamma), present)


def segmentation_loss(
    logits: torch.Tensor,
    masks: torch.Tensor,
    present: torch.Tensor,
    loss_cfg,
    sides: list[torch.Tensor] | None = None,
    prefix: str = "seg",
) -> dict[str, torch.Tensor]:
    """Weighted segmentation terms: ``{prefix}_dice``, ``{prefix}_focal`` on the final maps and
    ``{prefix}_deep`` = ``loss.seg_deep`` x mean over side outputs of (dice + focal, same weights).
    A term whose weight is 0 is left out (not computed). Dice is averaged over the pairs
    ``loss.seg_dice_empty`` names (module docstring); focal over every annotated pair."""
    w_dice, w_focal = loss_cfg.seg_dice, loss_cfg.seg_focal
    a, g = loss_cfg.focal_alpha, loss_cfg.focal_gamma
    dice_pairs = lesion_pairs(masks, present) if loss_cfg.seg_dice_empty == "skip" else present

    def both(lg):
        out = {}
        if w_dice:
            out["dice"] = w_dice * dice_loss(lg, masks, dice_pairs)
        if w_focal:
            out["focal"] = w_focal * focal_loss(lg, masks, present, a, g)
        return out

    terms = {f"{prefix}_{k}": v for k, v in both(logits).items()}
    w_deep = loss_cfg.seg_deep
    if sides and w_deep and (w_dice or w_focal):
        side_losses = [sum(both(s).values()) for s in sides]
        terms[f"{prefix}_deep"] = w_deep * torch.stack(side_losses).mean()
    return terms
