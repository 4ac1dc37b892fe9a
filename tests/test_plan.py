"""``python -m deepmt plan`` and the grid inventory behind it (deepmt.grid_log, deepmt.bench.plan*): the recorder,
the mapping of a smoke-recorded job onto quick, the scheduler, the work counted per stage, and the direction of
``--set``. Smoke-size and fast: nothing trains longer than a dummy method's few steps."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from deepmt import grid_log
from deepmt.bench import plan_command
from deepmt.bench.plan import build_entries, images_per_epoch, price, val_passes
from deepmt.bench.plan_schedule import schedule, wall_plan
from deepmt.config import get_config, method_config
from deepmt.worker_pool import Job, run_jobs

CPU = {"train.device": "cpu"}


@pytest.fixture
def log(tmp_path, monkeypatch):
    """``$DEEPMT_GRID_LOG`` in a temporary folder, a fresh cache, and a process that has written nothing yet."""
    path = tmp_path / "grid.jsonl"
    monkeypatch.setenv(grid_log.GRID_LOG_ENV, str(path))
    monkeypatch.setenv(grid_log.NOTEBOOK_ENV, "07_ablation")
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(grid_log, "_written", set())
    return path


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


class FakeMeter:
    """Seconds per image without measuring: training ``train`` s, evaluation ``ev`` s, no loading or generation."""

    rows: list = []

    def __init__(self, train=0.01, ev=0.001):
        self.t, self.ev = train, ev

    def train(self, method, cfg, stage, size, uses_unlabelled, batch_size=0):
        return self.t * (size / 96) ** 2

    def evaluate(self, method, cfg):
        return self.ev

    def loading(self, cfg):
        return 0.0

    def generation(self, data_cfg):
        return 0.0

    def busy(self, n, cfg):
        return contextlib.nullcontext()


def _rec(method, overrides=None, notebook="01_x", batch="b1", warm=None, start=None):
    return {"notebook": notebook, "method": method, "entry": f"{method}-{json.dumps(overrides)}-{warm}",
            "overrides": overrides or {}, "warm_start": warm, "start_stage": start, "batch": batch, "profile": "smoke"}


# --------------------------------------------------------------------------- the recorder
def test_run_jobs_records_each_needed_entry_once_with_its_overrides(log):
    from dummy_method import DummyMethod

    def builder(name, cfg, counts):
        return DummyMethod()

    cfg = get_config("smoke", CPU)
    jobs = [Job("dummy", cfg, builder=builder), Job("dummy", cfg, builder=builder),  # the same entry twice
            Job("dummy", cfg.replace({"train.seed": 1, "loss.seg_aware": 0.0}), builder=builder)]
    run_jobs(jobs, workers=1, progress=False)
    lines = _lines(log)
    assert [r["overrides"] for r in lines] == [{"train.device": "cpu"},
                                               {"loss.seg_aware": 0.0, "train.device": "cpu", "train.seed": 1}]
    assert {r["notebook"] for r in lines} == {"07_ablation"} and len({r["batch"] for r in lines}) == 1
    assert [r["key"] for r in lines] == [cfg.key(), jobs[2].cfg.key()]
    assert all(r["warm_start"] is None and r["profile"] == "smoke" for r in lines)
    # another process (here: a fresh record of what was written) asks again: the cached entries are recorded too
    grid_log._written.clear()
    again = run_jobs(jobs, workers=1, progress=False)
    assert all(r.from_cache for r in again)
    lines = _lines(log)
    assert len(lines) == 4 and lines[2]["batch"] != lines[0]["batch"]
    assert len(grid_log.read_inventory(log)) == 2  # one record per (notebook, entry)


def test_nothing_is_recorded_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(grid_log.GRID_LOG_ENV, raising=False)
    monkeypatch.setattr(grid_log, "_written", set())
    grid_log.record_entry("deepmt_dr", get_config("smoke"))
    assert grid_log.new_batch() is None and not grid_log._written


def test_a_warm_start_records_its_base_and_start_stage(log):
    cfg = get_config("smoke")
    base = SimpleNamespace(method="deepmt_dr", key=cfg.replace({"train.seed": 2}).key(), config=cfg.replace({"train.seed": 2}))
    grid_log.record_entry("deepmt_dr", cfg.replace({"train.seed": 2, "loss.cls_aware": 0.0}), warm_start=base,
                          start_stage="stage2", batch="b")
    (r,) = _lines(log)
    assert r["warm_start"] == {"method": "deepmt_dr", "key": base.key, "overrides": {"train.seed": 2}}
    assert r["start_stage"] == "stage2" and r["entry"].endswith(f"-warm-{base.key}-stage2")


# --------------------------------------------------------------------------- smoke -> quick
def test_a_smoke_recorded_job_maps_to_the_quick_key_of_the_same_job(log):
    for method, extra in (("deepmt_dr", {"loss.seg_aware": 0.0}), ("foo_mt", {"data.label_fraction": 0.1}),
                          ("unet_bicubic", {"data.synth.smudge_match": 1.0})):
        grid_log.record_entry(method, get_config("smoke", {**CPU, "train.seed": 1, **extra}))
    for r in _lines(log):
        quick = method_config(get_config("quick", {**CPU, "train.seed": 1, **r["overrides"]}), r["method"])
        mapped = grid_log.entry_config(r["method"], r["overrides"], "quick")
        assert mapped.key() == quick.key() and mapped.to_dict() == quick.to_dict()
        assert grid_log.entry_config(r["method"], r["overrides"], "smoke").key() == r["key"]  # and back
    # the quick profile's own epochs of a baseline (its entry in train.epochs_by_method where it has one), not smoke's
    q = get_config("quick").train
    for name in ("foo_mt", "unet_bicubic", "grader_hr"):
        own = q.epochs_by_method.get(name, q.epochs_single)
        assert grid_log.entry_config(name, {}, "quick").train.epochs_single == own != get_config("smoke").train.epochs_single


def test_warm_started_entries_map_onto_their_quick_base():
    base = _rec("deepmt_dr", {"train.seed": 1})
    warm = _rec("deepmt_dr", {"train.seed": 1, "loss.cls_aware": 0.0}, batch="b2",
                warm={"method": "deepmt_dr", "key": "x", "overrides": {"train.seed": 1}}, start="stage2")
    e_base, e_warm = build_entries([base, warm], "quick")
    quick_base = method_config(get_config("quick", {"train.seed": 1}), "deepmt_dr").key()
    assert e_base.entry == f"deepmt_dr-{quick_base}" and e_warm.base == e_base.entry
    assert e_warm.entry.endswith(f"-warm-{quick_base}-stage2") and [s.stage for s in e_warm.stages] == ["stage2"]


# --------------------------------------------------------------------------- the work per stage
def test_epochs_images_and_validation_passes_per_stage():
    records = [_rec("deepmt_dr"), _rec("grader_lr", {"data.label_fraction": 0.1}),
               _rec("deepmt_dr", {"data.label_fraction": 0.1}), _rec("isr", {"data.n_train": 5}), _rec("bicubic"),
               _rec("deepmt_dr", {"data.n_train": 5}, notebook="02_y")]
    dr, grader, dr_few, isr, bicubic, dr_small = build_entries(records, "quick")
    q = get_config("quick")
    size, crop, every, t = q.data.hr_size, q.data.nongrading_crop_size or q.data.hr_size, q.train.val_every, q.train
    gb = t.grading_batch_size or t.batch_size  # the batch of a stage that trains a grader alone
    td = method_config(q, "deepmt_dr").train  # DeepMT-DR's own epochs (train.epochs_by_method: its stage 2)
    assert [(s.stage, s.epochs, s.images_per_epoch, s.size, s.val_passes, s.start_eval) for s in dr.stages] == [
        ("stage1a", td.epochs_stage1a, 600, crop, val_passes(td.epochs_stage1a, t.validation_interval(td.epochs_stage1a)), False),  # crops: no grades
        ("stage1b", td.epochs_stage1b, images_per_epoch(600, gb), size, val_passes(td.epochs_stage1b, t.validation_interval(td.epochs_stage1b)), False),
        ("stage2", td.epochs_stage2, 600, size, val_passes(td.epochs_stage2, t.validation_interval(td.epochs_stage2)), True)]
    grader_epochs = t.epochs_by_method.get("grader_lr", t.epochs_single)
    # 60 labelled images: whole batches of train.batch_size (few labels keep it: Method.stage_batch_size), 7 of 8
    assert [(s.epochs, s.images_per_epoch) for s in grader.stages] == [(grader_epochs, 56)]
    assert [s.images_per_epoch for s in dr_few.stages] == [600, 56, 56]  # the ISR stage learns from every image
    assert [s.images_per_epoch for s in isr.stages] == [8]  # 5 images padded to one batch
    assert bicubic.stages == [] and bicubic.eval_images == 150 + 300
    assert dr_small.notebook == "02_y"
    assert images_per_epoch(600, 8) == 600 and images_per_epoch(601, 8) == 600 and images_per_epoch(8, 8) == 8
    assert [val_passes(36, v) for v in (1, 3, 5, 36, 50)] == [36, 12, 8, 1, 1]


def test_the_levers_change_sizes_and_validation_where_they_exist():
    train, data = get_config("quick").train, get_config("quick").data
    if not (hasattr(train, "val_every") and hasattr(data, "nongrading_crop_size")):
        pytest.skip("train.val_every / data.nongrading_crop_size not in this config yet")
    (dr,) = build_entries([_rec("deepmt_dr")], "quick",
                         {"train.val_every": 4, "train.val_min_points": 0, "data.nongrading_crop_size": 48})
    size, td = data.hr_size, method_config(get_config("quick"), "deepmt_dr").train
    assert [(s.stage, s.size, s.val_passes) for s in dr.stages] == [
        ("stage1a", 48, val_passes(td.epochs_stage1a, 4)), ("stage1b", size, val_passes(td.epochs_stage1b, 4)),
        ("stage2", size, val_passes(td.epochs_stage2, 4))]  # DeepMT-DR's quick 30 / 36 / 12 epochs: 8 / 9 / 3
    (ts,) = build_entries([_rec("two_stage")], "quick", {"data.nongrading_crop_size": 48})
    assert [(s.stage, s.size) for s in ts.stages] == [("isr", 48), ("grade", size)]


# --------------------------------------------------------------------------- scheduling
def test_the_scheduler_waits_for_a_warm_start_base_and_balances_workers():
    s = schedule([("a", 10, []), ("b", 6, []), ("c", 4, ["a"]), ("d", 3, [])], workers=2)
    assert s["start"]["c"] >= s["finish"]["a"] and s["makespan"] == 14
    free = schedule([("a", 10, []), ("b", 6, []), ("c", 4, []), ("d", 3, [])], workers=2)
    assert free["makespan"] == 13
    # the runner's pool hands jobs out in the order submitted: a long job last leaves a worker idle
    fifo = schedule([("s1", 1, []), ("s2", 1, []), ("long", 10, [])], workers=2, policy="fifo")
    assert fifo["start"]["long"] == 1 and fifo["makespan"] == 11
    assert schedule([("s1", 1, []), ("s2", 1, []), ("long", 10, [])], workers=2)["makespan"] == 10
    even = schedule([(str(i), 5, []) for i in range(4)], workers=2)
    assert even["makespan"] == 10 and even["busy_s"] == [10, 10]
    assert schedule([(str(i), 5, []) for i in range(4)], workers=1)["makespan"] == 20
    with pytest.raises(ValueError):
        schedule([("a", 1, ["b"]), ("b", 1, ["a"])], 2)


def test_batches_run_one_after_the_other_and_notebooks_add_their_own_time():
    records = [_rec("grader_lr", {"train.seed": s}, batch="b1") for s in range(2)] + [
        _rec("grader_hr", {"train.seed": s}, batch="b2") for s in range(2)]
    entries = build_entries(records, "quick")
    price(entries, FakeMeter())
    per = entries[0].total_s
    w = wall_plan(entries, 2, {"01_x": 30.0, "11_claims": 5.0}, pool_start_s=0.0)
    assert w["wall_s"] == pytest.approx(35 + per + entries[2].total_s)  # two batches of two, each pair side by side
    assert wall_plan(entries, 1, {}, pool_start_s=0.0)["wall_s"] == pytest.approx(sum(e.total_s for e in entries))
    assert [n["notebook"] for n in w["notebooks"]] == ["01_x", "11_claims"] and w["notebooks"][0]["runs"] == 4
    assert w["lower_bound_s"] <= w["wall_s_longest_first"] <= w["wall_s"]
    # run_all.sh's one queue: the whole grid in one longest-first schedule, then the notebooks' own time
    queue = schedule([(e.entry, e.total_s, []) for e in entries], 2)["makespan"]
    assert w["wall_s_one_queue"] == pytest.approx(queue + 35) and w["wall_s_one_queue"] <= w["wall_s"]


# --------------------------------------------------------------------------- --set
def test_settings_move_the_prediction_the_right_way():
    records = [_rec("deepmt_dr"), _rec("foo_mt"), _rec("grader_hr")]

    def predicted(settings):
        _, plan = plan_command.make_plan(records, "quick", 2, settings, FakeMeter(), {})
        return plan["totals"]

    base = predicted({})
    assert predicted({"train.epochs_single": 10})["train_worker_min"] < base["train_worker_min"]  # grader_hr: 36 -> 10
    assert predicted({"train.epochs_by_method": "foo_mt:144"})["train_worker_min"] > base["train_worker_min"]
    assert predicted({"data.n_train": 1200})["train_worker_min"] > base["train_worker_min"]
    assert predicted({"data.hr_size": 128, "data.synth.size_reference": 128})["worker_min"] > base["worker_min"]
    fewer, every = predicted({"train.val_every": 3}), predicted({"train.val_every": 1})
    assert fewer["worker_min"] < every["worker_min"] and fewer["train_worker_min"] == every["train_worker_min"]


def test_check_against_compares_per_entry_and_stage():
    entries = build_entries([_rec("grader_lr"), _rec("deepmt_dr")], "quick")
    price(entries, FakeMeter(train=0.01))
    g, d = entries
    compute = pd.DataFrame([
        {"method": "grader_lr", "entry": g.entry, "stage": "single", "epochs": g.stages[0].epochs, "images": g.stages[0].images,
         "train_s": 216.0},
        {"method": "deepmt_dr", "entry": d.entry, "stage": "stage1a", "epochs": d.stages[0].epochs, "images": d.stages[0].images,
         "train_s": 180.0},
        {"method": "deepmt_dr", "entry": "elsewhere", "stage": "stage1a", "epochs": d.stages[0].epochs, "images": d.stages[0].images,
         "train_s": 45.0},
    ])
    rows, overall = plan_command.check_against(entries, compute)
    by = {(r["method"], r["stage"]): r for r in rows}
    assert by[("grader_lr", "single")]["ratio"] == pytest.approx(g.stages[0].train_s / 216.0)  # predicted / measured
    # two rows: its own entry's and one priced by the median of its kind, each with the images planned
    assert d.stages[0].images == d.stages[0].epochs * 600 and by[("deepmt_dr", "stage1a")]["predicted_s"] == pytest.approx(2 * d.stages[0].train_s)
    assert overall["matched_by_entry"] == 2 and overall["same_epochs_and_images"] == 2 and overall["compared"] == 3


# --------------------------------------------------------------------------- measuring, the command line
def test_the_meter_times_a_real_step_once_per_configuration():
    from deepmt.bench.plan_measure import Meter, work_key

    lines = []
    meter = Meter(warmup=1, repeats=1, seconds=0.1, log=lines.append)
    cfg = get_config("smoke", CPU)
    a = meter.train("grader_lr", cfg, "single", 64, False)
    b = meter.train("grader_lr", cfg.replace({"train.seed": 3, "train.epochs_single": 9}), "single", 64, False)
    assert a > 0 and a == b and len(meter.rows) == 1 and len(lines) == 1
    assert meter.evaluate("grader_lr", cfg) > 0 and len(meter.rows) == 2
    assert meter.evaluate("grader_lr", cfg.replace({"loss.cls_aware": 0.0, "data.n_val": 3})) > 0 and len(meter.rows) == 2
    assert meter.second_round() == 1 and len(meter.rows) == 3  # training steps only, once more
    assert meter.train("grader_lr", cfg, "single", 64, False) <= a
    # only whether a loss term is on changes the work, not its weight
    assert work_key(cfg.replace({"loss.cls_aware": 3.0}), "x") == work_key(cfg, "x")
    assert work_key(cfg.replace({"loss.cls_aware": 0.0}), "x") != work_key(cfg, "x")


def test_the_command_line_refuses_bad_arguments_in_one_line(capsys, tmp_path):
    from deepmt.cli import main

    assert main(["plan", "--workers", "0"]) == 1
    assert main(["plan", "--inventory", str(tmp_path / "none.jsonl")]) == 1
    assert main(["plan", "--set", "train.nope=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "--record-inventory" in err[1] and "train.nope" in err[2]
    bad = tmp_path / "old.jsonl"
    bad.write_text(json.dumps(_rec("no_such_method")) + "\n")
    assert main(["plan", "--inventory", str(bad), "--out", str(tmp_path / "p.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no_such_method" in err and "--record-inventory" in err


def test_study_seeds_keeps_every_seed_under_smoke_on_request(monkeypatch):
    from deepmt.studies.common import STUDY_SEEDS_ENV, study_seeds

    smoke, quick = get_config("smoke"), get_config("quick")
    monkeypatch.delenv(STUDY_SEEDS_ENV, raising=False)
    assert study_seeds(smoke, [0, 1, 2]) == [0] and study_seeds(quick, [0, 1, 2]) == [0, 1, 2]
    monkeypatch.setenv(STUDY_SEEDS_ENV, "all")
    assert study_seeds(smoke, [0, 1, 2]) == [0, 1, 2]


def test_estimate_line_counts_what_the_cache_holds_and_refuses_a_plan_for_other_settings(tmp_path):
    """run_all.sh's time estimate: the committed plan less the entries the cache holds complete; no number when the
    plan is for another profile or other settings."""
    import json

    from deepmt.bench.plan_command import estimate_line
    from deepmt.bench.plan_inventory import load_inventory, needed_entries
    from deepmt.utils import repo_root

    plan_path = repo_root() / "results/timing/plan.json"
    n = len(needed_entries(load_inventory(), "quick"))
    empty = estimate_line(tmp_path / "none", "quick", 2, plan_path)
    assert f"{n} of {n} trainings to do" in empty
    total = float(json.loads(plan_path.read_text())["totals"]["wall_min"])
    assert f"about {total:.0f} min on 2 workers" in empty
    entry = next(iter(needed_entries(load_inventory(), "quick")))
    (tmp_path / "c" / "runs" / entry).mkdir(parents=True)
    (tmp_path / "c" / "runs" / entry / "result.json").write_text("{}")
    assert f"{n - 1} of {n} trainings to do" in estimate_line(tmp_path / "c", "quick", 2, plan_path)
    assert "none for profile smoke" in estimate_line(tmp_path / "none", "smoke", 2, plan_path)
    other = json.loads(plan_path.read_text())
    other["settings"] = {"train.val_every": "3"}
    (tmp_path / "plan.json").write_text(json.dumps(other))
    (tmp_path / "plan.csv").write_text(plan_path.with_suffix(".csv").read_text())
    assert estimate_line(tmp_path / "none", "quick", 2, tmp_path / "plan.json").startswith("time estimate: none")


def test_steps_are_timed_with_the_other_workers_busy_unless_asked_alone():
    """run_all.sh trains two runs side by side, each slower than alone: the plan times steps that way by default."""
    import argparse

    p = argparse.ArgumentParser()
    plan_command.add_arguments(p)
    assert p.parse_args([]).busy and p.parse_args(["--busy"]).busy
    alone = p.parse_args(["--alone"])
    assert not alone.busy and "--alone" in plan_command._argv(alone) and "--alone" not in plan_command._argv(p.parse_args([]))


def test_the_notebooks_own_time_leaves_out_the_grid_queue(tmp_path):
    """run_all.json records the grid queue's seconds beside the notebooks'; they are training, which the plan prices
    entry by entry, so counting them as a notebook's own time would count them twice."""
    path = tmp_path / "run_all.json"
    path.write_text(json.dumps({"profile": "quick", "cache_at_start": "warm", "date": "2026-12-07", "notebooks": [
        {"name": "grid_queue", "seconds": 1474.0, "status": "ok"}, {"name": "00_benchmark", "seconds": 24.0, "status": "ok"},
        {"name": "01_finding1_isr_helps", "seconds": 193.0, "status": "ok"}]}))
    own, note = plan_command._own_seconds(path, "quick")
    assert own == {"00_benchmark": 24.0, "01_finding1_isr_helps": 193.0} and "cache warm" in note
    assert plan_command._own_seconds(path, "paper")[0] == {}
