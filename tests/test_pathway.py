"""deepmt.studies.pathway (notebook 01's control gap:deepmt_dr): DeepMT-DR's segmentation and grading subnets fed the
HR or the bicubic image instead of its SR image, evaluated from a cached run without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepmt.config import get_config
from deepmt.data import build_datasets
from deepmt.data.degradation import bicubic_upsample
from deepmt.engine.evaluate import evaluate
from deepmt.experiment_cache import ExperimentResult
from deepmt.models.methods import build_method
from deepmt.studies import pathway as P

pytestmark = pytest.mark.usefixtures("cache")

CFG = get_config("smoke", {"train.device": "cpu", "train.precision": "fp32"})


@pytest.fixture(scope="module")
def test_ds(cache):
    return build_datasets(CFG.data, ("test",))["test"]


@pytest.fixture(scope="module")
def batch(test_ds):
    return torch.utils.data.default_collate([test_ds[i] for i in range(4)])


def _untrained(name: str):
    torch.manual_seed(0)
    return build_method(name, CFG).eval()


def test_the_twin_fed_bicubic_is_the_twin_itself(batch):
    """Oracle: the no-ISR twin's own input is the bicubic image, so its pathway on bicubic is its forward."""
    twin = _untrained("deepmt_dr_noisr")
    with torch.no_grad():
        own, fed = twin(batch), P.Pathway(twin, "bicubic")(batch)
    torch.testing.assert_close(fed.grade_logits, own.grade_logits)
    torch.testing.assert_close(fed.lesion_probs, own.lesion_probs)
    assert fed.sr is None and P.Pathway.tasks == {"seg", "grade"}


def test_deepmt_dr_fed_hr_grades_hr_and_its_segmentation_of_hr(batch):
    """On HR: Grader([HR, sigmoid(Seg(HR))]), whatever the LR image; the ISR is not used."""
    model = _untrained("deepmt_dr")
    with torch.no_grad():
        fed = P.Pathway(model, "hr")(batch)
        probs = torch.sigmoid(model.seg(batch["hr"]).float())
        want = model.grader(model.grader.make_input(batch["hr"], probs))
        other_lr = P.Pathway(model, "hr")({**batch, "lr": torch.zeros_like(batch["lr"])})
        bicubic = P.Pathway(model, "bicubic")(batch)
        sr = model(batch)
    torch.testing.assert_close(fed.grade_logits, want)
    torch.testing.assert_close(other_lr.grade_logits, fed.grade_logits)
    assert not torch.allclose(bicubic.grade_logits, fed.grade_logits)  # another image, other logits
    with torch.no_grad():  # forward is the same pathway on the SR image
        torch.testing.assert_close(model.grade_image(model.super_resolve(batch["lr"])).grade_logits, sr.grade_logits)
    assert bicubic_upsample(batch["lr"], model.scale).shape == batch["hr"].shape
    with pytest.raises(ValueError, match="source must be one of"):
        P.Pathway(model, "sr")
    with pytest.raises(ValueError, match="no grading pathway"):
        P.Pathway(_untrained("grader_hr"), "hr")


def test_pathway_runs_evaluates_each_seeds_cached_run_on_each_image(untrained_checkpoint, test_ds, monkeypatch):
    """One result per seed and image source, the run's config kept, its metrics and per-image predictions those
    of evaluate() on the pathway, on the same test images as the run; a run measured on other images is refused."""
    monkeypatch.setattr(P, "test_split", lambda cfg: test_ds)
    ids = np.array([str(test_ds[i]["id"]) for i in range(len(test_ds))])
    runs = [ExperimentResult(method="deepmt_dr", config=CFG.replace({"train.seed": s}), metrics={}, val_metrics={},
                             predictions={"id": ids}, checkpoint=Path(untrained_checkpoint), run_dir=Path("."),
                             train_seconds=1.0, history=pd.DataFrame(), key="k") for s in (0, 1)]
    out = P.pathway_runs(runs, CFG)
    assert list(out) == ["deepmt_dr_on_hr", "deepmt_dr_on_bicubic"]
    assert [r.config.train.seed for r in out["deepmt_dr_on_hr"]] == [0, 1]
    hr = out["deepmt_dr_on_hr"][0]
    assert hr.method == "deepmt_dr_on_hr" and np.array_equal(hr.predictions["id"], ids)
    from deepmt.experiment_cache import load_method

    metrics, pred = evaluate(P.Pathway(load_method(runs[0], device="cpu"), "hr"), test_ds, CFG, progress=False)
    assert hr.metrics == metrics and np.array_equal(hr.predictions["grade_probs"], pred["grade_probs"])
    assert {"accuracy", "aupr"} <= set(hr.metrics) and "psnr" not in hr.metrics  # grading and segmentation only
    runs[1].predictions = {"id": ids[::-1]}
    with pytest.raises(ValueError, match="not the one its run was measured on"):
        P.pathway_runs(runs, CFG, sources=("hr",))
