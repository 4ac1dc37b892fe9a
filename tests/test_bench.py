"""Tests of ``python -m deepmt bench`` (deepmt/bench.py): a seconds-long run on the smoke profile."""

from __future__ import annotations

import json
import math
import os

import pytest

from deepmt import bench
from deepmt.errors import ConfigMismatchError


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


ZERO_OK = ("load_avg", "num_workers")  # fields that may be 0; every other number must be > 0


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One CLI run of the benchmark on the smoke profile with a 3-second budget."""
    from deepmt.cli import main

    out = tmp_path_factory.mktemp("bench")
    saved = os.environ.get("DEEPMT_CACHE")
    os.environ["DEEPMT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        rc = main(["bench", "--profiles", "smoke", "--budget-seconds", "3", "--out", str(out), "--device", "cpu"])
    finally:
        if saved is None:
            os.environ.pop("DEEPMT_CACHE", None)
        else:
            os.environ["DEEPMT_CACHE"] = saved
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
    for t in result["targets"]:
        assert t["target"] in md


def test_targets_met_and_not_met():
    def entry(ips, mfu=None):
        return {"images_per_s": {"median": ips}, "mfu": mfu, "precision": "bf16"}

    result = {"profiles": {
        "quick": {"timed_hr_size": 128, "train": {"stage2": {"speedup": 3.2, "fast": entry(10.0)}},
                  "data_generation": {"vs_training": 4.0}},
        "paper": {"timed_hr_size": 256, "train": {"stage2": {"speedup": 2.0, "fast": entry(0.2, 0.61)}},
                  "data_generation": {"vs_training": 35.0}},
    }}
    got = {t["target"]: t["met"] for t in bench.targets(result)}
    assert got["quick stage2: fast path >= 3x fp32 eager images/s"] is True
    assert got["paper stage2: fast path >= 3x fp32 eager images/s"] is False
    assert got["paper stage2 at 256-px HR: fast path >= 60% of the bf16 matmul peak"] is True
    assert got["quick: data generation >= 10x fast training images/s (stage2)"] is False
    assert got["paper: data generation >= 10x fast training images/s (stage2)"] is True


def test_summarize_and_rates():
    s = bench.summarize([0.5, 0.25, 1.0])
    assert s == {"min": 0.25, "median": 0.5, "max": 1.0, "n": 3}
    rate = bench._scaled(s, 8.0, invert=True)  # seconds per batch of 8 -> images/s
    assert rate["min"] == 8.0 and rate["median"] == 16.0 and rate["max"] == 32.0
    with pytest.raises(ValueError):
        bench.summarize([])


def test_bad_arguments():
    with pytest.raises(ConfigMismatchError, match="unknown profile"):
        bench.run_benchmark(("bogus",), budget_s=1, out_dir=None, progress=False)
    with pytest.raises(ConfigMismatchError, match="budget"):
        bench.run_benchmark(("smoke",), budget_s=0, out_dir=None, progress=False)
