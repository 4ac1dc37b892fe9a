"""The worker pool's submitit backend (deepmt/cluster.py): the same entries and results as the local pool, errors as one
line naming the run, Slurm settings from the environment. Jobs run through submitit's local executor (no Slurm here).
"""

from __future__ import annotations

import numpy as np
import pytest

import deepmt.worker_pool as R
from deepmt.cluster import ClusterSettings, executor_parameters, runs_in_flight
from deepmt.config import get_config
from deepmt.errors import DeepMTError, TrainingError

pytest.importorskip("submitit")

CPU = {"train.device": "cpu"}


def _local(tmp_path):
    return {"cluster": "local", "folder": str(tmp_path / "submitit"), "poll_s": 0.2}


@pytest.mark.slow
def test_two_smoke_trainings_through_submitit_match_the_local_pool(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DEEPMT_GRID_LOG", raising=False)
    cfg = get_config("smoke", CPU)
    jobs = [R.Job("grader_lr", cfg.replace({"train.seed": s}), label=f"grader_lr seed {s}") for s in (0, 1)]
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "pool"))
    pool = R.run_jobs(jobs, workers=2, backend="local")
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "synthetic").symlink_to(tmp_path / "pool" / "synthetic")  # the data, not the runs
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cluster"))
    capsys.readouterr()
    sub = R.run_jobs(jobs, workers=2, backend="submitit", cluster=_local(tmp_path))  # one array of two jobs
    out = capsys.readouterr().out
    assert out.count(": trained in") == 2 and out.count(" on ") == 2 and "(job " in out  # one line per run, where it ran
    assert list((tmp_path / "submitit").iterdir())  # submitit's job folders: the runs went through it
    for p, s in zip(pool, sub):
        assert s.run_dir.is_relative_to(tmp_path / "cluster") and p.run_dir.name == s.run_dir.name  # the same entries
        assert (p.method, p.key) == (s.method, s.key) and not s.from_cache
        np.testing.assert_equal(s.metrics, p.metrics)
        for k in p.predictions:
            np.testing.assert_array_equal(s.predictions[k], p.predictions[k])
    assert pool[0].metrics != pool[1].metrics or not np.array_equal(pool[0].predictions["grade_probs"], pool[1].predictions["grade_probs"])


def _with_threads(cfg, threads):
    bad = cfg.replace({})
    bad.train.threads = threads  # past the override check, as a hand-edited config.json could be
    return bad


@pytest.mark.slow
def test_an_error_in_a_job_comes_back_as_one_line_naming_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DEEPMT_GRID_LOG", raising=False)
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    job = R.Job("grader_lr", _with_threads(get_config("smoke", CPU), -1), label="grader_lr bad threads")
    with pytest.raises(TrainingError) as err:
        R.run_jobs([job], backend="submitit", cluster=_local(tmp_path))
    assert str(err.value) == "train.threads=-1: expected a whole number >= 0 (0 = torch's default)"
    assert err.value.run_name == "grader_lr bad threads" and err.value.__cause__ is None
    assert "[1/1] grader_lr bad threads: FAILED (TrainingError)" in capsys.readouterr().out


def test_slurm_settings_come_from_the_environment_with_sane_defaults(monkeypatch):
    for name in ("DEEPMT_SUBMITIT_CLUSTER", "DEEPMT_SUBMITIT_FOLDER", "DEEPMT_SLURM_PARTITION", "DEEPMT_SLURM_TIME",
                 "DEEPMT_SLURM_GPUS", "DEEPMT_SLURM_CPUS"):
        monkeypatch.delenv(name, raising=False)
    quick = [R.Job("deepmt_dr", get_config("quick", CPU))]
    s = ClusterSettings.from_env()
    assert (s.cluster, s.partition, s.time_min, s.gpus, s.cpus) == ("", "", 1440, None, None)
    p = executor_parameters(s, 4, quick)
    assert p == {"name": "deepmt", "timeout_min": 1440, "cpus_per_task": 1, "gpus_per_node": 0, "nodes": 1,
                 "tasks_per_node": 1, "slurm_array_parallelism": 4}  # the runs' train.threads; no GPU for cpu runs
    gpu = [R.Job("deepmt_dr", get_config("paper", {"train.device": "cuda", "train.threads": 0}))]
    assert executor_parameters(s, 1, gpu)["gpus_per_node"] == 1 and executor_parameters(s, 1, gpu)["cpus_per_task"] == 8
    monkeypatch.setenv("DEEPMT_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("DEEPMT_SLURM_TIME", "90")
    monkeypatch.setenv("DEEPMT_SLURM_GPUS", "2")
    monkeypatch.setenv("DEEPMT_SLURM_CPUS", "6")
    p = executor_parameters(ClusterSettings.from_env(), 3, quick)
    assert (p["slurm_partition"], p["timeout_min"], p["gpus_per_node"], p["cpus_per_task"]) == ("gpu", 90, 2, 6)
    assert ClusterSettings.from_env({"time_min": 30}).time_min == 30  # an argument beats the environment
    for name, value, text in (("DEEPMT_SLURM_TIME", "1h", "DEEPMT_SLURM_TIME='1h': expected minutes per job"),
                              ("DEEPMT_SLURM_GPUS", "-1", "DEEPMT_SLURM_GPUS='-1': expected GPUs per job"),
                              ("DEEPMT_SUBMITIT_CLUSTER", "pbs", "DEEPMT_SUBMITIT_CLUSTER='pbs': expected one of slurm, local")):
        monkeypatch.setenv(name, value)
        with pytest.raises(DeepMTError, match=text):
            ClusterSettings.from_env()
        monkeypatch.delenv(name)
    with pytest.raises(DeepMTError, match="unknown partitions"):
        ClusterSettings.from_env({"partitions": "x"})
    assert runs_in_flight(7, {"cluster": "slurm"}) == 7 and runs_in_flight(7, {"cluster": "local"}) is None


def test_the_backend_is_chosen_by_argument_or_environment(monkeypatch):
    monkeypatch.delenv("DEEPMT_BACKEND", raising=False)
    assert R.backend_from_env() == "local" and R.backend_from_env("submitit") == "submitit"
    monkeypatch.setenv("DEEPMT_BACKEND", "submitit")
    assert R.backend_from_env() == "submitit" and R.backend_from_env("local") == "local"
    monkeypatch.setenv("DEEPMT_BACKEND", "mpi")
    with pytest.raises(DeepMTError, match="DEEPMT_BACKEND='mpi': not a runner backend"):
        R.backend_from_env()
