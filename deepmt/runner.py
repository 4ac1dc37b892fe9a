"""Run a batch of independent trainings side by side: N worker processes x T threads each.

A notebook needs dozens of small trainings (methods x seeds, ablation variants) that do not depend on
each other. :func:`run_jobs` trains them in parallel and returns what :func:`deepmt.experiments.run_experiment`
would have returned for each, in order::

    from deepmt.runner import Job, run_jobs
    results = run_jobs([Job("deepmt_dr", cfg.replace({"train.seed": s}), label=f"deepmt_dr seed {s}") for s in (0, 1, 2)])

* **Workers** (N): ``$DEEPMT_JOBS`` (``./run_all.sh -j N`` sets it), else :func:`default_workers`: the usable
  cores divided by the runs' threads (2 x 1 on a 2-core CPU, the faster layout measured by ``python -m
  deepmt bench``); one for GPU runs and for ``smoke`` runs (seconds each: starting a worker costs more).
  Entries already in the cache are loaded here and never reach a worker; with one run left, or one
  worker, the runs train in this process, one after the other. A script (not a notebook) that trains in
  workers must guard its code with ``if __name__ == "__main__":``, as :mod:`multiprocessing` requires.
* **Threads** (T): every run uses ``cfg.train.threads`` torch threads. It is a config field, so part of the
  cache key, because a run's CPU numbers depend on it; the worker count is not, so ``-j 1`` and ``-j 2`` give
  the same numbers. Workers start with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set to T.
* **Processes** are *spawned* (a fresh interpreter; never a fork of a process whose torch threads have
  started, which can deadlock). Each runs :func:`run_experiment` and hands back the entry's folder; this
  process loads it (:func:`deepmt.experiments.cached_result`). Datasets are built (generated and cached)
  here first, so no two workers generate the same split.
* **Same numbers as a serial run**: a run's result depends only on its config (seeded; deterministic on the
  CPU), not on the process that trains it or on what it trained before.
* **One trainer per entry**: :func:`run_experiment` trains under the entry's lock
  (:func:`deepmt.experiments.entry_lock`), so a worker, a second notebook or a second ``run_all.sh`` that
  needs an entry another process is training waits for it and loads it.
* **Grid inventory**: with ``$DEEPMT_GRID_LOG`` set, every job's entry (trained or cached) is recorded there,
  with this call as its batch (:mod:`deepmt.grid_log`; ``python -m deepmt plan`` reads it).
* **Progress**: one line per run, in the order they finish: ``[3/8] deepmt_dr seed 1: trained in 95 s
  (worker 2)`` or ``... from cache``; progress bars are off in the workers.
* **Errors**: a :class:`deepmt.errors.DeepMTError` raised in a worker is raised here unchanged (the CLI
  prints it as one line). Runs not yet started are cancelled; runs already training finish in the
  background and are cached. A worker that dies (killed, out of memory) raises
  :class:`~deepmt.errors.TrainingError` naming its run. Ctrl-C stops the workers.

This module imports torch only inside functions: a spawned worker imports it after its thread settings.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from deepmt.config import Config, method_config
from deepmt.errors import DeepMTError, TrainingError
from deepmt.experiments import ExperimentResult, cached_result, run_experiment
from deepmt.grid_log import new_batch, record_entry

#: environment variable with the number of worker processes
JOBS_ENV = "DEEPMT_JOBS"


@dataclass(frozen=True)
class Job:
    """One :func:`run_experiment` call. ``builder`` must be a module-level function when it runs in a worker."""

    method: str
    cfg: Config
    label: str = ""  # progress text, default: the method
    warm_start: ExperimentResult | None = None
    start_stage: str | None = None
    builder: Callable[[str, Config, Any], Any] | None = None

    @property
    def name(self) -> str:
        return self.label or self.method

    def cached(self) -> ExperimentResult | None:
        return cached_result(self.method, self.cfg, warm_start=self.warm_start, start_stage=self.start_stage)

    def entry(self) -> tuple[str, str, str | None, str | None]:
        """What identifies the cache entry (two jobs with the same entry train once)."""
        base = self.warm_start.key if self.warm_start is not None else None
        return (self.method, method_config(self.cfg, self.method).key(), base, self.start_stage)


# --------------------------------------------------------------------------- workers
def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; all cores where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def _uses_gpu(cfg: Config) -> bool:
    spec = str(cfg.train.device)
    if spec.startswith("cuda"):
        return True
    if spec != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def default_workers(jobs: Sequence[Job] = ()) -> int:
    """Usable cores // the runs' threads (at least 1). One (this process) when the runs train on a GPU, or
    when they are all ``smoke`` runs: those take a second or two, less than starting a worker costs."""
    if any(_uses_gpu(j.cfg) for j in jobs) or (jobs and all(j.cfg.profile == "smoke" for j in jobs)):
        return 1
    threads = max([int(j.cfg.train.threads) for j in jobs] or [1]) or usable_cores()
    return max(1, usable_cores() // threads)


def workers_from_env(jobs: Sequence[Job] = ()) -> int:
    """``$DEEPMT_JOBS`` when set (a whole number >= 1), else :func:`default_workers`."""
    raw = os.environ.get(JOBS_ENV, "").strip()
    if not raw:
        return default_workers(jobs)
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise DeepMTError(f"{JOBS_ENV}={raw!r}: expected a whole number of worker processes >= 1")
    return n


def _init_worker(threads: int) -> None:
    """First thing in a spawned worker, before torch is imported: its thread count, no progress bars."""
    if threads > 0:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ["TQDM_DISABLE"] = "1"


def _run_in_worker(job: Job) -> tuple[str, bool, float, int]:
    """(entry folder, loaded from the cache?, seconds, process id) of one job, run in a worker."""
    t0 = time.perf_counter()
    res = run_experiment(job.method, job.cfg, builder=job.builder, warm_start=job.warm_start, start_stage=job.start_stage)
    return str(res.run_dir), res.from_cache, time.perf_counter() - t0, os.getpid()


def _prepare_data(jobs: Sequence[Job]) -> None:
    """Build every dataset the jobs need, once, here (workers then only read the cache)."""
    from deepmt.data import build_datasets

    seen: set[str] = set()
    for job in jobs:
        key = json.dumps(dataclasses.asdict(job.cfg.data), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            build_datasets(job.cfg.data)


# --------------------------------------------------------------------------- the runner
def run_jobs(jobs: Sequence[Job], workers: int | None = None, *, progress: bool = True) -> list[ExperimentResult]:
    """Train (or load) every job and return their results in order; see the module docstring.

    ``workers`` overrides ``$DEEPMT_JOBS``. ``progress=False`` silences the per-run lines."""
    jobs = list(jobs)
    batch = new_batch()  # $DEEPMT_GRID_LOG: every entry the jobs need, trained or cached (deepmt.grid_log)
    for job in jobs:
        record_entry(job.method, job.cfg, warm_start=job.warm_start, start_stage=job.start_stage, batch=batch)
    results: list[ExperimentResult | None] = [None] * len(jobs)
    finished = 0

    def report(indices: Sequence[int], how: str) -> None:
        nonlocal finished
        for i in indices:
            finished += 1
            if progress:
                print(f"[{finished}/{len(jobs)}] {jobs[i].name}: {how}", flush=True)

    todo: dict[tuple, list[int]] = {}  # entry -> indices of the jobs that need it
    for i, job in enumerate(jobs):
        res = job.cached()
        if res is not None:
            results[i] = res
            report([i], "from cache")
        else:
            todo.setdefault(job.entry(), []).append(i)
    groups = list(todo.values())
    n = min(workers if workers is not None else workers_from_env([jobs[g[0]] for g in groups]), len(groups))
    if n < 1 and groups:
        raise DeepMTError(f"run_jobs: workers={workers!r}: expected a whole number >= 1")
    if n <= 1:
        for group in groups:
            job, t0 = jobs[group[0]], time.perf_counter()
            res = run_experiment(job.method, job.cfg, builder=job.builder, warm_start=job.warm_start, start_stage=job.start_stage)
            for i in group:
                results[i] = res
            report(group, "from cache" if res.from_cache else f"trained in {time.perf_counter() - t0:.0f} s")
    else:
        _run_parallel(jobs, groups, n, results, report)
    return results  # type: ignore[return-value]


def _run_parallel(jobs: list[Job], groups: list[list[int]], n: int, results: list, report) -> None:
    _prepare_data([jobs[g[0]] for g in groups])
    threads = max(int(jobs[g[0]].cfg.train.threads) for g in groups)
    ctx = multiprocessing.get_context("spawn")
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
    futures: dict[Future, list[int]] = {pool.submit(_run_in_worker, jobs[g[0]]): g for g in groups}
    children = [p for p in multiprocessing.active_children() if p not in before]
    worker_no: dict[int, int] = {}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                group = futures[fut]
                job = jobs[group[0]]
                try:
                    run_dir, from_cache, seconds, pid = fut.result()
                except BrokenProcessPool:
                    report(group, "FAILED (its worker process died)")
                    raise TrainingError(
                        f"{job.name}: a worker process died (killed or out of memory; or it could not start: a script "
                        f"that trains in workers must guard its code with `if __name__ == \"__main__\":`). Finished runs "
                        f"are cached, so running again continues from there; {JOBS_ENV}=1 trains in this process"
                    ) from None
                except DeepMTError as exc:
                    report(group, f"FAILED ({type(exc).__name__})")
                    raise exc from None
                res = job.cached()
                if res is None:
                    raise TrainingError(f"{job.name}: its worker finished, but the cache entry {Path(run_dir)} cannot be read")
                res.from_cache = bool(from_cache)
                for i in group:
                    results[i] = res
                w = worker_no.setdefault(pid, len(worker_no) + 1)
                report(group, "from cache" if from_cache else f"trained in {seconds:.0f} s (worker {w})")
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        for p in children:
            p.terminate()
        for p in children:
            p.join(timeout=10)
        raise
    except BaseException:
        running = sum(1 for f in pending if f.running())
        pool.shutdown(wait=False, cancel_futures=True)
        if running:
            print(f"stopping: {running} run(s) already training finish in the background (and are cached)", flush=True)
        raise
    pool.shutdown(wait=True)


__all__ = ["Job", "run_jobs", "default_workers", "workers_from_env", "usable_cores", "JOBS_ENV"]
