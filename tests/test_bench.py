"""Tests of ``python -m deepmt bench`` (deepmt/bench/): a seconds-long run on the smoke profile."""

from __future__ import annotations

import json
import math
import os

import pytest

from deepmt import bench
from deepmt.bench import measure, scaling
from deepmt.errors import ConfigMismatchError
from deepmt.bench.performance_page import fmt_number


def _numbers(obj, path=""):
    """Every int/float leaf of a JSON-like object with its path (bools left out)."""
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, (int, float)):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")


ZERO_OK = ("load_avg", "num_workers", "seeds")  # fields that may be 0; every other number must be > 0


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One CLI run of the benchmark on the smoke profile with a 3-second budget."""
    from deepmt.cli import main

    out = tmp_path_factory.mktemp("bench")
    saved = os.environ.get("DEEPMT_CACHE")
    os.environ["DEEPMT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        with pytest.MonkeyPatch.context() as mp:  # a cheaper runner grid, without worker start-up (test_worker_pool.py)
            mp.setattr(scaling, "SCALING_METHODS", ("grader_lr",))
            mp.setattr(scaling, "SCALING_LAYOUTS", ((1, 1), (1, 2)))
            rc = main(["bench", "--profiles", "smoke", "--budget-seconds", "3", "--out", str(out), "--device", "cpu"])
    finally:
        if saved is None:
            os.environ.pop("DEEPMT_CACHE", None)
        else:
            os.environ["DEEPMT_CACHE"] = saved
    assert os.environ.get("DEEPMT_CACHE") == saved
    jsons = list(out.glob("bench_*.json"))
    assert rc == 0 and len(jsons) == 1, (rc, list(out.iterdir()))
    md = jsons[0].with_suffix(".md")
    return json.loads(jsons[0].read_text()), md.read_text(), out


def test_bench_json_fields(smoke_run):
    result, _, out = smoke_run
    for key in ("machine", "peak", "profiles", "targets", "load_avg_start", "load_avg_end", "budget_s", "elapsed_s"):
        assert key in result, key
    m = result["machine"]
    assert m["cpu_model"] and m["cores"] >= 1 and m["torch"] and m["device"] == "cpu"
    assert "fp32" in result["peak"] and len(result["load_avg_start"]) == 3
    rec = result["profiles"]["smoke"]
    assert rec["timed_hr_size"] == 64 and rec["gflops_per_image"]["train_stage2"] > rec["gflops_per_image"]["inference"] > 0
    stage2 = rec["train"]["stage2"]
    for mode in ("fp32_eager", "fast"):
        e = stage2[mode]
        assert e["images_per_s"]["min"] <= e["images_per_s"]["median"] <= e["images_per_s"]["max"]
        assert e["images_per_s"]["n"] >= 1 and e["peak_memory_mb"] > 0 and 0 < e["mfu"]
        assert rec["inference"][mode]["images_per_s"]["median"] > 0
    assert stage2["fp32_eager"]["precision"] == "fp32" and not stage2["fp32_eager"]["channels_last"]
    assert stage2["speedup"] == pytest.approx(
        stage2["fast"]["images_per_s"]["median"] / stage2["fp32_eager"]["images_per_s"]["median"])
    assert rec["data_generation"]["images_per_s"]["median"] > 0
    assert rec["data_loading"]["images_per_s"]["median"] > 0
    assert set(rec["gflops_per_image"]) == {"inference", "train_stage2", "train_stage1a", "train_stage1b"}
    # the runner's scaling: the same grid in each layout, wall time and runs/min
    run = result["runner"]
    assert run["profile"] == "smoke" and run["methods"] == ["grader_lr"] and run["seeds"] == [0, 1]
    assert [(e["workers"], e["threads"]) for e in run["layouts"]] == [(1, 1), (1, 2)]
    for e in run["layouts"]:
        assert e["runs"] == 2 and e["runs_per_min"] == pytest.approx(60 * 2 / e["wall_s"]) and e["train_s"] > 0
    fastest = min(run["layouts"], key=lambda e: e["wall_s"])
    assert run["fastest"] == f"{fastest['workers']}x{fastest['threads']}"
    assert run["speedup"] == pytest.approx(run["layouts"][0]["wall_s"] / run["layouts"][1]["wall_s"])
    numbers = list(_numbers(result))
    assert len(numbers) > 40
    bad = [(p, v) for p, v in numbers if not math.isfinite(v) or (v <= 0 and not any(k in p for k in ZERO_OK))]
    assert not bad, bad
    assert not list(out.glob(".*.tmp")), "atomic writes left a temporary file"


def test_bench_markdown_table(smoke_run):
    result, md, _ = smoke_run
    assert "| measurement | min | median | max | n | unit | note |" in md
    assert "## Targets" in md and "## Peak (large matmul)" in md
    assert result["machine"]["cpu_model"] in md
    assert "train stage2 fast" in md and "data generation" in md and "data loading" in md
    assert "## Runner scaling" in md and "| 1 x 2 |" in md
    for t in result["targets"]:
        assert t["target"] in md


def test_targets_met_and_not_met():
    def entry(ips, mfu=None):
        return {"images_per_s": {"median": ips}, "mfu": mfu, "precision": "bf16"}

    result = {"profiles": {
        "quick": {"timed_hr_size": 128, "train": {"stage2": {"speedup": 3.2, "fast": entry(10.0, 0.41)},
                                                  "stage1a": {"speedup": 1.6, "fast": entry(10.0, 0.39)}},
                  "data_generation": {"vs_training": 4.0}},
        "paper": {"timed_hr_size": 256, "train": {"stage2": {"speedup": 2.0, "fast": entry(0.2, 0.61)}},
                  "data_generation": {"vs_training": 35.0}},
    }}
    got = {t["target"]: t["met"] for t in bench.targets(result)}
    assert got["quick stage2: fast path >= 3x fp32 eager images/s"] is True
    assert got["paper stage2: fast path >= 3x fp32 eager images/s"] is False
    assert got["paper stage2 at 256-px HR: fast path >= 60% of the bf16 matmul peak"] is True
    assert got["quick stage2: fast path >= 40% of the bf16 matmul peak"] is True
    assert got["quick stage1a: fast path >= 40% of the bf16 matmul peak"] is False
    assert got["quick: data generation >= 10x fast training images/s (stage2)"] is False
    assert got["paper: data generation >= 10x fast training images/s (stage2)"] is True


def test_summarize_and_rates():
    s = bench.summarize([0.5, 0.25, 1.0])
    assert s == {"min": 0.25, "median": 0.5, "max": 1.0, "n": 3}
    rate = measure.scaled(s, 8.0, invert=True)  # seconds per batch of 8 -> images/s
    assert rate["min"] == 8.0 and rate["median"] == 16.0 and rate["max"] == 32.0
    with pytest.raises(ValueError):
        bench.summarize([])


def test_bad_arguments():
    with pytest.raises(ConfigMismatchError, match="unknown profile"):
        bench.run_benchmark(("bogus",), budget_s=1, out_dir=None, progress=False)
    with pytest.raises(ConfigMismatchError, match="budget"):
        bench.run_benchmark(("smoke",), budget_s=0, out_dir=None, progress=False)


def test_set_changes_the_timed_config_and_names_the_bench_file(tmp_path, capsys):
    """``bench --set train.deterministic=false``: the steps run without torch's deterministic algorithms, the
    setting is recorded, it names the file (the default run's file is not replaced) and the README's machine."""
    import torch

    from deepmt.cli import main
    from deepmt.bench.performance_page import machine_name

    seen = []
    real = bench.suite.make_train_step

    def spy(cfg, *args, **kwargs):  # builds the step as the bench does, then times a no-op (keeps the test short)
        _, prec = real(cfg, *args, **kwargs)
        seen.append((cfg.train.deterministic, torch.are_deterministic_algorithms_enabled()))
        return (lambda: None), prec

    before = torch.are_deterministic_algorithms_enabled()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(bench.suite, "make_train_step", spy)
            mp.setattr(bench.suite, "make_inference",
                       lambda cfg, mode, dev, *a, **k: ((lambda: None), bench.precision_for(mode, cfg, dev)))
            result = bench.run_benchmark(("smoke",), budget_s=1, out_dir=tmp_path, device="cpu", progress=False,
                                         runner_profile=None, overrides={"train.deterministic": "false"})
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)
    assert seen and all(s == (False, False) for s in seen), seen
    assert result["options"]["overrides"] == {"train.deterministic": "false"}
    (path,) = tmp_path.glob("bench_*.json")
    assert path.name.endswith("_train.deterministic-false.json"), path.name
    assert machine_name(result).endswith(", train.deterministic=false")

    capsys.readouterr()
    assert main(["bench", "--profiles", "smoke", "--budget-seconds", "1", "--out", str(tmp_path),
                 "--set", "train.no_such_field=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "no_such_field" in err and "Traceback" not in err, err
    assert len(list(tmp_path.glob("bench_*.json"))) == 1  # nothing was timed or written


def test_readme_and_performance_doc_are_generated_from_the_bench_files(smoke_run, tmp_path, capsys):
    from deepmt.cli import main
    from deepmt.run_all_timing import write_run_all_timing

    result, _, out = smoke_run
    timing = tmp_path / "run_all.json"
    rec = write_run_all_timing(timing, profile="smoke", jobs=2, total_s=185.0, cache_at_start="empty",
                               notebooks=["00_benchmark=30.5=ok", "01_finding1_isr_helps=150=failed"])
    assert rec["threads"] == 1 and [n["seconds"] for n in rec["notebooks"]] == [30.5, 150.0]
    assert json.loads(timing.read_text()) == rec
    docs = []
    for name in ("README.md", "PERFORMANCE.md"):
        f = tmp_path / name
        f.write_text(f"# {name}\n\n<!-- BEGIN performance -->\ntyped numbers\n<!-- END performance -->\n\nafter\n")
        docs.append(f)
    argv = ["bench", "--readme", *map(str, docs), "--out", str(out), "--timing", str(timing)]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("performance section updated") == 2
    text = docs[0].read_text()
    assert text == docs[1].read_text().replace("# PERFORMANCE.md", "# README.md")
    assert "typed numbers" not in text and text.endswith("<!-- END performance -->\n\nafter\n")
    rec = result["profiles"]["smoke"]
    fast = rec["train"]["stage2"]["fast"]
    assert (f"| `smoke` (64, 4) | stage2 | {fmt_number(rec['gflops_per_image']['train_stage2'])} | "
            f"{fmt_number(fast['images_per_s']['median'])} | {fmt_number(100 * fast['mfu'], 2)}% {fast['precision']} |") in text
    for e in result["runner"]["layouts"]:
        assert f"| {e['workers']} x {e['threads']}" in text and f"{fmt_number(e['runs_per_min'])} |" in text
    assert "| `00_benchmark` | 30 s | ok |" in text and "| `01_finding1_isr_helps` | 2.5 min | failed |" in text
    assert "(profile `smoke`, 2 worker(s) x 1 thread(s) per run)" in text and "**3.1 min** in all" in text
    assert main(argv) == 0 and capsys.readouterr().out.count("unchanged") == 2  # nothing changed, nothing written
    (tmp_path / "plain.md").write_text("no markers\n")
    assert main(["bench", "--readme", str(tmp_path / "plain.md"), "--out", str(out), "--timing", str(timing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "plain.md" in err and "performance" in err and len(err.strip().splitlines()) == 1


def test_grid_counts_each_runs_training_flops_and_the_floor_they_set(fresh_cache, tmp_path, monkeypatch, capsys):
    """``bench --grid``: one row per (run, stage) with the images it trained on, the stage's GFLOPs per image
    (the bench's own counter) and their product; a warm-started run counts only what it trained itself."""
    import torch

    from deepmt.bench.grid import grid_compute, grid_floor
    from deepmt.cli import main
    from deepmt.config import get_config
    from deepmt.data.sample import random_batch
    from deepmt.experiment_cache import run_experiment
    from deepmt.models.cost import train_gflops
    from deepmt.models.methods import build_method

    cfg = get_config("smoke", {"train.device": "cpu", "train.progress": False})
    base = run_experiment("deepmt_dr", cfg)
    warm = run_experiment("deepmt_dr", cfg.replace({"loss.seg_aware": 0.0}), warm_start=base, start_stage="stage2")
    df = grid_compute(base.run_dir.parent)
    assert set(df["entry"]) == {base.run_dir.name, warm.run_dir.name}
    mine = df[df["entry"] == base.run_dir.name].set_index("stage")
    assert list(mine.index) == ["stage1a", "stage1b", "stage2"]
    epochs = {"stage1a": cfg.train.epochs_stage1a, "stage1b": cfg.train.epochs_stage1b, "stage2": cfg.train.epochs_stage2}
    for stage, row in mine.iterrows():
        assert row["epochs"] == epochs[stage] and row["images"] == epochs[stage] * cfg.data.n_train
        with torch.device("meta"):
            m = build_method("deepmt_dr", cfg)
        expected = train_gflops(m, random_batch(cfg.data.hr_size, cfg.data.scale, 2, "meta"), stage)
        assert row["gflops_per_image"] == pytest.approx(expected)
        assert row["tflop"] == pytest.approx(row["images"] * expected / 1e3)
    assert list(df[df["entry"] == warm.run_dir.name]["stage"]) == ["stage2"]  # the base's stages are the base's
    from deepmt.engine.device import machine_label, numerics_machine

    here = machine_label(numerics_machine(torch.device("cpu")))  # each run records where it trained
    assert set(df["machine"]) == {here} and here.endswith(f"torch {torch.__version__}")
    assert machine_label(None) == "not recorded"
    assert machine_label({"gpu_name": "NVIDIA H200", "torch": "2.14.1"}) == "NVIDIA H200, torch 2.14.1"
    floor = grid_floor(df, peak_gflops=100.0, workers=2)
    assert floor["runs"] == 2 and floor["tflop"] == pytest.approx(df["tflop"].sum())
    assert floor["trained_on"] == {here: 2}
    amd = "AMD EPYC (AVX2, bf16), torch 2.14.1"
    mixed = grid_floor(df.assign(machine=df["machine"].where(df["entry"] == base.run_dir.name, amd)), 100.0)
    assert mixed["trained_on"] == {here: 1, amd: 1}
    assert floor["floor_min_at_40pct"] == pytest.approx(2.5 * floor["floor_min_at_100pct"])
    assert floor["floor_min_at_100pct"] == pytest.approx(df["tflop"].sum() * 1e3 / 100.0 / 60)
    with pytest.raises(ConfigMismatchError, match="must be > 0"):
        grid_floor(df, peak_gflops=0.0)
    monkeypatch.setattr("deepmt.bench.command.repo_root", lambda: tmp_path)
    assert main(["bench", "--grid", str(base.run_dir.parent.parent), "--peak-gflops", "100"]) == 0
    assert "floor_min_at_100pct" in capsys.readouterr().out
    assert (tmp_path / "results" / "timing" / "grid_compute.csv").is_file()
    from deepmt.bench.performance_page import _minutes, load_grid, performance_markdown

    grid = load_grid(tmp_path / "results" / "timing" / "grid.json")  # the README's block is generated from it
    assert grid["runs"] == 2 and grid["tflop"] == pytest.approx(floor["tflop"]) and grid["peak_gflops"] == 100.0
    block = performance_markdown([], None, grid)
    assert "What the grid's training FLOPs allow" in block and f"**{_minutes(floor['floor_min_at_40pct'] * 60)}**" in block
    assert "| `deepmt_dr` | 2 |" in block
    assert f"Every run trained on {here}." in block
    two = performance_markdown([], None, {**grid, "trained_on": mixed["trained_on"]})
    assert f"reproduces only its own runs exactly: {amd} (1 run); {here} (1 run)." in two
    assert "What the grid" not in performance_markdown([], None, load_grid(tmp_path / "none.json"))
    warm = {"total_s": 600.0, "cache_at_start": "warm", "jobs": 2, "notebooks": [{"name": "grid_queue", "seconds": 0.0}]}
    assert (f"took 10.0 min reusing runs already in the cache, so from an empty cache it needs at least "
            f"{_minutes(600.0 + grid['train_wall_s_at_workers'])}") in performance_markdown([], warm, grid)
    # a partly filled cache: the run's own grid queue trained part of the grid; that part is not counted twice
    partial = {**warm, "cache_at_start": "partial", "notebooks": [{"name": "grid_queue", "seconds": 240.0}]}
    assert (f"took 10.0 min from a partly filled cache (training the runs it lacked), so from an empty cache it needs "
            f"at least {_minutes(360.0 + grid['train_wall_s_at_workers'])}") in performance_markdown([], partial, grid)
    assert "took 10.0 min from an empty cache." in performance_markdown([], {**warm, "cache_at_start": "empty"}, grid)
    with pytest.raises(ConfigMismatchError, match="no such experiment cache"):
        grid_compute(tmp_path / "nowhere")


def test_grid_counts_a_run_built_from_a_stage_boundary_whole_and_only_the_grids_entries(fresh_cache):
    """A full run built from another's stage boundary is the grid's whole run (its earlier stages are counted, the
    run it was built from is not in the grid); ``entries`` leaves out runs of older settings left in the cache."""
    from deepmt.bench.grid import grid_compute
    from deepmt.config import get_config
    from deepmt.experiment_cache import run_experiment

    cfg = get_config("smoke", {"train.device": "cpu", "train.progress": False})
    old = run_experiment("deepmt_dr", cfg)
    built = run_experiment("deepmt_dr", cfg.replace({"train.epochs_stage2": 2}))
    warm = run_experiment("deepmt_dr", built.config.replace({"loss.seg_aware": 0.0}), warm_start=built, start_stage="stage2")
    assert built.built_from is not None
    df = grid_compute(old.run_dir.parent)
    rows = df[df["entry"] == built.run_dir.name].set_index("stage")
    assert list(rows.index) == ["stage1a", "stage1b", "stage2"] and rows.loc["stage2", "epochs"] == 2
    assert list(df[df["entry"] == warm.run_dir.name]["stage"]) == ["stage2"]
    grid = grid_compute(old.run_dir.parent, {built.run_dir.name, warm.run_dir.name})
    assert set(grid["entry"]) == {built.run_dir.name, warm.run_dir.name}
