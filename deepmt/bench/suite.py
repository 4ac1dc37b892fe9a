"""The whole benchmark (:func:`run_benchmark`): the measurement plan with expected costs, each measurement's
share of the budget, the derived speed-ups and MFU, and the targets met or not (see :mod:`deepmt.bench`)."""

from __future__ import annotations

import datetime as _dt
import os
import sys
from typing import Any, Mapping, Sequence

import torch

from deepmt.bench.data import measure_generation, measure_loading
from deepmt.bench.machine import fast_dtype, machine_info, matmul_peak
from deepmt.bench.measure import Budget, peak_memory, scaled, summarize, time_repeated
from deepmt.bench.report import write_outputs
from deepmt.bench.scaling import measure_runner_scaling
from deepmt.bench.steps import (
    BATCH_CPU,
    BATCH_CUDA,
    METHOD,
    STAGES,
    bench_config,
    count_gflops,
    make_inference,
    make_train_step,
    mode_backends,
    timed_hr_size,
)
from deepmt.config import PROFILES
from deepmt.engine.device import resolve_device
from deepmt.errors import ConfigMismatchError

DEFAULT_BUDGET_S = 180.0
DEFAULT_PROFILES = ("quick", "paper")
TARGET_SPEEDUP = 3.0
TARGET_MFU = 0.60
#: the quick profile's stages 1a and 2 (tiny convolutions at 96 px): fast path >= 40% of the same-dtype matmul peak
TARGET_QUICK_MFU = 0.40
TARGET_DATA_RATIO = 10.0


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
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and write ``bench_<tag>.json`` / ``.md`` to
    ``out_dir`` (default ``results/bench``); returns the JSON's content.

    ``runner_profile``: the profile of the runner's scaling grid (:func:`measure_runner_scaling`, timed
    after the rest, outside ``budget_s``); ``"auto"``: ``quick`` when timed, else the first profile; None: skip.
    ``overrides``: config settings (``bench --set``, e.g. ``{"train.deterministic": "false"}``) for the timed steps
    (not the runner's grid); they are recorded in the JSON and name its file (:func:`output_tag`)."""
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
    for p in profiles:  # a bad --set fails here, before anything is timed
        bench_config(p, torch.device("cpu"), overrides)
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
                    "runner_profile": runner_profile, "overrides": {k: str(v) for k, v in (overrides or {}).items()},
                    "batch_sizes": dict(batch_sizes or {})},
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
        cfg = bench_config(p, dev, overrides)
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
                with mode_backends(mode, dev), peak_memory(dev, entry):
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
                    step_s=step, images_per_s=scaled(step, float(batch[p]), invert=True),
                )
                entry["gflops_per_s"] = scaled(entry["images_per_s"], gf)
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


def _target(name: str, value: float | None, threshold: float) -> dict[str, Any]:
    return {"target": name, "value": value, "threshold": threshold, "met": None if value is None else value >= threshold}


#: the profiles' stages whose fast path has a fraction-of-peak target: (threshold, stages, name the HR size)
MFU_TARGETS = {"quick": (TARGET_QUICK_MFU, ("stage1a", "stage2"), False), "paper": (TARGET_MFU, ("stage2",), True)}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its value and met / not met (None: not measured)."""
    out = []
    for p, rec in result["profiles"].items():
        for stage, group in rec["train"].items():
            out.append(_target(f"{p} {stage}: fast path >= {TARGET_SPEEDUP:g}x fp32 eager images/s", group.get("speedup"),
                               TARGET_SPEEDUP))
        threshold, stages, at_size = MFU_TARGETS.get(p, (None, (), False))
        for stage in stages:
            fast = rec["train"].get(stage, {}).get("fast")
            dtype = fast["precision"] if fast else "fast-dtype"
            where = f"{p} {stage} at {rec['timed_hr_size']}-px HR" if at_size else f"{p} {stage}"
            out.append(_target(f"{where}: fast path >= {threshold:.0%} of the {dtype} matmul peak",
                               fast.get("mfu") if fast else None, threshold))
        out.append(_target(f"{p}: data generation >= {TARGET_DATA_RATIO:g}x fast training images/s (stage2)",
                           rec.get("data_generation", {}).get("vs_training"), TARGET_DATA_RATIO))
    return out
