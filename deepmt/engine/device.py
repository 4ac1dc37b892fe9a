"""Device and numeric precision: one place that decides where and how the engine computes.

``cfg.train.device`` = ``auto`` picks CUDA when present, else the CPU. ``cfg.train.precision``:

* ``auto`` – CUDA: bf16 autocast where the GPU supports it, else fp16 autocast with a
  ``torch.amp.GradScaler``; CPU: bf16 autocast where the CPU has native bf16 (AVX512-BF16/AMX,
  measured about 3x faster than fp32 eager for the small nets of the ``quick`` profile on the
  2-core dev machine), else fp32.
* ``fp32`` forces full precision; ``bf16`` / ``fp16`` force that autocast dtype.

Evaluation metrics are always computed from fp32 copies of the outputs (``.float()``).
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from deepmt.errors import ConfigMismatchError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - very old/new torch
        return torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def numerics_machine(device: torch.device) -> dict[str, Any]:
    """What a run's numbers depend on beside its config, recorded with every trained run (``result.json``).
    A seeded CPU run is bit-identical on the same CPU kind with the same torch; on another CPU the kernels take
    other paths (oneDNN's AVX2 / AVX-512 / AMX) that round differently, and a run ends elsewhere, by about its seed
    noise (quick profile, 3 seeds, test accuracy on an AMD EPYC vs an Intel Xeon with AMX: LR grader 0.573 +- 0.003
    vs 0.579 +- 0.028, bicubic grader 0.670 +- 0.032 vs 0.610 +- 0.017)."""
    info: dict[str, Any] = {"cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "cpu_bf16": cpu_supports_bf16(), "torch": torch.__version__, "device": device.type,
                            "gpu_name": None}
    if device.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(device)
    return info


def machine_label(info: dict[str, Any] | None) -> str:
    """One line for a :func:`numerics_machine` record: the GPU, or the CPU with its kernel level; "not recorded"
    for a run stored before runs recorded it."""
    if not info:
        return "not recorded"
    where = info.get("gpu_name") or f"{info.get('cpu_model', '?')} ({info.get('cpu_capability', '?')}" + (
        ", bf16)" if info.get("cpu_bf16") else ")")
    return f"{where}, torch {info.get('torch', '?')}"


def resolve_device(spec: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``cuda``/``cuda:N``/``cpu`` as given."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigMismatchError(f"train.device={spec!r} but CUDA is not available on this machine (use auto or cpu)")
        if spec == "cuda":
            rank = local_rank if local_rank is not None else int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", rank % torch.cuda.device_count())
        return torch.device(spec)
    if spec != "cpu":
        raise ConfigMismatchError(f"train.device={spec!r} is not one of auto, cpu, cuda, cuda:N")
    return torch.device("cpu")


@dataclass(frozen=True)
class Precision:
    """How to compute on ``device``: autocast dtype (None = fp32), grad scaling, memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None
    use_scaler: bool
    channels_last: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.use_scaler)


def resolve_precision(device: torch.device, precision: str = "auto", channels_last: bool = True) -> Precision:
    """Pick the autocast dtype for ``device`` (see the module docstring)."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ConfigMismatchError(f"train.precision={precision!r} is not one of {PRECISIONS}")
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        dtype = {
            "auto": torch.bfloat16 if bf16_ok else torch.float16,
            "bf16": torch.bfloat16,
            "fp16": torch.float16,
            "fp32": None,
        }[precision]
        return Precision(device, dtype, dtype is torch.float16, channels_last)
    if precision == "fp16":
        raise ConfigMismatchError("train.precision='fp16' needs CUDA; on the CPU use auto, bf16 or fp32")
    if precision == "auto":
        dtype = torch.bfloat16 if cpu_supports_bf16() else None
    else:
        dtype = torch.bfloat16 if precision == "bf16" else None
    # channels_last pays off on the CPU only together with oneDNN's bf16 kernels
    return Precision(device, dtype, False, channels_last and dtype is not None)


def setup_backends(device: torch.device) -> None:
    """cuDNN autotuning on CUDA (fixed input sizes; not while torch's deterministic algorithms are on: its
    choice varies between runs) and TF32 matmuls."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def to_device(batch: dict[str, Any], prec: Precision) -> dict[str, Any]:
    """Move a collated Sample batch to the device (non-blocking from pinned memory); images get channels_last."""
    out: dict[str, Any] = {}
    non_blocking = prec.device.type == "cuda"
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(prec.device, non_blocking=non_blocking)
            if prec.channels_last and v.ndim == 4 and v.is_floating_point():
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA; a no-op elsewhere), e.g. before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``module`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


# --------------------------------------------------------------------------- data loading
def _worker_init_fn(worker_id: int) -> None:
    """Seed Python/NumPy in each DataLoader worker from the seed torch gave that worker."""
    from deepmt.utils import seed_everything

    seed_everything(torch.initial_seed() % 2**32, deterministic=None)


def make_loader(
    dataset,
    batch_size: int,
    *,
    prec: Precision,
    num_workers: int = 0,
    shuffle: bool = False,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    sampler=None,
    persistent: bool = False,
    pad_to_batch: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader with seeded shuffling and workers and pinned memory on CUDA.

    Training loaders are not ``persistent``: each epoch's workers then draw their seeds from
    ``generator``, whose state the checkpoint saves, so a resumed run augments exactly as an
    uninterrupted one (persistent workers would keep RNG streams the checkpoint cannot see).

    ``pad_to_batch`` (training; no ``sampler``): a dataset smaller than ``batch_size`` is **padded**
    to one full batch per epoch: every item once in shuffled order, topped up with items drawn
    again from a fresh shuffle (``RandomSampler`` with ``num_samples=batch_size``, seeded by
    ``generator``). A small real dataset then trains at the configured batch size instead of
    getting one odd-sized batch (or none, when the last partial batch is dropped). Datasets of at
    least ``batch_size`` items are loaded exactly as without it.
    """
    num_workers = max(0, int(num_workers))
    if pad_to_batch and sampler is None and 0 < len(dataset) < batch_size:
        sampler = torch.utils.data.RandomSampler(dataset, num_samples=batch_size, generator=generator)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=prec.device.type == "cuda",
        persistent_workers=persistent and num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        worker_init_fn=_worker_init_fn if num_workers > 0 else None,
        generator=generator,
    )


# --------------------------------------------------------------------------- workarounds
def place_model(module: torch.nn.Module, prec: Precision) -> torch.nn.Module:
    """Put ``module`` where and how the engine trains it: on ``prec.device``, in channels_last when
    ``prec`` asks for it, and on the CPU with :func:`guard_cpu_conv_faults` installed. Returns ``module``."""
    module.to(prec.device)
    if prec.channels_last:
        module.to(memory_format=torch.channels_last)
    if prec.device.type == "cpu":
        guard_cpu_conv_faults(module)
    return module


def guard_cpu_conv_faults(module: torch.nn.Module) -> int:
    """Route the strided convolutions of ``module`` around two oneDNN faults of the CPU fast path.

    Both are in oneDNN's convolution *backward* (torch 2.x CPU, oneDNN 3.x); each workaround
    changes a computation only where its fault can strike, so every other convolution (and the
    whole fp32 NCHW path, bit for bit) computes exactly as before. Returns the number of convolutions guarded (each at most once).

    * **Strided convolution on an input smaller than its kernel, under bf16 autocast**: the bf16
      backward reads uninitialised memory when a strided convolution sees a 1x1 input (e.g.
      ResNet's last stage on a 16-px LR image: smoke profile, or x8 LR at 128 px): the weight
      gradient comes out NaN at random. Those convolutions cost nothing, so they run in fp32.
    * **Strided 1x1 convolution in channels_last, when its weight gradient is needed**
      (the ResNet shortcut ``downsample`` convolutions of the grader): oneDNN's 1x1
      backward-weights kernels (``jit_1x1`` fp32, ``jit_bf16_1x1`` bf16) first gather the strided
      input into a per-thread workspace ("reduce to unit stride"), and for an NHWC source with
      fewer input channels than their 16-channel block they index that workspace with the block
      size instead of the channel count, so they write past its end (oneDNN issue #6035, open).
      Measured here (torch 2.14.1, oneDNN 3.12, AVX512-BF16; fp32 and bf16 alike): 5-15 input
      channels crash ("double free or corruption", segfault) at batch 1, 3, 5, 7, 9 with 2
      threads and at batch 8 with 3; one thread, 3-4 or 16+ channels, NCHW or stride 1 never
      did. The oneDNN report also shows wrong weight gradients without a crash, so every such
      convolution is guarded, not just the channel counts seen to crash: it runs in NCHW (the
      input and a contiguous copy of the weight, whose strides alone would keep oneDNN in NHWC;
      oneDNN then uses a channel-padded blocked layout) and hands a channels_last input its
      output back in channels_last; on an NCHW input and weight that is the original call. These
      are the small shortcut convolutions: no measurable cost.
    """
    n = 0
    for conv in module.modules():
        if not isinstance(conv, torch.nn.Conv2d) or max(conv.stride) == 1 or getattr(conv, "_deepmt_guard", False):
            continue
        original = conv.forward
        kernel = max(conv.kernel_size)

        def forward(x, _conv=conv, _original=original, _kernel=kernel):
            if x.device.type != "cpu":
                return _original(x)
            if min(x.shape[-2:]) < _kernel and torch.is_autocast_enabled("cpu"):
                with torch.autocast("cpu", enabled=False):
                    return _original(x.float())
            if _kernel == 1 and torch.is_grad_enabled() and _conv.weight.requires_grad:
                # a channels_last weight alone makes oneDNN go NHWC, and .contiguous() would keep a 1x1
                # kernel's channels_last strides: clone it. An NCHW input makes this the very same call.
                weight = _conv.weight.clone(memory_format=torch.contiguous_format)
                y = _conv._conv_forward(x.contiguous(), weight, _conv.bias)
                return y if x.is_contiguous() else y.contiguous(memory_format=torch.channels_last)
            return _original(x)

        conv.forward = forward
        conv._deepmt_guard = True
        n += 1
    return n
