"""Will a method fit this machine? Its memory, estimated from the config before anything real is built.

:func:`check_fits` builds the method on the **meta** device (shapes only: no memory, no arithmetic, as
:mod:`deepmt.models.cost` does) and runs one training batch (or one inference batch) through it there:

* the U-Net's input sides must allow its ``model.seg.levels`` (each side divisible by ``2**(levels-1)``): a
  :class:`~deepmt.errors.SettingError` naming the setting and the levels that fit
  (:func:`deepmt.config_checks.check_unet_levels`), before any data is made;
* parameters, counted exactly; for training, with their gradients and the two AdamW moments (4 x);
* activations: for training, the tensors autograd keeps for the backward pass of one step's loss (each storage
  once), x :data:`TRAIN_ACTIVATION_FACTOR`; for inference, the most bytes of tensors alive at once during the
  forward pass, x :data:`INFER_ACTIVATION_FACTOR` (both factors measured against the real peak on the CPU).

When the estimate exceeds the memory available (:func:`available_memory`: ``MemAvailable`` of
``/proc/meminfo`` for the CPU, free memory of the GPU for CUDA), a :class:`~deepmt.errors.ResourceError`
gives the estimate, its parts, the memory available and the settings to lower, instead of a kernel kill
(exit 137, no message) or PyTorch's allocation traceback minutes later.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from deepmt.errors import ResourceError, SettingError
from deepmt.utils import host_available_bytes

#: Bytes of one float32 value: estimates assume fp32 (autocast to bf16/fp16 only lowers the activations).
FLOAT_BYTES = 4
#: Parameters, gradients and AdamW's two moments.
TRAIN_STATE_FACTOR = 4


def available_memory(device: torch.device | str | None = None) -> tuple[int | None, str]:
    """``(bytes, what)``: memory available for a method on ``device`` and where that number comes from."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
            return int(free), f"free on {device}"
        except Exception:  # noqa: BLE001 - no driver answer: fall back to the host's memory
            pass
    return host_available_bytes(), "available on this machine (MemAvailable)"


def gib(n: float) -> str:
    """Bytes in words, binary units: ``"512 MB"``, ``"23.4 GB"``, ``"8.2 TB"``, ..., ``"3.1e+04 EB"``."""
    for unit, power in (("MB", 20), ("GB", 30), ("TB", 40), ("PB", 50)):
        if n < 2 ** (power + 10):
            return f"{n / 2**power:.0f} {unit}" if unit == "MB" else f"{n / 2**power:.1f} {unit}"
    return f"{n / 2**60:.3g} EB"


@dataclass
class MemoryEstimate:
    """What a method needs in memory (bytes); ``total`` is compared with the memory available."""

    method: str
    purpose: str  # "train" | "evaluate" | "predict"
    n_params: int
    param_bytes: int  # weights (+ gradients + AdamW moments for training)
    activation_bytes: int  # the largest batch's (stage's) activations
    batch_size: int
    side: int  # input side (HR px) of that batch
    stage: str | None = None

    @property
    def total(self) -> int:
        return self.param_bytes + self.activation_bytes

    def describe(self) -> str:
        what = "parameters, gradients and AdamW state" if self.purpose == "train" else "parameters"
        stage = f", {self.stage}" if self.stage == "validation" else f", stage {self.stage}" if self.stage else ""
        return (f"about {gib(self.total)}: {what} {gib(self.param_bytes)} ({self.n_params:,} parameters), "
                f"activations {gib(self.activation_bytes)} (batch of {self.batch_size} at {self.side} px{stage})")


#: Measured peak / estimate on the CPU (smoke-sized models at 256-1024 px): training peaks at about 1.5 x the bytes
#: autograd saves for the backward pass (gradient buffers and kernels' workspaces come on top), inference at about
#: 1.4-1.8 x the largest total of the tensors alive at once during the forward pass.
TRAIN_ACTIVATION_FACTOR = 1.5
INFER_ACTIVATION_FACTOR = 2.0


def _saved_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of what ``fn`` computes (each storage once)."""
    saved: dict[int, tuple[torch.Tensor, int]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t
        saved[id(base)] = (base, base.numel() * base.element_size())  # holding base keeps its id unique
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(n for _, n in saved.values())


class _LiveBytes(TorchDispatchMode):
    """The most bytes of tensors alive at once among those the operations create (not views, not in-place results)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0

    def _free(self, n: int) -> None:
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False):
            inputs = {id(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and id(t) not in inputs:
                    n = t.numel() * t.element_size()
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, n)
        return out


def _peak_bytes(fn: Callable[[], Any]) -> int:
    with _LiveBytes() as counter:
        fn()
    return counter.peak


def _batch_bytes(batch: dict) -> int:
    return sum(v.numel() * v.element_size() for v in batch.values() if isinstance(v, torch.Tensor))


def _unet_guard(method: torch.nn.Module, cfg) -> None:
    """Make every U-Net of the (meta) ``method`` refuse an input side its levels do not allow with a
    :class:`SettingError` naming the setting behind that side, instead of the model's ``ValueError``."""
    from deepmt.config_checks import check_unet_levels
    from deepmt.models.segmentation import LesionUNet

    d = cfg.data
    sources = {}
    for side, name in ((d.hr_size // d.scale, "data.hr_size / data.scale, the LR side"),
                       (getattr(d, "nongrading_crop_size", None), "data.nongrading_crop_size"),
                       (d.crop_size, "data.crop_size"), (d.hr_size, "data.hr_size")):
        if side:
            sources[int(side)] = name  # later entries win: the HR side is named where sizes coincide

    def check(unet: LesionUNet, original: Callable, x: torch.Tensor) -> None:
        if x.ndim == 4:
            for side in sorted(set(int(s) for s in x.shape[-2:])):
                check_unet_levels(unet.levels, side, sources.get(side, "the input"))
        original(x)

    for module in method.modules():
        if isinstance(module, LesionUNet):
            module.check_input = functools.partial(check, module, module.check_input)


def estimate_memory(method_name: str, cfg, purpose: str = "train", batch_size: int | None = None) -> MemoryEstimate:
    """Memory ``method_name`` needs under ``cfg`` for ``purpose``: ``"train"`` (each stage that trains, one batch of
    ``train.batch_size`` at its training size: ``data.nongrading_crop_size`` for a stage that does not grade, else
    ``data.crop_size`` or the HR size), ``"evaluate"`` (``train.eval_batch_size`` at the HR size, no gradients) or
    ``"predict"`` (one image). Raises :class:`SettingError` for U-Net levels the input sides do not allow."""
    from deepmt.config import check_sizes
    from deepmt.models.methods import build_method

    check_sizes(cfg)
    meta = torch.device("meta")
    try:
        with meta:
            method = build_method(method_name, cfg)
    except (RuntimeError, OverflowError) as exc:  # e.g. a parameter count beyond int64
        raise ResourceError(f"{method_name} ({cfg.profile} profile) is too large to even count its parameters "
                            f"({_first_line(exc)}){_set_here(cfg)}; lower the model's widths") from exc
    _unet_guard(method, cfg)
    try:
        return _estimate(method, method_name, cfg, purpose, batch_size)
    except (RuntimeError, OverflowError) as exc:  # e.g. an activation beyond int64 elements
        raise ResourceError(f"{method_name} ({cfg.profile} profile) is too large to estimate its memory "
                            f"({_first_line(exc)}){_set_here(cfg)}; lower the model's widths or data.hr_size") from exc


def _estimate(method, method_name: str, cfg, purpose: str, batch_size: int | None) -> MemoryEstimate:
    from deepmt.data.sample import random_batch
    from deepmt.models.base import freeze_for_stage, set_train_mode

    meta = torch.device("meta")
    n_params = sum(p.numel() for p in method.parameters())
    d, t = cfg.data, cfg.train
    if purpose == "train":
        best, best_stage, side_used, bs = 0, None, d.crop_size or d.hr_size, int(batch_size or t.batch_size)
        for stage in method.stages:
            params = list(method.stage_parameters(stage))
            if int(method.stage_epochs(stage, t)) <= 0 or not params:
                continue
            side = d.crop_size or d.hr_size
            if getattr(d, "nongrading_crop_size", None) and not method.stage_grades(stage):
                side = min(side, int(d.nongrading_crop_size))
            stage_bs = int(batch_size or method.stage_batch_size(stage, t))
            batch = random_batch(side, d.scale, stage_bs, meta)
            freeze_for_stage(method, params)
            set_train_mode(method)
            saved = _saved_bytes(lambda: method.training_loss(batch, stage))
            n = int(TRAIN_ACTIVATION_FACTOR * saved) + _batch_bytes(batch)
            if n >= best:
                best, best_stage, side_used, bs = n, stage, side, stage_bs
        if best_stage is None:
            raise SettingError(_no_epochs(method, method_name, t))
        # each epoch is validated on whole HR images: that may need more than a training step
        val = _inference_bytes(method, cfg, int(t.eval_batch_size))
        if val > best:
            best, best_stage, side_used, bs = val, "validation", d.hr_size, int(t.eval_batch_size)
        return MemoryEstimate(method_name, purpose, n_params, TRAIN_STATE_FACTOR * FLOAT_BYTES * n_params, best, bs,
                              side_used, best_stage)
    bs = int(batch_size or (1 if purpose == "predict" else t.eval_batch_size))
    return MemoryEstimate(method_name, purpose, n_params, FLOAT_BYTES * n_params, _inference_bytes(method, cfg, bs), bs,
                          d.hr_size)


def _inference_bytes(method, cfg, batch_size: int) -> int:
    """Activation bytes of ``method`` (on the meta device) on one batch of whole HR images, without gradients."""
    from deepmt.data.sample import random_batch

    batch = random_batch(cfg.data.hr_size, cfg.data.scale, batch_size, torch.device("meta"))
    method.eval()

    def forward() -> None:
        with torch.no_grad():
            method(batch)

    return int(INFER_ACTIVATION_FACTOR * _peak_bytes(forward)) + _batch_bytes(batch)


def _no_epochs(method, method_name: str, train_cfg) -> str:
    """The message for a method none of whose stages would train an epoch."""
    keys = []
    for stage in method.stages:
        key = f"epochs_{stage}" if hasattr(train_cfg, f"epochs_{stage}") else "epochs_single"
        if key not in keys:
            keys.append(key)
    shown = ", ".join(f"train.{k}={getattr(train_cfg, k)}" for k in keys)
    return (f"{shown}: {method_name} would train no epoch and write the final.pt of an untrained model; give "
            + ("at least one of its stages 1 or more epochs (a stage at 0 is skipped)" if len(keys) > 1 else "it 1 or more epochs"))


#: Settings that size a method's memory, named when one of them differs from its profile.
SIZE_SETTINGS = ("model.isr.channels", "model.isr.n_resblocks", "model.seg.base_channels", "model.seg.levels",
                 "model.grader.width", "model.grader.fc_hidden", "data.hr_size", "data.crop_size",
                 "data.nongrading_crop_size", "train.batch_size", "train.eval_batch_size")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _set_here(cfg) -> str:
    changed = _changed_sizes(cfg)
    return f"; set for this run: {', '.join(changed)}" if changed else ""


def _changed_sizes(cfg) -> list[str]:
    """``KEY=VALUE`` of the size settings in which ``cfg`` differs from its profile."""
    from deepmt.config import get_config

    try:
        base = get_config(cfg.profile)
    except SettingError:
        return []
    out = []
    for key in SIZE_SETTINGS:
        a, b = cfg, base
        try:
            for part in key.split("."):
                a, b = getattr(a, part), getattr(b, part)
        except AttributeError:
            continue
        if a != b:
            out.append(f"{key}={a}")
    return out


def check_fits(method_name: str, cfg, purpose: str = "train", device: torch.device | str | None = None,
               batch_size: int | None = None) -> MemoryEstimate:
    """:func:`estimate_memory`, refused with a :class:`ResourceError` when it exceeds :func:`available_memory` of
    ``device`` (default: the config's ``train.device``, resolved). The message gives the estimate, the memory
    available and what to lower."""
    if device is None:
        from deepmt.engine.device import resolve_device

        device = resolve_device(cfg.train.device)
    est = estimate_memory(method_name, cfg, purpose, batch_size)
    free, where = available_memory(device)
    if free is not None and est.total > free:
        batch = {"train": "train.batch_size, ", "evaluate": "train.eval_batch_size, "}.get(purpose, "")
        lower = batch + "data.hr_size / data.crop_size or the model's widths (model.*.channels, base_channels, width, levels)"
        raise ResourceError(
            f"{method_name} ({cfg.profile} profile) needs {est.describe()} to {purpose}, but {gib(free)} is {where}"
            f"{_set_here(cfg)}; lower {lower}"
        )
    return est
