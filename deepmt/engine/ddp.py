"""Distributed data parallel training through ``torchrun``.

``torchrun --nproc_per_node N -m deepmt train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`init_from_env` then joins the process group (NCCL on CUDA, Gloo on the CPU). The engine:

* builds the same model on every rank (same seed; DDP also broadcasts rank 0's weights),
* seeds augmentation per rank (``seed + rank``) and shards the training set with a
  ``DistributedSampler`` (``set_epoch`` every epoch),
* wraps the method anew for every stage (only that stage's parameters are trainable, and DDP
  registers the trainable parameters when it wraps), with ``find_unused_parameters`` because a
  stage's loss need not touch every trainable parameter,
* validates, logs and writes checkpoints on rank 0 and broadcasts the validation metrics,
  so all ranks take the same model-selection decisions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_spec: str = "auto") -> DistContext:
    """Join the process group torchrun describes (no-op in a single process)."""
    if not launched_by_torchrun():
        return DistContext()
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and device_spec != "cpu"
    if use_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return DistContext(rank, world, local)


def current() -> DistContext:
    """The context of an already-initialised process group (single process otherwise)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistContext()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(obj: Any, ctx: DistContext, src: int = 0) -> Any:
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= ctx.world_size
    return t


def all_reduce_min(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


class LossModule(nn.Module):
    """``forward(batch, stage) = method.training_loss(batch, stage)``, so DDP sees the loss computation."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, batch: dict[str, Any], stage: str):
        return self.method.training_loss(batch, stage)


def wrap(method: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The module to call for the loss: DDP-wrapped under torchrun, plain otherwise."""
    loss_module = LossModule(method)
    if not ctx.enabled:
        return loss_module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(loss_module, device_ids=ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (its ``.module``), else ``model`` itself."""
    return getattr(model, "module", model)


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
