"""What the bench times: one DeepMT-DR training step per stage and one inference exactly as the engine runs
them (plain fp32 eager or the engine's fast path), their FLOPs per image (:mod:`deepmt.models.cost` on the meta
device), and torch.profiler's table of a step (the tool behind docs/PERFORMANCE.md)."""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import torch

from deepmt.bench.measure import cuda_tf32
from deepmt.config import get_config
from deepmt.data.sample import random_batch
from deepmt.engine.device import (
    Precision,
    place_model,
    resolve_device,
    resolve_precision,
    setup_backends,
    synchronize,
    to_device,
)
from deepmt.models.base import freeze_for_stage, set_train_mode
from deepmt.models.cost import forward_gflops, train_gflops
from deepmt.utils import seed_everything

METHOD = "deepmt_dr"
STAGES = ("stage2", "stage1a", "stage1b")  # stage2 first: the most expensive, the one the targets are about
MODES = ("fp32_eager", "fast")
#: training batch size per profile for the timed steps (small enough for the budget; images/s
#: hardly depends on it at these sizes on a CPU). CUDA uses bigger batches to fill the GPU.
BATCH_CPU = {"smoke": 4, "quick": 8, "paper": 1}
BATCH_CUDA = {"smoke": 8, "quick": 32, "paper": 4}
#: HR size of the timed paper-profile step on a CPU: the paper's 256-px training crop (LR 64).
PAPER_CPU_HR = 256


def bench_config(profile: str, device: torch.device, overrides: Mapping[str, Any] | None = None):
    """The profile's config with ``overrides`` (``bench --set``; the bench times DeepMT-DR with the profile's model
    and loss)."""
    return get_config(profile, overrides)


def timed_hr_size(cfg, device: torch.device) -> int:
    """HR size of the timed steps: the profile's HR size, except ``paper`` on a CPU (the 256-px crop)."""
    if cfg.profile == "paper" and device.type != "cuda":
        return PAPER_CPU_HR
    return int(cfg.data.hr_size)


def build_bench_method(cfg, device: torch.device | str, method_name: str = METHOD):
    """``method_name`` (default DeepMT-DR) built for ``cfg`` on ``device`` (``meta`` for FLOP counting)."""
    from deepmt.models.methods import build_method

    counts = None if torch.device(device).type == "meta" else [1, 1, 1, 1, 1]  # class weights need real counts
    with torch.device(device):
        return build_method(method_name, cfg, class_counts=counts)


def count_gflops(cfg, hr_size: int, stages: Sequence[str] = STAGES, batch_size: int = 2) -> dict[str, float]:
    """GFLOPs per image on the meta device (:mod:`deepmt.models.cost`'s counter): ``train_<stage>``
    (forward + backward of ``training_loss``) and ``inference`` (``forward`` on LR, Grad-CAM included)
    at HR size ``hr_size``."""
    method = build_bench_method(cfg, "meta")
    batch = random_batch(hr_size, cfg.data.scale, batch_size, "meta")
    out = {"inference": forward_gflops(method, batch)}
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
def mode_backends(mode: str, device: torch.device) -> Any:
    """The backends of ``mode``: TF32 off for ``fp32_eager``; on, with the engine's settings, for ``fast``."""
    if mode == "fp32_eager":
        with cuda_tf32(False):
            yield
    else:
        with cuda_tf32(True):
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


def make_train_step(cfg, stage: str, mode: str, device: torch.device, batch_size: int, hr_size: int, compile: bool = False,
                    method_name: str = METHOD, batch: dict | None = None):
    """(step function, Precision): one optimisation step of ``stage`` of ``method_name`` (default DeepMT-DR) exactly as
    the engine runs it (freeze for the stage, autocast, backward, GradScaler, clipping, AdamW, zero_grad), on
    ``batch`` (a CPU batch; default :func:`~deepmt.data.sample.random_batch` of ``batch_size`` at ``hr_size``)."""
    prec = precision_for(mode, cfg, device)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    method = place_model(build_bench_method(cfg, "cpu", method_name), prec)
    if getattr(method, "feedback_calibration", None) is not None:  # the steady-state step: a run calibrates on its first batches
        method.feedback_calibration.finish_with_equal_norms()
    _maybe_compile(method, compile)
    params = method.stage_parameters(stage)
    freeze_for_stage(method, params)
    set_train_mode(method)
    opt = torch.optim.AdamW(params, lr=method.stage_lr(stage, cfg.train), weight_decay=cfg.train.weight_decay)
    scaler = prec.grad_scaler()
    if batch is None:
        batch = random_batch(hr_size, cfg.data.scale, batch_size, "cpu", seed=cfg.train.seed)
    batch = to_device(batch, prec)
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
    seed_everything(cfg.train.seed, cfg.train.deterministic)
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


def profile_step(profile: str = "quick", stage: str = "stage2", mode: str = "fast", device: str = "auto", steps: int = 2, row_limit: int = 25, sort_by: str | None = None, overrides: Mapping[str, Any] | None = None,
                 batch_size: int | None = None) -> str:
    """torch.profiler table of ``steps`` training steps (after one warm-up) of ``stage``; the tool
    behind docs/PERFORMANCE.md."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    dev = resolve_device(device)
    sort_by = sort_by or ("self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total")
    cfg = bench_config(profile, dev, overrides)
    bs = batch_size or (BATCH_CUDA if dev.type == "cuda" else BATCH_CPU).get(profile, 4)
    with mode_backends(mode, dev):
        step, _ = make_train_step(cfg, stage, mode, dev, bs, timed_hr_size(cfg, dev))
        step()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with torch_profile(activities=acts) as prof:
            for _ in range(steps):
                step()
            synchronize(dev)
    return prof.key_averages().table(sort_by=sort_by, row_limit=row_limit)
