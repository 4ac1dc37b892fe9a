"""The grid inventory: which cache entries the notebooks need, written as they ask for them.

When ``$DEEPMT_GRID_LOG`` names a file, every cache entry a study needs -- trained or loaded from the cache --
appends one JSON line to it (:func:`record_entry`; called by :func:`deepmt.worker_pool.run_jobs` for each of its jobs
in the parent process, and by :func:`deepmt.experiment_cache.run_experiment` for direct calls)::

    {"notebook": "07_ablation_task_aware_loss", "method": "deepmt_dr", "entry": "deepmt_dr-<key>-warm-<base key>-stage2",
     "key": "<key>", "profile": "smoke", "overrides": {"loss.seg_aware": 0.0, "train.seed": 1},
     "warm_start": {"method": "deepmt_dr", "key": "<base key>", "overrides": {"train.seed": 1}}, "start_stage": "stage2",
     "batch": "4711-3", "pid": 4711, "time": 1764540000.0}

* ``notebook``: ``$DEEPMT_NOTEBOOK`` (``run_all.sh`` and ``python -m deepmt plan --record-inventory`` export it per
  notebook; ``""`` when unset).
* ``overrides``: the job's config relative to its profile, as a flat dict of the dotted leaf fields that differ
  between ``method_config(cfg, method)`` and ``method_config(get_config(profile), method)`` (so a method's profile
  epochs never show, and a study's explicit setting always does). :func:`entry_config` maps the record onto any
  profile: the same job under ``quick`` has the quick key of that job.
* ``warm_start``: the base run of a warm-started entry (its method, key and overrides, same rule), and
  ``start_stage``; both ``null`` for a full run.
* ``batch``: which :func:`~deepmt.worker_pool.run_jobs` call asked for it (``<pid>-<n>``; ``null`` for a direct call):
  the entries of one batch train side by side, the batches one after the other.

Writes are append-only, one ``os.write`` of one line per entry (``O_APPEND``), so two processes can log to the
same file. A process writes each (notebook, entry) once; a worker process that trains an entry may write it
again (``batch`` null): :func:`read_inventory` keeps the first line of each entry per notebook.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from deepmt.config import Config, get_config, method_config

#: environment variable naming the inventory file (unset: nothing is recorded)
GRID_LOG_ENV = "DEEPMT_GRID_LOG"
#: environment variable naming the notebook that runs (``run_all.sh`` exports it per notebook)
NOTEBOOK_ENV = "DEEPMT_NOTEBOOK"

_written: set[tuple[str, str]] = set()
_batches = itertools.count(1)


def flat_fields(cfg: Config) -> dict[str, Any]:
    """Every leaf field of ``cfg`` by its dotted name (``"data.synth.smudge_match"``), JSON-normalised
    (tuples as lists); a dict-valued field such as ``train.epochs_by_method`` is one leaf."""
    out: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            elif f.name != "profile" or prefix:
                out[prefix + f.name] = json.loads(json.dumps(value, default=str))

    walk(cfg, "")
    return out


def config_overrides(cfg: Config, method: str) -> dict[str, Any]:
    """The dotted leaf fields in which ``method_config(cfg, method)`` differs from the same method under
    ``get_config(cfg.profile)``, with ``cfg``'s values (sorted by key)."""
    mine = flat_fields(method_config(cfg, method))
    ref = flat_fields(method_config(get_config(cfg.profile), method))
    return {k: v for k, v in sorted(mine.items()) if ref.get(k, object()) != v}


def entry_config(method: str, overrides: Mapping[str, Any], profile: str,
                 settings: Mapping[str, Any] | None = None) -> Config:
    """The resolved config of a recorded job under ``profile`` with ``settings`` (``--set``): the profile's config
    with ``settings``, resolved for ``method`` (:func:`deepmt.config.method_config`), then the job's ``overrides``."""
    return method_config(get_config(profile, settings), method).replace(dict(overrides))


def mapped_entry(rec: Mapping[str, Any], profile: str, settings: Mapping[str, Any] | None = None
                 ) -> tuple[Config, str, str | None, str | None]:
    """A recorded job under ``profile`` with ``settings``: ``(its resolved config, its entry name, the entry name of
    its warm-start base or None, its start stage or None)``."""
    method = rec["method"]
    cfg = entry_config(method, rec.get("overrides") or {}, profile, settings)
    warm = rec.get("warm_start")
    if not warm:
        return cfg, entry_name(method, cfg.key()), None, None
    base_key = entry_config(warm["method"], warm.get("overrides") or {}, profile, settings).key()
    start = rec.get("start_stage")
    return cfg, entry_name(method, cfg.key(), base_key, start), entry_name(warm["method"], base_key), start


def entry_name(method: str, key: str, base_key: str | None = None, start_stage: str | None = None) -> str:
    """The cache folder name of an entry (:func:`deepmt.experiment_cache.run_dir_for`)."""
    return f"{method}-{key}" + (f"-warm-{base_key}-{start_stage}" if base_key is not None else "")


def new_batch() -> str | None:
    """An id for one :func:`~deepmt.worker_pool.run_jobs` call (None when nothing is recorded)."""
    return f"{os.getpid()}-{next(_batches)}" if os.environ.get(GRID_LOG_ENV) else None


def record_entry(method: str, cfg: Config, *, warm_start: Any = None, start_stage: str | None = None,
                 batch: str | None = None) -> None:
    """Append the entry of ``method`` under ``cfg`` (warm-started from the result ``warm_start`` at
    ``start_stage``) to ``$DEEPMT_GRID_LOG``; nothing when it is unset or this process wrote it already."""
    path = os.environ.get(GRID_LOG_ENV, "").strip()
    if not path:
        return
    notebook = os.environ.get(NOTEBOOK_ENV, "")
    key = method_config(cfg, method).key()
    base = None
    if warm_start is not None:
        base = {"method": warm_start.method, "key": warm_start.key,
                "overrides": config_overrides(warm_start.config, warm_start.method)}
    entry = entry_name(method, key, base and base["key"], start_stage if base else None)
    if (notebook, entry) in _written:
        return
    _written.add((notebook, entry))
    line = {"notebook": notebook, "method": method, "entry": entry, "key": key, "profile": cfg.profile,
            "overrides": config_overrides(cfg, method), "warm_start": base, "start_stage": start_stage if base else None,
            "batch": batch, "pid": os.getpid(), "time": round(time.time(), 3)}
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one write of one line: lines of two processes never interleave
    finally:
        os.close(fd)


def read_inventory(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of an inventory file, the first of each (notebook, entry) in file order; blank lines skipped.
    Raises ``ValueError`` naming the line that is not a JSON record."""
    out, seen = [], set()
    for n, text in enumerate(Path(path).read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
            ident = (rec.get("notebook", ""), rec["entry"])
            rec["method"], rec["overrides"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{n}: not an inventory record ({exc})") from None
        if ident not in seen:
            seen.add(ident)
            out.append(rec)
    return out


__all__ = ["GRID_LOG_ENV", "NOTEBOOK_ENV", "config_overrides", "entry_config", "entry_name", "flat_fields", "mapped_entry",
           "new_batch", "read_inventory", "record_entry"]
