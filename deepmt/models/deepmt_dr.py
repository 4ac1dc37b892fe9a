"""DeepMT-DR: the hierarchy ISR -> lesion segmentation -> DR grading -> visualization map,
trained in stages with the task-aware loss (Wang et al., AAAI 2021; journal extension JBHI 2022).

Forward (inference, reads ``batch["lr"]`` only)::

    SR = ISR(LR);  P = sigmoid(Seg(SR));  logits = Grader([SR, P]);  V = Vis(Grader, P)

Training stages (``Method.stages``), following the paper's schedule:

* ``stage1a`` – ISR + segmentation. ISR: pixel + TV loss. Segmentation: Dice + focal (+ deep
  supervision) on ``Seg(SR)`` with the SR image detached (so the segmentation loss trains the
  segmentation subnet only) **and**, when ``loss.seg_on_hr`` (default), also on ``Seg(HR)`` in the
  same batch – stage 1b feeds the grader with ``Seg(HR)``, so the segmentation subnet must work on
  HR images too.
* ``stage1b`` – grading + visualization fusion on HR images with segmentation frozen (eval mode,
  no gradient): grader input ``[HR, Seg(HR)]``; loss CE + ``vis_consistency`` x MSE(Vis, lesion union).
  With ``loss.stage1b_input = "sr"`` (an ablation, not the paper) the grader learns from ``[SR, Seg(SR)]``
  instead, the frozen ISR's output for the LR input: the path it is validated and tested on.
* ``stage2`` – joint fine-tuning of all parts at ``lr * lr_stage2_factor`` with the task-aware loss:
  ISR loss (pixel + TV + seg-aware + cls-aware + grading feedback), segmentation loss on Seg(SR)
  (x ``seg_weight_in_joint``), grading loss (CE + vis consistency) and, when ``loss.unsupervised``
  > 0, the journal's unsupervised term (pseudo masks = binarised Vis(HR) for images whose
  ``mask_present`` is all False).

Gradient routing (one optimiser, but each loss trains the part it belongs to, as with the
authors' per-subnet optimisers): the segmentation and grading subnets consume a detached copy of SR;
the task-aware feedback terms reach the ISR parameters only, via
:func:`deepmt.losses.task_aware.feedback_terms`. The lesion maps fed to the grader are detached
(the grader treats them as input; segmentation is trained by its own losses), unless ``loss.grading_into_seg``. A term whose weight
is 0 is never computed, so it has no gradient path at all.

``deepmt_dr_noisr`` (``use_isr=False``) replaces the ISR subnet by bicubic up-sampling; the ISR
terms then vanish.
"""

from __future__ import annotations

import dataclasses

import torch

from deepmt.data.degradation import bicubic_upsample
from deepmt.losses.grading import weighted_cross_entropy
from deepmt.losses.isr import isr_loss
from deepmt.losses.segmentation import segmentation_loss
from deepmt.errors import ConfigMismatchError
from deepmt.losses.task_aware import (
    FeedbackCalibration,
    cls_aware_loss,
    cut,
    feedback_terms,
    isr_gradient_norms,
    pseudo_masks,
    seg_aware_loss,
    unsupervised_seg_loss,
    vis_consistency_loss,
)
from deepmt.models.grading import GradingNet
from deepmt.models.isr import ISRNet
from deepmt.models.base import Method, MethodOutput
from deepmt.models.segmentation import LesionUNet, lesion_union
from deepmt.models.visualization import VisualizationMap, gradcam_target


class DeepMTDR(Method):
    stages = ("stage1a", "stage1b", "stage2")
    #: config keys that affect training only from the named stage on (per the stage losses below): a warm start
    #: at stage S may change the keys of S and later stages. A new setting that only a later stage reads
    #: (e.g. a stage-2 loss weight) belongs here, or ablations of it retrain every stage.
    stage_config_keys = {
        "stage1a": frozenset(),
        "stage1b": frozenset({
            "train.epochs_stage1b", "train.selection_metric", "loss.vis_consistency", "loss.class_weights",
            "loss.stage1b_input", "model.grader.spp_pool", "model.grader.oracle_maps",
            "model.vis.feature_selection", "model.vis.iou_threshold", "model.vis.binarize_threshold",
        }),
        "stage2": frozenset({
            "train.epochs_stage2", "train.lr_stage2_factor", "loss.seg_aware", "loss.cls_aware",
            "loss.grading_feedback", "loss.unsupervised", "loss.seg_weight_in_joint", "loss.feedback_scaling",
            "loss.feedback_ratio", "loss.calibration_batches", "train.stage2_max_psnr_drop", "loss.grading_into_seg",
        }),
    }

    def __init__(self, cfg, class_counts=None, name: str = "deepmt_dr", use_isr: bool = True):
        super().__init__(name, cfg, class_counts)
        m = cfg.model
        self.isr = ISRNet.from_config(m.isr, self.scale) if use_isr else None
        self.seg = LesionUNet.from_config(m.seg)
        self.grader = GradingNet.from_config(m.grader)
        self.vis = VisualizationMap.from_config(m.vis)
        self.tasks = frozenset({"isr", "seg", "grade"} if use_isr else {"seg", "grade"})
        #: compute the visualization map in ``forward`` (one extra backward pass through the grader)
        self.compute_vis = True
        L = cfg.loss
        if L.feedback_scaling not in ("authors", "calibrated"):
            raise ConfigMismatchError(f"loss.feedback_scaling={L.feedback_scaling!r}: choose 'authors' or 'calibrated'")
        #: measured gradient norms / per-term scales of the task-aware feedback (with an ISR subnet). Built for
        #: either setting, so checkpoints load across them (an ablation warm-starts "authors" from a calibrated base).
        self.feedback_calibration = FeedbackCalibration(L.feedback_ratio, L.calibration_batches) if use_isr else None
        self.calibrate_feedback = use_isr and L.feedback_scaling == "calibrated"
        #: notebook 08's diagnosis: the grader reads the ground-truth lesion masks (``model.grader.oracle_maps``)
        self.oracle_maps = bool(getattr(m.grader, "oracle_maps", False))
        if self.oracle_maps and (cfg.data.mask_fraction < 1 or cfg.data.label_fraction < 1):
            raise ConfigMismatchError("model.grader.oracle_maps=True needs the lesion masks of every training image "
                                      "(data.mask_fraction=1 and data.label_fraction=1)")

    # ------------------------------------------------------------------ stages
    def stage_modules(self, stage):
        isr = [self.isr] if self.isr is not None else []
        return {
            "stage1a": isr + [self.seg],
            "stage1b": [self.grader, self.vis],
            "stage2": isr + [self.seg, self.grader, self.vis],
        }[stage]

    def selection_metric(self, stage):
        self.check_stage(stage)
        return "aupr" if stage == "stage1a" else self.cfg.train.selection_metric

    def stage_uses_unlabelled(self, stage):
        """Stage 1a's ISR learns from every HR image; its segmentation loss skips the unannotated ones. Without
        an ISR subnet stage 1a is segmentation only, and stages 1b and 2 need grades."""
        self.check_stage(stage)
        return stage == "stage1a" and self.isr is not None

    def stage_grades(self, stage):
        """Stage 1a (ISR + segmentation) does not grade; stages 1b and 2 do."""
        self.check_stage(stage)
        return stage != "stage1a"

    def stage_trains_grader_only(self, stage):
        """Stage 1b trains the grading subnet (and the fusion) alone; segmentation and the ISR are frozen."""
        self.check_stage(stage)
        return stage == "stage1b"

    def keeps_start_candidate(self, stage):
        """Stage 2 competes with the stage-1 weights it starts from: it never keeps a worse model."""
        return stage == "stage2"

    def kept_across_selection(self):
        """The feedback calibration measured in stage 2 is kept even when stage 2 falls back to its start weights."""
        return ("feedback_calibration.",) if self.feedback_calibration is not None else ()

    def selection_groups(self, stage):
        """Stage 1a under ``train.module_selection="per_module"``: the ISR is kept at its best validation PSNR, the
        segmentation at its best AUPR (the stage's metric). Selecting the whole stage on AUPR rolled the ISR back
        to an earlier, blurrier epoch (issue 27: 31.4-32.0 dB kept against 32.4-32.6 at the last epoch, 96 px),
        which confounds the comparison with the single-task ISR, kept at its own best PSNR."""
        self.check_stage(stage)
        if stage == "stage1a" and self.isr is not None and self.cfg.train.module_selection == "per_module":
            return {"isr": (("isr.",), "psnr")}
        return {}

    def selection_score(self, stage, val, start_val=None):
        """Stage 2: the grading metric, but an epoch whose validation PSNR fell more than
        ``train.stage2_max_psnr_drop`` dB below the stage-1 weights' is not eligible (-inf), so stage 2
        never silently keeps a super-resolution worse than stage 1's."""
        score = super().selection_score(stage, val, start_val)
        if stage == "stage2" and self.isr is not None and start_val and "psnr" in val and "psnr" in start_val:
            if float(val["psnr"]) < float(start_val["psnr"]) - float(self.cfg.train.stage2_max_psnr_drop):
                return float("-inf")
        return score

    # ------------------------------------------------------------------ parts
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        return self.isr(lr) if self.isr is not None else bicubic_upsample(lr, self.scale)

    def grade_and_visualize(
        self,
        image: torch.Tensor,
        lesion_probs: torch.Tensor,
        grade: torch.Tensor | None = None,
        need_vis: bool = True,
        create_graph: bool = False,
    ):
        """Grader on ``[image, lesion_probs]`` and (optionally) the visualization map.

        Returns (GraderOutput, vis map or None). The map uses the true grade where ``grade`` >= 0
        and the predicted one otherwise; feature selection uses the union of ``lesion_probs``.
        """
        x = self.grader.make_input(image, lesion_probs)
        if not need_vis:
            return self.grader(x, return_features=True), None
        with torch.enable_grad():
            if not x.requires_grad:  # activations must be in a graph for Grad-CAM
                x = x.detach().requires_grad_(True)
            out = self.grader(x, return_features=True)
            target = gradcam_target(out.clean_logits, grade)
            score = out.clean_logits.gather(1, target[:, None]).squeeze(1)
            union = lesion_union(lesion_probs.detach().float()) if lesion_probs is not None else None
            vis = self.vis(score, out.features, image.shape[-2:], union, create_graph=create_graph)
        return out, vis

    def grader_maps(self, batch: dict, probs: torch.Tensor) -> torch.Tensor:
        """The lesion maps the grader reads: the segmentation's probabilities ``probs``, or under
        ``model.grader.oracle_maps`` the ground-truth masks of ``batch`` (notebook 08's diagnosis)."""
        return batch["masks"].to(probs.dtype) if self.oracle_maps else probs

    def forward(self, batch: dict) -> MethodOutput:
        sr = self.super_resolve(batch["lr"])
        maps = batch["masks"].float() if self.oracle_maps else None
        return dataclasses.replace(self.grade_image(sr, need_vis=self.compute_vis, maps=maps), sr=sr)

    def grade_image(self, image: torch.Tensor, need_vis: bool = False, maps: torch.Tensor | None = None) -> MethodOutput:
        """The segmentation and grading subnets on a full-size ``image``: ``P = sigmoid(Seg(image))``,
        ``logits = Grader([image, P])`` (``[image, maps]`` when ``maps`` are given: the oracle diagnosis) and, with
        ``need_vis``, the visualization map (predicted grade); ``sr`` left None. ``forward`` feeds it the SR image;
        :mod:`deepmt.studies.pathway` feeds it the HR image or the bicubic-upsampled LR image instead (the grading
        pathway without its ISR)."""
        grad_on = torch.is_grad_enabled()
        logits = self.seg(image)
        probs = torch.sigmoid(logits.float())
        out, vis = self.grade_and_visualize(image, probs if maps is None else maps, None, need_vis=need_vis, create_graph=False)
        grade_logits = out.logits
        if not grad_on:  # Grad-CAM ran under enable_grad: do not hand out graphs at inference
            grade_logits = grade_logits.detach()
            vis = vis.detach() if vis is not None else None
        return MethodOutput(lesion_logits=logits, lesion_probs=probs, grade_logits=grade_logits, vis_map=vis)

    def _visualize(self, batch, grade):
        """The visualization map from the LR input (super-resolution and segmentation without gradients)."""
        with torch.no_grad():
            sr = self.super_resolve(batch["lr"])
            logits = self.seg(sr)
            probs = torch.sigmoid(logits.float())
        out, vis = self.grade_and_visualize(sr, self.grader_maps(batch, probs), grade, need_vis=True, create_graph=False)
        return MethodOutput(sr=sr, lesion_logits=logits, lesion_probs=probs, grade_logits=out.logits.detach(), vis_map=vis.detach())

    # ------------------------------------------------------------------ losses
    def _stage_loss(self, batch, stage):
        return {"stage1a": self._loss_stage1a, "stage1b": self._loss_stage1b, "stage2": self._loss_stage2}[stage](batch)

    def _loss_stage1a(self, batch):
        L = self.cfg.loss
        hr, masks, present = batch["hr"], batch["masks"], batch["mask_present"]
        terms = {}
        sr = self.super_resolve(batch["lr"])
        if self.isr is not None:
            terms.update(isr_loss(sr, hr, L))
        seg_in, seg_masks, seg_present = sr.detach(), masks, present
        if L.seg_on_hr:
            seg_in = torch.cat([seg_in, hr.to(seg_in.dtype)], dim=0)
            seg_masks, seg_present = torch.cat([masks, masks]), torch.cat([present, present])
        logits, sides = self.seg(seg_in, return_sides=True)
        terms.update(segmentation_loss(logits, seg_masks, seg_present, L, sides))
        return terms

    def _loss_stage1b(self, batch):
        L = self.cfg.loss
        grade = batch["grade"]
        with torch.no_grad():  # ISR and segmentation are frozen in this stage
            image = self.super_resolve(batch["lr"]) if L.stage1b_input == "sr" else batch["hr"]
            probs = self.grader_maps(batch, torch.sigmoid(self.seg(image).float()))
        need_vis = bool(L.vis_consistency)
        out, vis = self.grade_and_visualize(image, probs, grade, need_vis=need_vis, create_graph=True)
        terms = {"grade_ce": weighted_cross_entropy(out.logits, grade, self.class_weight)}
        if need_vis:
            terms["vis_consistency"] = L.vis_consistency * vis_consistency_loss(vis, probs)
        return terms

    def _loss_stage2(self, batch):
        L = self.cfg.loss
        hr, masks, present, grade = batch["hr"], batch["masks"], batch["mask_present"], batch["grade"]
        has_isr = self.isr is not None
        w_seg_aware = L.seg_aware if has_isr else 0.0
        w_cls_aware = L.cls_aware if has_isr else 0.0
        w_feedback = L.grading_feedback if has_isr else 0.0
        feedback = bool(w_seg_aware or w_cls_aware or w_feedback)
        terms: dict[str, torch.Tensor] = {}

        # low level: ISR
        sr = self.super_resolve(batch["lr"])
        if has_isr:
            terms.update(isr_loss(sr, hr, L))
        sr_cut = cut(sr, track=feedback)

        # mid level: segmentation of SR (trains the segmentation subnet only)
        logits, sides = self.seg(sr_cut, return_sides=True)
        probs = torch.sigmoid(logits.float())
        if L.seg_weight_in_joint:
            for k, v in segmentation_loss(logits, masks, present, L, sides).items():
                terms[k] = L.seg_weight_in_joint * v

        # targets on the real HR image (detached)
        need_vis_hr = bool(w_cls_aware or L.unsupervised)
        probs_hr = vis_hr = None
        if w_seg_aware or need_vis_hr:
            with torch.no_grad():
                probs_hr = torch.sigmoid(self.seg(hr).float())
        if need_vis_hr:
            _, vis_hr = self.grade_and_visualize(hr, self.grader_maps(batch, probs_hr), grade, need_vis=True, create_graph=False)
            vis_hr = vis_hr.detach()

        # high level: grading (+ visualization map) of SR
        need_vis_sr = bool(w_cls_aware or L.vis_consistency)
        # the maps reach the grader detached (segmentation learns from its own losses) unless loss.grading_into_seg
        maps = self.grader_maps(batch, probs if L.grading_into_seg else probs.detach())
        out, vis_sr = self.grade_and_visualize(sr_cut, maps, grade, need_vis=need_vis_sr, create_graph=True)
        ce = weighted_cross_entropy(out.logits, grade, self.class_weight)
        terms["grade_ce"] = ce
        grading_loss = ce
        if L.vis_consistency:
            terms["vis_consistency"] = L.vis_consistency * vis_consistency_loss(vis_sr, self.grader_maps(batch, probs))
            grading_loss = grading_loss + terms["vis_consistency"]

        # journal: pseudo masks from the HR visualization map for images without annotations
        if L.unsupervised:
            select = ~present.bool().any(dim=1)
            pseudo = pseudo_masks(vis_hr, self.cfg.model.vis.binarize_threshold)
            terms["unsupervised"] = L.unsupervised * unsupervised_seg_loss(probs, pseudo, select)

        # task-aware feedback into the ISR subnet only
        raw = {}
        if w_seg_aware:
            raw["seg_aware"] = seg_aware_loss(probs, probs_hr)
        if w_cls_aware:
            raw["cls_aware"] = cls_aware_loss(vis_sr, vis_hr)
        if w_feedback:
            raw["grading_feedback"] = grading_loss
        weights = {"seg_aware": w_seg_aware, "cls_aware": w_cls_aware, "grading_feedback": w_feedback}
        cal = self.feedback_calibration
        if cal is not None and raw and sr.device.type != "meta":  # meta: FLOP counting, no values to measure
            if self.training and not cal.done and torch.is_grad_enabled():
                # measured in both settings (reported by notebook 07); used only when calibrating
                cal.update(isr_gradient_norms(raw, sr_cut, sr, list(self.isr.parameters()), direct={"isr_pixel": terms["isr_pixel"]}))
            if self.calibrate_feedback:
                weights = cal.scales()
        fb = {k: weights[k] * v for k, v in raw.items()}
        terms.update(feedback_terms(fb, sr_cut, sr))
        return terms

    def feedback_summary(self) -> dict[str, float]:
        """The task-aware feedback's calibration: mean gradient norms on the ISR per term and the scales
        used (``loss.feedback_scaling="calibrated"``); the authors' weights otherwise."""
        L = self.cfg.loss
        if self.feedback_calibration is None:
            return {"scaling": "none (no ISR subnet)"}
        s = self.feedback_calibration.summary()
        if not self.calibrate_feedback:
            s.update({"scale_seg_aware": L.seg_aware, "scale_cls_aware": L.cls_aware, "scale_grading_feedback": L.grading_feedback})
            return {"scaling": "authors", **s}
        return {"scaling": "calibrated", "ratio": L.feedback_ratio, **s}
