"""The calibrated task-aware loss: measured gradient norms, per-term scales, and stage 2 never keeping a
model worse than stage 1's."""

import math

import pytest
import torch

from deepmt.config import get_config
from deepmt.losses.task_aware import FEEDBACK_TERMS, FeedbackCalibration, cut, isr_gradient_norms
from deepmt.models import build_method
from test_methods import make_batch


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread




@pytest.mark.parametrize("term,weights", [
    ("seg_aware", {"loss.seg_aware": 1.0, "loss.cls_aware": 0.0, "loss.grading_feedback": 0.0}),
    ("cls_aware", {"loss.seg_aware": 0.0, "loss.cls_aware": 10.0, "loss.grading_feedback": 0.0}),
    ("grading_feedback", {"loss.seg_aware": 0.0, "loss.cls_aware": 0.0, "loss.grading_feedback": 1.0}),
])
def test_calibrated_feedback_gradient_is_ratio_times_pixel(term, weights):
    ratio = 0.5
    cfg = get_config("smoke", {**weights, "loss.feedback_ratio": ratio, "loss.calibration_batches": 1, "loss.tv": 0.0})
    torch.manual_seed(0)
    m = build_method("deepmt_dr", cfg).train()
    batch = make_batch(4)
    params = list(m.isr.parameters())

    def isr_norm(loss):
        gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return math.sqrt(sum(float((g ** 2).sum()) for g in gs if g is not None))

    _, terms = m.training_loss(batch, "stage2")  # measures on this batch (calibration_batches=1)
    assert m.feedback_calibration.done
    pixel = isr_norm(terms["isr_pixel"])
    fb = isr_norm(terms[term])
    assert fb == pytest.approx(ratio * pixel, rel=1e-3)
    # on another batch the scales stay fixed; the ratio holds within an order of magnitude
    _, terms2 = m.training_loss(make_batch(4, seed=3), "stage2")
    r2 = isr_norm(terms2[term]) / isr_norm(terms2["isr_pixel"])
    assert ratio / 10 < r2 < ratio * 10
    # the authors' weights are kept as a named setting: there the same term is not rescaled
    torch.manual_seed(0)
    a = build_method("deepmt_dr", cfg.replace({"loss.feedback_scaling": "authors"})).train()
    assert not a.calibrate_feedback
    _, ta = a.training_loss(batch, "stage2")
    assert a.feedback_summary()["scaling"] == "authors"  # measured all the same, for the report
    params = list(a.isr.parameters())
    w = weights[f"loss.{term}"]
    raw = m.feedback_summary()[f"grad_norm_{term}"]
    assert isr_norm(ta[term]) == pytest.approx(w * raw, rel=1e-3)


def test_calibration_measures_only_its_batches_and_survives_a_checkpoint():
    cfg = get_config("smoke", {"loss.calibration_batches": 2})
    torch.manual_seed(0)
    m = build_method("deepmt_dr", cfg).train()
    for seed in range(4):
        m.training_loss(make_batch(2, seed=seed), "stage2")
    s = m.feedback_summary()
    assert s["batches"] == 2 and s["scaling"] == "calibrated"
    assert all(s[f"scale_{t}"] > 0 and math.isfinite(s[f"scale_{t}"]) for t in FEEDBACK_TERMS)
    # the sums are buffers: a fresh model loading the state uses the same scales and measures no more
    m2 = build_method("deepmt_dr", cfg)
    m2.load_state_dict(m.state_dict())
    assert m2.feedback_summary() == s
    m2.train().training_loss(make_batch(2, seed=9), "stage2")
    assert m2.feedback_summary()["batches"] == 2
    # evaluation-mode forward passes never measure
    m3 = build_method("deepmt_dr", cfg).eval()
    m3.training_loss(make_batch(2), "stage2")
    assert m3.feedback_summary()["batches"] == 0


def test_isr_gradient_norms_match_autograd_on_a_linear_toy():
    w = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    x = torch.tensor([1.0, 3.0])
    source = w * x  # the "SR image"
    c = cut(source)
    norms = isr_gradient_norms({"sq": (c ** 2).sum()}, c, source, [w], direct={"lin": source.sum()})
    # d/dw sum(w x) = x; d/dw sum((w x)^2) = 2 w x^2
    assert norms["lin"] == pytest.approx(float(x.norm()))
    assert norms["sq"] == pytest.approx(float((2 * w.detach() * x ** 2).norm()))


def test_feedback_calibration_scales():
    cal = FeedbackCalibration(ratio=0.1, n_batches=2)
    assert cal.scales() == {t: 1.0 for t in FEEDBACK_TERMS}
    cal.update({"isr_pixel": 1.0, "seg_aware": 0.5, "cls_aware": 10.0, "grading_feedback": 2.0})
    cal.update({"isr_pixel": 3.0, "seg_aware": 1.5, "cls_aware": 30.0, "grading_feedback": 6.0})
    assert cal.done
    sc = cal.scales()
    assert sc["seg_aware"] == pytest.approx(0.1 * 4 / 2)
    assert sc["cls_aware"] == pytest.approx(0.1 * 4 / 40)
    assert sc["grading_feedback"] == pytest.approx(0.1 * 4 / 8)


def test_stage2_never_keeps_an_sr_worse_than_stage1(cache):
    """A PSNR floor no epoch can meet (drop of -1000 dB = must gain 1000 dB): stage 2 keeps the stage-1 weights."""
    from deepmt.engine.checkpoint import load_checkpoint
    from deepmt.experiment_cache import run_experiment

    cfg = get_config("smoke", {"train.stage2_max_psnr_drop": -1000.0, "train.device": "cpu"})
    res = run_experiment("deepmt_dr", cfg)
    start = load_checkpoint(res.run_dir / "best-stage1b.pt")["model"]
    final = load_checkpoint(res.run_dir / "final.pt")["model"]
    assert all(torch.equal(final[k], v) for k, v in start.items() if not k.startswith("feedback_calibration."))
    assert (res.history["stage"] == "stage2").sum() == cfg.train.epochs_stage2  # it did train, then fell back
    # the feedback calibration measured in stage 2 is kept (it records how stage 2 ran), not the start's zeros
    steps = cfg.train.epochs_stage2 * (cfg.data.n_train // cfg.train.batch_size)
    assert int(final["feedback_calibration.count"]) == min(cfg.loss.calibration_batches, steps) > 0


def test_finish_with_equal_norms_stops_measuring():
    cal = FeedbackCalibration(ratio=0.5, n_batches=4)
    cal.finish_with_equal_norms()
    assert cal.done and cal.scales() == {t: 0.5 for t in FEEDBACK_TERMS}
