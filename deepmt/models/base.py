"""The interface of every trainable method: :class:`Method` (named training stages, losses, forward,
visualization) and what its forward returns, :class:`MethodOutput`.

DeepMT-DR (:mod:`deepmt.models.deepmt_dr`) and the baselines (:mod:`deepmt.models.baselines`) subclass it;
:mod:`deepmt.models.methods` registers them by name. Kept apart from the registry so that the registry can
import the subclasses without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import torch
import torch.nn as nn

from deepmt.losses.grading import class_weights as resolve_class_weights

TASKS = frozenset({"isr", "seg", "grade"})


def freeze_for_stage(module: nn.Module, params: Sequence[nn.Parameter]) -> None:
    """Freeze every parameter of ``module`` except ``params`` (those a training stage optimises)."""
    for p in module.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)


def eval_frozen(module: nn.Module, trained: Sequence[nn.Module] | None = None) -> None:
    """Put in eval mode what a training stage does not train, so that its BatchNorm statistics stay fixed:
    BatchNorm layers whose parameters are all frozen (:func:`freeze_for_stage`) and, when ``trained`` (the
    stage's modules) is given, the children of ``module`` not among them."""
    if trained is not None:
        ids = {id(m) for m in trained}
        for child in module.children():
            if id(child) not in ids:
                child.eval()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            ps = list(m.parameters(recurse=False))
            if ps and not any(p.requires_grad for p in ps):
                m.eval()


def set_train_mode(module: nn.Module) -> None:
    """Train mode for a training stage: ``module.train()``, then :func:`eval_frozen` (frozen BatchNorm layers)."""
    module.train()
    eval_frozen(module)


@dataclass
class MethodOutput:
    """What ``Method.forward`` returns; fields a method does not produce are None.

    sr (B,3,H,W) in [0,1]; lesion_logits / lesion_probs (B,4,H,W) (sigmoid, MA/HE/EX/SE);
    grade_logits (B,5); vis_map (B,1,H,W) in [0,1]. H, W are the HR size.
    """

    sr: torch.Tensor | None = None
    lesion_logits: torch.Tensor | None = None
    lesion_probs: torch.Tensor | None = None
    grade_logits: torch.Tensor | None = None
    vis_map: torch.Tensor | None = None


class Method(nn.Module):
    """Base class: one trainable method with named training stages.

    Subclasses set ``tasks`` and ``stages`` and implement ``stage_modules(stage)``,
    ``_stage_loss(batch, stage) -> dict`` and ``forward(batch) -> MethodOutput``; a method whose grader
    explains its decision with a visualization map also implements ``_visualize(batch, grade)``. A method that
    can be warm-started at a later stage declares which config keys each stage first uses
    (:attr:`stage_config_keys`).
    """

    #: the Grad-CAM targets :meth:`visualize` takes
    VIS_TARGETS = ("pred", "true")

    tasks: frozenset = frozenset()
    stages: tuple[str, ...] = ("single",)
    #: stage -> the dotted config keys that affect training only from that stage on (one entry per stage, in
    #: ``stages`` order). A run warm-started at stage S may differ from its base in the keys of S and of the later
    #: stages (:func:`deepmt.experiment_cache.warm_start_keys`); ablations pick their start stage from it. Empty (the
    #: default): nothing is declared, so a warm-started run may differ from its base in no key.
    stage_config_keys: ClassVar[Mapping[str, frozenset[str]]] = {}

    def __init__(self, name: str, cfg, class_counts: Sequence[int] | None = None):
        super().__init__()
        self.name = name
        self.cfg = cfg
        self.scale = int(cfg.data.scale)
        w = resolve_class_weights(cfg.loss.class_weights, class_counts)
        self.register_buffer("class_weight", w, persistent=False)

    # ------------------------------------------------------------------ stages
    def check_stage(self, stage: str) -> None:
        if stage not in self.stages:
            raise ValueError(f"method {self.name!r} has stages {self.stages}, not {stage!r}")

    def stage_modules(self, stage: str) -> list[nn.Module]:
        raise NotImplementedError

    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        """The parameters the optimiser trains in ``stage`` (no duplicates)."""
        self.check_stage(stage)
        seen, params = set(), []
        for m in self.stage_modules(stage):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    def stage_epochs(self, stage: str, train_cfg) -> int:
        """Epochs of ``stage``: ``train.epochs_STAGE`` (``epochs_single`` for a one-stage method) times
        ``train.epochs_scale`` (rounded, at least 1 where the stage trains at all)."""
        self.check_stage(stage)
        epochs = int(
            {"stage1a": train_cfg.epochs_stage1a, "stage1b": train_cfg.epochs_stage1b, "stage2": train_cfg.epochs_stage2}.get(
                stage, train_cfg.epochs_single
            )
        )
        scale = float(getattr(train_cfg, "epochs_scale", 1.0))
        return epochs if scale == 1.0 or epochs <= 0 else max(1, int(round(epochs * scale)))

    def stage_lr(self, stage: str, train_cfg) -> float:
        """Peak learning rate of ``stage``: ``train.grading_learning_rate`` for a stage that trains a grader alone on
        fully graded data (where set; see :meth:`stage_batch_size`), else ``train.lr``; times
        ``train.lr_stage2_factor`` in stage 2; times ``train.lr_scale``."""
        self.check_stage(stage)
        grading_lr = getattr(train_cfg, "grading_learning_rate", None)
        lr = grading_lr if grading_lr is not None and self._grading_settings_apply(stage) else train_cfg.lr
        return float(lr * (train_cfg.lr_stage2_factor if stage == "stage2" else 1.0) * float(getattr(train_cfg, "lr_scale", 1.0)))

    def stage_batch_size(self, stage: str, train_cfg) -> int:
        """Training batch of ``stage``: ``train.grading_batch_size`` for a stage that trains a grader alone (where
        set) while every training image is graded, else ``train.batch_size``."""
        self.check_stage(stage)
        grading_bs = getattr(train_cfg, "grading_batch_size", None)
        return int(grading_bs if grading_bs is not None and self._grading_settings_apply(stage) else train_cfg.batch_size)

    def _grading_settings_apply(self, stage: str) -> bool:
        """Whether ``stage`` takes ``train.grading_batch_size`` / ``train.grading_learning_rate``: it trains a grader
        alone and every training image is graded (``data.label_fraction`` = 1). With few labels (60 graded images in
        the quick profile at 0.1) a batch of 32 would leave one optimiser step per epoch, so such a stage keeps
        ``train.batch_size`` and ``train.lr``."""
        data = getattr(self.cfg, "data", None)
        return self.stage_trains_grader_only(stage) and float(getattr(data, "label_fraction", 1.0)) >= 1.0

    def stage_trains_grader_only(self, stage: str) -> bool:
        """Whether ``stage`` trains a grader alone on inputs it does not change (no super-resolution or segmentation
        is trained in its steps), so it may take its own batch and learning rate (``train.grading_batch_size``,
        ``train.grading_learning_rate``): a grader learns from whole images per step, a segmenter from many steps.
        Default: the method's only task is grading."""
        self.check_stage(stage)
        return self.tasks == frozenset({"grade"})

    def selection_metric(self, stage: str) -> str:
        """Validation metric (higher is better) that picks the best epoch of ``stage``."""
        self.check_stage(stage)
        return self.cfg.train.selection_metric

    def stage_uses_unlabelled(self, stage: str) -> bool:
        """Whether ``stage`` learns from images without grade or masks (super-resolution learns from HR images
        alone). Such a stage trains on the whole training split; every other stage only on its labelled images
        (``data.label_fraction``, :func:`deepmt.data.partial_masks.labelled_subset`). Default: no."""
        return False

    def stage_grades(self, stage: str) -> bool:
        """Whether ``stage`` learns to grade. A grade is read off the whole image (the grade rules count lesions
        per quadrant), so such a stage always trains on whole images; a stage that does not grade (super-resolution,
        segmentation) may train on random crops (``data.nongrading_crop_size``). Default: the method grades."""
        self.check_stage(stage)
        return "grade" in self.tasks

    def keeps_start_candidate(self, stage: str) -> bool:
        """Whether the weights ``stage`` starts from compete with its epochs for selection (evaluated on
        validation before the first epoch; kept when no epoch beats them). Default: no."""
        return False

    def kept_across_selection(self) -> tuple[str, ...]:
        """``state_dict`` key prefixes of state that records how training ran rather than weights (e.g. measured
        loss calibrations): kept when the trainer restores a stage's best epoch. Default: none."""
        return ()

    def selection_groups(self, stage: str) -> dict[str, tuple[tuple[str, ...], str]]:
        """Subnets of ``stage`` kept at their own best validated epoch (``train.module_selection="per_module"``):
        name -> (``state_dict`` key prefixes, validation metric, higher is better). The rest of the stage is kept
        at :meth:`selection_score`'s best epoch. Default: none (the whole stage at one epoch)."""
        return {}

    def selection_score(self, stage: str, val: dict[str, float], start_val: dict[str, float] | None = None) -> float:
        """The score (higher is better) that selects the epoch of ``stage`` from its validation metrics
        ``val``; ``start_val`` are those of the stage's starting weights when :meth:`keeps_start_candidate`."""
        return float(val[self.selection_metric(stage)])

    # ------------------------------------------------------------------ training
    def _stage_loss(self, batch: dict, stage: str) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def training_loss(self, batch: dict, stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, named weighted terms) for one collated batch; total = sum of the terms."""
        self.check_stage(stage)
        if self.training:  # whoever calls it: what the stage does not train keeps its BN statistics
            eval_frozen(self, self.stage_modules(stage))
        terms = self._stage_loss(batch, stage)
        if not terms:
            raise RuntimeError(f"method {self.name!r} stage {stage!r}: every loss term has weight 0")
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return total, terms

    def forward(self, batch: dict) -> MethodOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ visualization
    def visualize(self, batch: dict, target: str = "pred") -> MethodOutput:
        """The method's output on ``batch`` with ``vis_map`` (B,1,H,W) in [0,1] set: the visualization map of
        its grader, i.e. which regions drive the grading decision (detached tensors, whatever the grad mode).

        ``target``: ``"pred"`` explains the predicted grade (what ``forward`` maps); ``"true"`` the true grade
        ``batch["grade"]`` where known (ungraded images, grade -1, fall back to the prediction). Raises
        ``ValueError`` for a method without such a map (no grader, or a grader without Grad-CAM).
        """
        if target not in self.VIS_TARGETS:
            raise ValueError(f"target must be one of {self.VIS_TARGETS}, got {target!r}")
        return self._visualize(batch, batch["grade"] if target == "true" else None)

    def _visualize(self, batch: dict, grade: torch.Tensor | None) -> MethodOutput:
        """:meth:`visualize` with the Grad-CAM target grades (None: the predicted ones)."""
        raise ValueError(f"method {self.name!r} has no grader with a visualization map")
