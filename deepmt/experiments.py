"""Experiment runner with an on-disk cache: train (or load) a named method under a config, once.

Every notebook that needs "DeepMT-DR under the quick profile, seed 1" calls::

    from deepmt.experiments import run_experiment, run_seeds, load_method
    res = run_experiment("deepmt_dr", get_config("quick", {"train.seed": 1}))
    res.metrics["qwk"], res.predictions["grade_probs"], res.history
    method = load_method(res)                      # the trained Method, for maps and predictions

and gets the same model: runs are cached under
``deepmt.utils.cache_dir("runs", f"{method}-{cfg.key()}")``, and the key hashes the *full* config
(profile, dataset, sizes, losses, seed, ...), so any change of config is a new entry.

An entry is complete when its ``result.json`` exists (written last, atomically) and the files it
lists match their SHA-256 checksums and its config equals the requested one. Anything else --
missing/unreadable ``result.json``, a missing or altered ``predictions.npz``/``final.pt``, a run that
was interrupted -- is detected, reported with a warning and trained again (continuing from the
entry's ``last.pt`` where that is valid), never used silently. Results are cheap to load: JSON for
metrics, ``.npz`` for per-image predictions, CSV for the per-epoch history.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from deepmt.config import Config, config_from_dict
from deepmt.errors import DeepMTError
from deepmt.utils import atomic_path, atomic_write_text, cache_dir

RESULT_FORMAT = 1
RESULT_FILE = "result.json"
#: files of a complete entry whose checksums ``result.json`` records
CHECKED_FILES = ("final.pt", "predictions.npz", "history.csv")


@dataclass
class ExperimentResult:
    """A trained method's numbers: ``metrics`` on the test split, ``val_metrics`` on validation,
    per-image test ``predictions`` (numpy arrays, see :func:`deepmt.engine.evaluate.evaluate`)."""

    method: str
    config: Config
    metrics: dict[str, float]
    val_metrics: dict[str, float]
    predictions: dict[str, np.ndarray]
    checkpoint: Path
    run_dir: Path
    train_seconds: float
    history: pd.DataFrame
    key: str
    from_cache: bool = False


def run_dir_for(method_name: str, cfg: Config) -> Path:
    """The cache folder of ``method_name`` under ``cfg``."""
    return cache_dir("runs", f"{method_name}-{cfg.key()}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _normalised(d: Any) -> Any:
    return json.loads(json.dumps(d, sort_keys=True, default=str))


# --------------------------------------------------------------------------- loading
class CacheEntryError(DeepMTError):
    """A cache entry is incomplete or corrupt (it will be retrained)."""


def load_result(run_dir: Path, cfg: Config | None = None, method_name: str | None = None) -> ExperimentResult:
    """Load a complete cache entry, checking config and checksums; raise :class:`CacheEntryError` otherwise."""
    run_dir = Path(run_dir)
    path = run_dir / RESULT_FILE
    if not path.is_file():
        raise CacheEntryError(f"{path}: missing (the run never finished)")
    try:
        res = json.loads(path.read_text())
        if res.get("format") != RESULT_FORMAT:
            raise ValueError(f"format {res.get('format')!r} != {RESULT_FORMAT}")
        saved_cfg = res["config"]
        checksums = res["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheEntryError(f"{path}: unreadable ({exc})") from exc
    if method_name is not None and res.get("method") != method_name:
        raise CacheEntryError(f"{path}: made for method {res.get('method')!r}, not {method_name!r}")
    if cfg is not None and _normalised(saved_cfg) != _normalised(cfg.to_dict()):
        raise CacheEntryError(f"{path}: made with a different config")
    for name in CHECKED_FILES:
        f = run_dir / name
        if not f.is_file():
            raise CacheEntryError(f"{f}: missing")
        if _sha256(f) != checksums.get(name):
            raise CacheEntryError(f"{f}: checksum mismatch (file altered or truncated)")
    try:
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as z:
            predictions = {k: z[k] for k in z.files}
        history = pd.read_csv(run_dir / "history.csv") if (run_dir / "history.csv").stat().st_size > 1 else pd.DataFrame()
    except Exception as exc:  # noqa: BLE001 - any decoding problem means the entry is unusable
        raise CacheEntryError(f"{run_dir}: unreadable predictions/history ({exc})") from exc
    return ExperimentResult(
        method=res["method"], config=config_from_dict(saved_cfg), metrics=res["metrics"], val_metrics=res["val_metrics"],
        predictions=predictions, checkpoint=run_dir / "final.pt", run_dir=run_dir,
        train_seconds=float(res["train_seconds"]), history=history, key=res["key"], from_cache=True,
    )


# --------------------------------------------------------------------------- running
def _default_builder(name: str, cfg: Config, class_counts):
    from deepmt.models.methods import build_method

    return build_method(name, cfg, class_counts=class_counts)


def run_experiment(
    method_name: str,
    cfg: Config,
    *,
    force: bool = False,
    datasets: dict[str, Any] | None = None,
    builder: Callable[[str, Config, Any], Any] | None = None,
) -> ExperimentResult:
    """Train ``method_name`` under ``cfg`` (or load the cached run) and return its results.

    ``force=True`` discards the cache entry and trains from scratch. ``datasets`` (default:
    ``deepmt.data.build_datasets(cfg.data)``) and ``builder`` (default: ``build_method``) are for
    tests and custom methods; they do not enter the cache key, so keep them a function of ``cfg``.
    """
    from deepmt.engine import ddp
    from deepmt.engine.checkpoint import load_checkpoint
    from deepmt.engine.trainer import grade_counts, train
    from deepmt.utils import seed_everything

    run_dir = run_dir_for(method_name, cfg)
    if force:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        try:
            return load_result(run_dir, cfg, method_name)
        except CacheEntryError as exc:
            if (run_dir / RESULT_FILE).exists() or any(run_dir.iterdir()):
                warnings.warn(f"cache entry not usable, training again: {exc}", stacklevel=2)
            (run_dir / RESULT_FILE).unlink(missing_ok=True)
            for name in CHECKED_FILES:
                (run_dir / name).unlink(missing_ok=True)

    if datasets is None:
        from deepmt.data import build_datasets

        datasets = build_datasets(cfg.data)
    class_counts = grade_counts(datasets["train"])
    seed_everything(cfg.train.seed)
    method = (builder or _default_builder)(method_name, cfg, class_counts)
    last = run_dir / "last.pt"
    if last.exists():
        try:
            load_checkpoint(last)
        except DeepMTError as exc:
            warnings.warn(f"discarding an unusable checkpoint, training from scratch: {exc}", stacklevel=2)
            last.unlink(missing_ok=True)
    t0 = time.perf_counter()
    result = train(method, cfg, datasets, run_dir, resume=True, class_counts=class_counts)
    if not ddp.current().is_main:
        return load_result_when_ready(run_dir, cfg, method_name)
    wall = time.perf_counter() - t0
    predictions = result.test_predictions or {"id": np.zeros(0, dtype="<U1")}
    with atomic_path(run_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **predictions)
    atomic_write_text(run_dir / "history.csv", result.history.to_csv(index=False))
    record = {
        "format": RESULT_FORMAT,
        "method": method_name,
        "key": cfg.key(),
        "config": cfg.to_dict(),
        "metrics": result.test_metrics or {},
        "val_metrics": result.val_metrics,
        "best": result.best,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "resumed": result.resumed,
        "sha256": {name: _sha256(run_dir / name) for name in CHECKED_FILES},
    }
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(record, indent=2, default=float))
    ddp.barrier(ddp.current())
    out = load_result(run_dir, cfg, method_name)
    out.from_cache = False
    return out


def load_result_when_ready(run_dir: Path, cfg: Config, method_name: str) -> ExperimentResult:
    """Non-zero ranks: wait for rank 0 to write the entry (it does right after training)."""
    from deepmt.engine import ddp

    ddp.barrier(ddp.current())
    return load_result(run_dir, cfg, method_name)


def run_seeds(method_name: str, cfg: Config, seeds: Sequence[int], **kw: Any) -> list[ExperimentResult]:
    """:func:`run_experiment` once per training seed (``train.seed``), each cached on its own."""
    return [run_experiment(method_name, cfg.replace({"train.seed": int(s)}), **kw) for s in seeds]


def load_method(source: ExperimentResult | str | Path, device: str | None = None):
    """The trained Method (eval mode) from an :class:`ExperimentResult`, a checkpoint file or a run folder."""
    from deepmt.engine.checkpoint import checkpoint_config, load_checkpoint
    from deepmt.engine.device import resolve_device
    from deepmt.models.methods import build_method

    path = source.checkpoint if isinstance(source, ExperimentResult) else Path(source)
    if path.is_dir():
        path = path / "final.pt"
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    method = build_method(ckpt["method"], cfg, class_counts=ckpt.get("class_counts"))
    method.load_state_dict(ckpt["model"])
    dev = resolve_device(device or cfg.train.device)
    method.to(dev).eval()
    for p in method.parameters():
        p.requires_grad_(False)
    return method
