"""A training process killed with SIGKILL in the middle of an epoch resumes to the same final numbers."""

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
