"""The bench's measuring primitives: a wall-clock budget shared out in proportion to expected cost, repeated
timings with their min / median / max, peak memory, and plain fp32 on CUDA (TF32 off).

Every other module of :mod:`deepmt.bench` times through these, so each number is measured the same way.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time
from typing import Any, Callable, Iterable

import torch

from deepmt.engine.device import synchronize


class Budget:
    """Wall-clock budget of the whole benchmark; hands out shares in proportion to expected cost."""

    def __init__(self, total_s: float) -> None:
        self.total = float(total_s)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return max(0.0, self.total - self.elapsed())

    def share(self, cost: float, remaining_cost: float, floor: float = 0.05) -> float:
        """Seconds for a measurement of expected ``cost`` when ``remaining_cost`` (itself included) is left."""
        return max(floor, self.left() * cost / max(remaining_cost, 1e-9))


def summarize(values: Iterable[float]) -> dict[str, float]:
    """``{"min", "median", "max", "n"}`` of repeated measurements."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("no measurements")
    return {"min": min(v), "median": statistics.median(v), "max": max(v), "n": len(v)}


def scaled(stats: dict[str, float], factor: float, invert: bool = False) -> dict[str, float]:
    """Stats of ``factor / x`` (invert: a time -> a rate, min and max swap) or ``factor * x``."""
    if invert:
        return {"min": factor / stats["max"], "median": factor / stats["median"], "max": factor / stats["min"], "n": stats["n"]}
    return {"min": factor * stats["min"], "median": factor * stats["median"], "max": factor * stats["max"], "n": stats["n"]}


def time_repeated(fn: Callable[[], Any], device: torch.device, share_s: float, *, warmup: int = 1, min_repeats: int = 1, max_repeats: int = 30, cheap_s: float = 0.0) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` calls: repeat until ``share_s`` (warm-up included)
    is spent, at least ``min_repeats`` and at most ``max_repeats`` times; at least 3 times when
    3 calls fit in ``cheap_s`` seconds (judged by the warm-up). CUDA is synchronised around each
    call (the only host syncs of the benchmark)."""
    t_start = time.perf_counter()
    for _ in range(warmup):
        fn()
    synchronize(device)
    if warmup and 3 * (time.perf_counter() - t_start) / warmup <= cheap_s:
        min_repeats = max(min_repeats, 3)
    times: list[float] = []
    while len(times) < max_repeats:
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
        spent = time.perf_counter() - t_start
        if len(times) >= min_repeats and spent + statistics.median(times) > share_s:
            break
    return times


def max_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB; Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, Any]) -> Any:
    """Record in ``out["peak_memory_mb"]`` the peak memory of the block: CUDA's, else the process's max RSS."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield
    finally:
        if device.type == "cuda":
            out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            out["peak_memory_mb"] = max_rss_mb()
            out["peak_memory_kind"] = "process max RSS so far"


@contextlib.contextmanager
def cuda_tf32(enabled: bool) -> Any:
    """Plain fp32 on CUDA means TF32 off (cuDNN autotuning too); restored afterwards."""
    if not torch.cuda.is_available():
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved
