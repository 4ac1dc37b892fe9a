"""The experiment cache: train (or load) a named method under a config, once.

Every notebook that needs "DeepMT-DR under the quick profile, seed 1" calls::

    from deepmt.experiment_cache import run_experiment, run_seeds, load_method
    res = run_experiment("deepmt_dr", get_config("quick", {"train.seed": 1}))
    res.metrics["qwk"], res.predictions["grade_probs"], res.history
    method = load_method(res)                      # the trained Method, for maps and predictions

and gets the same model: runs are cached under
``<deepmt.utils.cache_root()>/runs/<method>-<cfg.key()>``, and the key hashes the *full* config
(profile, dataset, sizes, losses, seed, ...), so any change of config is a new entry.

An entry is complete when its ``result.json`` exists (written last, atomically) and the files it
lists match their SHA-256 checksums and its config equals the requested one. Anything else --
missing/unreadable ``result.json``, a missing or altered ``predictions.npz``/``final.pt``, a run that
was interrupted -- is detected, reported with a warning and trained again (continuing from the
entry's ``last.pt`` where that is valid), never used silently. Results are cheap to load: JSON for
metrics, ``.npz`` for per-image predictions, CSV for the per-epoch history.

**Warm-started runs** (ablations that change only later stages)::

    base = run_experiment("deepmt_dr", cfg)
    var = run_experiment("deepmt_dr", cfg.replace({"loss.cls_aware": 0}), warm_start=base, start_stage="stage2")

trains only the stages from ``start_stage`` on, starting from the base run's model as it was when
``start_stage`` began: the base's ``best-<previous stage>.pt`` (the trainer restores the best epoch at
the end of every stage, so that file holds exactly the weights the next stage started from) and the
RNG states of ``stage-end-<previous stage>.pt`` (so a warm run with the base's own config reproduces
the base run). A previous stage that trained nothing (0 epochs) is skipped over: the stage before it
is used, or the freshly built method when no earlier stage trained at all. The config may differ from
the base's only in keys that cannot affect the earlier stages (:func:`warm_start_keys`, declared by the
method's class as ``stage_config_keys``); anything else raises :class:`ConfigMismatchError` naming the keys.
The entry is cached apart from a full run of the same config, in
``<method>-<key>-warm-<base key>-<start stage>``, and its ``result.json`` records
``warm_start`` (base key and run folder, start stage, the file it started from). Its history holds the
base's rows of the earlier stages (column ``warm_start_from`` = base key) and its own rows;
``train_seconds`` counts only its own stages. An interrupted warm run resumes from its own ``last.pt``.

**Built from a stage boundary.** A full run that is not in the cache is built from a complete full run of the
same method whose config differs from it only in keys of later stages (:func:`stage_boundary_base`; the latest
such stage wins): it is that run's warm start at that stage, so it trains only the stages from there on and is,
bit for bit, the run a from-scratch training gives (``tests/test_warm_start.py``). It is stored as the full run
it is, in ``<method>-<key>``, with the base's files of the earlier stages (``best-*.pt``, ``stage-end-*.pt``,
their config the new one) so that later warm starts find them; ``result.json`` records ``built_from`` (as
``warm_start`` would) and ``train_seconds`` counts every stage (the earlier ones as the base measured them;
``built_from["seconds_trained_here"]`` the rest). So a change of stage-2 settings retrains stage 2 alone.
``force=True`` trains from scratch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.config import Config, comparable_config, config_from_dict, method_config
from deepmt.errors import ConfigMismatchError, DeepMTError
from deepmt.grid_log import record_entry
from deepmt.utils import atomic_path, atomic_write_text, cache_root

RESULT_FORMAT = 1
RESULT_FILE = "result.json"
#: files of a complete entry whose checksums ``result.json`` records. ``history.csv`` repeats the trainer's
#: ``metrics.csv`` (``ExperimentResult.history``); it stays because existing cache entries checksum it.
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
    #: None for a full run; for a warm-started one: base_key, base_run_dir, start_stage, init_checkpoint, ...
    warm_start: dict[str, Any] | None = None
    #: None unless this full run was built from another's stage boundary (:func:`stage_boundary_base`)
    built_from: dict[str, Any] | None = None


def canonical_name(method_name: str) -> str:
    """The registered name of ``method_name`` (an alias such as ``seg_grade_mt`` -> ``foo_mt``,
    :func:`deepmt.models.methods.canonical_method`): what a run is keyed, stored and labelled by. Every function
    here that takes a method name resolves it first, so an alias trains and finds the same cache entry."""
    from deepmt.models.methods import canonical_method

    return canonical_method(method_name)


def resolve_config(method_name: str, cfg: Config, *, check_names: bool = True) -> Config:
    """The config a run of ``method_name`` trains under, is keyed by and is stored with: the one function the
    cache (:func:`run_experiment`, :func:`cached_result`, :func:`run_dir_for`), the worker pool
    (:meth:`deepmt.worker_pool.Job.entry`) and the command line (``train``) resolve a method's config with.

    :func:`deepmt.config.method_config` does the resolving (its entry of ``train.epochs_by_method`` becomes its
    ``train.epochs_single``, or ``train.epochs_STAGE`` for ``METHOD.STAGE``). ``check_names``: first, every name
    in that mapping must be a registered method (and stage), else a :class:`~deepmt.errors.SettingError`; off
    for custom builders, whose names the registry does not know, and for looking a folder up. Idempotent: a
    resolved config resolves to itself."""
    if check_names and cfg.train.epochs_by_method:
        from deepmt.models.methods import check_epochs_by_method

        check_epochs_by_method(cfg.train.epochs_by_method)
    return method_config(cfg, canonical_name(method_name))


def run_dir_for(method_name: str, cfg: Config, warm_base_key: str | None = None, start_stage: str | None = None) -> Path:
    """The cache folder of ``method_name`` under ``cfg`` (of a warm-started run when ``warm_base_key`` is given).

    Not created: looking an entry up (:func:`cached_result`) leaves the cache as it was; training creates it."""
    method_name = canonical_name(method_name)
    cfg = resolve_config(method_name, cfg, check_names=False)
    name = f"{method_name}-{cfg.key()}"
    if warm_base_key is not None:
        name += f"-warm-{warm_base_key}-{start_stage}"
    return cache_root() / "runs" / name


def warm_start_stage_keys(method_name: str) -> Mapping[str, frozenset[str]]:
    """{stage: config keys first used in that stage} of the registered method ``method_name``: its class's
    :attr:`~deepmt.models.base.Method.stage_config_keys`. Empty for a method that declares none and for a name
    the registry does not know (a custom builder's): such a warm-started run may differ from its base in no key."""
    from deepmt.models.methods import METHOD_CLASSES

    cls = METHOD_CLASSES.get(canonical_name(method_name))
    return cls.stage_config_keys if cls is not None else {}


def warm_start_keys(method_name: str, stages: Sequence[str], start_stage: str) -> frozenset[str]:
    """Dotted config keys in which a run warm-started at ``start_stage`` may differ from its base."""
    table = warm_start_stage_keys(method_name)
    later = list(stages)[list(stages).index(start_stage):]
    return frozenset().union(*(table.get(s, frozenset()) for s in later))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _normalised(d: Any) -> Any:
    """A config dict as stored and compared: JSON-normalised, without fields at their neutral default (a run
    stored before such a field existed is the same run, :func:`deepmt.config.comparable_config`)."""
    return json.loads(json.dumps(comparable_config(d), sort_keys=True, default=str))


# --------------------------------------------------------------------------- loading
class CacheEntryError(DeepMTError):
    """A cache entry is incomplete or corrupt (it will be retrained)."""


def load_result(run_dir: Path, cfg: Config | None = None, method_name: str | None = None,
                warm_start: tuple[str, str] | None = None) -> ExperimentResult:
    """Load a complete cache entry, checking config and checksums; raise :class:`CacheEntryError` otherwise.

    ``warm_start=(base key, start stage)`` also checks that the entry is that warm-started run."""
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
    if method_name is not None and res.get("method") != canonical_name(method_name):
        raise CacheEntryError(f"{path}: made for method {res.get('method')!r}, not {method_name!r}")
    if cfg is not None and _normalised(saved_cfg) != _normalised(cfg.to_dict()):
        raise CacheEntryError(f"{path}: made with a different config")
    warm = res.get("warm_start")
    if warm_start is not None and (not isinstance(warm, dict) or (warm.get("base_key"), warm.get("start_stage")) != tuple(warm_start)):
        raise CacheEntryError(f"{path}: not the run warm-started from {warm_start[0]} at {warm_start[1]!r}")
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
        warm_start=warm if isinstance(warm, dict) else None,
        built_from=res.get("built_from") if isinstance(res.get("built_from"), dict) else None,
    )


# --------------------------------------------------------------------------- running
def _default_builder(name: str, cfg: Config, class_counts):
    from deepmt.models.methods import build_method

    return build_method(name, cfg, class_counts=class_counts)


def _warm_key(method_name: str, cfg: Config, warm_start: ExperimentResult | None,
              start_stage: str | None) -> tuple[str, str] | None:
    """(base key, start stage) of a warm-started run after checking it is allowed; None for a full run."""
    if warm_start is None and start_stage is None:
        return None
    if warm_start is None or start_stage is None:
        raise DeepMTError("run_experiment: warm_start and start_stage must be given together")
    check_warm_start(method_name, cfg, warm_start, start_stage)
    return (warm_start.key, start_stage)


def cached_result(method_name: str, cfg: Config, *, warm_start: ExperimentResult | None = None,
                  start_stage: str | None = None) -> ExperimentResult | None:
    """The complete cache entry of :func:`run_experiment` with the same arguments, or None (nothing is trained)."""
    method_name = canonical_name(method_name)
    cfg = resolve_config(method_name, cfg)
    warm_key = _warm_key(method_name, cfg, warm_start, start_stage)
    try:
        return load_result(run_dir_for(method_name, cfg, *(warm_key or (None, None))), cfg, method_name, warm_start=warm_key)
    except CacheEntryError:
        return None


#: seconds between two looks at a lock another process holds
LOCK_POLL_S = 0.5


@contextlib.contextmanager
def entry_lock(run_dir: Path) -> Iterator[None]:
    """Hold the lock of the cache entry ``run_dir``: one process trains an entry, any other waits here.

    An OS file lock (:mod:`filelock`: ``flock`` on Linux/macOS) on ``<cache>/locks/<entry>.lock``. The
    kernel releases it when its holder exits or is killed, so the lock of a dead process never blocks
    anyone. Prints one line when it has to wait. Under ``torchrun`` only rank 0 takes it (the other ranks
    train with rank 0, they must not wait for it)."""
    from filelock import FileLock, Timeout

    from deepmt.engine import ddp

    if ddp.launched_by_torchrun() and int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    run_dir = Path(run_dir)
    folder = run_dir.parent.parent / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / f"{run_dir.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for {run_dir.name}: another process is training it", flush=True)
        lock.acquire(poll_interval=LOCK_POLL_S)
    try:
        yield
    finally:
        lock.release()


def run_experiment(
    method_name: str,
    cfg: Config,
    *,
    force: bool = False,
    datasets: dict[str, Any] | None = None,
    builder: Callable[[str, Config, Any], Any] | None = None,
    warm_start: ExperimentResult | None = None,
    start_stage: str | None = None,
) -> ExperimentResult:
    """Train ``method_name`` under ``cfg`` (or load the cached run) and return its results.

    ``force=True`` discards the cache entry and trains from scratch. ``datasets`` (default:
    ``deepmt.data.build_datasets(cfg.data)``) and ``builder`` (default: ``build_method``) are for
    tests and custom methods; they do not enter the cache key, so keep them a function of ``cfg``.
    ``warm_start`` (a full run of the same method) with ``start_stage`` trains only the stages from
    ``start_stage`` on, from the base run's state when that stage began (see the module docstring).

    Training happens under the entry's lock (:func:`entry_lock`): when another process is training the
    same entry, this call waits for it and then loads its result.

    The run's config is ``cfg`` resolved for the method (:func:`resolve_config`): a baseline named in
    ``train.epochs_by_method`` trains for those epochs, and its entry is keyed and stored with them.

    With ``$DEEPMT_GRID_LOG`` set, the entry is recorded in the grid inventory (:mod:`deepmt.grid_log`).
    ``method_name`` may be an alias (``seg_grade_mt``): the run is that of the registered name (:func:`canonical_name`).
    """
    method_name = canonical_name(method_name)
    record_entry(method_name, cfg, warm_start=warm_start, start_stage=start_stage)
    cfg = resolve_config(method_name, cfg, check_names=builder is None)
    warm_key = _warm_key(method_name, cfg, warm_start, start_stage)
    run_dir = run_dir_for(method_name, cfg, *(warm_key or (None, None)))
    if not force:
        try:
            return load_result(run_dir, cfg, method_name, warm_start=warm_key)
        except CacheEntryError:
            pass  # looked at again under the lock: another process may be writing it
    with entry_lock(run_dir):
        return _train_entry(method_name, cfg, run_dir, warm_key, force=force, datasets=datasets, builder=builder,
                            warm_start=warm_start, start_stage=start_stage)


def _train_entry(method_name: str, cfg: Config, run_dir: Path, warm_key: tuple[str, str] | None, *, force: bool,
                 datasets: dict[str, Any] | None, builder: Callable[[str, Config, Any], Any] | None,
                 warm_start: ExperimentResult | None, start_stage: str | None) -> ExperimentResult:
    """:func:`run_experiment`'s work while holding the entry's lock: load it if complete, else train it."""
    from deepmt.engine import ddp
    from deepmt.engine.checkpoint import load_checkpoint
    from deepmt.engine.device import numerics_machine, resolve_device
    from deepmt.engine.trainer import grade_counts, train
    from deepmt.utils import seed_everything

    if force:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not force:
        try:
            return load_result(run_dir, cfg, method_name, warm_start=warm_key)
        except CacheEntryError as exc:
            if not (run_dir / RESULT_FILE).exists() and (run_dir / "last.pt").exists():
                print(f"resuming the interrupted run in {run_dir} from its last.pt", file=sys.stderr, flush=True)
            elif (run_dir / RESULT_FILE).exists() or any(run_dir.iterdir()):
                warnings.warn(f"cache entry not usable, training again: {exc}", stacklevel=3)
            (run_dir / RESULT_FILE).unlink(missing_ok=True)
            for name in CHECKED_FILES:
                (run_dir / name).unlink(missing_ok=True)

    if datasets is None:
        from deepmt.data import build_datasets

        datasets = build_datasets(cfg.data)
    class_counts = grade_counts(datasets["train"])
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    method = (builder or _default_builder)(method_name, cfg, class_counts)
    last = run_dir / "last.pt"
    if last.exists():
        try:
            load_checkpoint(last)
        except DeepMTError as exc:
            warnings.warn(f"discarding an unusable checkpoint, training from scratch: {exc}", stacklevel=3)
            last.unlink(missing_ok=True)
    init = warm_info = built = None
    if warm_start is not None:
        init, warm_info = _warm_init(method, method_name, warm_start, start_stage)
    elif not force and ((run_dir / BUILT_FROM_FILE).exists() or not last.exists()):  # not resuming a from-scratch run
        init, built = _boundary_init(method, method_name, cfg, run_dir)
    t0 = time.perf_counter()
    result = train(method, cfg, datasets, run_dir, resume=True, class_counts=class_counts, init=init)
    if not ddp.current().is_main:
        return load_result_when_ready(run_dir, cfg, method_name, warm_key)
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
        "machine": numerics_machine(resolve_device(cfg.train.device)),
    }
    if warm_info is not None:
        record["warm_start"] = warm_info
    if built is not None:
        record["built_from"] = {**built, "seconds_trained_here": result.train_seconds}
        record["train_seconds"] = result.train_seconds + built["earlier_stages_seconds"]
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(record, indent=2, default=float))
    ddp.barrier(ddp.current())
    out = load_result(run_dir, cfg, method_name, warm_start=warm_key)
    out.from_cache = False
    return out


# --------------------------------------------------------------------------- warm starts
def check_warm_start(method_name: str, cfg: Config, base: ExperimentResult, start_stage: str) -> None:
    """Raise :class:`DeepMTError` unless ``cfg`` may be warm-started from ``base`` at ``start_stage``:
    same method, ``base`` a full run, and configs equal except in keys that only affect ``start_stage``
    and later stages (:func:`warm_start_keys`) or that never affect the weights."""
    from deepmt.engine.checkpoint import RESUME_IGNORED_KEYS, config_diff

    method_name = canonical_name(method_name)
    if base.method != method_name:
        raise DeepMTError(f"warm start: the base run is of method {base.method!r}, not {method_name!r}")
    if base.warm_start is not None:
        raise DeepMTError(
            f"warm start: the base run {base.run_dir.name} is itself warm-started; warm-start from its base "
            f"({base.warm_start.get('base_key')}) instead"
        )
    table = warm_start_stage_keys(method_name)
    stages = list(table) if table else None
    if stages is not None and start_stage not in stages:
        raise DeepMTError(f"warm start: {method_name!r} has stages {tuple(stages)}, not {start_stage!r}")
    allowed = warm_start_keys(method_name, stages or [start_stage], start_stage)
    diff = config_diff(base.config.to_dict(), cfg.to_dict(), ignore=RESUME_IGNORED_KEYS | allowed)
    if diff:
        raise ConfigMismatchError(
            f"warm start of {method_name!r} at {start_stage!r} from run {base.key}: the configs differ in "
            f"{', '.join(diff)}, which affect stages before {start_stage!r} (only "
            f"{', '.join(sorted(allowed)) or 'no keys'} may differ); train a full run instead"
        )


def _warm_init(method, method_name: str, base: ExperimentResult, start_stage: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trainer's ``init`` for a warm start, and the ``warm_start`` record of result.json."""
    from deepmt.engine.checkpoint import check_config, load_checkpoint

    stages = list(method.stages)
    if start_stage not in stages:
        raise DeepMTError(f"warm start: {method_name!r} has stages {tuple(stages)}, not {start_stage!r}")
    k = stages.index(start_stage)
    if k == 0:
        raise DeepMTError(f"warm start at {start_stage!r}, the first stage, trains everything: run without warm_start")
    try:
        base_record = json.loads((base.run_dir / RESULT_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DeepMTError(f"warm start: cannot read the base run's {base.run_dir / RESULT_FILE} ({exc})") from exc
    base_best = base_record.get("best", {})
    # the last earlier stage that trained anything: its best epoch is where the next stage started
    source = None
    for st in reversed(stages[:k]):
        if int(method.stage_epochs(st, base.config.train)) > 0 and list(method.stage_parameters(st)):
            source = st
            break
    info: dict[str, Any] = {
        "base_key": base.key, "base_run_dir": str(base.run_dir), "start_stage": start_stage,
        "init_checkpoint": None, "init_sha256": None, "rng": "seeded",
    }
    if source is None:  # no earlier stage trained: the base started start_stage from its fresh build
        model = {k_: v.detach().to("cpu", copy=True) for k_, v in method.state_dict().items()}
    else:
        path = base.run_dir / f"best-{source}.pt"
        if not path.is_file():
            raise DeepMTError(
                f"warm start: {path} is missing, so the base run's state at the start of {start_stage!r} is unknown; "
                f"train the base again (run_experiment(..., force=True))"
            )
        ckpt = load_checkpoint(path)
        check_config(ckpt, base.config, path, method=method_name)
        want = base_best.get(source, {}).get("epoch")
        if ckpt.get("stage") != source or (want is not None and int(ckpt.get("epoch", -1)) != int(want)):
            raise DeepMTError(
                f"warm start: {path} holds stage {ckpt.get('stage')!r} epoch {ckpt.get('epoch')}, but the base run "
                f"restored {source!r} epoch {want}; train the base again (force=True)"
            )
        model = ckpt["model"]
        info.update(init_checkpoint=path.name, init_sha256=_sha256(path))
    rng = None
    if source is not None and (base.run_dir / f"stage-end-{source}.pt").is_file():
        rng = load_checkpoint(base.run_dir / f"stage-end-{source}.pt").get("rng")
        info["rng"] = f"stage-end-{source}.pt"
    rows = []
    h = base.history
    if len(h) and "stage" in h.columns:
        for r in h[h["stage"].isin(stages[:k])].to_dict("records"):
            rows.append({c: v for c, v in r.items() if not (isinstance(v, float) and np.isnan(v))})
    info["earlier_stages_seconds"] = float(sum(r.get("seconds", 0.0) for r in rows))
    init = {
        "model": model, "stage_index": k, "history": rows, "rng": rng, "from": base.key,
        "best_info": {s: v for s, v in base_best.items() if s in stages[:k]},
    }
    return init, info


# --------------------------------------------------------------------------- stage-boundary builds
#: a full run built from a stage boundary records its base here before training (read again when it resumes)
BUILT_FROM_FILE = "built_from.json"


def stage_boundary_base(method_name: str, cfg: Config) -> tuple[ExperimentResult, str] | None:
    """(complete full run, stage) from which the full run of ``method_name`` under ``cfg`` can be built: a cached
    run of the same method whose config differs from ``cfg`` only in keys of that stage and later ones
    (:func:`check_warm_start`), at the latest such stage (fewest stages to train); ties go to the first folder
    by name. None when there is none (or the method has a single stage)."""
    from deepmt.engine.checkpoint import RESUME_IGNORED_KEYS, config_diff

    method_name = canonical_name(method_name)
    stages = list(warm_start_stage_keys(method_name))
    own = run_dir_for(method_name, cfg).name
    found: list[tuple[int, Path, dict]] = []
    for d in sorted((cache_root() / "runs").glob(f"{method_name}-*")):
        if "-warm-" in d.name or d.name == own:
            continue
        try:
            rec = json.loads((d / RESULT_FILE).read_text())
            diff = set(config_diff(rec["config"], cfg.to_dict(), ignore=RESUME_IGNORED_KEYS))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rec.get("method") != method_name or rec.get("warm_start") or rec.get("format") != RESULT_FORMAT:
            continue
        k = next((k for k in range(len(stages) - 1, 0, -1)
                  if diff <= warm_start_keys(method_name, stages, stages[k])), 0)
        if k:
            found.append((-k, d, rec))
    for negk, d, rec in sorted(found, key=lambda t: (t[0], t[1].name)):
        try:
            return load_result(d, config_from_dict(rec["config"]), method_name), stages[-negk]
        except CacheEntryError:
            continue
    return None


def _boundary_init(method, method_name: str, cfg: Config, run_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """:func:`_warm_init` from :func:`stage_boundary_base`'s run, after copying its files of the earlier stages
    into ``run_dir`` under ``cfg``; (None, None) when there is no such run. A resumed build reads its record."""
    from deepmt.engine.checkpoint import config_json, load_checkpoint, save_checkpoint

    marker = run_dir / BUILT_FROM_FILE
    if marker.is_file() and (run_dir / "last.pt").is_file():  # resumed from last.pt: the trainer ignores init
        return None, json.loads(marker.read_text())
    found = stage_boundary_base(method_name, cfg)
    if found is None:
        marker.unlink(missing_ok=True)
        return None, None
    base, stage = found
    check_warm_start(method_name, cfg, base, stage)
    init, info = _warm_init(method, method_name, base, stage)
    for st in method.stages[:method.stages.index(stage)]:
        for name in (f"best-{st}.pt", f"stage-end-{st}.pt"):
            if (base.run_dir / name).is_file():
                save_checkpoint(run_dir / name, {**load_checkpoint(base.run_dir / name), "config": config_json(cfg)})
    atomic_write_text(marker, json.dumps(info, indent=2, default=float))
    print(f"{run_dir.name}: built from {base.run_dir.name} at its {stage} boundary (the earlier stages are the same)",
          file=sys.stderr, flush=True)
    return init, info


def load_result_when_ready(run_dir: Path, cfg: Config, method_name: str,
                           warm_start: tuple[str, str] | None = None) -> ExperimentResult:
    """Non-zero ranks: wait for rank 0 to write the entry (it does right after training)."""
    from deepmt.engine import ddp

    ddp.barrier(ddp.current())
    return load_result(run_dir, cfg, method_name, warm_start=warm_start)


def run_seeds(method_name: str, cfg: Config, seeds: Sequence[int], **kw: Any) -> list[ExperimentResult]:
    """:func:`run_experiment` once per training seed (``train.seed``), each cached on its own."""
    return [run_experiment(method_name, cfg.replace({"train.seed": int(s)}), **kw) for s in seeds]


def load_method(source: ExperimentResult | str | Path, device: str | None = None):
    """The trained Method (eval mode) from an :class:`ExperimentResult`, a checkpoint file or a run folder."""
    from deepmt.engine.checkpoint import checkpoint_config, load_weights_checkpoint
    from deepmt.engine.device import resolve_device
    from deepmt.models.methods import build_method

    _, ckpt = load_weights_checkpoint(source.checkpoint if isinstance(source, ExperimentResult) else source)
    cfg = checkpoint_config(ckpt)
    method = build_method(ckpt["method"], cfg, class_counts=ckpt.get("class_counts"))
    method.load_state_dict(ckpt["model"])
    dev = resolve_device(device or cfg.train.device)
    method.to(dev).eval()
    for p in method.parameters():
        p.requires_grad_(False)
    return method
