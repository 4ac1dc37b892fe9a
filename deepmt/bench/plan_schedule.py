"""The plan's clock: priced entries (:mod:`deepmt.bench.plan`) scheduled on ``W`` workers, and the tables.

**Scheduling** (:func:`schedule`): a free worker takes the next task, a warm-started entry only once its base has
finished: the first in the order given (``fifo``: :func:`deepmt.worker_pool.run_jobs` submits a notebook's jobs to its
pool in the notebook's order, and the pool hands them out in that order), or the longest (``lpt``: what a runner that
submitted longest first would do). ``./run_all.sh`` runs the notebooks one after the other, and
inside a notebook each :func:`deepmt.worker_pool.run_jobs` call (a *batch* of the inventory) waits for all of its runs
before the notebook goes on, so :func:`wall_plan` schedules every batch on its own and adds up, per notebook: the
notebook's own time (analysis, figures, loading cached runs: its seconds in the warm pass of
``results/timing/run_all.json``), the generation of each dataset the batch needs first (the runner builds them in
the parent process before its workers start: serial), a worker pool start-up per batch that trains in workers
(:data:`POOL_START_S`) and the batch's makespan. ``lower_bound_s``: the grid's work spread evenly over the workers
(or its longest run, if longer), plus the generation and the notebooks' own time: no schedule can beat it.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Any, Mapping, Sequence

from deepmt.bench.plan import PlanEntry, notebook_order

#: seconds to start a batch's worker processes (spawned interpreters importing torch), per batch that uses them
POOL_START_S = 6.0


def schedule(tasks: Sequence[tuple[str, float, Sequence[str]]], workers: int, policy: str = "lpt") -> dict[str, Any]:
    """List scheduling of ``(id, seconds, ids it must wait for)`` on ``workers`` workers: a free worker takes the
    longest ready task (``policy="lpt"``) or the first ready one in the given order (``"fifo"``, what
    :func:`deepmt.worker_pool.run_jobs` does: its pool takes the jobs in the order they were submitted). A dependency that
    is not among ``tasks`` counts as done. Returns ``makespan``, ``start`` / ``finish`` / ``worker`` per id and
    ``busy_s`` per worker. Raises ``ValueError`` on a dependency cycle or an unknown policy."""
    if policy not in ("lpt", "fifo"):
        raise ValueError(f"schedule: policy {policy!r}: expected 'lpt' or 'fifo'")
    w = max(1, int(workers))
    ids = [t[0] for t in tasks]
    dur = {t[0]: max(0.0, float(t[1])) for t in tasks}
    deps = {t[0]: [d for d in t[2] if d in dur and d != t[0]] for t in tasks}
    order = {i: k for k, i in enumerate(ids)}
    pending = sorted(ids, key=lambda i: (-dur[i], order[i])) if policy == "lpt" else list(ids)
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    worker: dict[str, int] = {}
    busy = [0.0] * w
    free = [(0.0, k) for k in range(w)]
    heapq.heapify(free)
    while pending:
        t, k = heapq.heappop(free)
        ready = next((i for i in pending if all(d in finish and finish[d] <= t for d in deps[i])), None)
        if ready is None:
            later = [f for f in finish.values() if f > t]
            if not later:
                raise ValueError(f"schedule: dependency cycle or missing start among {pending[:5]}")
            heapq.heappush(free, (min(later), k))
            continue
        pending.remove(ready)
        start[ready], finish[ready], worker[ready] = t, t + dur[ready], k
        busy[k] += dur[ready]
        heapq.heappush(free, (t + dur[ready], k))
    return {"makespan": max(finish.values(), default=0.0), "start": start, "finish": finish, "worker": worker, "busy_s": busy}


def _tasks(entries: Sequence[PlanEntry]) -> list[tuple[str, float, list[str]]]:
    return [(e.entry, e.total_s, [e.base] if e.base else []) for e in entries]


def wall_plan(entries: Sequence[PlanEntry], workers: int, notebook_s: Mapping[str, float] | None = None,
              generation_s: Mapping[str, float] | None = None, pool_start_s: float = POOL_START_S,
              policy: str = "fifo") -> dict[str, Any]:
    """Wall time of the notebooks with ``workers`` workers (see the module doc), each batch scheduled by ``policy``
    (:func:`schedule`; ``fifo``: in the order the notebook submits its jobs, as ``run_jobs`` runs them).
    ``notebook_s``: each notebook's own seconds; ``generation_s``: seconds of data generation charged to the entry
    that needs the data first. Returns ``wall_s``, ``wall_s_one_queue`` (the whole grid in one longest-first queue,
    as ``./run_all.sh`` trains it, then the notebooks), ``wall_s_longest_first`` (every batch longest-first),
    ``lower_bound_s``, ``notebooks`` (one dict per notebook, in run order) and ``batches``."""
    notebook_s = dict(notebook_s or {})
    generation_s = dict(generation_s or {})
    batches: "OrderedDict[tuple[str, str], list[PlanEntry]]" = OrderedDict()
    for k, e in enumerate(entries):
        batches.setdefault((e.notebook, e.batch if e.batch is not None else f"direct-{k}"), []).append(e)
    names = sorted(set(notebook_s) | {e.notebook for e in entries}, key=notebook_order)
    per_nb: dict[str, dict[str, Any]] = {n: {"notebook": n, "runs": 0, "entries": 0, "reused": 0, "train_worker_s": 0.0,
                                             "worker_s": 0.0, "generation_s": 0.0, "pool_start_s": 0.0,
                                             "training_wall_s": 0.0, "own_s": float(notebook_s.get(n, 0.0))} for n in names}
    for e in entries:
        for other in e.notebooks[1:]:
            per_nb[other]["reused"] += 1
    batch_rows = []
    lpt_s = 0.0
    for (nb, batch), es in batches.items():
        sched = schedule(_tasks(es), workers, policy)
        lpt_s += schedule(_tasks(es), workers, "lpt")["makespan"]
        gen = sum(generation_s.get(e.entry, 0.0) for e in es)
        trained = [e for e in es if e.stages]
        pool = pool_start_s if workers > 1 and len(es) > 1 else 0.0
        row = per_nb[nb]
        row["entries"] += len(es)
        row["runs"] += len(trained)
        row["train_worker_s"] += sum(e.train_s for e in es)
        row["worker_s"] += sum(e.total_s for e in es)
        row["generation_s"] += gen
        row["pool_start_s"] += pool
        row["training_wall_s"] += sched["makespan"]
        batch_rows.append({"notebook": nb, "batch": batch, "entries": len(es), "generation_s": gen, "pool_start_s": pool,
                           "makespan_s": sched["makespan"], "worker_s": sum(e.total_s for e in es)})
    for row in per_nb.values():
        row["wall_s"] = row["own_s"] + row["generation_s"] + row["pool_start_s"] + row["training_wall_s"]
    work = [e.total_s for e in entries]
    floor = max(sum(work) / max(1, int(workers)), max(work, default=0.0))  # all workers busy, or the longest run
    wall_s = sum(r["wall_s"] for r in per_nb.values())
    # ./run_all.sh trains the whole grid first in one queue (deepmt.grid_queue: longest first, a warm start once its
    # base is done), then the notebooks only read: one schedule, one pool start, then every notebook's own time
    queue_s = schedule(_tasks(entries), workers, "lpt")["makespan"] if entries else 0.0
    one_queue_s = queue_s + sum(generation_s.values()) + (pool_start_s if workers > 1 else 0.0) + sum(notebook_s.values())
    return {"workers": int(workers), "policy": policy, "wall_s": wall_s, "wall_s_one_queue": one_queue_s,
            "wall_s_longest_first": wall_s - sum(r["training_wall_s"] for r in per_nb.values()) + lpt_s,
            "lower_bound_s": floor + sum(generation_s.values()) + sum(notebook_s.values()),
            "worker_s": sum(e.total_s for e in entries), "notebooks": list(per_nb.values()), "batches": batch_rows}


def by_method_stage(entries: Sequence[PlanEntry]) -> list[dict[str, Any]]:
    """One row per (method, stage): runs, epochs and images (sums), training and validation worker-seconds; then one
    ``eval`` row per method (final validation + test)."""
    rows: "OrderedDict[tuple[str, str], dict[str, Any]]" = OrderedDict()
    for e in entries:
        for s in e.stages:
            r = rows.setdefault((e.method, s.stage), {"method": e.method, "stage": s.stage, "runs": 0, "epochs": 0,
                                                      "images": 0, "train_s": 0.0, "val_s": 0.0})
            r["runs"] += 1
            r["epochs"] += s.epochs
            r["images"] += s.images
            r["train_s"] += s.train_s
            r["val_s"] += s.val_s
            r["overhead_s"] = r.get("overhead_s", 0.0) + s.overhead_s
    for e in entries:
        r = rows.setdefault((e.method, "eval"), {"method": e.method, "stage": "eval", "runs": 0, "epochs": 0, "images": 0,
                                                 "train_s": 0.0, "val_s": 0.0})
        r["runs"] += 1
        r["images"] += e.eval_images
        r["val_s"] += e.eval_s
    return sorted(rows.values(), key=lambda r: -(r["train_s"] + r["val_s"]))


def render(plan: Mapping[str, Any]) -> str:
    """The plan's tables as text: per notebook, per method / stage, and the totals."""
    wall = plan["wall"]
    lines = [f"{'notebook':<36} {'runs':>5} {'reused':>6} {'worker-min':>10} {'gen-min':>7} {'own-min':>7} {'wall-min':>8}"]
    for r in wall["notebooks"]:
        lines.append(f"{r['notebook'] or '(no notebook)':<36} {r['runs']:>5} {r['reused']:>6} {r['worker_s'] / 60:>10.1f} "
                     f"{r['generation_s'] / 60:>7.1f} {r['own_s'] / 60:>7.1f} {r['wall_s'] / 60:>8.1f}")
    lines += ["", f"{'method':<18} {'stage':<8} {'runs':>5} {'epochs':>7} {'images':>9} {'train-min':>9} {'val-min':>8}"]
    for r in plan["by_method_stage"]:
        lines.append(f"{r['method']:<18} {r['stage']:<8} {r['runs']:>5} {r['epochs']:>7} {r['images']:>9} "
                     f"{r['train_s'] / 60:>9.1f} {r['val_s'] / 60:>8.1f}")
    t = plan["totals"]
    lines += ["", f"entries {t['entries']} ({t['runs']} that train), training {t['train_worker_min']:.0f} worker-min, "
                  f"all work {t['worker_min']:.0f} worker-min, data generation {t['generation_min']:.1f} min, "
                  f"notebooks' own time {t['own_min']:.1f} min",
              f"predicted wall time of ./run_all.sh with {wall['workers']} worker(s): {t['wall_min']:.0f} min "
              f"({t['wall_min'] / 60:.1f} h), the whole grid in one queue first (deepmt.grid_queue); "
              f"{t['batches_min']:.0f} min in per-notebook batches, each notebook's runs in the order it submits them "
              f"({t['longest_first_min']:.0f} min if every batch ran longest first); no schedule can beat "
              f"{t['lower_bound_min']:.0f} min"]
    return "\n".join(lines)


__all__ = ["POOL_START_S", "by_method_stage", "render", "schedule", "wall_plan"]
