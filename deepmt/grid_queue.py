"""One job queue for the whole grid: every training the notebooks need, before the notebooks run.

Each notebook's :func:`deepmt.worker_pool.run_jobs` call is a batch: its last runs leave workers idle while they finish
(stragglers), notebook after notebook. :func:`train_grid` trains the notebooks' whole grid in one queue instead,
so the workers stay busy until the queue is empty; the notebooks then load every entry from the cache.
``./run_all.sh`` runs it for a real profile before the notebooks::

    python -m deepmt.grid_queue --profile quick -j 2        # [--only 01,04] [--backend submitit] [--dry-run]

* **The grid**: the committed inventory (:data:`deepmt.bench.plan_inventory.INVENTORY`, recorded under ``smoke``)
  mapped onto the profile (:func:`deepmt.bench.plan.build_entries`: one entry per cache folder, whichever notebooks
  need it); ``--only`` keeps the notebooks named (and the bases of their warm starts). An entry the inventory lacks
  is still trained by its notebook, as before: correctness never depends on the inventory, only the time does.
* **What is left**: entries complete in the cache (:meth:`deepmt.worker_pool.Job.cached`) are loaded, not trained.
* **Order**: longest first by the entry's predicted seconds (:data:`PLAN_CSV`, the per-entry, per-stage plan of
  ``python -m deepmt plan`` for the quick profile, where it names the entry; else its work, epochs x images x
  pixels, scaled by the plan's seconds per unit where some entries have both). A full run counts its own seconds
  plus the longest of the runs warm-started from it (the critical path), so a base with long warm starts after it
  starts early.
* **Warm starts**: a warm-started entry waits for its base (``Job(warm_from=base_job)``): the runner starts it the
  moment the base's result is in the cache, ahead of any shorter run still waiting; a worker never idles while a
  run it could start is left (:func:`deepmt.worker_pool.run_jobs`).
* **Progress and errors**: the runner's line per run (``[3/83] deepmt_dr-<key> (07_ablation_...): trained in 95 s
  (worker 2)``); a run that fails ends the queue with one line naming it (``grid_queue: error: RUN: ...``), runs
  already training finish and are cached. Exit status 0, 1 (a run or the inventory failed) or 2 (bad arguments).
* **Backends**: ``--backend`` / ``$DEEPMT_BACKEND`` (``local`` or ``submitit``: :mod:`deepmt.cluster`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from deepmt.bench.plan import PlanEntry, build_entries, entry_seconds
from deepmt.bench.plan_inventory import INVENTORY, InventoryError, load_inventory
from deepmt.config import PROFILES, default_profile
from deepmt.errors import DeepMTError
from deepmt.experiment_cache import ExperimentResult
from deepmt.grid_log import entry_config, entry_name
from deepmt.utils import repo_root
from deepmt.worker_pool import BACKENDS, Job, backend_from_env, run_jobs, workers_from_env

#: predicted seconds per entry and stage (``train_s + val_s + overhead_s``) of the quick grid (``python -m deepmt plan``)
PLAN_CSV = "results/timing/plan.csv"


@dataclass
class GridEntry:
    """One cache entry of the grid, with its predicted seconds and its place in the queue."""

    plan: PlanEntry
    weight: float  # what it costs: predicted seconds, or its work (:func:`work`) where no seconds are known
    seconds: float | None  # predicted: PLAN_CSV's, or its work at the plan's seconds per unit; None: no plan to scale by
    from_plan: bool  # the seconds are PLAN_CSV's
    priority: float = 0.0  # its weight plus the longest of the warm starts after it

    @property
    def name(self) -> str:
        return self.plan.entry

    @property
    def label(self) -> str:
        return f"{self.plan.entry} ({self.plan.notebook or 'no notebook'})"


@dataclass
class GridRun:
    """What :func:`train_grid` did."""

    profile: str
    entries: list[str]  # the grid, in queue order
    cached: list[str]  # complete in the cache before it started
    trained: list[str]  # trained now (in queue order)
    predicted_s: float  # predicted worker-seconds of the trained ones
    wall_s: float
    results: dict[str, ExperimentResult] = field(default_factory=dict)


# --------------------------------------------------------------------------- the grid
def _wanted(only: str) -> set[str]:
    return {w.zfill(2) for w in (s.strip() for s in only.split(",")) if w}


def grid_records(inventory: str | os.PathLike | None = None, only: str = "") -> list[dict[str, Any]]:
    """The inventory's records (default :data:`INVENTORY`), those of the notebooks in ``only`` (number prefixes; a
    notebook that trains nothing has none)."""
    records = load_inventory(inventory)
    wanted = _wanted(only)
    return [r for r in records if str(r.get("notebook", ""))[:2] in wanted] if wanted else records


def _map(records: Sequence[Mapping[str, Any]], profile: str, settings: Mapping[str, Any] | None) -> list[PlanEntry]:
    try:
        return build_entries(records, profile, settings)
    except (ValueError, KeyError, TypeError) as exc:  # a record naming an unknown method, stage or setting
        raise InventoryError(f"the grid inventory does not fit this code ({exc}); re-record it with "
                             "`python -m deepmt plan --record-inventory`") from None


def plan_seconds(path: str | os.PathLike | None = None) -> dict[str, float]:
    """Predicted seconds per entry from ``path`` (default :data:`PLAN_CSV`); empty when there is none."""
    try:
        return entry_seconds(Path(path) if path else repo_root() / PLAN_CSV)
    except (OSError, KeyError, ValueError):
        return {}


def work(e: PlanEntry) -> float:
    """An entry's work in pixel-passes: its training images x pixels, validation and evaluation at a third of that."""
    n_val, hr = int(e.cfg.data.n_val), int(e.cfg.data.hr_size)
    train = sum(s.images * s.size ** 2 + (s.val_passes + int(s.start_eval)) * n_val * hr ** 2 / 3 for s in e.stages)
    return float(train + e.eval_images * hr ** 2 / 3)


def grid_entries(profile: str, inventory: str | os.PathLike | None = None, settings: Mapping[str, Any] | None = None,
                 only: str = "", plan_csv: str | os.PathLike | None = None) -> list[GridEntry]:
    """The grid's entries under ``profile`` in queue order (see the module docstring)."""
    records = grid_records(inventory, only)
    entries = _map(records, profile, settings) if records else []
    names = {e.entry for e in entries}
    extra = []  # bases of warm starts that no kept record trains (--only, or an inventory without them)
    for rec in records:
        warm = rec.get("warm_start")
        if warm:
            key = entry_config(warm["method"], warm.get("overrides") or {}, profile, settings).key()
            if entry_name(warm["method"], key) not in names:
                names.add(entry_name(warm["method"], key))
                extra.append({"notebook": rec.get("notebook", ""), "method": warm["method"],
                              "overrides": warm.get("overrides") or {}, "warm_start": None, "start_stage": None})
    entries = (_map(extra, profile, settings) if extra else []) + entries
    known = plan_seconds(plan_csv)
    proxy = [work(e) for e in entries]
    pairs = [(known[e.entry], p) for e, p in zip(entries, proxy) if e.entry in known and p > 0]
    rate = sum(k for k, _ in pairs) / sum(p for _, p in pairs) if pairs else None
    grid = [GridEntry(e, known[e.entry], known[e.entry], True) if e.entry in known else
            GridEntry(e, p * (rate or 1.0), None if rate is None else p * rate, False) for e, p in zip(entries, proxy)]
    after: dict[str, list[GridEntry]] = {}
    for g in grid:
        if g.plan.base is not None:
            after.setdefault(g.plan.base, []).append(g)
    for g in grid:  # warm starts are from full runs: one level
        g.priority = g.weight + max((d.weight for d in after.get(g.name, [])), default=0.0)
    order = sorted(range(len(grid)), key=lambda i: (-grid[i].priority, i))
    return [grid[i] for i in order]


# --------------------------------------------------------------------------- training it
def train_grid(profile: str | None = None, workers: int | None = None, inventory: str | os.PathLike | None = None,
               settings: Mapping[str, Any] | None = None, *, only: str = "", backend: str | None = None,
               cluster: Mapping[str, Any] | None = None, plan_csv: str | os.PathLike | None = None,
               progress: bool = True, dry_run: bool = False) -> GridRun:
    """Train every entry of the grid under ``profile`` (default: ``$DEEPMT_PROFILE``, else quick) that the cache
    lacks, in one queue; ``workers``, ``backend``, ``cluster``: as :func:`deepmt.worker_pool.run_jobs`. ``dry_run``:
    print the queue, train nothing."""
    profile = profile or default_profile()
    t0 = time.perf_counter()
    grid = grid_entries(profile, inventory, settings, only, plan_csv)
    say = print if progress else (lambda *a, **k: None)
    jobs: dict[str, Job] = {}
    have: dict[str, ExperimentResult] = {}
    for g in sorted(grid, key=lambda g: g.plan.base is not None):  # full runs first: they are the warm starts' bases
        e = g.plan
        if e.base is None:
            jobs[g.name] = Job(e.method, e.cfg, label=g.label)
        elif e.base in have:
            jobs[g.name] = Job(e.method, e.cfg, label=g.label, warm_start=have[e.base], start_stage=e.start_stage)
        else:
            jobs[g.name] = Job(e.method, e.cfg, label=g.label, warm_from=jobs[e.base], start_stage=e.start_stage)
        res = jobs[g.name].cached() if jobs[g.name].warm_from is None else None
        if res is not None:
            have[g.name] = res
    todo = [g for g in grid if g.name not in have]
    predicted = sum(g.seconds or 0.0 for g in todo)
    backend = backend_from_env(backend)
    if backend == "local":
        n = min(workers or workers_from_env([jobs[g.name] for g in todo]), max(1, len(todo)))
        where = f"on {n} worker(s)"
    else:
        where = f"as {backend} jobs"
    if not todo:
        basis = ""
    elif any(g.seconds is None for g in todo):
        basis = f"by their work, epochs x images x pixels: {PLAN_CSV} names none of these entries"
    elif all(g.from_plan for g in todo):
        basis = f"{predicted / 60:.0f} worker-min predicted by {PLAN_CSV}"
    else:
        basis = f"about {predicted / 60:.0f} worker-min: {PLAN_CSV}, the rest scaled from their work"
    head = f"grid: {len(grid)} entries for profile {profile} ({inventory or INVENTORY}{', --only ' + only if only else ''}), "
    say(head + (f"{len(have)} in the cache, {len(todo)} to train {where}, longest first ({basis})" if todo else
                f"{len(have)} in the cache, nothing to train"), flush=True)
    run = GridRun(profile, [g.name for g in grid], [g.name for g in grid if g.name in have], [g.name for g in todo],
                  predicted, 0.0, dict(have))
    if dry_run:
        for g in todo:
            base = f", after {g.plan.base}" if jobs[g.name].warm_from is not None else ""
            cost = f"work {g.weight:.3g}" if g.seconds is None else f"{g.seconds:.0f} s" + ("" if g.from_plan else " (scaled)")
            say(f"  {g.label}: {cost}{base}")
        return run
    if todo:
        results = run_jobs([jobs[g.name] for g in todo], workers, backend=backend, cluster=cluster, progress=progress)
        run.results.update({g.name: r for g, r in zip(todo, results)})
        run.wall_s = time.perf_counter() - t0
        say(f"grid: {len(todo)} run(s) done in {run.wall_s:.0f} s ({run.wall_s / 60:.1f} min); every entry of the grid "
            "is in the cache", flush=True)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deepmt.grid_queue",
                                description="Train every cache entry the notebooks need, in one job queue (longest first, "
                                            "warm starts as soon as their base is trained).")
    p.add_argument("--profile", choices=PROFILES, default=None, help="default: $DEEPMT_PROFILE, else quick")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="worker processes (default: $DEEPMT_JOBS, else usable cores / train.threads)")
    p.add_argument("--only", default="", metavar="NN,NN", help="the notebooks (number prefixes) whose entries to train")
    p.add_argument("--inventory", default=None, metavar="PATH", help=f"the grid inventory (default {INVENTORY})")
    p.add_argument("--backend", choices=sorted(BACKENDS), default=None, help="default: $DEEPMT_BACKEND, else local")
    p.add_argument("--dry-run", action="store_true", help="print the queue, train nothing")
    args = p.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        p.error(f"-j {args.jobs}: expected a whole number of worker processes >= 1")
    try:
        train_grid(args.profile, args.jobs, args.inventory, only=args.only, backend=args.backend, dry_run=args.dry_run)
    except KeyboardInterrupt:
        print("grid_queue: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line: a run that failed is named
        run = getattr(exc, "run_name", None)
        if run is None and not isinstance(exc, DeepMTError):
            raise
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        text = lines[0] if lines else ""
        what = f"run {run} failed: {type(exc).__name__}: " if run else ""
        print(f"grid_queue: error: {what}{text}", file=sys.stderr, flush=True)
        return 1
    return 0


__all__ = ["GridEntry", "GridRun", "PLAN_CSV", "grid_entries", "grid_records", "main", "plan_seconds", "train_grid", "work"]

if __name__ == "__main__":
    sys.exit(main())

