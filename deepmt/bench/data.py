"""The data side of the bench: images/s of the synthetic generator (one process) and of the engine's training
DataLoader over a small cached split, host-to-device copy included; training must not wait for either."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from deepmt.bench.measure import scaled, summarize, time_repeated
from deepmt.bench.steps import precision_for
from deepmt.engine.device import make_loader, synchronize, to_device
from deepmt.worker_pool import usable_cores

#: images in the small cached split used to time data loading
LOAD_SPLIT_SIZE = {"smoke": 16, "quick": 64, "paper": 16}


def measure_generation(cfg, share_s: float) -> dict[str, Any]:
    """Images/s of the synthetic generator (one process, ``generate_sample`` incl. degradation)."""
    from deepmt.data.synthetic import generate_sample

    counter = iter(range(10**9))
    times = time_repeated(lambda: generate_sample(next(counter), cfg.data, "train"), torch.device("cpu"), share_s, min_repeats=2, max_repeats=200)
    return {"hr_size": int(cfg.data.hr_size), "processes": 1, "images_per_s": scaled(summarize(times), 1.0, invert=True)}


def measure_loading(cfg, device: torch.device, batch_size: int, share_s: float) -> dict[str, Any]:
    """Images/s of the engine's training DataLoader over a small cached synthetic train split
    (augmentation / crops as configured, collation, host-to-device copy incl. channels_last)."""
    from deepmt.data import build_datasets

    n = max(LOAD_SPLIT_SIZE.get(cfg.profile, 32), 2 * batch_size)
    dcfg = dataclasses.replace(cfg.data, n_train=n)
    t0 = time.perf_counter()
    train_set = build_datasets(dcfg, ("train",))["train"]
    cache_s = time.perf_counter() - t0
    prec = precision_for("fast", cfg, device)
    workers = min(int(cfg.data.num_workers), usable_cores())
    loader = make_loader(
        train_set, batch_size, prec=prec, num_workers=workers, shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    times: list[float] = []
    t_start = time.perf_counter()
    first = True
    while True:
        it = iter(loader)
        t0 = time.perf_counter()
        for batch in it:
            to_device(batch, prec)
            synchronize(device)
            t1 = time.perf_counter()
            if first:  # worker start-up and first fill: the warm-up
                first = False
            else:
                times.append(t1 - t0)
            t0 = t1
            if times and (time.perf_counter() - t_start > share_s or len(times) >= 200):
                break
        del it
        if times and (time.perf_counter() - t_start > share_s or len(times) >= 200):
            break
    crop = cfg.data.crop_size
    return {
        "batch_size": batch_size, "num_workers": workers, "num_workers_config": int(cfg.data.num_workers),
        "split_images": n, "hr_size": int(cfg.data.hr_size), "crop_size": crop, "cache_build_s": cache_s,
        "images_per_s": scaled(summarize(times), float(batch_size), invert=True),
    }
