"""The staged trainer: schedule, freezing, selection, logs, determinism, NaN handling, evaluation."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dummy_method import DummyMethod, dummy_datasets, tiny_cfg

from deepmt.engine.checkpoint import load_checkpoint
from deepmt.engine.device import resolve_device, resolve_precision
from deepmt.engine.evaluate import evaluate
from deepmt.engine.trainer import train
from deepmt.errors import ConfigMismatchError, TrainingError
from deepmt.utils import seed_everything



def _fresh(seed=0, **kw):
    seed_everything(seed)
    return DummyMethod(**kw)


def test_staged_schedule_freezes_selects_and_logs(tmp_path):
    cfg = tiny_cfg()
    m = _fresh()
    grader0 = {k: v.clone() for k, v in m.grader.state_dict().items()}

    res = train(m, cfg, dummy_datasets(), tmp_path)
    h = res.history
    assert list(h["stage"]) == ["isr_seg", "isr_seg", "grade", "grade"]
    assert list(h["selection_metric"]) == ["psnr", "psnr", "qwk", "qwk"]
    assert {"loss_total", "loss_pixel", "loss_seg", "loss_ce", "val_psnr", "val_qwk", "lr", "seconds", "images_per_s"} <= set(h.columns)
    # stage 2 trains only the grader: ISR validation numbers stay put
    assert h["val_psnr"].iloc[2] == h["val_psnr"].iloc[3]
    assert any(not torch.equal(grader0[k], v.cpu()) for k, v in m.grader.state_dict().items() if v.is_floating_point())
    # best-of-stage restored: final weights are the best grade-stage epoch's
    best = load_checkpoint(tmp_path / "best-grade.pt")
    assert best["epoch"] == res.best["grade"]["epoch"]
    for k, v in m.state_dict().items():
        assert torch.equal(v.cpu(), best["model"][k]), k
    # logs and config
    csv = pd.read_csv(tmp_path / "metrics.csv")  # the one per-epoch log, equal to the returned history
    pd.testing.assert_frame_equal(csv, res.history.reset_index(drop=True), check_dtype=False)
    assert len(csv) == 4 and not (tmp_path / "metrics.jsonl").exists()
    assert json.loads((tmp_path / "config.json").read_text())["train"]["seed"] == 0
    assert res.test_metrics is not None and "qwk" in res.test_metrics and "psnr" in res.test_metrics
    assert len(res.test_predictions["grade_probs"]) == 8
    assert all(not p.requires_grad for p in m.parameters())


def test_same_seed_same_numbers_other_seed_differs(tmp_path):
    cfg = tiny_cfg()
    a = train(_fresh(), cfg, dummy_datasets(), tmp_path / "a")
    b = train(_fresh(), cfg, dummy_datasets(), tmp_path / "b")
    np.testing.assert_equal(a.test_metrics, b.test_metrics)
    np.testing.assert_array_equal(a.test_predictions["grade_probs"], b.test_predictions["grade_probs"])
    c = train(_fresh(1), cfg.replace({"train.seed": 1}), dummy_datasets(), tmp_path / "c")
    assert not np.array_equal(a.test_predictions["grade_probs"], c.test_predictions["grade_probs"])


def test_deterministic_switch_reaches_torch_during_training(tmp_path):
    """``train.deterministic`` is what torch trains under (on by default; off trades repeatability for speed on a
    GPU); off on the CPU still gives the same numbers here, as the CPU kernels used are deterministic anyway."""
    seen = []

    class Spy(DummyMethod):
        def training_loss(self, batch, stage):
            seen.append(torch.are_deterministic_algorithms_enabled())
            return super().training_loss(batch, stage)

    cfg = tiny_cfg()
    seed_everything(0)
    on = train(Spy(), cfg, dummy_datasets(), tmp_path / "on")
    assert seen and all(seen)
    seen.clear()
    seed_everything(0)
    try:
        off = train(Spy(), cfg.replace({"train.deterministic": False}), dummy_datasets(), tmp_path / "off")
        assert seen and not any(seen)
    finally:
        seed_everything(0)  # the suite runs deterministic
    assert torch.are_deterministic_algorithms_enabled()
    np.testing.assert_array_equal(on.test_predictions["grade_probs"], off.test_predictions["grade_probs"])


def test_nan_loss_stops_with_stage_epoch_step_and_term(tmp_path):
    cfg = tiny_cfg()
    # 4 steps per epoch (16 images / batch 4): call 7 is epoch 2, step 3 of stage isr_seg
    m = _fresh(nan_at_call=7, nan_term="seg")
    with pytest.raises(TrainingError) as info:
        train(m, cfg, dummy_datasets(), tmp_path)
    msg = str(info.value)
    assert "'isr_seg'" in msg and "epoch 2" in msg and "step 3" in msg and "seg" in msg and "pixel" not in msg
    ckpt = load_checkpoint(tmp_path / "last.pt")  # the last good checkpoint is kept and loads
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v.float()).all() for v in ckpt["model"].values())
    assert not (tmp_path / "final.pt").exists()


def test_evaluate_outputs_fp32_and_per_image_arrays():
    cfg = tiny_cfg()
    m = _fresh()
    ds = dummy_datasets()["val"]
    metrics, pred = evaluate(m, ds, cfg, keep_lesion_maps=True)
    assert pred["grade_probs"].dtype == np.float32 and pred["grade_probs"].shape == (8, 5)
    np.testing.assert_allclose(pred["grade_probs"].sum(1), 1, atol=1e-5)
    assert pred["isr_psnr"].shape == (8,) and pred["lesion_probs"].shape == (8, 4, 16, 16)
    assert math.isclose(metrics["psnr"], float(pred["isr_psnr"].mean()))
    assert list(pred["id"]) == [f"img{i:03d}" for i in range(8)]
    assert m.training  # mode restored


def test_device_and_precision_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_precision(torch.device("cpu"), "fp32").amp_dtype is None
    assert resolve_precision(torch.device("cpu"), "bf16").amp_dtype is torch.bfloat16
    with pytest.raises(ConfigMismatchError):
        resolve_precision(torch.device("cpu"), "fp16")
    with pytest.raises(ConfigMismatchError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigMismatchError, match="CUDA"):
            resolve_device("cuda")


def test_cpu_bf16_guard_keeps_strided_convs_on_1x1_inputs_finite():
    """oneDNN's bf16 conv backward returns NaN weight grads at random for a strided conv on a 1x1 input."""
    from deepmt.engine.device import guard_cpu_conv_faults

    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, 2, padding=1), torch.nn.Conv2d(32, 8, 3, 1, padding=1))
    assert guard_cpu_conv_faults(net) == 1 and guard_cpu_conv_faults(net) == 0  # strided only, once
    for _ in range(5):
        junk = [torch.full((n,), float("nan")) for n in (1000, 20000, 100000)]  # dirty the allocator
        del junk
        x = torch.randn(4, 16, 1, 1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
        y.float().sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters())
        net.zero_grad()


def test_stage_start_weights_compete_and_are_kept_when_no_epoch_beats_them(tmp_path, capsys):
    cfg = tiny_cfg()
    m = _fresh(keep_start=True, never_better=True)
    res = train(m, cfg, dummy_datasets(), tmp_path)
    assert res.best["grade"]["epoch"] == 0 and "start_val" in res.best["grade"]
    # the final weights are those the grade stage started from = the best isr_seg epoch's
    start = load_checkpoint(tmp_path / "best-isr_seg.pt")["model"]
    for k, v in m.state_dict().items():
        assert torch.equal(v.cpu(), start[k]), k
    assert load_checkpoint(tmp_path / "best-grade.pt")["epoch"] == 0
    assert "kept those" in capsys.readouterr().out
    # the history still holds one row per trained epoch
    assert list(res.history["stage"]) == ["isr_seg", "isr_seg", "grade", "grade"]


def test_stage_start_candidate_loses_to_a_better_epoch(tmp_path):
    cfg = tiny_cfg()
    a = train(_fresh(keep_start=True), cfg, dummy_datasets(), tmp_path / "a")
    start_score = a.best["grade"]["start_val"]["qwk"]
    assert a.best["grade"]["score"] >= start_score
    # without the candidate the same epochs are trained (selection only, no change of the trajectory)
    b = train(_fresh(), cfg, dummy_datasets(), tmp_path / "b")
    np.testing.assert_array_equal(a.history["val_qwk"], b.history["val_qwk"])
