"""The pool of worker processes (deepmt/worker_pool.py) and the per-entry cache lock (deepmt/experiment_cache.py).

Runs are pinned to the CPU: exact equality between processes is a CPU property here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dummy_method import DummyMethod, dummy_datasets, tiny_cfg

import deepmt.worker_pool as R
from deepmt.config import get_config
from deepmt.engine.trainer import cpu_threads, train
from deepmt.errors import DeepMTError, TrainingError
from deepmt.experiment_cache import run_dir_for, run_experiment

HERE = Path(__file__).parent
CPU = {"train.device": "cpu"}


def _start(mode, tmp, cfg, name, delay=0.0):
    """A race_worker.py subprocess (waits for its go file); returns (process, go file, out json)."""
    go, out = tmp / f"go-{name}", tmp / f"{name}.json"
    cmd = [sys.executable, str(HERE / "race_worker.py"), mode, str(out), str(tmp / "markers"), str(go), str(delay),
           json.dumps(cfg.to_dict())]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, go, out


def _wait_for(pattern, folder, procs, count=1, timeout=120):
    deadline = time.time() + timeout
    while len(list(folder.glob(pattern))) < count:
        for p in procs:
            assert p.poll() is None, p.stdout.read()
        assert time.time() < deadline, f"no {pattern} within {timeout} s"
        time.sleep(0.02)


@pytest.mark.slow
def test_two_processes_race_for_one_entry_one_trains_the_other_waits_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "markers").mkdir()
    cfg = tiny_cfg(**CPU)
    a, go_a, out_a = _start("train", tmp_path, cfg, "a", delay=0.03)  # 16 samples x 0.03 s x 4 epochs: ~2 s
    b, go_b, out_b = _start("train", tmp_path, cfg, "b", delay=0.03)
    _wait_for("ready-*", tmp_path / "markers", [a, b], count=2)  # both imported everything
    go_a.touch()
    _wait_for("built-*", tmp_path / "markers", [a, b])  # a holds the entry's lock and trains
    go_b.touch()
    log_a, log_b = a.communicate(timeout=120)[0], b.communicate(timeout=120)[0]
    assert a.returncode == 0 and b.returncode == 0, (log_a, log_b)
    ra, rb = json.loads(out_a.read_text()), json.loads(out_b.read_text())
    assert not ra["from_cache"] and rb["from_cache"]
    assert [p.name for p in (tmp_path / "markers").glob("built-*")] == [f"built-{ra['pid']}"]  # b never built a model
    assert "waiting for dummy-" in log_b and "another process is training it" in log_b
    assert rb["metrics"] == ra["metrics"] and rb["probs"] == ra["probs"]


@pytest.mark.slow
def test_lock_of_a_killed_process_does_not_block(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "markers").mkdir()
    cfg = tiny_cfg(**CPU)
    holder, go, _ = _start("hold", tmp_path, cfg, "holder")
    go.touch()
    _wait_for("holding-*", tmp_path / "markers", [holder])
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(30) == -signal.SIGKILL
    t0 = time.perf_counter()
    res = run_experiment("dummy", cfg, datasets=dummy_datasets(), builder=lambda *a: DummyMethod())
    assert not res.from_cache and res.run_dir == run_dir_for("dummy", cfg)
    assert "waiting for" not in capsys.readouterr().out
    assert time.perf_counter() - t0 < 60


@pytest.mark.slow
def test_grid_in_parallel_gives_exactly_the_serial_metrics(tmp_path, monkeypatch, capsys):
    cfg = get_config("smoke", CPU)
    grid = [("grader_lr", 0), ("grader_lr", 1), ("deepmt_dr", 0)]
    jobs = [R.Job(m, cfg.replace({"train.seed": s}), label=f"{m} seed {s}") for m, s in grid]
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "serial"))
    serial = R.run_jobs(jobs, workers=1)
    (tmp_path / "parallel").mkdir()
    (tmp_path / "parallel" / "synthetic").symlink_to(tmp_path / "serial" / "synthetic")  # the data, not the runs
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "parallel"))
    parallel = R.run_jobs(jobs, workers=2)
    out = capsys.readouterr().out
    assert out.count("(worker ") == 3 and out.count("[3/3]") == 2  # one line per run, each run in a worker
    assert {line.split("(worker ")[1] for line in out.splitlines() if "(worker " in line} == {"1)", "2)"}
    for s, p in zip(serial, parallel):
        assert (s.method, s.key) == (p.method, p.key) and not s.from_cache and not p.from_cache
        assert p.run_dir.is_relative_to(tmp_path / "parallel")
        np.testing.assert_equal(p.metrics, s.metrics)
        np.testing.assert_array_equal(p.predictions["grade_probs"], s.predictions["grade_probs"])
    assert len({r.metrics["accuracy"] for r in serial} | {tuple(r.predictions["grade_probs"].ravel()) for r in serial}) > 2
    # run again: everything from the cache, nothing reaches a worker
    again = R.run_jobs(jobs, workers=2)
    assert all(r.from_cache for r in again) and "(worker " not in capsys.readouterr().out


def _with_threads(cfg, threads):
    """A config with ``train.threads`` set past the override check (as a hand-edited config.json could be)."""
    bad = cfg.replace({})
    bad.train.threads = threads
    return bad


def test_errors_in_workers_surface_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path))
    cfg = get_config("smoke", CPU)
    jobs = [R.Job("grader_lr", _with_threads(cfg, t)) for t in (-1, -2)]
    with pytest.raises(TrainingError) as err:
        R.run_jobs(jobs, workers=2)
    assert str(err.value) in ("train.threads=-1: expected a whole number >= 0 (0 = torch's default)",
                              "train.threads=-2: expected a whole number >= 0 (0 = torch's default)")
    assert err.value.__cause__ is None  # no remote traceback: the CLI prints one line


def test_worker_count_from_the_environment(monkeypatch):
    quick = [R.Job("deepmt_dr", get_config("quick", CPU))]
    monkeypatch.setenv("DEEPMT_JOBS", "3")
    assert R.workers_from_env(quick) == 3
    monkeypatch.setenv("DEEPMT_JOBS", "")
    assert R.workers_from_env(quick) == max(1, R.usable_cores())  # 1 thread per run
    assert R.default_workers([R.Job("m", get_config("quick", {**CPU, "train.threads": 0}))]) == 1
    assert R.default_workers([R.Job("m", get_config("smoke", CPU))]) == 1  # seconds per run: no workers
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("DEEPMT_JOBS", bad)
        with pytest.raises(DeepMTError, match=f"DEEPMT_JOBS='{bad}'"):
            R.workers_from_env(quick)


def test_threads_are_part_of_the_key_and_applied_while_training(tmp_path):
    cfg = tiny_cfg(**CPU)
    assert cfg.train.threads == 1 and cfg.replace({"train.threads": 2}).key() != cfg.key()
    seen = []

    class Recording(DummyMethod):
        def training_loss(self, batch, stage):
            seen.append(torch.get_num_threads())
            return super().training_loss(batch, stage)

    before = torch.get_num_threads()
    with cpu_threads(2):
        train(Recording(), cfg, dummy_datasets(), tmp_path / "run")
        assert torch.get_num_threads() == 2  # restored
    assert set(seen) == {1} and torch.get_num_threads() == before
    with pytest.raises(TrainingError, match="train.threads=-1"):
        train(DummyMethod(), _with_threads(cfg, -1), dummy_datasets(), tmp_path / "bad")
