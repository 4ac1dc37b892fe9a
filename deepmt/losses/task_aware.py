"""The task-aware loss of DeepMT-DR (the paper's main novelty) and the journal's unsupervised part.

In the authors' code form::

    ISR loss     = MSE(SR, HR) + 1e-6 TV(SR)
                 + seg_aware        * MSE(seg(SR), seg(HR))      # segmentation-aware
                 + cls_aware        * MSE(vis(SR), vis(HR))      # classification-aware
                 + grading_feedback * grading loss               # grading fed back into ISR
    grading loss = CE + vis_consistency * MSE(vis map, lesion map)

``seg(HR)`` and ``vis(HR)`` are detached targets (lesion probabilities and visualization maps the
networks produce on the real HR image). The ISR loss is the loss of the ISR parameters only: the
authors step one optimiser per subnet. With one optimiser over all parameters we keep that routing
exactly with :func:`feedback_terms`: the later subnets run on a *cut* copy of the SR image, and the
gradient of a feedback loss w.r.t. that copy is handed to the ISR subnet through a surrogate whose
value equals the loss and whose gradient reaches the ISR parameters only.

Journal extension: for images without any lesion annotation, the binarised visualization map of
the HR image serves as pseudo ground truth for the union of the lesion maps (Dice + BCE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lesion_union(probs: torch.Tensor) -> torch.Tensor:
    """Probabilistic union ``1 - prod_c (1 - p_c)`` of (B,4,H,W) lesion maps -> (B,1,H,W)
    (same as :func:`deepmt.models.segmentation.lesion_union`; repeated to keep losses import-free)."""
    return 1 - torch.prod(1 - probs, dim=1, keepdim=True)


def seg_aware_loss(probs_sr: torch.Tensor, probs_hr: torch.Tensor) -> torch.Tensor:
    """MSE(seg(SR), seg(HR)) on lesion probabilities; the HR side is a detached target."""
    return F.mse_loss(probs_sr.float(), probs_hr.detach().float())


def cls_aware_loss(vis_sr: torch.Tensor, vis_hr: torch.Tensor) -> torch.Tensor:
    """MSE(vis(SR), vis(HR)); the HR map is a detached target."""
    return F.mse_loss(vis_sr.float(), vis_hr.detach().float())


def vis_consistency_loss(vis: torch.Tensor, lesion_probs: torch.Tensor) -> torch.Tensor:
    """MSE(visualization map, union of the lesion maps), the lesion maps detached."""
    return F.mse_loss(vis.float(), lesion_union(lesion_probs.detach().float()))


def pseudo_masks(vis_hr: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Journal: binarised visualization map of the HR image, (B,1,H,W) in {0, 1}."""
    return (vis_hr.detach().float() > threshold).float()


def unsupervised_seg_loss(lesion_probs: torch.Tensor, pseudo: torch.Tensor, select: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Dice + BCE between the union of the predicted lesion maps and the pseudo masks, averaged over
    the images in ``select`` (B,) bool (those without any lesion annotation); 0 if none."""
    u = lesion_union(lesion_probs.float()).clamp(1e-6, 1 - 1e-6)
    t = pseudo.float()
    inter = (u * t).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + smooth) / (u.sum(dim=(1, 2, 3)) + t.sum(dim=(1, 2, 3)) + smooth)
    bce = -(t * torch.log(u) + (1 - t) * torch.log(1 - u)).mean(dim=(1, 2, 3))
    w = select.to(u.dtype)
    return ((dice + bce) * w).sum() / w.sum().clamp_min(1.0)


def cut(source: torch.Tensor, track: bool = True) -> torch.Tensor:
    """A copy of ``source`` cut from its graph, as the input of the later subnets. With ``track``
    it requires grad (a non-leaf clone, which also works under ``FlopCounterMode``), so that
    :func:`feedback_terms` can differentiate losses w.r.t. it."""
    x = source.detach()
    return x.requires_grad_(True).clone() if track else x


def feedback_terms(values: dict[str, torch.Tensor], cut_input: torch.Tensor, source: torch.Tensor) -> dict[str, torch.Tensor]:
    """Route the gradient of each of ``values`` w.r.t. ``cut_input`` into ``source`` only.

    ``cut_input`` is ``cut(source)`` (what the later subnets consumed). Returns
    scalars equal to ``values`` whose backward pass gives ``source`` (hence the ISR parameters)
    exactly ``d sum(values) / d cut_input`` and gives the later subnets' parameters nothing.
    One ``autograd.grad`` call serves all terms (the summed gradient is attached to the first term).
    """
    if not values:
        return {}
    total = torch.stack([v.float() for v in values.values()]).sum()
    (g,) = torch.autograd.grad(total, cut_input, retain_graph=True)
    surrogate = (source.float() * g.detach().float()).sum()
    out = {k: v.detach() for k, v in values.items()}
    first = next(iter(out))
    out[first] = out[first] + surrogate - surrogate.detach()
    return out
