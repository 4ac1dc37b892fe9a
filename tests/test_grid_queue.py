"""One job queue for the whole grid (deepmt/grid_queue.py) and the runner's dependency-aware queue (deepmt/worker_pool.py).

The scheduling tests run on a virtual clock: a fake backend hands back each run after hand-made seconds, without
training anything. The equality tests train a tiny smoke grid for real (CPU: bit-for-bit deterministic).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepmt.worker_pool as R
from deepmt import grid_queue as GQ
from deepmt.config import get_config
from deepmt.experiment_cache import RESULT_FILE, ExperimentResult, resolve_config
from deepmt.grid_log import entry_config, entry_name

CPU = {"train.device": "cpu"}
WARM = {"loss.feedback_scaling": "authors"}  # a stage-2 setting: its run may start from the base's stage 2


def _fake_result(job: R.Job) -> ExperimentResult:
    cfg = resolve_config(job.method, job.cfg)
    warm = None if job.warm_start is None else {"base_key": job.warm_start.key, "start_stage": job.start_stage}
    return ExperimentResult(method=job.method, config=cfg, metrics={}, val_metrics={}, predictions={},
                            checkpoint=Path("final.pt"), run_dir=Path(job.name), train_seconds=0.0,
                            history=pd.DataFrame(), key=cfg.key(), warm_start=warm)


class FakePool:
    """Runs take ``seconds(job)`` on a virtual clock; records every start and end."""

    made: list[FakePool] = []

    def __init__(self, workers, jobs, options=None, seconds=None):
        self.n, self.t, self.seconds = workers, 0.0, seconds
        self.running: dict[int, tuple[float, R.Job]] = {}
        self.starts: dict[str, float] = {}
        self.ends: dict[str, float] = {}
        self.jobs: dict[str, R.Job] = {}
        FakePool.made.append(self)

    def submit(self, items):
        assert len(self.running) + len(items) <= self.n, "more runs submitted than workers"
        for g, job in items:
            self.running[g] = (self.t + self.seconds(job), job)
            self.starts[job.name], self.jobs[job.name] = self.t, job

    def wait(self):
        self.t = min(end for end, _ in self.running.values())
        out = []
        for g in [g for g, (end, _) in self.running.items() if end == self.t]:
            _, job = self.running.pop(g)
            self.ends[job.name] = self.t
            out.append((g, R.Finished("", False, self.seconds(job), "fake", result=_fake_result(job))))
        return out

    def stop(self, interrupted):
        return len(self.running)

    def close(self):
        pass


def _busy(pool: FakePool, t: float) -> int:
    return sum(1 for name, s in pool.starts.items() if s <= t < pool.ends[name])


def _assert_never_idle_while_runnable(pool: FakePool, base_of: dict[str, str]) -> None:
    """Every run starts once its base has ended, and from the moment it could start until it starts, every worker
    is busy (checked at every event time in between)."""
    times = sorted(set(pool.starts.values()) | set(pool.ends.values()))
    for name, base in base_of.items():
        assert pool.starts[name] >= pool.ends[base], f"{name} started at {pool.starts[name]}, before its base {base} ended"
    for name, start in pool.starts.items():
        ready = pool.ends[base_of[name]] if name in base_of else 0.0
        for t in (t for t in times if ready <= t < start):
            assert _busy(pool, t) == pool.n, f"a worker idles at t={t} while {name} could run (it starts at {start})"


@pytest.fixture
def fake_backend(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DEEPMT_GRID_LOG", raising=False)
    FakePool.made.clear()

    def install(seconds):
        monkeypatch.setitem(R.BACKENDS, "fake", lambda n, jobs, options=None: FakePool(n, jobs, options, seconds))
        return FakePool.made

    return install


# --------------------------------------------------------------------------- (a) scheduling, hand-made seconds
def test_no_worker_idles_while_a_run_could_start_and_warm_starts_wait_for_their_base(fake_backend):
    smoke = get_config("smoke", CPU)
    base = R.Job("deepmt_dr", smoke, label="B")
    jobs = [R.Job("grader_lr", smoke, label="A"), base,
            R.Job("deepmt_dr", smoke.replace(WARM), label="W", warm_from=base, start_stage="stage2"),
            R.Job("grader_lr", smoke.replace({"train.seed": 1}), label="C"),
            R.Job("isr", smoke, label="D")]
    seconds = {"A": 10.0, "B": 2.0, "W": 5.0, "C": 1.0, "D": 1.0}
    pools = fake_backend(lambda job: seconds[job.name])
    results = R.run_jobs(jobs, workers=2, backend="fake", progress=False)
    pool = pools[-1]
    _assert_never_idle_while_runnable(pool, {"W": "B"})
    assert pool.starts == {"A": 0.0, "B": 0.0, "W": 2.0, "C": 7.0, "D": 8.0}  # W the moment B ends, ahead of C and D
    assert max(pool.ends.values()) == 10.0  # all phase-2 runs first, then warm ones, would take 15
    assert pool.jobs["W"].warm_start is not None and pool.jobs["W"].warm_start.key == results[1].key  # B's result
    assert [r.method for r in results] == ["grader_lr", "deepmt_dr", "deepmt_dr", "grader_lr", "isr"]
    assert results[2].warm_start == {"base_key": results[1].key, "start_stage": "stage2"}


def test_the_idle_check_fails_for_a_two_phase_schedule():
    """The check above can fail: all full runs first, then the warm start, leaves a worker idle from t=4."""
    pool = FakePool(2, [], seconds=None)
    pool.starts = {"A": 0.0, "B": 0.0, "C": 2.0, "D": 3.0, "W": 10.0}
    pool.ends = {"A": 10.0, "B": 2.0, "C": 3.0, "D": 4.0, "W": 15.0}
    with pytest.raises(AssertionError, match="a worker idles at t=4.0 while W could run"):
        _assert_never_idle_while_runnable(pool, {"W": "B"})
    pool.starts["W"], pool.ends["W"] = 1.0, 6.0
    with pytest.raises(AssertionError, match="before its base B ended"):
        _assert_never_idle_while_runnable(pool, {"W": "B"})


def test_a_job_must_wait_for_one_of_the_jobs(fake_backend):
    smoke = get_config("smoke", CPU)
    base = R.Job("deepmt_dr", smoke, label="B")
    fake_backend(lambda job: 1.0)
    with pytest.raises(R.DeepMTError, match="W waits for B, which is not one of the jobs"):
        R.run_jobs([R.Job("deepmt_dr", smoke.replace(WARM), label="W", warm_from=base, start_stage="stage2")],
                   workers=2, backend="fake", progress=False)
    with pytest.raises(R.DeepMTError, match="warm_from needs a start_stage"):
        R.Job("deepmt_dr", smoke, warm_from=base)


def _record(method, overrides, notebook="07_x", warm=None, stage=None):
    """An inventory record as grid_log writes it (under smoke)."""
    rec = {"notebook": notebook, "method": method, "overrides": {**CPU, **overrides}, "batch": f"{notebook}#1",
           "profile": "smoke", "warm_start": None, "start_stage": stage}
    if warm is not None:
        rec["warm_start"] = {"method": "deepmt_dr", "overrides": {**CPU, **warm},
                             "key": entry_config("deepmt_dr", {**CPU, **warm}, "smoke").key()}
    rec["key"] = entry_config(method, rec["overrides"], "smoke").key()
    rec["entry"] = _name(rec)
    return rec


def _write_inventory(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _name(rec, profile="smoke"):
    key = entry_config(rec["method"], rec["overrides"], profile).key()
    base = None
    if rec["warm_start"]:
        base = entry_config("deepmt_dr", rec["warm_start"]["overrides"], profile).key()
    return entry_name(rec["method"], key, base, rec["start_stage"] if base else None)


def test_the_grid_goes_longest_first_with_each_base_ahead_of_its_warm_starts(fake_backend, tmp_path):
    recs = [_record("grader_lr", {}), _record("grader_lr", {"train.seed": 1}), _record("deepmt_dr", {}),
            _record("deepmt_dr", WARM, notebook="08_y", warm={}, stage="stage2")]
    names = [_name(r) for r in recs]
    inv = _write_inventory(tmp_path / "inv.jsonl", recs)
    seconds = dict(zip(names, (3.0, 8.0, 4.0, 6.0)))
    plan = tmp_path / "plan.csv"  # as python -m deepmt plan writes it: per entry and stage
    pd.DataFrame([{"entry": n, "stage": st, "train_s": s / 4, "val_s": s / 8, "overhead_s": s / 8}
                  for n, s in seconds.items() for st in ("a", "b")]).to_csv(plan, index=False)
    grid = GQ.grid_entries("smoke", inv, plan_csv=plan)
    assert [g.name for g in grid] == [names[2], names[1], names[3], names[0]]  # deepmt_dr: 4 s + its warm start's 6
    assert [g.seconds for g in grid] == [4.0, 8.0, 6.0, 3.0] and all(g.from_plan for g in grid)
    pools = fake_backend(lambda job: seconds[job.name.split(" ")[0]])
    run = GQ.train_grid("smoke", workers=2, inventory=inv, backend="fake", plan_csv=plan, progress=False)
    pool = pools[-1]
    start = {n: pool.starts[f"{n} ({nb})"] for n, nb in zip(names, ("07_x", "07_x", "07_x", "08_y"))}
    assert start == {names[2]: 0.0, names[1]: 0.0, names[3]: 4.0, names[0]: 8.0}
    _assert_never_idle_while_runnable(pool, {f"{names[3]} (08_y)": f"{names[2]} (07_x)"})
    assert run.trained == [names[2], names[1], names[3], names[0]] and run.cached == []
    assert sorted(run.results) == sorted(names)


def test_work_orders_the_grid_where_the_plan_names_no_entry(tmp_path):
    recs = [_record("grader_lr", {}), _record("deepmt_dr", {})]
    inv = _write_inventory(tmp_path / "inv.jsonl", recs)
    grid = GQ.grid_entries("smoke", inv, plan_csv=tmp_path / "none.csv")
    assert [g.plan.method for g in grid] == ["deepmt_dr", "grader_lr"]  # three stages of work against one
    assert all(g.seconds is None and not g.from_plan and g.weight > 0 for g in grid)


def test_only_keeps_its_notebooks_and_the_bases_of_their_warm_starts(tmp_path):
    recs = [_record("grader_lr", {}), _record("deepmt_dr", {}),
            _record("deepmt_dr", WARM, notebook="08_y", warm={}, stage="stage2")]
    inv = _write_inventory(tmp_path / "inv.jsonl", recs)
    grid = GQ.grid_entries("smoke", inv, only="8", plan_csv=tmp_path / "none.csv")
    assert sorted(g.name for g in grid) == sorted([_name(recs[1]), _name(recs[2])])
    assert GQ.grid_entries("smoke", inv, only="09") == []  # a notebook that trains nothing


# --------------------------------------------------------------------------- (b), (c) real trainings
TINY = [_record("grader_lr", {}), _record("deepmt_dr", {}), _record("deepmt_dr", WARM, warm={}, stage="stage2")]


@pytest.fixture(scope="module")
def two_caches(tmp_path_factory):
    """The tiny grid trained by the queue with 2 workers, and serially in another cache (the same data)."""
    tmp = tmp_path_factory.mktemp("grid")
    inv = _write_inventory(tmp / "inv.jsonl", TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DEEPMT_GRID_LOG", raising=False)
        mp.delenv("DEEPMT_BACKEND", raising=False)
        mp.setenv("DEEPMT_CACHE", str(tmp / "queue"))
        queue = GQ.train_grid("smoke", workers=2, inventory=inv, plan_csv=tmp / "none.csv")
        (tmp / "serial").mkdir()
        (tmp / "serial" / "synthetic").symlink_to(tmp / "queue" / "synthetic")  # the data, not the runs
        mp.setenv("DEEPMT_CACHE", str(tmp / "serial"))
        serial = GQ.train_grid("smoke", workers=1, inventory=inv, plan_csv=tmp / "none.csv")
    return tmp, inv, queue, serial


@pytest.mark.slow
def test_the_queue_gives_the_serial_results_bit_for_bit(two_caches):
    tmp, _, queue, serial = two_caches
    names = [_name(r) for r in TINY]
    assert sorted(queue.trained) == sorted(serial.trained) == sorted(names) and queue.cached == serial.cached == []
    for n in names:
        q, s = queue.results[n], serial.results[n]
        assert q.run_dir == tmp / "queue" / "runs" / n and s.run_dir == tmp / "serial" / "runs" / n
        assert (q.method, q.key, q.warm_start and q.warm_start["base_key"]) == (s.method, s.key, s.warm_start and s.warm_start["base_key"])
        np.testing.assert_equal(q.metrics, s.metrics)
        np.testing.assert_equal(q.val_metrics, s.val_metrics)
        assert sorted(q.predictions) == sorted(s.predictions)
        for k in q.predictions:
            np.testing.assert_array_equal(q.predictions[k], s.predictions[k])
    warm = queue.results[names[2]]
    assert warm.warm_start["base_key"] == queue.results[names[1]].key and warm.warm_start["start_stage"] == "stage2"


@pytest.mark.slow
def test_entries_already_in_the_cache_are_not_trained_again(two_caches, monkeypatch, capsys):
    tmp, inv, _, _ = two_caches
    monkeypatch.delenv("DEEPMT_GRID_LOG", raising=False)
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp / "serial"))
    names = [_name(r) for r in TINY]
    stamp = {n: (tmp / "serial" / "runs" / n / RESULT_FILE).stat().st_mtime_ns for n in names}
    again = GQ.train_grid("smoke", workers=2, inventory=inv, plan_csv=tmp / "none.csv")
    assert again.trained == [] and sorted(again.cached) == sorted(names)
    out = capsys.readouterr().out
    assert "3 in the cache, nothing to train" in out and ": trained in" not in out
    shutil.rmtree(tmp / "serial" / "runs" / names[2])  # the warm start only: its base is loaded, not trained
    part = GQ.train_grid("smoke", workers=2, inventory=inv, plan_csv=tmp / "none.csv")
    assert part.trained == [names[2]] and sorted(part.cached) == sorted(names[:2])
    out = capsys.readouterr().out
    assert out.count(": trained in") == 1 and f"[1/1] {names[2]} (07_x): trained in" in out
    for n in names[:2]:
        assert (tmp / "serial" / "runs" / n / RESULT_FILE).stat().st_mtime_ns == stamp[n]
    np.testing.assert_equal(part.results[names[2]].metrics, two_caches[2].results[names[2]].metrics)


def test_cli_refuses_bad_arguments_and_names_a_failed_run(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as bad:
        GQ.main(["-j", "0"])
    assert bad.value.code == 2 and "-j 0: expected a whole number" in capsys.readouterr().err
    assert GQ.main(["--inventory", str(tmp_path / "missing.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("grid_queue: error: ") and "no grid inventory" in err and err.count("\n") == 1

    def failing(*a, **k):
        exc = RuntimeError("boom\nmore")
        exc.run_name = "deepmt_dr-abc (07_x)"
        raise exc

    monkeypatch.setattr(GQ, "train_grid", failing)
    assert GQ.main([]) == 1
    assert capsys.readouterr().err == "grid_queue: error: run deepmt_dr-abc (07_x) failed: RuntimeError: boom\n"


# --------------------------------------------------------------------------- run_all.sh
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_run_all_trains_the_grid_before_the_notebooks_and_stops_when_it_fails(tmp_path, run_all_sandbox):
    import subprocess

    env = run_all_sandbox({"00_t.ipynb": "print('>> notebook ran', flush=True)"})  # 00 trains nothing in the inventory
    cmd = ["bash", "run_all.sh", "--profile", "quick", "--only", "0"]
    executed = tmp_path / "results" / "executed" / "quick"
    ok = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    out = ok.stdout
    assert out.index("=== the grid") < out.index("=== 00_t.ipynb") and "    >> notebook ran" in out
    assert "    grid: 0 entries for profile quick (results/timing/grid_inventory.jsonl, --only 00), 0 in the cache, nothing to train" in out
    assert (executed / "grid_queue.log").is_file() and not (tmp_path / "cache" / "runs").exists()
    timing = json.loads((executed / "timing.json").read_text())
    assert [(n["name"], n["status"]) for n in timing["notebooks"]] == [("grid_queue", "ok"), ("00_t", "ok")]

    (executed / "00_t.ipynb").unlink()
    bad = subprocess.run(cmd, cwd=tmp_path, env={**env, "DEEPMT_BACKEND": "bogus"}, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "=== 00_t.ipynb" not in bad.stdout and not (executed / "00_t.ipynb").exists()
    assert "    grid_queue: error: DEEPMT_BACKEND='bogus': not a runner backend (one of local, submitit)" in bad.stdout
    assert "FAILED: the grid" in bad.stderr and "stopped before the notebooks" in bad.stderr and "Traceback" not in bad.stderr

    going = subprocess.run(cmd + ["--keep-going"], cwd=tmp_path, env={**env, "DEEPMT_BACKEND": "bogus"},
                           capture_output=True, text=True, timeout=300)
    assert going.returncode == 1 and "    >> notebook ran" in going.stdout and (executed / "00_t.ipynb").exists()
    assert "run_all.sh: the grid queue failed" in going.stderr
