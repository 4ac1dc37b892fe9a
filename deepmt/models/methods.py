"""Trainable methods: DeepMT-DR and every baseline behind one interface (docs/CONTRACTS.md "Methods").

    from deepmt.models.methods import build_method, METHODS
    method = build_method("deepmt_dr", cfg, class_counts=[n0, n1, n2, n3, n4])
    for stage in method.stages:
        params = method.stage_parameters(stage)          # what the optimiser trains (others frozen)
        epochs, lr = method.stage_epochs(stage, cfg.train), method.stage_lr(stage, cfg.train)
        total, terms = method.training_loss(batch, stage) # batch: collated Sample dict on the device
    out = method(batch)                                   # MethodOutput (reads lr, or hr for HR upper bounds)
    out = method.visualize(batch, target="pred")          # ... with vis_map: what drives the grade (graders only)

``METHODS`` maps each registered name to its builder (``list(METHODS)`` lists the names); ``METHOD_CLASSES`` and
:func:`method_class` map it to its class, for what a method declares on the class (``stages``,
``stage_config_keys``) without building one. ``METHOD_ALIASES`` maps another name a user may give to the registered
name it stands for (``seg_grade_mt`` -> ``foo_mt``); :func:`canonical_method` resolves it, and every function that
takes a method name from a user does (:func:`build_method`, :func:`method_class`, the experiment cache, the worker
pool, ``python -m deepmt train --method``). Runs, cache entries, tables and labels use the registered name.
The interface (:class:`Method`, :class:`MethodOutput`) lives in :mod:`deepmt.models.base` and is re-exported here.
Ablations are config overrides of ``deepmt_dr`` (e.g. ``loss.seg_aware=0``, ``loss.cls_aware=0``,
``loss.grading_feedback=0``, ``model.grader.use_lesion_maps=False``, ``model.vis.feature_selection=False``,
``loss.unsupervised=0.5``), not new classes.
"""

from __future__ import annotations

import difflib
from typing import Callable, Sequence

from deepmt.errors import SettingError
from deepmt.models import baselines as _B
from deepmt.models import deepmt_dr as _D
from deepmt.models.base import TASKS, Method, MethodOutput

__all__ = ["TASKS", "Method", "MethodOutput", "METHODS", "METHOD_CLASSES", "METHOD_ALIASES", "build_method", "method_class",
           "canonical_method"]


# ---------------------------------------------------------------------- registry
def _entry(cls: type[Method], *args, **kwargs) -> tuple[type[Method], Callable[..., Method]]:
    """(the class, its builder ``(cfg, class_counts=None) -> cls(*args, cfg, class_counts, **kwargs)``)."""
    return cls, lambda cfg, cc=None: cls(*args, cfg, cc, **kwargs)


_REGISTRY: dict[str, tuple[type[Method], Callable[..., Method]]] = {
    "bicubic": _entry(_B.BicubicBaseline),
    "srcnn": _entry(_B.SRBaseline, "srcnn"),
    "edsr": _entry(_B.SRBaseline, "edsr"),
    "isr": _entry(_B.SRBaseline, "isr"),
    "unet_lr": _entry(_B.SegBaseline, "lr"),
    "unet_bicubic": _entry(_B.SegBaseline, "bicubic"),
    "unet_hr": _entry(_B.SegBaseline, "hr"),
    "grader_lr": _entry(_B.GraderBaseline, "lr"),
    "grader_bicubic": _entry(_B.GraderBaseline, "bicubic"),
    "grader_hr": _entry(_B.GraderBaseline, "hr"),
    "two_stage": _entry(_B.TwoStage),
    "foo_mt": _entry(_B.FooMT, "bicubic"),
    "foo_mt_hr": _entry(_B.FooMT, "hr"),
    "deepmt_dr": _entry(_D.DeepMTDR, name="deepmt_dr", use_isr=True),
    "deepmt_dr_noisr": _entry(_D.DeepMTDR, name="deepmt_dr_noisr", use_isr=False),
}
#: name -> builder(cfg, class_counts=None) -> Method. ``list(METHODS)`` gives the names.
METHODS: dict[str, Callable[..., Method]] = {name: build for name, (_, build) in _REGISTRY.items()}
#: name -> the :class:`Method` subclass its builder makes: what a method declares without being built
#: (``stages``, ``stage_config_keys``), read without building one (:func:`method_class`).
METHOD_CLASSES: dict[str, type[Method]] = {name: cls for name, (cls, _) in _REGISTRY.items()}

#: another name a user may give -> the registered name it stands for. The registered name keys the cache entry and
#: names the method in tables and labels; an alias only resolves to it. ``seg_grade_mt`` says what ``foo_mt`` (the
#: multi-task segmentation + grading baseline after Foo et al.) does.
METHOD_ALIASES: dict[str, str] = {"seg_grade_mt": "foo_mt"}


def canonical_method(name: str) -> str:
    """The registered name of ``name``: the method an alias (:data:`METHOD_ALIASES`) stands for, else ``name``
    unchanged (also a name the registry does not know, e.g. a custom builder's)."""
    return METHOD_ALIASES.get(name, name)


#: methods whose stages have their own epochs (``train.epochs_stage1a/1b/2``), not ``train.epochs_single``
STAGE_EPOCH_METHODS = frozenset(name for name, cls in METHOD_CLASSES.items() if issubclass(cls, _D.DeepMTDR))
#: their stages, each with its own epochs (``train.epochs_STAGE``)
STAGE_EPOCH_STAGES = _D.DeepMTDR.stages


def check_epochs_by_method(mapping) -> None:
    """A :class:`~deepmt.errors.SettingError` unless every name in ``train.epochs_by_method`` is a registered
    baseline (trained for ``train.epochs_single`` epochs) or ``METHOD.STAGE`` for a method trained by stage
    and one of its stages (``deepmt_dr.stage1b``)."""
    for name in mapping:
        method, dot, stage = name.partition(".")
        if method in METHOD_ALIASES:  # the mapping is read by deepmt.config.method_config, which knows no aliases
            raise SettingError(
                f"train.epochs_by_method: {method!r} is another name of {METHOD_ALIASES[method]!r}; write "
                f"{name.replace(method, METHOD_ALIASES[method], 1)!r} here"
            )
        if method not in METHODS:
            close = difflib.get_close_matches(method, list(METHODS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"choose among {', '.join(sorted(METHODS))}"
            raise SettingError(f"train.epochs_by_method: unknown method {method!r}; {hint}")
        if method in STAGE_EPOCH_METHODS:
            stages = STAGE_EPOCH_STAGES
            if stage not in stages:
                given = f"stage {stage!r}" if dot else "no stage"
                raise SettingError(
                    f"train.epochs_by_method: {name!r} names {given}; {method!r} trains by stage, so name one of "
                    f"{', '.join(f'{method}.{s}' for s in stages)}"
                )
        elif dot:
            raise SettingError(
                f"train.epochs_by_method: {name!r}: {method!r} trains in one stage (train.epochs_single); "
                f"write {method!r} without a stage"
            )


def method_class(name: str) -> type[Method]:
    """The :class:`Method` subclass of the registered method ``name`` or of an alias (``ValueError`` for an unknown
    name)."""
    name = canonical_method(name)
    if name not in METHOD_CLASSES:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHOD_CLASSES)}")
    return METHOD_CLASSES[name]


def build_method(name: str, cfg, class_counts: Sequence[int] | None = None) -> Method:
    """Build the registered method ``name`` (or the one an alias stands for, :func:`canonical_method`) for ``cfg``;
    ``class_counts`` (5 training label counts) feed ``loss.class_weights="auto"``."""
    name = canonical_method(name)
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name](cfg, class_counts)
