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

**Calibration.** In the authors' form the feedback swamps the pixel term: measured on the ISR parameters
at the start of stage 2 (quick profile), the gradient norms were about 8e-4 for the mean-over-pixels MSE,
5e-3 for seg-aware, 2 for the grading feedback and 11 (up to 59) for cls-aware, so stage 2 trained the ISR
almost only to please the grader and its PSNR fell below bicubic. ``loss.feedback_scaling="calibrated"``
(the default) therefore rescales each feedback term so that its gradient on the ISR parameters is
``loss.feedback_ratio`` times the pixel term's, measured with :func:`isr_gradient_norms` over the first
``loss.calibration_batches`` training batches of stage 2 (:class:`FeedbackCalibration`);
``feedback_scaling="authors"`` keeps the authors' weights as they are. A weight of 0 switches a term off
in both settings (ablations).

Journal extension: for images without any lesion annotation, the binarised visualization map of
the HR image serves as pseudo ground truth for the union of the lesion maps (Dice + BCE).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: the feedback terms, in the order of :class:`FeedbackCalibration`'s buffers
FEEDBACK_TERMS = ("seg_aware", "cls_aware", "grading_feedback")


def lesion_union(probs: torch.Tensor) -> torch.Tensor:
    """Probabilistic union ``1 - prod_c (1 - p_c)`` of (B,4,H,W) lesion maps -> (B,1,H,W) (also the
    segmentation network's background channel, :func:`deepmt.models.segmentation.background_prob`)."""
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


def isr_gradient_norms(values: dict[str, torch.Tensor], cut_input: torch.Tensor, source: torch.Tensor,
                       params: Sequence[torch.Tensor], direct: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """L2 norm of each loss's gradient on the ISR parameters ``params``, term by term.

    ``values`` are losses of the later subnets (computed from ``cut_input = cut(source)``): their gradient
    reaches the ISR through ``source`` exactly as :func:`feedback_terms` routes it. ``direct`` are losses
    computed from ``source`` itself (the pixel term). Nothing is accumulated into ``.grad``.
    """
    params = [p for p in params if p.requires_grad]
    out: dict[str, float] = {}

    def norm(grads) -> float:
        return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))

    for name, v in (direct or {}).items():
        out[name] = norm(torch.autograd.grad(v.float(), params, retain_graph=True, allow_unused=True))
    for name, v in values.items():
        (g,) = torch.autograd.grad(v.float(), cut_input, retain_graph=True)
        out[name] = norm(torch.autograd.grad(source, params, grad_outputs=g.to(source.dtype), retain_graph=True, allow_unused=True))
    return out


class FeedbackCalibration(nn.Module):
    """Per-term scales of the task-aware feedback, measured once at the start of stage 2.

    Over the first ``n_batches`` stage-2 training batches it accumulates the gradient norms on the ISR
    parameters of the pixel term and of each (unweighted) feedback term; the scale of term t is then
    ``ratio * mean |grad pixel| / mean |grad t|``, so that its gradient is ``ratio`` times the pixel
    term's on those batches. While batches are still being measured the running means are used. The
    sums are persistent buffers: they travel with checkpoints, so a resumed or warm-started run uses
    the same scales and never measures again.
    """

    def __init__(self, ratio: float, n_batches: int):
        super().__init__()
        self.ratio = float(ratio)
        self.n_batches = int(n_batches)
        self.register_buffer("norm_sums", torch.zeros(1 + len(FEEDBACK_TERMS), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @property
    def done(self) -> bool:
        return int(self.count) >= self.n_batches

    def update(self, norms: dict[str, float]) -> None:
        """Add one batch's gradient norms (keys ``isr_pixel`` and the feedback terms measured)."""
        vec = [norms.get("isr_pixel", 0.0)] + [norms.get(t, 0.0) for t in FEEDBACK_TERMS]
        self.norm_sums += torch.tensor(vec, dtype=torch.float64, device=self.norm_sums.device)
        self.count += 1

    def finish_with_equal_norms(self) -> None:
        """Mark the measurement done with equal norms for every term (scales = ``ratio``): for timing the
        steady-state stage-2 step, which no longer measures (the bench)."""
        self.norm_sums.fill_(float(self.n_batches))
        self.count.fill_(self.n_batches)

    def scales(self) -> dict[str, float]:
        """Current scale per feedback term (1.0 before any batch was measured)."""
        if int(self.count) == 0:
            return {t: 1.0 for t in FEEDBACK_TERMS}
        pix = float(self.norm_sums[0])
        return {t: (self.ratio * pix / float(n) if float(n) > 0 else 1.0) for t, n in zip(FEEDBACK_TERMS, self.norm_sums[1:])}

    def summary(self) -> dict[str, float]:
        """Mean measured gradient norms (``grad_norm_<term>``) and the scales, for reports."""
        k = max(int(self.count), 1)
        names = ("isr_pixel",) + FEEDBACK_TERMS
        out = {f"grad_norm_{n}": float(v) / k for n, v in zip(names, self.norm_sums)}
        out.update({f"scale_{t}": v for t, v in self.scales().items()})
        out["batches"] = int(self.count)
        return out
