"""What a whole experiment grid costs: training FLOPs of every cached run, against the machine's peak.

``python -m deepmt bench --grid CACHE`` reads every finished run of an experiment cache (``$DEEPMT_CACHE``, e.g.
``~/.cache/deepmt/quick`` after ``./run_all.sh``) and counts, per run and training stage, the images it trained on
(``images_per_s`` x ``seconds`` of each epoch in ``metrics.csv``), the stage's GFLOPs per training image
(:func:`deepmt.models.cost.train_gflops`, the same counter as the bench) and the training seconds. Summed over
the grid this gives the floor no kernel work can beat: the grid's training FLOPs divided by the machine's peak.
It answers "how fast could ``run_all.sh`` be on this machine?" before anyone tunes a kernel.

Rows trained elsewhere are left out: a warm-started run's ``metrics.csv`` repeats its base's epochs
(``warm_start_from`` set), which are counted in the base's own entry. A full run built from another's stage
boundary (``built_from`` in its ``result.json``) counts every stage: its earlier stages are its own, measured when
the run it was built from trained them (that run is not part of the grid). ``entries`` restricts the count to the
grid's own entries (``bench --grid CACHE --grid-profile P``: those the grid inventory needs under profile ``P``),
so runs of older settings left in the cache are not counted. Validation and test passes are not counted (they are
inference, a small share); the seconds are training seconds, not wall time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Collection

import pandas as pd

from deepmt.errors import ConfigMismatchError

#: the grid's summary beside run_all.sh's timing file (``results/timing/``), read by docs/PERFORMANCE.md's performance block
GRID_SUMMARY = "grid.json"


def _stage_gflops(method_name: str, cfg, stage: str, memo: dict) -> float:
    """GFLOPs per training image of ``stage`` of ``method_name`` under ``cfg``, counted on the meta device once
    per (method, config without its seed)."""
    import torch

    from deepmt.data.sample import random_batch
    from deepmt.models.cost import train_gflops
    from deepmt.models.methods import build_method

    key = (method_name, cfg.replace({"train.seed": 0}).key(), stage)
    if key not in memo:
        with torch.device("meta"):
            method = build_method(method_name, cfg)
        size = cfg.data.crop_size or cfg.data.hr_size
        memo[key] = train_gflops(method, random_batch(size, cfg.data.scale, 2, "meta"), stage)
    return memo[key]


def grid_compute(runs_dir: str | Path, entries: Collection[str] | None = None) -> pd.DataFrame:
    """One row per (finished run, stage trained in it): method, entry, stage, epochs, images, train_s,
    gflops_per_image, tflop (= images x GFLOPs / 1000), achieved_gflops (tflop / train_s) and machine (where the run
    trained, :func:`deepmt.engine.device.machine_label`: CPU numbers are bit-identical only on the same CPU kind)."""
    from deepmt.config import config_from_dict
    from deepmt.engine.device import machine_label
    from deepmt.models.methods import METHODS

    runs = Path(runs_dir)
    if not runs.is_dir():
        raise ConfigMismatchError(f"{runs}: no such experiment cache folder (expected $DEEPMT_CACHE/runs)")
    rows: list[dict[str, Any]] = []
    memo: dict = {}
    for entry in sorted(p for p in runs.iterdir() if (p / "result.json").is_file() and (p / "metrics.csv").is_file()
                        and (entries is None or p.name in entries)):
        stored = json.loads((entry / "config.json").read_text())
        method_name = stored.pop("method", entry.name.rsplit("-", 1)[0])
        cfg = config_from_dict(stored)
        record = json.loads((entry / "result.json").read_text())
        machine = machine_label(record.get("machine"))
        hist = pd.read_csv(entry / "metrics.csv")
        if "warm_start_from" in hist.columns and not record.get("built_from"):
            hist = hist[hist["warm_start_from"].isna()]
        for stage, h in hist.groupby("stage", sort=False):
            images = float((h["images_per_s"] * h["seconds"]).sum())
            gflops = _stage_gflops(method_name, cfg, str(stage), memo) if method_name in METHODS else math.nan
            train_s = float(h["seconds"].sum())
            tflop = images * gflops / 1e3
            rows.append({
                "method": method_name, "entry": entry.name, "stage": stage, "epochs": len(h), "images": round(images),
                "train_s": train_s, "gflops_per_image": gflops, "tflop": tflop,
                "achieved_gflops": tflop * 1e3 / train_s if train_s > 0 else math.nan, "machine": machine,
            })
    return pd.DataFrame(rows, columns=["method", "entry", "stage", "epochs", "images", "train_s", "gflops_per_image",
                                       "tflop", "achieved_gflops", "machine"])


def grid_floor(compute: pd.DataFrame, peak_gflops: float, workers: int = 1) -> dict[str, float]:
    """The grid's totals and the least wall time its training FLOPs need at ``peak_gflops`` (the whole machine's
    peak, e.g. the bench's bf16 matmul median with every core), at 100% and at 40% of it; ``workers`` is how
    many runs trained side by side (their training seconds add up to ``workers`` x the wall time)."""
    if not peak_gflops > 0:
        raise ConfigMismatchError(f"peak {peak_gflops} GFLOP/s: must be > 0")
    tflop = float(compute["tflop"].sum())
    train_s = float(compute["train_s"].sum())
    return {
        "runs": int(compute["entry"].nunique()), "tflop": tflop, "train_worker_s": train_s,
        "train_wall_s_at_workers": train_s / max(int(workers), 1),
        "achieved_gflops_per_worker": tflop * 1e3 / train_s if train_s > 0 else math.nan,
        "peak_gflops": float(peak_gflops),
        "floor_min_at_100pct": tflop * 1e3 / peak_gflops / 60, "floor_min_at_40pct": tflop * 1e3 / (0.4 * peak_gflops) / 60,
        "trained_on": dict(sorted(((str(m), int(n)) for m, n in compute.groupby("machine")["entry"].nunique().items()),
                                  key=lambda mn: (-mn[1], mn[0]))),  # most runs first
    }


def summary_by_method(compute: pd.DataFrame) -> pd.DataFrame:
    """Runs, training TFLOP and worker-minutes per method, largest first."""
    g = compute.groupby("method").agg(runs=("entry", "nunique"), tflop=("tflop", "sum"), train_s=("train_s", "sum"))
    g["worker_min"] = g.pop("train_s") / 60
    g["share_of_tflop"] = g["tflop"] / g["tflop"].sum()
    return g.sort_values("tflop", ascending=False)
