"""The timing file of ``./run_all.sh``: the per-notebook wall times of one complete run, with the machine and
the runner's layout, kept apart from the result tables so that a rerun changes no result file."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from deepmt.config import get_config
from deepmt.errors import ConfigMismatchError
from deepmt.utils import atomic_write_text
from deepmt.worker_pool import usable_cores

#: where a complete ``./run_all.sh`` of a real profile records its per-notebook wall times
RUN_ALL_TIMING = Path("results") / "timing" / "run_all.json"

#: the name under which ``./run_all.sh`` records its grid queue's seconds (the training of what the cache lacked)
GRID_QUEUE = "grid_queue"

#: ``cache_at_start``: what the experiment cache held when the run began, as ``./run_all.sh`` records it -- nothing
#: (``empty``), some runs but not all the run needed, so that it trained the rest (``partial``), or every run it
#: needed (``warm``: it trained nothing)
CACHE_AT_START = {"empty": "from an empty cache",
                  "partial": "from a partly filled cache (training the runs it lacked)",
                  "warm": "reusing runs already in the cache"}


def cache_at_start_phrase(timing: dict[str, Any]) -> str:
    """How a timing record's run began, in words (:data:`CACHE_AT_START`; a record of before the ``partial`` state
    was recorded says ``warm`` for a partly filled cache too, so any unknown state reads as reusing the cache)."""
    return CACHE_AT_START.get(str(timing.get("cache_at_start")), CACHE_AT_START["warm"])


def write_run_all_timing(path: str | os.PathLike, *, profile: str, total_s: float, cache_at_start: str,
                         notebooks: Sequence[str], command: str = "./run_all.sh", jobs: int | None = None) -> dict[str, Any]:
    """Record the wall times of one ``./run_all.sh`` in ``path`` (JSON, atomic), apart from the result tables.

    ``notebooks``: ``NAME=SECONDS=STATUS`` items in the order they ran (status ``ok`` or ``failed``);
    ``jobs``: the runner's worker processes (default: what ``$DEEPMT_JOBS`` or the runner's default gives)."""
    from deepmt.bench.machine import cpu_model  # here: deepmt.bench imports this module's RUN_ALL_TIMING
    from deepmt.bench.steps import METHOD
    from deepmt.worker_pool import Job, workers_from_env
    rows = []
    for item in notebooks:
        name, seconds, status = (str(item).split("=") + ["", ""])[:3]
        try:
            rows.append({"name": name, "seconds": float(seconds), "status": status})
        except ValueError:
            raise ConfigMismatchError(f"run_all timing: {item!r} is not NAME=SECONDS=STATUS") from None
    cfg = get_config(profile)
    if jobs is None:
        jobs = workers_from_env([Job(METHOD, cfg)])
    record = {
        "command": command, "profile": profile, "jobs": int(jobs), "threads": int(cfg.train.threads),
        "total_s": float(total_s), "cache_at_start": cache_at_start,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()} ({usable_cores()} usable cores), torch {torch.__version__}"
                   + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"),
        "load_avg_end": list(os.getloadavg()),
        "notebooks": rows,
    }
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record
