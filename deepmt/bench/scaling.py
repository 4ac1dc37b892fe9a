"""The experiment runner's scaling grid: the same small grid of runs trained by :func:`deepmt.worker_pool.run_jobs`
in each layout of worker processes x torch threads, wall time and runs/min per layout. Timed after the rest
of the bench and outside its budget, because it trains whole (short) runs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from deepmt.config import get_config

#: the runner's scaling grid (:func:`measure_runner_scaling`): methods x seeds, one epoch per stage on the
#: profile's split capped at the quick profile's (600 / 150 / 300), so that at quick size each run trains and
#: evaluates as many images per epoch as the quick grid's runs and worker start-up does not dominate the wall time
#: (a 96-image split did: 16-17 s per layout, most of it start-up)
SCALING_METHODS = ("grader_bicubic", "deepmt_dr")
SCALING_SEEDS = (0, 1)
SCALING_SPLIT = {"n_train": 600, "n_val": 150, "n_test": 300}
#: (worker processes, torch threads per run) layouts it compares; ``speedup`` = wall(first) / wall(last)
SCALING_LAYOUTS = ((1, 2), (2, 1))


def scaling_jobs(profile: str, threads: int, device: torch.device) -> list:
    """The runner's scaling grid: :data:`SCALING_METHODS` x :data:`SCALING_SEEDS` under ``profile`` with one
    epoch per stage on the profile's split capped at :data:`SCALING_SPLIT`, each run with ``threads`` torch threads."""
    from deepmt.worker_pool import Job

    base = get_config(profile)
    cfg = get_config(profile, {
        "train.device": device.type, "train.threads": int(threads), "train.progress": False,
        **{f"train.epochs_{s}": 1 for s in ("stage1a", "stage1b", "stage2", "single")},
        **{f"data.{k}": min(int(getattr(base.data, k)), v) for k, v in SCALING_SPLIT.items()},
    })
    return [Job(m, cfg.replace({"train.seed": s}), label=f"{m} seed {s}") for m in SCALING_METHODS for s in SCALING_SEEDS]


def measure_runner_scaling(profile: str, device: torch.device, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Wall time and runs/min of the scaling grid (:func:`scaling_jobs`) trained by :func:`deepmt.worker_pool.run_jobs`
    in each layout of :data:`SCALING_LAYOUTS` (workers x threads per run), from an empty cache each time.

    The grid's data is generated first and shared (not timed); worker start-up is timed (it is part of
    what a layout costs). 1 worker trains in this process, as ``DEEPMT_JOBS=1`` does."""
    import tempfile

    from deepmt.data import build_datasets
    from deepmt.worker_pool import run_jobs

    saved = os.environ.get("DEEPMT_CACHE")
    layouts = []
    try:
        with tempfile.TemporaryDirectory(prefix="deepmt-bench-runner-") as tmp:
            data = Path(tmp) / "data"
            os.environ["DEEPMT_CACHE"] = str(data)
            build_datasets(scaling_jobs(profile, 1, device)[0].cfg.data)
            for workers, threads in SCALING_LAYOUTS:
                jobs = scaling_jobs(profile, threads, device)
                root = Path(tmp) / f"{workers}x{threads}"
                root.mkdir()
                (root / "synthetic").symlink_to(data / "synthetic", target_is_directory=True)
                os.environ["DEEPMT_CACHE"] = str(root)
                log(f"runner scaling: {len(jobs)} {profile} runs, {workers} worker(s) x {threads} thread(s)")
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                results = run_jobs(jobs, workers=workers, progress=False)
                wall = time.perf_counter() - t0
                layouts.append({
                    "workers": workers, "threads": threads, "runs": len(jobs), "wall_s": wall,
                    "runs_per_min": 60.0 * len(jobs) / wall, "train_s": sum(r.train_seconds for r in results),
                    "load_avg_start": load,
                })
    finally:
        if saved is None:
            os.environ.pop("DEEPMT_CACHE", None)
        else:
            os.environ["DEEPMT_CACHE"] = saved
    fastest = min(layouts, key=lambda e: e["wall_s"])
    cfg = scaling_jobs(profile, 1, device)[0].cfg
    return {
        "profile": profile, "methods": list(SCALING_METHODS), "seeds": list(SCALING_SEEDS),
        "split": {k: int(getattr(cfg.data, k)) for k in SCALING_SPLIT}, "epochs_per_stage": 1,
        "layouts": layouts, "fastest": f"{fastest['workers']}x{fastest['threads']}",
        "speedup": layouts[0]["wall_s"] / layouts[-1]["wall_s"],
    }
