"""DeepMT-DR's grading pathway on other images than its super-resolved one (notebook 01's control
``gap:deepmt_dr``): its segmentation and grading subnets, with each seed's cached weights, fed ``[HR, Seg(HR)]`` or
``[bicubic, Seg(bicubic)]`` instead of ``[SR, Seg(SR)]``. No training: each cached run is loaded and evaluated
again on the test split, with the image it reads swapped.

    from deepmt.studies.pathway import pathway_runs
    runs = pathway_runs(runs["deepmt_dr"], cfg)      # {"deepmt_dr_on_hr": [per seed], "deepmt_dr_on_bicubic": [...]}
    effects_table(runs, [("deepmt_dr_on_hr", "deepmt_dr_on_bicubic")], ["accuracy"])

**Why.** Claim C1 asks whether super-resolving the input helps DeepMT-DR's grader. Its SR image lies between the
bicubic image and the HR one, so HR minus bicubic on the same weights bounds what any super-resolution could buy
that grader: if it is small, C1 cannot be tested on this benchmark however good the ISR. The grader and the
segmentation subnet learned from ``[HR, Seg(HR)]`` in stages 1a-1b and from ``[SR, Seg(SR)]`` in stage 2; bicubic
images they never saw, so the bicubic side also carries their shift to a blurrier input.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import torch

from deepmt.config import Config
from deepmt.data.degradation import bicubic_upsample
from deepmt.engine.evaluate import evaluate
from deepmt.experiment_cache import ExperimentResult, load_method
from deepmt.models.base import MethodOutput
from deepmt.studies.attention import test_split
from deepmt.studies.common import Runs

#: the images the pathway can be fed instead of the SR image: the HR image, the bicubic-upsampled LR image
SOURCES = ("hr", "bicubic")


class Pathway(torch.nn.Module):
    """A trained DeepMT-DR (or its no-ISR twin) as a method that grades ``source`` (one of :data:`SOURCES`)
    instead of its SR image: :meth:`DeepMTDR.grade_image <deepmt.models.deepmt_dr.DeepMTDR.grade_image>` of
    ``batch["hr"]`` or of the bicubic-upsampled ``batch["lr"]``, with the tasks ``seg`` and ``grade``, so that
    :func:`deepmt.engine.evaluate.evaluate` measures it like any method."""

    tasks = frozenset({"seg", "grade"})

    def __init__(self, method: torch.nn.Module, source: str):
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if not hasattr(method, "grade_image"):
            raise ValueError(f"{getattr(method, 'name', type(method).__name__)!r} has no grading pathway to feed "
                             "(a DeepMT-DR is needed)")
        super().__init__()
        self.method = method
        self.source = source

    def forward(self, batch: Mapping[str, torch.Tensor]) -> MethodOutput:
        image = batch["hr"] if self.source == "hr" else bicubic_upsample(batch["lr"], self.method.scale)
        maps = batch["masks"].float() if getattr(self.method, "oracle_maps", False) else None  # the oracle diagnosis
        return self.method.grade_image(image, maps=maps)


def pathway_name(method: str, source: str) -> str:
    """The name of ``method``'s pathway runs on ``source`` in tables: ``deepmt_dr_on_hr``."""
    return f"{method}_on_{source}"


def pathway_runs(results: Sequence[ExperimentResult], cfg: Config, sources: Sequence[str] = SOURCES,
                 device: str | None = None) -> Runs:
    """Each cached run of ``results`` (one per seed, a DeepMT-DR) evaluated on the test split of ``cfg`` with
    its grading pathway fed each of ``sources``: ``{pathway_name(method, source): [result per seed]}``, each
    result the run's with the new test ``metrics`` and ``predictions`` (the run's config and seed kept), ready for
    :func:`deepmt.studies.common.effects_table`. Raises ``ValueError`` when the test split is not the one the
    run was measured on (other image ids)."""
    ds = test_split(cfg)
    out: Runs = {}
    for res in results:
        method = load_method(res, device=device or cfg.train.device)
        for source in sources:
            metrics, pred = evaluate(Pathway(method, source), ds, res.config, progress=False,
                                     desc=f"{res.method} on {source}")
            if not np.array_equal(pred["id"], res.predictions["id"]):
                raise ValueError(f"{res.method}: the test split of the config is not the one its run was measured on")
            name = pathway_name(res.method, source)
            out.setdefault(name, []).append(dataclasses.replace(res, method=name, metrics=metrics, predictions=pred))
        del method
    return out


__all__ = ["SOURCES", "Pathway", "pathway_name", "pathway_runs"]
