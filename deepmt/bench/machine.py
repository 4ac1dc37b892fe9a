"""The machine the bench runs on: what it is (CPU model, cores, GPU, torch; the output files' tag) and its
peak, the GFLOP/s of a large matmul in fp32 and in the engine's fast dtype, against which MFU is computed."""

from __future__ import annotations

import os
import platform
import re
from typing import Any, Mapping

import torch

from deepmt.bench.measure import cuda_tf32, scaled, summarize, time_repeated
from deepmt.engine.device import cpu_model, cpu_supports_bf16, resolve_precision
from deepmt.worker_pool import usable_cores


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


def output_tag(info: dict[str, Any], overrides: Mapping[str, Any] | None = None) -> str:
    """File-name tag: the GPU's name on CUDA, else the host name; then each ``--set`` override as
    ``_key-value`` (``nvidia-h200_train.deterministic-false``), so a run with settings changed never
    replaces the run with the profile's own."""
    raw = info.get("gpu_name") or info.get("hostname") or "cpu"
    tag = re.sub(r"[^a-z0-9]+", "-", str(raw).lower()).strip("-") or "cpu"
    for key, value in sorted((overrides or {}).items()):
        tag += "_" + re.sub(r"[^a-z0-9.]+", "-", f"{key}-{value}".lower()).strip("-")
    return tag


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

    with cuda_tf32(False):
        times = time_repeated(fn, device, share_s, warmup=1, min_repeats=3, max_repeats=50)
    flops = 2.0 * n**3 * inner
    return {"dtype": str(dtype).replace("torch.", ""), "n": n, "gflops_per_s": scaled(summarize(times), flops / 1e9, invert=True)}
