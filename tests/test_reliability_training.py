"""Reliability of training: a process killed with SIGKILL mid-epoch resumes to the same final numbers, and bad
training inputs (damaged last.pt, a run folder already in use, a missing split, inconsistent loss terms, an unknown
selection metric) stop at once with a DeepMTError that says what is wrong.

Data-side bad inputs (corrupt/truncated images, bad labels, wrong layouts, ...) are in test_reliability_data.py."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dummy_method import DummyMethod, dummy_datasets, tiny_cfg

from deepmt.engine.checkpoint import load_checkpoint
from deepmt.engine.trainer import train
from deepmt.utils import seed_everything

HERE = Path(__file__).parent


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    cfg = tiny_cfg(**{"train.epochs_stage1a": 3})
    seed_everything(0)
    ref = train(DummyMethod(), cfg, dummy_datasets(), tmp_path / "ref")

    run = tmp_path / "killed"
    cmd = [sys.executable, str(HERE / "dummy_method.py"), str(run), "0", "0.03", json.dumps(cfg.to_dict())]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not (run / "last.pt").exists():  # first end-of-epoch checkpoint
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline, "no checkpoint within 60 s"
        time.sleep(0.01)
    time.sleep(0.2)  # well inside the next epoch (16 samples x 0.03 s)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    assert not (run / "final.pt").exists()
    ckpt = load_checkpoint(run / "last.pt")  # the atomic checkpoint survived the kill
    assert ckpt["stage_index"] == 0 and ckpt["epoch"] < 3

    seed_everything(0)
    res = train(DummyMethod(), cfg, dummy_datasets(), run, resume=True)
    assert res.resumed
    np.testing.assert_equal(res.test_metrics, ref.test_metrics)
    np.testing.assert_array_equal(res.test_predictions["grade_probs"], ref.test_predictions["grade_probs"])
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------------------------- bad training inputs: fail fast, say why
def test_resume_from_corrupt_last_pt_names_the_file(tmp_path):
    """A damaged last.pt in an explicit --run-dir is an error naming it (never silently retrained there)."""
    from deepmt.errors import DataError

    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError) as info:
        train(DummyMethod(), tiny_cfg(), dummy_datasets(), tmp_path, resume=True)
    assert str(tmp_path / "last.pt") in str(info.value)
    assert (tmp_path / "last.pt").read_bytes() == b"PK\x03\x04 truncated"  # left for the user to inspect


def test_cli_refuses_to_overwrite_a_run_or_resume_nothing(tmp_path, monkeypatch, capsys):
    from deepmt.cli import main

    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    empty, used = tmp_path / "empty", tmp_path / "used"
    used.mkdir()
    (used / "last.pt").write_bytes(b"x")
    assert main(["train", "--profile", "smoke", "--run-dir", str(empty), "--resume"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "does not exist" in err and "Traceback" not in err
    assert main(["train", "--profile", "smoke", "--run-dir", str(used)]) == 1
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err
    assert (used / "last.pt").read_bytes() == b"x"


def test_datasets_without_train_split(tmp_path):
    from deepmt.errors import DataError

    ds = dummy_datasets()
    del ds["train"]
    with pytest.raises(DataError, match="no 'train' split"):
        train(DummyMethod(), tiny_cfg(), ds, tmp_path)


class _ChangingTerms(DummyMethod):
    def training_loss(self, batch, stage):
        total, terms = super().training_loss(batch, stage)
        if self.calls == 2:
            terms = {**terms, "extra": total * 0}
        return total, terms


def test_loss_terms_changing_between_steps_is_a_training_error(tmp_path):
    from deepmt.errors import TrainingError

    with pytest.raises(TrainingError) as info:
        train(_ChangingTerms(), tiny_cfg(), dummy_datasets(), tmp_path)
    msg = str(info.value)
    assert "'isr_seg'" in msg and "step 2" in msg and "extra" in msg


class _UnknownMetric(DummyMethod):
    def selection_metric(self, stage):
        return "no_such_metric"


def test_selection_metric_missing_from_validation_is_a_training_error(tmp_path):
    from deepmt.errors import TrainingError

    with pytest.raises(TrainingError, match="no_such_metric"):
        train(_UnknownMetric(), tiny_cfg(**{"train.epochs_stage1a": 1}), dummy_datasets(), tmp_path)
    assert not (tmp_path / "final.pt").exists()
