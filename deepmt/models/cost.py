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

from typing import Sequence

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepmt.config import get_config

DEFAULT_METHODS = (
    "bicubic", "srcnn", "edsr", "isr", "unet_bicubic", "unet_hr", "grader_lr", "grader_bicubic", "grader_hr",
    "two_stage", "foo_mt", "deepmt_dr",
)  # fmt: skip

PART_ATTRS = {"isr": ("isr",), "seg": ("seg",), "grader": ("grader", "vis")}


def _batch(hr_size: int, scale: int, batch_size: int, device) -> dict:
    lr_size = hr_size // scale
    return {
        "hr": torch.rand(batch_size, 3, hr_size, hr_size, device=device),
        "lr": torch.rand(batch_size, 3, lr_size, lr_size, device=device),
        "masks": torch.zeros(batch_size, 4, hr_size, hr_size, device=device),
        "mask_present": torch.ones(batch_size, 4, dtype=torch.bool, device=device),
        "fov": torch.ones(batch_size, 1, hr_size, hr_size, device=device),
        "grade": torch.zeros(batch_size, dtype=torch.long, device=device),
        "id": [str(i) for i in range(batch_size)],
    }


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


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def method_cost(name: str, cfg, device: str | torch.device = "meta", batch_size: int = 2) -> dict:
    """Parameters and FLOPs per image of method ``name`` under ``cfg`` (HR size ``cfg.data.hr_size``)."""
    from deepmt.models.methods import build_method

    with torch.device(device):
        method = build_method(name, cfg)
    batch = _batch(cfg.data.hr_size, cfg.data.scale, batch_size, device)
    train_size = cfg.data.crop_size or cfg.data.hr_size
    train_batch = _batch(train_size, cfg.data.scale, batch_size, device)
    row = {"method": name, **parameter_counts(method), "train_size": train_size}
    method.eval()
    with torch.no_grad():
        row["gflops_forward"] = _flops(lambda: method(batch)) / batch_size / 1e9
    method.train()
    best, best_stage = 0.0, None
    for stage in method.stages:

        def step():
            total, _ = method.training_loss(train_batch, stage)
            total.backward()

        f = _flops(step) / batch_size / 1e9
        method.zero_grad(set_to_none=True)
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
