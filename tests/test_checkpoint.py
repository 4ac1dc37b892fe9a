"""Checkpoints: exact resume, config checks, weights_only loading, RNG round trip, atomic writes."""

import json
import random

import numpy as np
import pytest
import torch

from dummy_method import DummyMethod, dummy_datasets, tiny_cfg

import deepmt.engine.trainer as trainer
from deepmt.engine.checkpoint import (
    RESUME_IGNORED_KEYS,
    config_diff,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from deepmt.errors import ConfigMismatchError, DataError
from deepmt.utils import seed_everything



def _fresh():
    seed_everything(0)
    return DummyMethod()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    return trainer.train(_fresh(), tiny_cfg(), dummy_datasets(), d)


@pytest.mark.parametrize("stop_after", [1, 2, 3])  # mid stage 1, at the stage boundary, mid stage 2
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, monkeypatch, reference, stop_after):
    calls = {"n": 0}
    real = trainer._write_history

    def crash_after(run_dir, rows):
        real(run_dir, rows)
        calls["n"] += 1
        if calls["n"] == stop_after:
            raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(trainer, "_write_history", crash_after)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(_fresh(), tiny_cfg(), dummy_datasets(), tmp_path)
    monkeypatch.setattr(trainer, "_write_history", real)
    assert load_checkpoint(tmp_path / "last.pt")["kind"] == "last"
    res = trainer.train(_fresh(), tiny_cfg(), dummy_datasets(), tmp_path, resume=True)
    assert res.resumed
    np.testing.assert_equal(res.test_metrics, reference.test_metrics)
    np.testing.assert_equal(res.val_metrics, reference.val_metrics)
    assert len(res.history) == len(reference.history)
    np.testing.assert_array_equal(res.test_predictions["grade_probs"], reference.test_predictions["grade_probs"])


def test_resume_with_other_config_is_refused_listing_keys(tmp_path, reference):
    run = reference.run_dir
    with pytest.raises(ConfigMismatchError) as info:
        trainer.train(_fresh(), tiny_cfg(**{"train.lr": 0.5, "data.scale": 2}), dummy_datasets(), run, resume=True)
    assert "train.lr" in str(info.value) and "data.scale" in str(info.value)
    # keys that cannot change the weights may differ
    cfg = tiny_cfg(**{"train.progress": True, "train.log_every": 3, "train.device": "cpu"})
    assert config_diff(tiny_cfg().to_dict(), cfg.to_dict()) == []
    assert {"train.progress", "train.device"} <= RESUME_IGNORED_KEYS


def test_checkpoint_is_weights_only_and_rebuilds_method(reference):
    ckpt = torch.load(reference.checkpoint, weights_only=True)  # no pickle of arbitrary objects
    assert ckpt["kind"] == "final" and ckpt["method"] == "dummy"
    assert json.loads(ckpt["config"])["train"]["lr"] == tiny_cfg().train.lr
    m = DummyMethod()
    m.load_state_dict(ckpt["model"])


def test_corrupt_or_foreign_checkpoint_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="not a deepmt checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_rng_state_round_trip():
    g = torch.Generator().manual_seed(3)
    random.gauss(0, 1)
    np.random.normal()
    state = get_rng_state(g)
    a = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.normal(), torch.rand(2), torch.rand(2, generator=g))
    set_rng_state(state, g)
    b = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.normal(), torch.rand(2), torch.rand(2, generator=g))
    assert a[:4] == b[:4] and torch.equal(a[4], b[4]) and torch.equal(a[5], b[5])
