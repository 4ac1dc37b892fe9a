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


# --------------------------------------------------------------------------- notebook 08's diagnosis of the pathway
def _seeded(name: str, cfg):
    torch.manual_seed(0)
    return build_method(name, cfg).eval()


def test_the_oracle_grader_reads_the_ground_truth_masks_not_the_segmentation(batch):
    """With model.grader.oracle_maps the grade depends on the masks and not on the segmentation subnet, in the
    method's forward and on the HR pathway; without it, the other way round."""
    other_masks = {**batch, "masks": 1.0 - batch["masks"]}
    with torch.no_grad():
        for run in (lambda m, b: m(b).grade_logits, lambda m, b: P.Pathway(m, "hr")(b).grade_logits):
            oracle = _seeded("deepmt_dr", CFG.replace({"model.grader.oracle_maps": True}))
            plain = _seeded("deepmt_dr", CFG)
            a = run(oracle, batch)
            assert not torch.allclose(a, run(oracle, other_masks))  # the masks decide
            plain_a = run(plain, batch)
            assert torch.equal(plain_a, run(plain, other_masks))  # the plain grader never reads them
            for p in [*oracle.seg.parameters(), *plain.seg.parameters()]:  # another segmentation subnet
                p.add_(0.5)
            assert torch.equal(a, run(oracle, batch)) and not torch.equal(plain_a, run(plain, batch))


def test_the_oracle_needs_every_mask():
    from deepmt.errors import ConfigMismatchError

    with pytest.raises(ConfigMismatchError, match="oracle_maps"):
        build_method("deepmt_dr", CFG.replace({"model.grader.oracle_maps": True, "data.mask_fraction": 0.1}))


@pytest.mark.parametrize("attached", [False, True])
def test_grading_reaches_the_segmentation_only_with_the_maps_attached(batch, attached):
    """Stage 2 with every term but the grading loss off: its gradient reaches the segmentation subnet only under
    loss.grading_into_seg."""
    off = {"loss.seg_aware": 0.0, "loss.cls_aware": 0.0, "loss.grading_feedback": 0.0, "loss.vis_consistency": 0.0,
           "loss.seg_weight_in_joint": 0.0, "loss.grading_into_seg": attached}
    m = _seeded("deepmt_dr", CFG.replace(off)).train()
    total, terms = m.training_loss(batch, "stage2")
    assert set(terms) <= {"grade_ce", "isr_pixel", "isr_tv"}
    terms["grade_ce"].backward()
    seg_grad = sum(float(p.grad.abs().sum()) for p in m.seg.parameters() if p.grad is not None)
    assert (seg_grad > 0) == attached
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.grader.parameters())


def test_spp_average_pooling_is_torchs_and_max_stays_the_default():
    from deepmt.models.grading import spatial_pyramid_pool

    x = torch.randn(2, 3, 5, 4)
    ref = torch.cat([torch.nn.functional.adaptive_avg_pool2d(x, l).flatten(1) for l in (1, 2, 4)], 1)
    assert torch.allclose(spatial_pyramid_pool(x, (1, 2, 4), "avg"), ref)
    assert torch.equal(spatial_pyramid_pool(x, (1, 2)), torch.cat([torch.nn.functional.adaptive_max_pool2d(x, l).flatten(1) for l in (1, 2)], 1))
    with pytest.raises(ValueError, match="spp pool"):
        spatial_pyramid_pool(x, (1,), "median")


@pytest.mark.parametrize("hr_size", [32, 48, 64, 80, 100, 1024])
def test_last_feature_map_side_is_the_trunks(hr_size):
    """The side fitting_spp_levels reads is the side the grader's ResNet-18 trunk really gives (80 px: 3, not 80 // 32)."""
    from deepmt.models.grading import last_feature_map_side, resnet18_trunk

    trunk = resnet18_trunk(3, 4).eval()
    x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(torch.zeros(1, 3, hr_size, hr_size)))))
    x = trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(x))))
    assert x.shape[-1] == last_feature_map_side(hr_size)


def test_the_diagnosis_warm_starts_where_each_change_acts_and_fits_the_spp_levels():
    from deepmt.studies.ablation_structure import fitting_spp_levels, pathway_variants
    from deepmt.studies.ablations import start_stage

    quick = get_config("quick")
    assert fitting_spp_levels(quick) == (1, 2)  # 64 px: a 2 x 2 map
    assert fitting_spp_levels(get_config("paper")) == (1, 2, 4)  # 1024 px: a 32 x 32 map, every level fits
    how = {v.name: start_stage(v.method, quick, quick.replace(dict(v.overrides))) for v in pathway_variants(quick)}
    # quick takes the levels that fit (a named scale-down): the paper's levels are the variant
    assert how == {"oracle_maps": "stage1b", "spp_avg": "stage1b", "spp_paper": "full", "stage1b_on_sr": "stage1b",
                   "maps_attached": "stage2"}
    spp = {v.name: dict(v.overrides) for v in pathway_variants(quick)}
    assert quick.model.grader.spp_levels == (1, 2) and spp["spp_paper"] == {"model.grader.spp_levels": (1, 2, 4)}
    # a profile whose levels are finer than the map gets the fitting ones as the variant; the paper's fit already
    paper_levels_at_64 = quick.replace({"model.grader.spp_levels": (1, 2, 4)})
    assert {v.name: dict(v.overrides) for v in pathway_variants(paper_levels_at_64)}["spp_fit"] == {"model.grader.spp_levels": (1, 2)}
    paper = get_config("paper")
    assert {v.name: dict(v.overrides) for v in pathway_variants(paper)}["spp_fit"] == {"model.grader.spp_levels": (1, 2, 4)}


def test_the_diagnosis_settings_leave_every_key_at_their_defaults():
    from deepmt.config import comparable_config

    q = get_config("quick")
    for field, other in (("model.grader.spp_pool", "avg"), ("model.grader.oracle_maps", True), ("loss.grading_into_seg", True)):
        section, name = field.rsplit(".", 1)
        d = comparable_config(q.to_dict())
        node = d
        for part in section.split("."):
            node = node[part]
        assert name not in node  # not hashed at the default
        assert q.replace({field: other}).key() != q.key()
