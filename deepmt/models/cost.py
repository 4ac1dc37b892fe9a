"""Model sizes and compute: parameters per part and FLOPs per image, for each profile.

``cost_table(profiles=("smoke", "quick", "paper"), methods=...)`` -> pandas DataFrame, one row per
(profile, method): parameter counts per part (``params_isr``, ``params_seg``, ``params_grader``,
``params_other`` and ``params_total``), ``gflops_forward`` (inference forward pass per image, at the
profile's HR size; Grad-CAM's backward pass included where the method computes a visualization map)
and ``gflops_train`` (forward + backward of ``training_loss`` per training image, at the training
crop size ``data.crop_size`` when set (paper: 256 px HR crops) else the HR size, for the most
expensive training stage, named in ``train_stage``; DeepMT-DR's stage 1a segments SR and HR).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions;
one multiply-add = 2 FLOPs) on the **meta device**: the model and a batch of 2 images are built
without memory or arithmetic, so the paper size (1024 px HR, 256 px LR) costs seconds on a CPU.
Counts are divided by the batch size.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepmt.config import get_config
from deepmt.data.sample import random_batch
from deepmt.models.base import freeze_for_stage, set_train_mode

DEFAULT_METHODS = (
    "bicubic", "srcnn", "edsr", "isr", "unet_bicubic", "unet_hr", "grader_lr", "grader_bicubic", "grader_hr",
    "two_stage", "foo_mt", "deepmt_dr",
)  # fmt: skip

PART_ATTRS = {"isr": ("isr",), "seg": ("seg",), "grader": ("grader", "vis")}


def count_parameters(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def parameter_counts(method) -> dict[str, int]:
    """Parameters per part (ISR, segmentation, grader incl. the visualization fusion, other)."""
    out, counted = {}, 0
    for part, attrs in PART_ATTRS.items():
        n = sum(count_parameters(getattr(method, a, None)) for a in attrs)
        out[f"params_{part}"] = n
        counted += n
    total = count_parameters(method)
    out["params_other"] = total - counted
    out["params_total"] = total
    return out


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of calling ``fn`` (matmuls and convolutions, one multiply-add = 2), by ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def forward_gflops(method, batch: dict) -> float:
    """GFLOPs per image of ``method(batch)`` in eval mode without gradients (Grad-CAM's backward included
    where the method computes a visualization map); leaves ``method`` in eval mode."""
    method.eval()
    with torch.no_grad():
        return count_flops(lambda: method(batch)) / len(batch["id"]) / 1e9


def train_gflops(method, batch: dict, stage: str) -> float:
    """GFLOPs per image of one training step's forward + backward of ``training_loss(batch, stage)``, with
    ``method`` set up for ``stage`` as the trainer sets it up (only the stage's parameters require grad;
    train mode with frozen BatchNorm layers in eval), so the count is what that stage costs, whatever stage
    was counted before; gradients are cleared afterwards."""
    freeze_for_stage(method, method.stage_parameters(stage))
    set_train_mode(method)

    def step() -> None:
        total, _ = method.training_loss(batch, stage)
        total.backward()

    flops = count_flops(step)
    method.zero_grad(set_to_none=True)
    return flops / len(batch["id"]) / 1e9


def method_cost(name: str, cfg, device: str | torch.device = "meta", batch_size: int = 2) -> dict:
    """Parameters and FLOPs per image of method ``name`` under ``cfg`` (HR size ``cfg.data.hr_size``)."""
    from deepmt.models.methods import build_method

    with torch.device(device):
        method = build_method(name, cfg)
    batch = random_batch(cfg.data.hr_size, cfg.data.scale, batch_size, device)
    train_size = cfg.data.crop_size or cfg.data.hr_size
    train_batch = random_batch(train_size, cfg.data.scale, batch_size, device)
    row = {"method": name, **parameter_counts(method), "train_size": train_size}
    row["gflops_forward"] = forward_gflops(method, batch)
    best, best_stage = 0.0, None
    for stage in method.stages:
        f = train_gflops(method, train_batch, stage)
        if f >= best:
            best, best_stage = f, stage
    row["gflops_train"] = best if best_stage else 0.0
    row["train_stage"] = best_stage
    return row


def cost_table(profiles: Sequence[str] = ("smoke", "quick", "paper"), methods: Sequence[str] = DEFAULT_METHODS, device: str = "meta") -> pd.DataFrame:
    """Parameter counts per part and GFLOPs per image for every (profile, method)."""
    rows = []
    for profile in profiles:
        cfg = get_config(profile)
        for name in methods:
            row = method_cost(name, cfg, device=device)
            rows.append({"profile": profile, "hr_size": cfg.data.hr_size, "lr_size": cfg.data.lr_size, **row})
    return pd.DataFrame(rows)
