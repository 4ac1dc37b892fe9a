"""Training engine: one staged trainer (CPU/CUDA, torchrun DDP, exact resume), checkpoints, evaluation and
prediction. Their ``train`` / ``evaluate`` / ``predict`` commands live above it, in :mod:`deepmt.commands`.

    from deepmt.engine import train, evaluate
    result = train(method, cfg, datasets, "runs/deepmt_dr")      # -> TrainResult
    metrics, predictions = evaluate(method, datasets["test"], cfg)

Imports are lazy so that ``python -m deepmt --help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"train": "trainer", "TrainResult": "trainer", "evaluate": "evaluate"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"deepmt.engine.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'deepmt.engine' has no attribute {name!r}")


__all__ = list(_EXPORTS)
