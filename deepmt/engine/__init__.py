"""Training engine: one staged trainer (CPU/CUDA, torchrun DDP, exact resume), checkpoints, evaluation,
prediction and the ``train`` / ``evaluate`` / ``predict`` CLI commands.

    from deepmt.engine import train, evaluate
    result = train(method, cfg, datasets, "runs/deepmt_dr")      # -> TrainResult
    metrics, predictions = evaluate(method, datasets["test"], cfg)
"""

from deepmt.engine.evaluate import evaluate
from deepmt.engine.trainer import TrainResult, train

__all__ = ["train", "TrainResult", "evaluate"]
