"""``python -m deepmt bench``: how fast DeepMT-DR trains and infers here, against this machine's peak.

One run measures, on the current machine (CPU or CUDA):

* **peak** – large matmul GFLOP/s in fp32 (TF32 off on CUDA) and in the fast dtype (bf16 where the
  CPU/GPU supports it, else fp16 on old GPUs);
* per profile (``smoke``, ``quick``, ``paper``):

  - FLOPs per image of the DeepMT-DR model (counted by :mod:`deepmt.models.cost` on the meta device):
    training step (forward + backward of ``training_loss``, double
    backward of the task-aware loss included) per stage, and inference (``forward`` on LR, Grad-CAM
    visualization map included);
  - the training step's images/s and achieved GFLOP/s for **(a)** plain fp32 eager NCHW and **(b)** the
    engine's default fast path (:func:`deepmt.engine.device.resolve_precision` with the profile's
    ``train.precision`` / ``train.channels_last``, :func:`~deepmt.engine.device.to_device`, autocast,
    AdamW, gradient clipping: the same step as :mod:`deepmt.engine.trainer`), their ratio, and the
    fast path's share of the same-dtype matmul peak (MFU). Stages: ``stage2`` (joint fine-tuning with
    the task-aware loss: the most expensive) first, ``stage1a`` and ``stage1b`` when the budget allows.
    The ``paper`` profile is timed at 256-px HR (the paper's training crop; LR 64) on a CPU and at the
    paper's 1024-px HR on CUDA;
  - synthetic data generation images/s (:func:`deepmt.data.synthetic.generate_sample`, one process,
    at the profile's HR size) and data loading images/s (the engine's
    :func:`~deepmt.engine.device.make_loader` over the cached, augmented synthetic train split, with
    the host-to-device copy);
  - inference images/s of ``method(batch)`` on LR input, fp32 eager and fast path (what ``predict`` runs);
  - peak memory: CUDA ``max_memory_allocated`` per measurement, or the process's max RSS on a CPU.

Every number is a list of repeated measurements after one warm-up; the JSON keeps min / median / max
and the count, the markdown shows them. ``--budget-seconds`` (default 180) is the total time: each
measurement gets a share of what is left, in proportion to its expected cost, and repeats until its
share is spent (at least once). The load average (``os.getloadavg``) at start and end is recorded,
because other processes on a shared machine slow every number down.

Targets (stated met / not met in the output): fast path >= 3x fp32 eager images/s (quick and paper);
fast path >= 60% of the same-dtype matmul peak on the paper model; data generation >= 10x the fast
training images/s.

Files: ``<out>/bench_<host-or-gpu>.json`` and ``.md`` (atomic writes). From Python::

    from deepmt.bench import run_benchmark
    result = run_benchmark(profiles=("quick", "paper"), budget_s=180, out_dir="results/bench")
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from deepmt.config import PROFILES, get_config
from deepmt.data.sample import random_batch
from deepmt.engine.device import (
    Precision,
    cpu_supports_bf16,
    make_loader,
    place_model,
    resolve_device,
    resolve_precision,
    setup_backends,
    synchronize,
    to_device,
)
from deepmt.errors import ConfigMismatchError
from deepmt.models.base import freeze_for_stage, set_train_mode
from deepmt.models.cost import forward_gflops, train_gflops
from deepmt.performance import fmt_number
from deepmt.runner import usable_cores
from deepmt.utils import atomic_write_text, repo_root, seed_everything

METHOD = "deepmt_dr"
DEFAULT_BUDGET_S = 180.0
DEFAULT_PROFILES = ("quick", "paper")
STAGES = ("stage2", "stage1a", "stage1b")  # stage2 first: the most expensive, the one the targets are about
MODES = ("fp32_eager", "fast")

#: training batch size per profile for the timed steps (small enough for the budget; images/s
#: hardly depends on it at these sizes on a CPU). CUDA uses bigger batches to fill the GPU.
BATCH_CPU = {"smoke": 4, "quick": 8, "paper": 1}
BATCH_CUDA = {"smoke": 8, "quick": 32, "paper": 4}
#: HR size of the timed paper-profile step on a CPU: the paper's 256-px training crop (LR 64).
PAPER_CPU_HR = 256
#: images in the small cached split used to time data loading
LOAD_SPLIT_SIZE = {"smoke": 16, "quick": 64, "paper": 16}

#: the runner's scaling grid (:func:`measure_runner_scaling`): methods x seeds, one epoch per stage on a small split
SCALING_METHODS = ("grader_bicubic", "deepmt_dr")
SCALING_SEEDS = (0, 1)
SCALING_SPLIT = {"n_train": 96, "n_val": 32, "n_test": 32}
#: (worker processes, torch threads per run) layouts it compares; ``speedup`` = wall(first) / wall(last)
SCALING_LAYOUTS = ((1, 2), (2, 1))

TARGET_SPEEDUP = 3.0
TARGET_MFU = 0.60
TARGET_DATA_RATIO = 10.0


# --------------------------------------------------------------------------- small helpers
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


def _scaled(stats: dict[str, float], factor: float, invert: bool = False) -> dict[str, float]:
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


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": cpu_supports_bf16(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu_name": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu_name=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def output_tag(info: dict[str, Any]) -> str:
    """File-name tag: the GPU's name on CUDA, else the host name."""
    raw = info.get("gpu_name") or info.get("hostname") or "cpu"
    return re.sub(r"[^a-z0-9]+", "-", str(raw).lower()).strip("-") or "cpu"


def max_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB; Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10


@contextlib.contextmanager
def _peak_memory(device: torch.device, out: dict[str, Any]) -> Any:
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
def _cuda_tf32(enabled: bool) -> Any:
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


# --------------------------------------------------------------------------- machine peak
def fast_dtype(device: torch.device) -> torch.dtype | None:
    """The engine's ``precision="auto"`` autocast dtype on ``device`` (None = fp32 only)."""
    return resolve_precision(device, "auto").amp_dtype


def matmul_peak(device: torch.device, dtype: torch.dtype, share_s: float, n: int | None = None) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` matmul in ``dtype`` (CPU: n=2048, CUDA: n=8192, 10 per timed call)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    inner = 10 if device.type == "cuda" else 1
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)

    def fn() -> None:
        for _ in range(inner):
            torch.mm(a, b, out=out)

    with _cuda_tf32(False):
        times = time_repeated(fn, device, share_s, warmup=1, min_repeats=3, max_repeats=50)
    flops = 2.0 * n**3 * inner
    return {"dtype": str(dtype).replace("torch.", ""), "n": n, "gflops_per_s": _scaled(summarize(times), flops / 1e9, invert=True)}


# --------------------------------------------------------------------------- model, batches, FLOPs
def bench_config(profile: str, device: torch.device):
    """The profile's config (the bench times DeepMT-DR with the profile's model and loss)."""
    return get_config(profile)


def timed_hr_size(cfg, device: torch.device) -> int:
    """HR size of the timed steps: the profile's HR size, except ``paper`` on a CPU (the 256-px crop)."""
    if cfg.profile == "paper" and device.type != "cuda":
        return PAPER_CPU_HR
    return int(cfg.data.hr_size)


def build_bench_method(cfg, device: torch.device | str):
    from deepmt.models.methods import build_method

    counts = None if torch.device(device).type == "meta" else [1, 1, 1, 1, 1]  # class weights need real counts
    with torch.device(device):
        return build_method(METHOD, cfg, class_counts=counts)


def count_gflops(cfg, hr_size: int, stages: Sequence[str] = STAGES, batch_size: int = 2) -> dict[str, float]:
    """GFLOPs per image on the meta device (:mod:`deepmt.models.cost`'s counter): ``train_<stage>``
    (forward + backward of ``training_loss``) and ``inference`` (``forward`` on LR, Grad-CAM included)
    at HR size ``hr_size``."""
    method = build_bench_method(cfg, "meta")
    batch = random_batch(hr_size, cfg.data.scale, batch_size, "meta")
    out = {"inference": forward_gflops(method, batch)}
    method.train()
    for stage in stages:
        out[f"train_{stage}"] = train_gflops(method, batch, stage)
    return out


def precision_for(mode: str, cfg, device: torch.device) -> Precision:
    """``fp32_eager``: fp32, NCHW. ``fast``: what the engine picks for the profile (``train.precision``,
    ``train.channels_last``; on a CPU with native bf16 that is bf16 autocast + channels_last)."""
    if mode == "fp32_eager":
        return resolve_precision(device, "fp32", channels_last=False)
    return resolve_precision(device, cfg.train.precision, cfg.train.channels_last)


@contextlib.contextmanager
def _mode_backends(mode: str, device: torch.device) -> Any:
    if mode == "fp32_eager":
        with _cuda_tf32(False):
            yield
    else:
        with _cuda_tf32(True):
            setup_backends(device)
            yield


def _maybe_compile(method, enabled: bool) -> list[str]:
    """``--compile``: compile the ISR and segmentation subnets in place (the grader is differentiated
    twice by the task-aware loss, which compiled graphs do not support)."""
    if not enabled:
        return []
    done = []
    for name in ("isr", "seg"):
        sub = getattr(method, name, None)
        if sub is not None:
            sub.compile()
            done.append(name)
    return done


def make_train_step(cfg, stage: str, mode: str, device: torch.device, batch_size: int, hr_size: int, compile: bool = False):
    """(step function, Precision): one optimisation step of ``stage`` exactly as the engine runs it
    (freeze for the stage, autocast, backward, GradScaler, clipping, AdamW, zero_grad)."""
    prec = precision_for(mode, cfg, device)
    seed_everything(cfg.train.seed)
    method = place_model(build_bench_method(cfg, "cpu"), prec)
    if method.feedback_calibration is not None:  # time the steady-state step: a run measures only its first batches
        method.feedback_calibration.finish_with_equal_norms()
    _maybe_compile(method, compile)
    params = method.stage_parameters(stage)
    freeze_for_stage(method, params)
    set_train_mode(method)
    opt = torch.optim.AdamW(params, lr=method.stage_lr(stage, cfg.train), weight_decay=cfg.train.weight_decay)
    scaler = prec.grad_scaler()
    batch = to_device(random_batch(hr_size, cfg.data.scale, batch_size, "cpu", seed=cfg.train.seed), prec)
    clip = cfg.train.grad_clip

    def step() -> None:
        with prec.autocast():
            total, _ = method.training_loss(batch, stage)
        scaler.scale(total).backward()
        if clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return step, prec


def make_inference(cfg, mode: str, device: torch.device, batch_size: int, hr_size: int, compile: bool = False):
    """(forward function, Precision): ``method(batch)`` on LR input under ``no_grad`` + autocast (predict's path)."""
    prec = precision_for(mode, cfg, device)
    seed_everything(cfg.train.seed)
    method = build_bench_method(cfg, "cpu").to(device).eval()
    if prec.channels_last:
        method.to(memory_format=torch.channels_last)
    _maybe_compile(method, compile)
    full = random_batch(hr_size, cfg.data.scale, batch_size, "cpu", seed=cfg.train.seed)
    batch = to_device({"lr": full["lr"]}, prec)

    def forward() -> None:
        with torch.no_grad(), prec.autocast():
            method(batch)

    return forward, prec


# --------------------------------------------------------------------------- data
def measure_generation(cfg, share_s: float) -> dict[str, Any]:
    """Images/s of the synthetic generator (one process, ``generate_sample`` incl. degradation)."""
    from deepmt.data.synthetic import generate_sample

    counter = iter(range(10**9))
    times = time_repeated(lambda: generate_sample(next(counter), cfg.data, "train"), torch.device("cpu"), share_s, min_repeats=2, max_repeats=200)
    return {"hr_size": int(cfg.data.hr_size), "processes": 1, "images_per_s": _scaled(summarize(times), 1.0, invert=True)}


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
        "images_per_s": _scaled(summarize(times), float(batch_size), invert=True),
    }


# --------------------------------------------------------------------------- the runner's scaling
def scaling_jobs(profile: str, threads: int, device: torch.device) -> list:
    """The runner's scaling grid: :data:`SCALING_METHODS` x :data:`SCALING_SEEDS` under ``profile`` with one
    epoch per stage on a small split (:data:`SCALING_SPLIT`), each run with ``threads`` torch threads."""
    from deepmt.runner import Job

    base = get_config(profile)
    cfg = get_config(profile, {
        "train.device": device.type, "train.threads": int(threads), "train.progress": False,
        **{f"train.epochs_{s}": 1 for s in ("stage1a", "stage1b", "stage2", "single")},
        **{f"data.{k}": min(int(getattr(base.data, k)), v) for k, v in SCALING_SPLIT.items()},
    })
    return [Job(m, cfg.replace({"train.seed": s}), label=f"{m} seed {s}") for m in SCALING_METHODS for s in SCALING_SEEDS]


def measure_runner_scaling(profile: str, device: torch.device, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Wall time and runs/min of the scaling grid (:func:`scaling_jobs`) trained by :func:`deepmt.runner.run_jobs`
    in each layout of :data:`SCALING_LAYOUTS` (workers x threads per run), from an empty cache each time.

    The grid's data is generated first and shared (not timed); worker start-up is timed (it is part of
    what a layout costs). 1 worker trains in this process, as ``DEEPMT_JOBS=1`` does."""
    import tempfile

    from deepmt.data import build_datasets
    from deepmt.runner import run_jobs

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


# --------------------------------------------------------------------------- the benchmark
def _plan(profiles: Sequence[str], device: torch.device, peaks: dict[str, float], flops: dict[str, dict[str, float]], batch: dict[str, int]) -> list[tuple]:
    """Ordered measurement plan with expected costs (seconds, rough) used to share the budget.

    Required first (per profile: data generation, loading, stage2 fp32 + fast, inference), then
    the optional other stages."""
    plan = []
    fp32_rate = max(peaks.get("fp32", 1.0), 1.0) * 0.15
    fast_rate = max(peaks.get("fast", peaks.get("fp32", 1.0)), 1.0) * 0.3
    for p in profiles:
        f, bs = flops[p], batch[p]
        plan.append((p, "data_generation", None, None, True, 2.0))
        plan.append((p, "data_loading", None, None, True, 2.0))
        for mode, rate in (("fp32_eager", fp32_rate), ("fast", fast_rate)):
            plan.append((p, "train", "stage2", mode, True, 3 * bs * f["train_stage2"] / rate))
        for mode, rate in (("fp32_eager", fp32_rate), ("fast", fast_rate)):
            plan.append((p, "inference", None, mode, True, 3 * bs * f["inference"] / rate))
    for stage in STAGES[1:]:
        for p in profiles:
            f, bs = flops[p], batch[p]
            for mode, rate in (("fp32_eager", fp32_rate), ("fast", fast_rate)):
                plan.append((p, "train", stage, mode, False, 3 * bs * f[f"train_{stage}"] / rate))
    return plan


def run_benchmark(
    profiles: Sequence[str] = DEFAULT_PROFILES,
    budget_s: float = DEFAULT_BUDGET_S,
    out_dir: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    compile: bool = False,
    batch_sizes: dict[str, int] | None = None,
    progress: bool = True,
    runner_profile: str | None = "auto",
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and write ``bench_<tag>.json`` / ``.md`` to
    ``out_dir`` (default ``results/bench``); returns the JSON's content.

    ``runner_profile``: the profile of the runner's scaling grid (:func:`measure_runner_scaling`, timed
    after the rest, outside ``budget_s``); ``"auto"``: ``quick`` when timed, else the first profile; None: skip."""
    profiles = tuple(profiles)
    bad = [p for p in profiles if p not in PROFILES]
    if bad or not profiles:
        raise ConfigMismatchError(f"bench: unknown profile(s) {bad}; choose from {PROFILES}")
    if runner_profile == "auto":
        runner_profile = "quick" if "quick" in profiles else profiles[0]
    if runner_profile is not None and runner_profile not in PROFILES:
        raise ConfigMismatchError(f"bench: --runner-profile {runner_profile!r} is not a profile; choose from {PROFILES}")
    if not budget_s or budget_s <= 0:
        raise ConfigMismatchError(f"bench: --budget-seconds must be positive, got {budget_s}")
    dev = resolve_device(device)
    budget = Budget(budget_s)
    log = (lambda msg: print(f"[bench {budget.elapsed():6.1f}s] {msg}", file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    result: dict[str, Any] = {
        "schema": 2,  # 2: the runner's scaling, stage1b
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(dev),
        "load_avg_start": list(os.getloadavg()),
        "budget_s": float(budget_s),
        "options": {"profiles": list(profiles), "device": device, "compile": bool(compile), "method": METHOD,
                    "runner_profile": runner_profile},
        "peak": {},
        "profiles": {},
        "skipped": [],
    }

    # ---- machine peak (about 5% of the budget)
    fdt = fast_dtype(dev)
    log("matmul peak")
    peak_share = max(0.5, 0.04 * budget.total)
    n_mm = None if budget.total >= 30 else 1024  # a seconds-long smoke run: a smaller (less exact) matmul
    result["peak"]["fp32"] = matmul_peak(dev, torch.float32, peak_share / 2, n_mm)
    peaks = {"fp32": result["peak"]["fp32"]["gflops_per_s"]["median"]}
    if fdt is not None:
        name = str(fdt).replace("torch.", "")
        result["peak"][name] = matmul_peak(dev, fdt, peak_share / 2, n_mm)
        peaks["fast"] = result["peak"][name]["gflops_per_s"]["median"]

    # ---- FLOPs, sizes, batch sizes
    log("FLOPs per image (meta device)")
    cfgs, flops, batch = {}, {}, {}
    for p in profiles:
        cfg = bench_config(p, dev)
        cfgs[p] = cfg
        hr = timed_hr_size(cfg, dev)
        batch[p] = int((batch_sizes or {}).get(p) or (BATCH_CUDA if dev.type == "cuda" else BATCH_CPU).get(p, 4))
        flops[p] = count_gflops(cfg, hr)
        result["profiles"][p] = {
            "hr_size": int(cfg.data.hr_size), "scale": int(cfg.data.scale), "timed_hr_size": hr,
            "timed_lr_size": hr // int(cfg.data.scale), "batch_size": batch[p],
            "gflops_per_image": flops[p], "train": {}, "inference": {},
        }

    plan = _plan(profiles, dev, peaks, flops, batch)
    remaining = sum(c for *_, c in plan)
    for p, kind, stage, mode, required, cost in plan:
        cfg, rec = cfgs[p], result["profiles"][p]
        label = f"{p} {kind} {stage or ''} {mode or ''}".replace("  ", " ").strip()
        if not required and budget.left() < cost:
            result["skipped"].append(f"{label}: budget (about {cost:.0f} s needed, {budget.left():.0f} s left)")
            remaining -= cost
            log(f"skip {label} (budget)")
            continue
        share = budget.share(cost, remaining)
        remaining -= cost
        log(f"{label} (share {share:.1f} s)")
        try:
            if kind == "data_generation":
                rec["data_generation"] = measure_generation(cfg, share)
            elif kind == "data_loading":
                rec["data_loading"] = measure_loading(cfg, dev, batch[p], share)
            else:
                rec_kind = rec["train"].setdefault(stage, {}) if kind == "train" else rec["inference"]
                entry: dict[str, Any] = {}
                with _mode_backends(mode, dev), _peak_memory(dev, entry):
                    if kind == "train":
                        fn, prec = make_train_step(cfg, stage, mode, dev, batch[p], rec["timed_hr_size"], compile and mode == "fast")
                        gf = flops[p][f"train_{stage}"]
                    else:
                        fn, prec = make_inference(cfg, mode, dev, batch[p], rec["timed_hr_size"], compile and mode == "fast")
                        gf = flops[p]["inference"]
                    times = time_repeated(fn, dev, share, warmup=1, min_repeats=1 if required and cost > share else 3,
                                           cheap_s=0.05 * budget.total)
                    del fn
                step = summarize(times)
                entry.update(
                    precision=prec.name, channels_last=prec.channels_last, batch_size=batch[p],
                    step_s=step, images_per_s=_scaled(step, float(batch[p]), invert=True),
                )
                entry["gflops_per_s"] = _scaled(entry["images_per_s"], gf)
                rec_kind[mode] = entry
        except torch.cuda.OutOfMemoryError as exc:  # pragma: no cover - GPU only
            torch.cuda.empty_cache()
            result["skipped"].append(f"{label}: out of GPU memory ({str(exc).splitlines()[0]})")
            log(f"{label}: out of memory")
    _derive(result, peaks)
    if runner_profile is not None:
        result["runner"] = measure_runner_scaling(runner_profile, dev, log)
    result["load_avg_end"] = list(os.getloadavg())
    result["elapsed_s"] = budget.elapsed()
    result["targets"] = targets(result)
    write_outputs(result, out_dir)
    return result


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b:
        return None
    return a["images_per_s"]["median"] / b["images_per_s"]["median"]


def _derive(result: dict[str, Any], peaks: dict[str, float]) -> None:
    """Speed-ups (fast / fp32 eager, medians) and MFU (fast GFLOP/s / same-dtype matmul peak)."""
    for rec in result["profiles"].values():
        for group in [*rec["train"].values(), rec["inference"]]:
            fast, base = group.get("fast"), group.get("fp32_eager")
            r = _ratio(fast, base)
            if r is not None:
                group["speedup"] = r
            for entry in (fast, base):
                if entry and "gflops_per_s" in entry:
                    peak = peaks["fp32"] if entry["precision"] == "fp32" else peaks.get("fast", peaks["fp32"])
                    entry["peak_gflops_per_s"] = peak
                    entry["mfu"] = entry["gflops_per_s"]["median"] / peak
        gen, train2 = rec.get("data_generation"), rec["train"].get("stage2", {}).get("fast")
        if gen and train2:
            rec["data_generation"]["vs_training"] = gen["images_per_s"]["median"] / train2["images_per_s"]["median"]


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its value and met / not met (None: not measured)."""
    out = []
    for p, rec in result["profiles"].items():
        for stage, group in rec["train"].items():
            v = group.get("speedup")
            out.append({"target": f"{p} {stage}: fast path >= {TARGET_SPEEDUP:g}x fp32 eager images/s", "value": v,
                        "threshold": TARGET_SPEEDUP, "met": None if v is None else v >= TARGET_SPEEDUP})
        if p == "paper":
            fast = rec["train"].get("stage2", {}).get("fast")
            v = fast.get("mfu") if fast else None
            dtype = fast["precision"] if fast else "fast-dtype"
            out.append({"target": f"{p} stage2 at {rec['timed_hr_size']}-px HR: fast path >= {TARGET_MFU:.0%} of the {dtype} matmul peak",
                        "value": v, "threshold": TARGET_MFU, "met": None if v is None else v >= TARGET_MFU})
        gen = rec.get("data_generation", {})
        v = gen.get("vs_training")
        out.append({"target": f"{p}: data generation >= {TARGET_DATA_RATIO:g}x fast training images/s (stage2)", "value": v,
                    "threshold": TARGET_DATA_RATIO, "met": None if v is None else v >= TARGET_DATA_RATIO})
    return out


# --------------------------------------------------------------------------- output
def _row(name: str, stats: dict[str, float] | None, unit: str, note: str = "") -> str:
    if not stats:
        return f"| {name} | - | - | - | - | {unit} | {note} |"
    return f"| {name} | {fmt_number(stats['min'])} | {fmt_number(stats['median'])} | {fmt_number(stats['max'])} | {stats['n']} | {unit} | {note} |"


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    la0, la1 = result["load_avg_start"], result.get("load_avg_end", result["load_avg_start"])
    lines = [
        f"# deepmt bench: {m.get('gpu_name') or m['cpu_model']}",
        "",
        f"- created {result['created']}, `python -m deepmt bench --profiles {' '.join(result['options']['profiles'])}"
        f" --budget-seconds {result['budget_s']:g}`{' --compile' if result['options']['compile'] else ''}; took {result.get('elapsed_s', 0):.0f} s",
        f"- machine: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), CPU capability {m['cpu_capability']}, "
        f"native CPU bf16: {m['cpu_bf16']}; torch {m['torch']} with {m['torch_threads']} threads; device `{m['device']}`"
        + (f" ({m['gpu_name']}, {m.get('gpu_memory_gb')} GiB)" if m.get("gpu_name") else ""),
        f"- load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in la0)}; at end {', '.join(f'{x:.2f}' for x in la1)}"
        + (" - **the machine was busy: numbers are pessimistic**" if max(la0[0], la1[0]) > 1.5 * m["usable_cores"] else ""),
        "- medians over repeated steps after one warm-up step; min / median / max and n (repeats) shown",
        "",
        "## Peak (large matmul)",
        "",
        "| dtype | min | median | max | n | unit | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, pk in result["peak"].items():
        lines.append(_row(name, pk["gflops_per_s"], "GFLOP/s", f"{pk['n']}x{pk['n']}"))
    for p, rec in result["profiles"].items():
        gf = rec["gflops_per_image"]
        lines += [
            "",
            f"## Profile `{p}`: HR {rec['hr_size']} px, timed at HR {rec['timed_hr_size']} / LR {rec['timed_lr_size']} px, batch {rec['batch_size']}",
            "",
            "GFLOPs per image (forward + backward for training): "
            + ", ".join(f"{k.replace('train_', 'train ')} {fmt_number(v)}" for k, v in gf.items()),
            "",
            "| measurement | min | median | max | n | unit | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for stage, group in rec["train"].items():
            for mode in MODES:
                e = group.get(mode)
                if not e:
                    continue
                tag = f"{e['precision']}{', channels_last' if e['channels_last'] else ''}"
                lines.append(_row(f"train {stage} {mode} ({tag})", e["images_per_s"], "images/s",
                                  f"peak mem {fmt_number(e.get('peak_memory_mb'), 4)} MiB"))
                lines.append(_row(f"train {stage} {mode} achieved", e["gflops_per_s"], "GFLOP/s",
                                  f"MFU {fmt_number(100 * e['mfu'], 3)}% of {fmt_number(e['peak_gflops_per_s'])}" if "mfu" in e else ""))
            if "speedup" in group:
                lines.append(f"| train {stage} speed-up fast / fp32 eager | | {fmt_number(group['speedup'])} | | | x | medians |")
        for mode in MODES:
            e = rec["inference"].get(mode)
            if e:
                lines.append(_row(f"inference {mode} ({e['precision']})", e["images_per_s"], "images/s",
                                  f"peak mem {fmt_number(e.get('peak_memory_mb'), 4)} MiB"))
        if "speedup" in rec["inference"]:
            lines.append(f"| inference speed-up fast / fp32 eager | | {fmt_number(rec['inference']['speedup'])} | | | x | medians |")
        gen, load = rec.get("data_generation"), rec.get("data_loading")
        if gen:
            lines.append(_row(f"data generation ({gen['hr_size']} px, 1 process)", gen["images_per_s"], "images/s",
                              f"{fmt_number(gen.get('vs_training'))}x fast stage2 training" if gen.get("vs_training") else ""))
        if load:
            lines.append(_row(f"data loading (batch {load['batch_size']}, {load['num_workers']} workers)", load["images_per_s"],
                              "images/s", f"crop {load['crop_size']}" if load["crop_size"] else ""))
    run = result.get("runner")
    if run:
        lines += [
            "", f"## Runner scaling: {len(run['methods']) * len(run['seeds'])} `{run['profile']}` runs "
            f"({', '.join(run['methods'])} x seeds {', '.join(map(str, run['seeds']))}; {run['split']['n_train']} training "
            f"images, {run['epochs_per_stage']} epoch per stage)", "",
            "| workers x threads | wall s | runs/min | summed train s | load at start |", "|---|---|---|---|---|",
        ]
        for e in run["layouts"]:
            lines.append(f"| {e['workers']} x {e['threads']} | {fmt_number(e['wall_s'])} | {fmt_number(e['runs_per_min'])} | "
                         f"{fmt_number(e['train_s'])} | {fmt_number(e['load_avg_start'])} |")
        lines += ["", f"Fastest: {run['fastest'].replace('x', ' x ')}; wall-time ratio first / last layout {fmt_number(run['speedup'])}."]
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    for t in result["targets"]:
        met = "not measured" if t["met"] is None else ("met" if t["met"] else "not met")
        lines.append(f"| {t['target']} | {fmt_number(t['value'])} | {met} |")
    if result["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out_dir: str | os.PathLike | None) -> dict[str, Path]:
    out = Path(out_dir) if out_dir is not None else repo_root() / "results" / "bench"
    tag = output_tag(result["machine"])
    paths = {"json": out / f"bench_{tag}.json", "md": out / f"bench_{tag}.md"}
    atomic_write_text(paths["json"], json.dumps(result, indent=1, allow_nan=False) + "\n")
    atomic_write_text(paths["md"], render_markdown(result))
    result["files"] = {k: str(v) for k, v in paths.items()}
    return paths


# --------------------------------------------------------------------------- profiler
def profile_step(profile: str = "quick", stage: str = "stage2", mode: str = "fast", device: str = "auto", steps: int = 2, row_limit: int = 25, sort_by: str | None = None) -> str:
    """torch.profiler table of ``steps`` training steps (after one warm-up) of ``stage``; the tool
    behind docs/PERFORMANCE.md."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    dev = resolve_device(device)
    sort_by = sort_by or ("self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total")
    cfg = bench_config(profile, dev)
    bs = (BATCH_CUDA if dev.type == "cuda" else BATCH_CPU).get(profile, 4)
    with _mode_backends(mode, dev):
        step, _ = make_train_step(cfg, stage, mode, dev, bs, timed_hr_size(cfg, dev))
        step()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with torch_profile(activities=acts) as prof:
            for _ in range(steps):
                step()
            synchronize(dev)
    return prof.key_averages().table(sort_by=sort_by, row_limit=row_limit)


# --------------------------------------------------------------------------- run_all.sh's times
#: where a complete ``./run_all.sh`` of a real profile records its per-notebook wall times
RUN_ALL_TIMING = Path("results") / "timing" / "run_all.json"


def write_run_all_timing(path: str | os.PathLike, *, profile: str, total_s: float, cache_at_start: str,
                         notebooks: Sequence[str], command: str = "./run_all.sh", jobs: int | None = None) -> dict[str, Any]:
    """Record the wall times of one ``./run_all.sh`` in ``path`` (JSON, atomic), apart from the result tables.

    ``notebooks``: ``NAME=SECONDS=STATUS`` items in the order they ran (status ``ok`` or ``failed``);
    ``jobs``: the runner's worker processes (default: what ``$DEEPMT_JOBS`` or the runner's default gives)."""
    from deepmt.runner import Job, workers_from_env
    rows = []
    for item in notebooks:
        name, seconds, status = (str(item).split("=") + ["", ""])[:3]
        try:
            rows.append({"name": name, "seconds": float(seconds), "status": status})
        except ValueError:
            raise ConfigMismatchError(f"run_all timing: {item!r} is not NAME=SECONDS=STATUS") from None
    cfg = get_config(profile)
    if jobs is None:
        jobs = workers_from_env([Job(METHOD, cfg)])
    record = {
        "command": command, "profile": profile, "jobs": int(jobs), "threads": int(cfg.train.threads),
        "total_s": float(total_s), "cache_at_start": cache_at_start,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()} ({usable_cores()} usable cores), torch {torch.__version__}"
                   + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"),
        "load_avg_end": list(os.getloadavg()),
        "notebooks": rows,
    }
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profiles", nargs="+", default=list(DEFAULT_PROFILES), choices=PROFILES,
                        help="profiles to time (default: quick paper; smoke for a seconds-long check)")
    parser.add_argument("--budget-seconds", type=float, default=DEFAULT_BUDGET_S,
                        help="total time budget; repeats are scaled to fit (default %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: results/bench/ in the checkout)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the ISR and segmentation subnets on the fast path (off by default: "
                        "on a small CPU it costs minutes and gains nothing)")
    parser.add_argument("--batch-size", action="append", default=[], metavar="PROFILE=N",
                        help="override the timed batch size of a profile (repeatable), e.g. --batch-size paper=2")
    parser.add_argument("--profile-ops", metavar="PROFILE:STAGE", default=None,
                        help="instead of the benchmark, print torch.profiler's top ops of a fast-path training step, "
                        "e.g. quick:stage2")
    parser.add_argument("--runner-profile", default="auto", choices=("auto", *PROFILES),
                        help="profile of the experiment runner's scaling grid, timed after the rest and outside the "
                        "budget (default: quick when timed, else the first profile)")
    parser.add_argument("--no-runner", action="store_true", help="skip the runner's scaling grid")
    parser.add_argument("--readme", nargs="+", metavar="FILE", default=None,
                        help="instead of the benchmark, rewrite the performance block of these files (e.g. README.md "
                        "docs/PERFORMANCE.md) from the bench files in --out and results/timing/run_all.json")
    parser.add_argument("--timing", default=None,
                        help=f"run_all.sh's timing file for --readme (default: {RUN_ALL_TIMING} in the checkout)")


def run(args: argparse.Namespace) -> int:
    if args.readme:
        from deepmt.performance import update_docs

        bench_dir = Path(args.out) if args.out else repo_root() / "results" / "bench"
        for name, changed in update_docs(args.readme, bench_dir, args.timing or repo_root() / RUN_ALL_TIMING).items():
            print(f"{name}: performance section {'updated' if changed else 'unchanged'}")
        return 0
    if args.profile_ops:
        profile, _, stage = args.profile_ops.partition(":")
        print(profile_step(profile, stage or "stage2", device=args.device))
        return 0
    sizes = {}
    for item in args.batch_size:
        name, _, value = item.partition("=")
        if name not in PROFILES or not value.isdigit() or int(value) < 1:
            raise ConfigMismatchError(f"--batch-size {item!r}: expected PROFILE=N with PROFILE in {PROFILES} and N >= 1")
        sizes[name] = int(value)
    if args.out is not None:
        from deepmt.utils import check_writable_dir

        check_writable_dir(args.out, "--out")
    result = run_benchmark(args.profiles, args.budget_seconds, args.out, device=args.device, compile=args.compile,
                           batch_sizes=sizes, runner_profile=None if args.no_runner else args.runner_profile)
    print(render_markdown(result))
    print(f"wrote {result['files']['json']} and {result['files']['md']}")
    return 0


__all__ = ["run_benchmark", "render_markdown", "count_gflops", "matmul_peak", "profile_step", "measure_runner_scaling",
           "write_run_all_timing", "add_arguments", "run"]
