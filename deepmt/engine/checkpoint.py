"""Checkpoints: atomic writes, ``weights_only`` loading, config checks, RNG states.

Every checkpoint is a plain dict that ``torch.load(weights_only=True)`` can read:

=============== ==============================================================================
key             content
=============== ==============================================================================
``format``      ``"deepmt-checkpoint-v1"``
``kind``        ``"last"`` (end of every epoch; what ``--resume`` reads), ``"best"`` (best
                validation epoch of a stage), ``"final"`` (the trained method)
``method``      method name for ``deepmt.models.methods.build_method``
``config``      the full config as a JSON string (``Config.to_dict()``)
``class_counts``training grade counts the method was built with (list of 5 ints, or None)
``model``       the Method's ``state_dict()``
``stage_index`` / ``stage`` / ``epoch``  position: ``epoch`` epochs of stage ``stage_index`` done
``optimizer`` / ``scheduler`` / ``scaler``  state dicts (``last`` only)
``rng``         per-rank RNG states as tensors: python, numpy, torch, cuda, DataLoader generator
``best``        best validation score/epoch (and weights) of the current stage
``history``     JSON string of the per-epoch metric rows so far
=============== ==============================================================================

Kinds (``kind``): ``final`` and ``best`` hold a method's weights, ``last`` the whole training state, and
``stage_end`` (``stage-end-<stage>.pt``) only the RNG states where a stage ended. Commands that need weights
load through :func:`load_weights_checkpoint`, which names a file without weights and says what to pass instead.

Resuming with a different config is refused (:class:`ConfigMismatchError` listing the differing
dotted keys), except for the keys in :data:`RESUME_IGNORED_KEYS`, which cannot change the weights.
"""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from deepmt.errors import ConfigMismatchError, DataError
from deepmt.utils import atomic_path

FORMAT = "deepmt-checkpoint-v1"

#: Config keys that may differ between a checkpoint and the resuming run: they change how and
#: where the run computes or reports, not which weights it produces.
RESUME_IGNORED_KEYS: frozenset[str] = frozenset(
    {
        "profile",  # a name; the values below it are compared one by one
        "train.progress",
        "train.log_every",
        "train.device",
        "train.eval_batch_size",
        "data.num_workers",
        "data.root",  # the same dataset may be moved; its contents are what matter
    }
)


# --------------------------------------------------------------------------- save / load
def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``).

    Through a Python file object, so that a full disk raises ``OSError(ENOSPC)`` (given a path, torch reports
    it as an obscure ``RuntimeError`` from its zip writer).
    """
    state = dict(state)
    state.setdefault("format", FORMAT)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing or unreadable file raises :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found{_where_checkpoints_are(path)}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: unreadable checkpoint (not a complete torch archive: truncated, damaged or another "
                        "kind of file); pass a file written by `python -m deepmt train`, e.g. RUN_DIR/final.pt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {first})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(
            f"{path}: not a deepmt checkpoint (format {ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__!r}); "
            "pass a file written by `python -m deepmt train`, e.g. RUN_DIR/final.pt"
        )
    return ckpt


def _where_checkpoints_are(path: Path) -> str:
    """The hint after "checkpoint not found": the file looked for, how to make one, and where trained ones are."""
    from deepmt.utils import cache_root

    looked = path.expanduser().absolute()
    runs = cache_root() / "runs"
    cached = sorted(runs.glob("*/final.pt")) if runs.is_dir() else []
    have = f"{len(cached)} in {runs}, e.g. {cached[-1]}" if cached else f"none yet in {runs}"
    return (f" (looked for {looked}); train one with `python -m deepmt train --method deepmt_dr --profile smoke "
            f"--run-dir runs/deepmt_dr` (seconds; --profile quick: minutes, a usable model) and pass "
            f"runs/deepmt_dr/final.pt, or pass a cached run's final.pt ({have})")


#: What each kind of checkpoint holds, in words.
KINDS = {
    "final": "the trained method",
    "best": "the best validation weights of one stage",
    "last": "the training state at the end of the latest epoch",
    "stage_end": "the random-number states where a stage ended, without weights",
}


def load_weights_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """``(file, checkpoint)`` of a checkpoint that holds a method's weights (for evaluate, predict, loading).

    A run folder stands for its ``final.pt``. A checkpoint without weights (``stage-end-<stage>.pt``), or a run
    folder without ``final.pt``, raises :class:`DataError` saying what it is and which file to pass instead.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "final.pt").is_file():
            have = sorted(p.name for p in path.glob("*.pt") if not p.name.startswith("stage-end-"))
            raise DataError(
                f"{path}: run folder without final.pt (its training has not finished); pass one of its checkpoints "
                + (f"({', '.join(have)}) " if have else "") + "or finish the run with `train --resume`"
            )
        path = path / "final.pt"
    ckpt = load_checkpoint(path, map_location)
    if "model" not in ckpt:
        kind = str(ckpt.get("kind", "?"))
        stage = ckpt.get("stage")
        best = path.parent / f"best-{stage}.pt"
        instead = f"{path.parent / 'final.pt'} (the trained method)" + (
            f" or {best} (the weights at the end of {stage})" if stage and best.is_file() else "")
        raise DataError(
            f"{path}: a {kind!r} checkpoint ({KINDS.get(kind, 'no weights')}); it holds no model weights, pass {instead}"
        )
    return path, ckpt


def checkpoint_config(ckpt: Mapping[str, Any]):
    """The :class:`deepmt.config.Config` a checkpoint was made with."""
    from deepmt.config import config_from_dict

    return config_from_dict(json.loads(ckpt["config"]))


def config_json(cfg) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True, default=str)


# --------------------------------------------------------------------------- config checks
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, (list, tuple)):
        d = list(d)
    return {prefix[:-1]: d}


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any], ignore: frozenset[str] = RESUME_IGNORED_KEYS) -> list[str]:
    """Dotted keys whose values differ between two config dicts (JSON-normalised), minus ``ignore``. A field
    absent from one of them (stored before it existed) is equal to its neutral default
    (:func:`deepmt.config.comparable_config`)."""
    from deepmt.config import comparable_config

    fa, fb = (_flatten(json.loads(json.dumps(comparable_config(d), default=str))) for d in (a, b))
    keys = sorted(set(fa) | set(fb))
    return [k for k in keys if k not in ignore and fa.get(k, "<missing>") != fb.get(k, "<missing>")]


def check_config(ckpt: Mapping[str, Any], cfg, path: str | Path, method: str | None = None) -> None:
    """Raise :class:`ConfigMismatchError` naming the differing keys if ``ckpt`` was made with another config."""
    saved = json.loads(ckpt["config"])
    diff = config_diff(saved, cfg.to_dict())
    problems = []
    if method is not None and ckpt.get("method") != method:
        problems.append(f"method {ckpt.get('method')!r} != {method!r}")
    if diff:
        fs, fc = _flatten(saved), _flatten(json.loads(json.dumps(cfg.to_dict(), default=str)))
        shown = ", ".join(f"{k} ({fs.get(k, '<missing>')!r} -> {fc.get(k, '<missing>')!r})" for k in diff[:12])
        more = f" and {len(diff) - 12} more" if len(diff) > 12 else ""
        problems.append(f"differing keys: {shown}{more}")
    if problems:
        raise ConfigMismatchError(
            f"{path}: checkpoint was made with a different config ({'; '.join(problems)}); "
            "use the original settings or start a new run directory"
        )


# --------------------------------------------------------------------------- RNG states
def get_rng_state(generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Python, NumPy, torch (CPU and CUDA) and DataLoader-generator RNG states, as tensors."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": torch.tensor(list(py_state), dtype=torch.int64),
        "python_meta": torch.tensor([version, 0 if gauss is None else 1, 0.0 if gauss is None else gauss], dtype=torch.float64),
        "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_meta": torch.tensor([np_pos, np_has_gauss, np_gauss], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def set_rng_state(state: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`get_rng_state`."""
    meta = state["python_meta"].tolist()
    random.setstate((int(meta[0]), tuple(int(x) for x in state["python"].tolist()), meta[2] if meta[1] else None))
    npm = state["numpy_meta"].tolist()
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(npm[0]), int(npm[1]), float(npm[2])))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"].cpu())
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"].cpu())
