"""The experiment cache: train once, reuse, retrain on a changed config or a corrupt entry.

Runs are pinned to the CPU: exact same-seed equality is a CPU property here (on CUDA the grader's
adaptive max-pool backward has no deterministic kernel).
"""

import json

import numpy as np
import pytest

import deepmt.engine.trainer as trainer
from deepmt.config import get_config
from deepmt.engine.evaluate import evaluate
from deepmt.experiment_cache import cached_result, load_method, run_dir_for, run_experiment, run_seeds

CPU = {"train.device": "cpu"}


@pytest.fixture
def train_calls(monkeypatch):
    calls = []
    real = trainer.train

    def counting(*a, **k):
        calls.append(a[1].key())
        return real(*a, **k)

    monkeypatch.setattr(trainer, "train", counting)
    return calls


def test_real_deepmt_dr_cached_and_reloaded(cache, train_calls):
    cfg = get_config("smoke", CPU)
    first = run_experiment("deepmt_dr", cfg)
    assert len(train_calls) == 1 and not first.from_cache
    assert list(first.history["stage"].unique()) == ["stage1a", "stage1b", "stage2"]
    assert {"qwk", "accuracy", "psnr", "dice", "aupr"} <= set(first.metrics)
    assert first.predictions["grade_probs"].shape == (cfg.data.n_test, 5)
    again = run_experiment("deepmt_dr", cfg)
    assert len(train_calls) == 1 and again.from_cache  # not trained again
    np.testing.assert_equal(again.metrics, first.metrics)
    assert again.key == cfg.key()
    np.testing.assert_array_equal(again.predictions["grade_probs"], first.predictions["grade_probs"])
    # the trained method comes back and gives the same numbers
    from deepmt.data import build_datasets

    method = load_method(again)
    metrics, _ = evaluate(method, build_datasets(cfg.data, ("test",))["test"], cfg)
    assert metrics["qwk"] == pytest.approx(first.metrics["qwk"]) and metrics["psnr"] == pytest.approx(first.metrics["psnr"])


def test_config_change_is_a_new_entry_and_same_seed_is_deterministic(cache, train_calls):
    cfg = get_config("smoke", CPU)
    a = run_experiment("grader_lr", cfg)
    b = run_experiment("grader_lr", cfg.replace({"train.lr": 1e-3}))
    assert len(train_calls) == 2 and a.run_dir != b.run_dir
    c = run_experiment("grader_lr", cfg, force=True)  # same seed, trained again from scratch
    assert len(train_calls) == 3
    np.testing.assert_equal(c.metrics, a.metrics)
    np.testing.assert_array_equal(c.predictions["grade_probs"], a.predictions["grade_probs"])
    seeds = run_seeds("grader_lr", cfg, [0, 1])
    assert len(train_calls) == 4 and seeds[0].from_cache and seeds[1].config.train.seed == 1


def test_cached_result_looks_up_without_training_or_creating(cache, train_calls):
    cfg = get_config("smoke", {**CPU, "train.lr": 2.5e-3})  # a config no other test trains
    d = run_dir_for("grader_lr", cfg)
    assert cached_result("grader_lr", cfg) is None
    assert not d.exists() and train_calls == []  # a lookup trains nothing and leaves no empty entry behind
    trained = run_experiment("grader_lr", cfg)
    assert trained.run_dir == d and d.is_dir()
    found = cached_result("grader_lr", cfg)
    assert found is not None and found.from_cache and len(train_calls) == 1
    np.testing.assert_equal(found.metrics, trained.metrics)


@pytest.mark.parametrize("damage", ["truncate_predictions", "delete_result", "garble_result", "alter_checkpoint", "corrupt_last"])
def test_corrupt_entry_is_detected_and_retrained(cache, train_calls, damage, capsys):
    cfg = get_config("smoke", {**CPU, "train.lr": 3e-3})
    good = run_experiment("grader_lr", cfg)
    d = run_dir_for("grader_lr", cfg)
    n = len(train_calls)
    if damage == "truncate_predictions":
        p = d / "predictions.npz"
        p.write_bytes(p.read_bytes()[:50])
    elif damage == "delete_result":
        (d / "result.json").unlink()
    elif damage == "garble_result":
        (d / "result.json").write_text("{ not json")
    elif damage == "alter_checkpoint":
        with open(d / "final.pt", "ab") as f:
            f.write(b"x")
    elif damage == "corrupt_last":
        (d / "result.json").unlink()
        (d / "last.pt").write_bytes(b"garbage")
    if damage == "delete_result":  # an interrupted run (last.pt, no result.json): resumed, and it says so
        capsys.readouterr()
        res = run_experiment("grader_lr", cfg)
        assert f"resuming the interrupted run in {d} from its last.pt" in capsys.readouterr().err
    else:
        with pytest.warns(UserWarning, match="not usable|unusable"):
            res = run_experiment("grader_lr", cfg)
    assert len(train_calls) == n + 1 and not res.from_cache
    np.testing.assert_equal(res.metrics, good.metrics)  # resumed or retrained: same numbers
    assert json.loads((d / "result.json").read_text())["key"] == cfg.key()
    assert run_experiment("grader_lr", cfg).from_cache


def test_epochs_by_method_trains_the_named_baseline_longer_and_keys_it_alone(cache, train_calls):
    """``train.epochs_by_method`` gives one baseline its own epochs: its run is the one ``epochs_single`` at
    that value would make (same entry), and every other method's entry is the one it had without the mapping."""
    from deepmt.errors import SettingError

    plain = get_config("smoke", CPU)
    cfg = plain.replace({"train.epochs_by_method": {"grader_lr": 2}})
    longer = run_experiment("grader_lr", cfg)
    assert (longer.history["stage"] == "single").sum() == 2 and longer.config.train.epochs_single == 2
    assert longer.config.train.epochs_by_method == {} and longer.key == plain.replace({"train.epochs_single": 2}).key()
    assert run_experiment("grader_lr", plain.replace({"train.epochs_single": 2})).from_cache  # the same entry
    other = run_experiment("grader_hr", cfg)
    assert (other.history["stage"] == "single").sum() == 1 and other.key == plain.key()
    assert run_experiment("grader_hr", plain).from_cache and len(train_calls) == 2
    assert run_dir_for("grader_lr", cfg) == longer.run_dir
    for bad, words in (({"grader_lrr": 3}, "unknown method 'grader_lrr'; did you mean 'grader_lr'"),
                       ({"deepmt_dr": 3}, "'deepmt_dr' trains by stage")):
        with pytest.raises(SettingError, match=words):
            run_experiment("grader_hr", plain.replace({"train.epochs_by_method": bad}))
    assert len(train_calls) == 2
