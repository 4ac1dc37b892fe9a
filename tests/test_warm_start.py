"""Warm-started runs: an ablation that changes only later stages trains only those, from the base run's state.

Pinned to the CPU (exact same-seed equality is a CPU property here, see test_experiment_cache.py).
"""

import json
import shutil
from pathlib import Path
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from dummy_method import DummyMethod, dummy_datasets, tiny_cfg

import deepmt.engine.trainer as trainer
from deepmt.config import get_config
from deepmt.engine.checkpoint import load_checkpoint
from deepmt.errors import ConfigMismatchError, DeepMTError
from deepmt.experiment_cache import check_warm_start, run_dir_for, run_experiment
from deepmt.utils import seed_everything

CPU = {"train.device": "cpu"}


class Interrupt(Exception):
    pass


@pytest.fixture
def epochs(monkeypatch):
    """Records (stage, epoch, state at the start of each stage) of every trained epoch."""
    log = {"epochs": [], "start": {}}
    real = trainer._run_epoch

    def spy(model, method, loader, opt, sched, scaler, params, prec, cfg, ctx, stage, epoch, bar):
        if stage not in log["start"] and epoch == 0:
            log["start"][stage] = trainer._state_copy(method)
        log["epochs"].append((stage, epoch))
        if log.get("interrupt") == (stage, epoch):
            raise Interrupt(f"{stage} epoch {epoch}")
        return real(model, method, loader, opt, sched, scaler, params, prec, cfg, ctx, stage, epoch, bar)

    monkeypatch.setattr(trainer, "_run_epoch", spy)
    return log


@pytest.fixture(scope="module")
def base(cache):
    """The full smoke DeepMT-DR run, with the weights each stage started from."""
    log = {}
    real = trainer._run_epoch

    def spy(model, method, *a):
        stage, epoch = a[-3], a[-2]
        if stage not in log and epoch == 0:
            log[stage] = trainer._state_copy(method)
        return real(model, method, *a)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "_run_epoch", spy)
        res = run_experiment("deepmt_dr", get_config("smoke", CPU))
    assert not res.from_cache and res.warm_start is None
    return res, log


def _same_state(a, b):
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k].cpu(), b[k].cpu()), k


def test_warm_stage2_trains_only_stage2_from_the_base_state_and_is_cached_apart(base, epochs):
    res, started = base
    cfg = res.config.replace({"loss.cls_aware": 0.0})
    warm = run_experiment("deepmt_dr", cfg, warm_start=res, start_stage="stage2")
    # only stage 2 was trained, starting from best-stage1b.pt == the base's weights when its stage 2 began
    assert [s for s, _ in epochs["epochs"]] == ["stage2"] * cfg.train.epochs_stage2
    best1b = load_checkpoint(res.run_dir / "best-stage1b.pt")["model"]
    _same_state(epochs["start"]["stage2"], best1b)
    _same_state(started["stage2"], best1b)
    # history: the base's stage 1a/1b rows, marked, then its own stage-2 rows
    h = warm.history
    assert list(h["stage"]) == ["stage1a"] * cfg.train.epochs_stage1a + ["stage1b"] * cfg.train.epochs_stage1b + ["stage2"] * cfg.train.epochs_stage2
    assert (h.loc[h.stage != "stage2", "warm_start_from"] == res.key).all()
    assert h.loc[h.stage == "stage2", "warm_start_from"].isna().all()
    assert list(h["global_epoch"]) == list(range(1, len(h) + 1))
    assert warm.train_seconds == pytest.approx(h.loc[h.stage == "stage2", "seconds"].sum())
    # recorded and cached apart from the base and from a full run of the same config
    assert warm.warm_start["base_key"] == res.key and warm.warm_start["start_stage"] == "stage2"
    assert warm.warm_start["init_checkpoint"] == "best-stage1b.pt"
    assert warm.warm_start["rng"] == "stage-end-stage1b.pt"
    assert warm.key == cfg.key() and warm.run_dir not in (res.run_dir, run_dir_for("deepmt_dr", cfg))
    assert json.loads((warm.run_dir / "result.json").read_text())["warm_start"]["base_key"] == res.key
    assert not (run_dir_for("deepmt_dr", cfg) / "result.json").exists()
    n = len(epochs["epochs"])
    again = run_experiment("deepmt_dr", cfg, warm_start=res, start_stage="stage2")
    assert again.from_cache and len(epochs["epochs"]) == n and again.warm_start == warm.warm_start
    np.testing.assert_equal(again.metrics, warm.metrics)
    # the ablation did change stage 2
    assert "loss_cls_aware" not in h.loc[h.stage == "stage2"].dropna(axis=1).columns
    assert "loss_cls_aware" in res.history.loc[res.history.stage == "stage2"].dropna(axis=1).columns


@pytest.mark.parametrize("start", ["stage2", "stage1b"])
def test_warm_start_with_the_base_config_reproduces_the_base(base, epochs, start):
    res, started = base
    warm = run_experiment("deepmt_dr", res.config, warm_start=res, start_stage=start)
    assert [s for s, _ in epochs["epochs"]][0] == start
    _same_state(epochs["start"][start], started[start])
    np.testing.assert_equal(warm.metrics, res.metrics)
    np.testing.assert_array_equal(warm.predictions["grade_probs"], res.predictions["grade_probs"])
    np.testing.assert_array_equal(warm.predictions["isr_psnr"], res.predictions["isr_psnr"])


def test_warm_start_config_checks(base):
    res, _ = base
    cfg = res.config
    with pytest.raises(ConfigMismatchError, match="model.grader.width"):
        run_experiment("deepmt_dr", cfg.replace({"model.grader.width": 16}), warm_start=res, start_stage="stage2")
    with pytest.raises(ConfigMismatchError, match="data.n_train"):
        run_experiment("deepmt_dr", cfg.replace({"data.n_train": 12}), warm_start=res, start_stage="stage2")
    with pytest.raises(ConfigMismatchError, match="train.seed"):
        run_experiment("deepmt_dr", cfg.replace({"train.seed": 1}), warm_start=res, start_stage="stage2")
    # vis_consistency is used by stage 1b: allowed from stage1b on, not at stage2
    with pytest.raises(ConfigMismatchError, match="loss.vis_consistency"):
        check_warm_start("deepmt_dr", cfg.replace({"loss.vis_consistency": 0.0}), res, "stage2")
    check_warm_start("deepmt_dr", cfg.replace({"loss.vis_consistency": 0.0}), res, "stage1b")
    check_warm_start("deepmt_dr", cfg.replace({"model.vis.feature_selection": False}), res, "stage1b")
    with pytest.raises(ConfigMismatchError, match="model.vis.feature_selection"):
        check_warm_start("deepmt_dr", cfg.replace({"model.vis.feature_selection": False}), res, "stage2")
    check_warm_start("deepmt_dr", cfg.replace({"train.device": "cuda", "train.progress": True}), res, "stage2")
    with pytest.raises(DeepMTError, match="method"):
        check_warm_start("deepmt_dr_noisr", cfg, res, "stage2")
    with pytest.raises(DeepMTError, match="stages"):
        check_warm_start("deepmt_dr", cfg, res, "single")
    with pytest.raises(DeepMTError, match="together"):
        run_experiment("deepmt_dr", cfg, warm_start=res)
    with pytest.raises(DeepMTError, match="itself warm-started"):
        check_warm_start("deepmt_dr", cfg, replace(res, warm_start={"base_key": "x"}), "stage2")


def test_missing_base_checkpoint_is_a_clear_error(base, tmp_path):
    res, _ = base
    copy = tmp_path / res.run_dir.name
    shutil.copytree(res.run_dir, copy)
    (copy / "best-stage1b.pt").unlink()
    with pytest.raises(DeepMTError, match="best-stage1b.pt is missing"):
        run_experiment("deepmt_dr", res.config.replace({"loss.seg_aware": 0.0}), warm_start=replace(res, run_dir=copy), start_stage="stage2")


def test_interrupted_warm_run_resumes(base, epochs, tmp_path, monkeypatch, capsys):
    res, _ = base
    cfg = res.config.replace({"loss.seg_aware": 0.0, "train.epochs_stage2": 2})
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "ref"))  # the uninterrupted reference, in its own cache
    ref = run_experiment("deepmt_dr", cfg, warm_start=res, start_stage="stage2")
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cut"))
    epochs["interrupt"] = ("stage2", 1)
    with pytest.raises(Interrupt):
        run_experiment("deepmt_dr", cfg, warm_start=res, start_stage="stage2")
    d = run_dir_for("deepmt_dr", cfg, res.key, "stage2")
    assert load_checkpoint(d / "last.pt")["epoch"] == 1 and not (d / "result.json").exists()
    epochs["interrupt"] = None
    epochs["epochs"].clear()
    capsys.readouterr()
    out = run_experiment("deepmt_dr", cfg, warm_start=res, start_stage="stage2")  # says it resumes, no warning
    assert f"resuming the interrupted run in {d} from its last.pt" in capsys.readouterr().err
    assert epochs["epochs"] == [("stage2", 1)]  # only the missing epoch
    assert json.loads((d / "result.json").read_text())["resumed"] is True
    np.testing.assert_equal(out.metrics, ref.metrics)
    np.testing.assert_array_equal(out.predictions["grade_probs"], ref.predictions["grade_probs"])
    assert list(out.history["stage"]) == list(ref.history["stage"])
    assert (out.history.loc[out.history.stage != "stage2", "warm_start_from"] == res.key).all()


# --------------------------------------------------------------------------- fallbacks, with the dummy method
def _dummy(name, cfg, cc):
    seed_everything(cfg.train.seed)
    return DummyMethod()


def test_previous_stage_without_epochs_falls_back_to_the_fresh_build(tmp_path, monkeypatch, epochs):
    """isr_seg trains 0 epochs: stage 'grade' started from the freshly built method, with fresh RNGs."""
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path))
    cfg = tiny_cfg(**{**CPU, "train.epochs_stage1a": 0})
    base = run_experiment("dummy", cfg, datasets=dummy_datasets(), builder=_dummy)
    assert list(base.history["stage"].unique()) == ["grade"]
    fresh = epochs["start"]["grade"]
    epochs["start"].clear()
    warm = run_experiment("dummy", cfg, datasets=dummy_datasets(), builder=_dummy, warm_start=base, start_stage="grade")
    assert warm.warm_start["init_checkpoint"] is None and warm.warm_start["rng"] == "seeded"
    _same_state(epochs["start"]["grade"], fresh)
    np.testing.assert_equal(warm.metrics, base.metrics)
    with pytest.raises(ConfigMismatchError, match="train.lr"):  # no keys may differ for a method without a table
        run_experiment("dummy", cfg.replace({"train.lr": 0.5}), datasets=dummy_datasets(), builder=_dummy, warm_start=base, start_stage="grade")
    with pytest.raises(DeepMTError, match="first stage"):
        run_experiment("dummy", cfg, datasets=dummy_datasets(), builder=_dummy, warm_start=base, start_stage="isr_seg")


def test_previous_stage_without_validation_uses_its_last_epoch(tmp_path, monkeypatch, epochs):
    """No val split: the last epoch of each stage is its 'best', so best-<stage>.pt is still the next stage's start."""
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path))
    cfg = tiny_cfg(**CPU)
    ds = {k: v for k, v in dummy_datasets().items() if k != "val"}
    base = run_experiment("dummy", cfg, datasets=ds, builder=_dummy)
    assert json.loads((base.run_dir / "result.json").read_text())["best"]["isr_seg"]["epoch"] == cfg.train.epochs_stage1a
    started = epochs["start"]["grade"]
    epochs["start"].clear()
    warm = run_experiment("dummy", cfg, datasets=ds, builder=_dummy, warm_start=base, start_stage="grade")
    assert warm.warm_start["init_checkpoint"] == "best-isr_seg.pt"
    _same_state(epochs["start"]["grade"], started)
    np.testing.assert_equal(warm.metrics, base.metrics)


def test_train_init_keeps_earlier_rows_and_counts_only_new_time(tmp_path):
    cfg = tiny_cfg(**CPU)
    seed_everything(0)
    a = trainer.train(DummyMethod(), cfg, dummy_datasets(), tmp_path / "a")
    best = load_checkpoint(tmp_path / "a" / "best-isr_seg.pt")
    rng = load_checkpoint(tmp_path / "a" / "stage-end-isr_seg.pt")["rng"]
    rows = [r for r in a.history.to_dict("records") if r["stage"] == "isr_seg"]
    seed_everything(0)
    b = trainer.train(DummyMethod(), cfg, dummy_datasets(), tmp_path / "b",
                      init={"model": best["model"], "stage_index": 1, "history": rows, "rng": rng, "from": "a",
                            "best_info": {"isr_seg": a.best["isr_seg"]}})
    np.testing.assert_equal(b.test_metrics, a.test_metrics)
    assert list(b.history["warm_start_from"].fillna("")) == ["a"] * len(rows) + [""] * cfg.train.epochs_stage1b
    assert b.best == a.best
    assert b.train_seconds == pytest.approx(b.history.loc[b.history.stage == "grade", "seconds"].sum())
    csv = pd.read_csv(tmp_path / "b" / "metrics.csv")
    assert len(csv) == len(a.history)


def test_stage_config_keys_are_declared_on_the_method_class():
    """Which keys act from which stage is the method's own knowledge (``Method.stage_config_keys``): one entry per
    stage of the class, in stage order, each key a config field; the warm-start checks read it by name."""
    from deepmt.experiment_cache import warm_start_keys, warm_start_stage_keys
    from deepmt.grid_log import flat_fields
    from deepmt.models.base import Method
    from deepmt.models.methods import METHOD_CLASSES, METHODS, method_class

    assert set(METHOD_CLASSES) == set(METHODS) and Method.stage_config_keys == {}
    fields = set(flat_fields(get_config("smoke")))
    for name, cls in METHOD_CLASSES.items():
        table = cls.stage_config_keys
        assert not table or tuple(table) == cls.stages, name
        assert set().union(*table.values()) <= fields, name
        assert warm_start_stage_keys(name) is table
    assert method_class("deepmt_dr_noisr").stage_config_keys is method_class("deepmt_dr").stage_config_keys
    assert warm_start_stage_keys("dummy") == {} and warm_start_stage_keys("grader_lr") == {}
    assert "loss.cls_aware" in warm_start_keys("deepmt_dr", method_class("deepmt_dr").stages, "stage1b")
    assert "loss.vis_consistency" not in warm_start_keys("deepmt_dr", method_class("deepmt_dr").stages, "stage2")
    with pytest.raises(ValueError, match="unknown method"):
        method_class("nope")


# --------------------------------------------------------------------------- full runs built from a stage boundary
def _same_run(a, b):
    """Two full runs are the same run: metrics, every prediction array, final weights, validation curves."""
    np.testing.assert_equal(a.metrics, b.metrics)
    np.testing.assert_equal(a.val_metrics, b.val_metrics)
    assert set(a.predictions) == set(b.predictions)
    for k in a.predictions:
        np.testing.assert_array_equal(a.predictions[k], b.predictions[k], err_msg=k)
    _same_state(load_checkpoint(a.checkpoint)["model"], load_checkpoint(b.checkpoint)["model"])
    val = [c for c in a.history.columns if c.startswith(("val_", "loss_")) or c in ("stage", "epoch", "best")]
    pd.testing.assert_frame_equal(a.history[val], b.history[val])


@pytest.mark.parametrize("change, stage", [({"train.epochs_stage2": 2}, "stage2"),
                                           ({"loss.vis_consistency": 0.0, "loss.cls_aware": 0.0}, "stage1b")])
def test_full_run_built_from_a_stage_boundary_is_the_from_scratch_run(base, epochs, tmp_path, monkeypatch, change, stage):
    res, _ = base
    cfg = res.config.replace(change)
    module_cache = res.run_dir.parent.parent
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path))  # the reference: trained from scratch in a cache of its own
    ref = run_experiment("deepmt_dr", cfg)
    assert ref.built_from is None and ref.history["stage"].iloc[0] == "stage1a"
    monkeypatch.setenv("DEEPMT_CACHE", str(module_cache))
    epochs["epochs"].clear()
    built = run_experiment("deepmt_dr", cfg)
    stages = ["stage1a", "stage1b", "stage2"]
    assert sorted({s for s, _ in epochs["epochs"]}) == stages[stages.index(stage):]  # only the later stages trained
    assert built.run_dir == run_dir_for("deepmt_dr", cfg) and built.warm_start is None
    assert built.built_from["start_stage"] == stage  # from the base, or from another full run with its stage 1a
    assert Path(built.built_from["base_run_dir"]).parent == module_cache / "runs"
    _same_run(built, ref)
    assert built.train_seconds > built.built_from["seconds_trained_here"] > 0
    # it is a full run: the earlier stages' files are there under its own config, and warm starts from it work
    for st in stages[:stages.index(stage)]:
        assert json.loads(load_checkpoint(built.run_dir / f"best-{st}.pt")["config"]) == json.loads(
            load_checkpoint(ref.run_dir / f"best-{st}.pt")["config"])
    var = cfg.replace({"loss.seg_aware": 0.0})
    warm_built = run_experiment("deepmt_dr", var, warm_start=built, start_stage="stage2")
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path))
    np.testing.assert_equal(warm_built.metrics, run_experiment("deepmt_dr", var, warm_start=ref, start_stage="stage2").metrics)
    # loaded again: the same entry, nothing trained
    monkeypatch.setenv("DEEPMT_CACHE", str(module_cache))
    epochs["epochs"].clear()
    again = run_experiment("deepmt_dr", cfg)
    assert again.from_cache and epochs["epochs"] == [] and again.built_from == built.built_from


def test_no_stage_boundary_when_an_earlier_stage_changes_or_on_force(base, epochs, monkeypatch):
    from deepmt.experiment_cache import stage_boundary_base

    res, _ = base
    assert stage_boundary_base("deepmt_dr", res.config.replace({"model.grader.width": 16})) is None  # a stage-1a key
    assert stage_boundary_base("deepmt_dr_noisr", res.config.replace({"train.epochs_stage2": 3})) is None  # another method
    found, stage = stage_boundary_base("deepmt_dr", res.config.replace({"train.epochs_stage2": 3}))
    assert stage == "stage2" and found.warm_start is None  # a full run (the base, or one built from it)
    cfg = res.config.replace({"train.epochs_stage2": 3, "loss.seg_aware": 0.0})
    forced = run_experiment("deepmt_dr", cfg, force=True)
    assert forced.built_from is None and epochs["epochs"][0] == ("stage1a", 0)


def test_interrupted_stage_boundary_build_resumes(base, epochs, tmp_path, monkeypatch):
    res, _ = base
    cfg = res.config.replace({"train.epochs_stage2": 2, "loss.cls_aware": 0.5})
    module_cache = res.run_dir.parent.parent
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path))
    ref = run_experiment("deepmt_dr", cfg)
    monkeypatch.setenv("DEEPMT_CACHE", str(module_cache))
    epochs["interrupt"] = ("stage2", 1)
    with pytest.raises(Interrupt):
        run_experiment("deepmt_dr", cfg)
    d = run_dir_for("deepmt_dr", cfg)
    assert (d / "built_from.json").is_file() and not (d / "result.json").exists()
    epochs["interrupt"] = None
    epochs["epochs"].clear()
    out = run_experiment("deepmt_dr", cfg)
    assert epochs["epochs"] == [("stage2", 1)]
    assert out.built_from["start_stage"] == "stage2"
    _same_run(out, ref)
