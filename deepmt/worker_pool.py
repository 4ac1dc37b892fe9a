"""Run a batch of trainings side by side: N worker processes x T threads each, or jobs on a cluster.

A notebook needs dozens of small trainings (methods x seeds, ablation variants). :func:`run_jobs` trains them in
parallel and returns what :func:`deepmt.experiment_cache.run_experiment` would have returned for each, in order::

    from deepmt.worker_pool import Job, run_jobs
    results = run_jobs([Job("deepmt_dr", cfg.replace({"train.seed": s}), label=f"deepmt_dr seed {s}") for s in (0, 1, 2)])

* **Workers** (N): ``$DEEPMT_JOBS`` (``./run_all.sh -j N`` sets it), else :func:`default_workers`: the usable
  cores divided by the runs' threads (2 x 1 on a 2-core CPU, the faster layout measured by ``python -m
  deepmt bench``); one for GPU runs and for ``smoke`` runs (seconds each: starting a worker costs more).
  Entries already in the cache are loaded here and never reach a worker; with one run left, or one
  worker, the runs train in this process, one after the other. A script (not a notebook) that trains in
  workers must guard its code with ``if __name__ == "__main__":``, as :mod:`multiprocessing` requires.
* **Order and dependencies**: runs start in list order as workers free up (the list order is the priority), one
  per free worker, so the pool never idles while a runnable run is left. A job may wait for another:
  ``Job(..., warm_from=base_job, start_stage="stage2")`` is warm-started from ``base_job``'s result (which must be
  one of the jobs) and becomes runnable the moment that result exists (trained here, or found in the cache);
  until then it holds no worker. :mod:`deepmt.grid_queue` orders a whole grid this way, longest first.
* **Threads** (T): every run uses ``cfg.train.threads`` torch threads. It is a config field, so part of the
  cache key, because a run's CPU numbers depend on it; the worker count is not, so ``-j 1`` and ``-j 2`` give
  the same numbers. Workers start with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set to T.
* **Processes** are *spawned* (a fresh interpreter; never a fork of a process whose torch threads have
  started, which can deadlock). Each runs :func:`run_experiment` and hands back the entry's folder; this
  process loads it (:func:`deepmt.experiment_cache.cached_result`). Datasets are built (generated and cached)
  here first, so no two workers generate the same split.
* **Backends**: ``backend=`` or ``$DEEPMT_BACKEND``: ``local`` (default; the process pool above) or ``submitit``
  (:mod:`deepmt.cluster`: each run a job on Slurm where ``sbatch`` exists, else a local process; N is then the
  number of jobs in flight, on Slurm all of them unless ``-j`` / ``$DEEPMT_JOBS`` says otherwise). Either way a run is the
  same :func:`run_experiment` call, and the cache (shared by every machine that reads ``$DEEPMT_CACHE``) holds
  the result. :data:`BACKENDS` maps a name to the pool that runs the jobs.
* **Same numbers as a serial run**: a run's result depends only on its config (seeded; deterministic on the
  CPU), not on the process that trains it or on what it trained before.
* **One trainer per entry**: :func:`run_experiment` trains under the entry's lock
  (:func:`deepmt.experiment_cache.entry_lock`), so a worker, a second notebook or a second ``run_all.sh`` that
  needs an entry another process is training waits for it and loads it.
* **Grid inventory**: with ``$DEEPMT_GRID_LOG`` set, every job's entry (trained or cached) is recorded there,
  with this call as its batch (:mod:`deepmt.grid_log`; ``python -m deepmt plan`` reads it).
* **Progress**: one line per run, in the order they finish: ``[3/8] deepmt_dr seed 1: trained in 95 s
  (worker 2)`` or ``... from cache``; progress bars are off in the workers.
* **Errors**: an exception raised by a run is raised here (a :class:`deepmt.errors.DeepMTError` unchanged,
  which the CLI prints as one line), after its progress line ``[k/N] NAME: FAILED (TypeOfError)``; its
  ``run_name`` attribute names the run. Runs not yet started are cancelled; runs already training finish in
  the background and are cached. A worker that dies (killed, out of memory) raises
  :class:`~deepmt.errors.TrainingError` naming its run. Ctrl-C stops the workers.

This module imports torch only inside functions: a spawned worker imports it after its thread settings.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from deepmt.config import Config
from deepmt.errors import DeepMTError, TrainingError
from deepmt.experiment_cache import ExperimentResult, cached_result, canonical_name, resolve_config, run_experiment
from deepmt.grid_log import new_batch, record_entry

#: environment variable with the number of worker processes
JOBS_ENV = "DEEPMT_JOBS"
#: environment variable naming the backend (``local`` or ``submitit``)
BACKEND_ENV = "DEEPMT_BACKEND"


@dataclass(frozen=True)
class Job:
    """One :func:`run_experiment` call. ``builder`` must be a module-level function when it runs in a worker.

    ``warm_from``: another job of the same :func:`run_jobs` call whose result this one is warm-started from (at
    ``start_stage``), known only once it has trained; ``warm_start``: a result at hand. Not both. ``method`` may be
    an alias (``seg_grade_mt``); the job holds the registered name it stands for (``foo_mt``)."""

    method: str
    cfg: Config
    label: str = ""  # progress text, default: the method
    warm_start: ExperimentResult | None = None
    start_stage: str | None = None
    builder: Callable[[str, Config, Any], Any] | None = None
    warm_from: Job | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", canonical_name(self.method))
        if self.warm_from is not None and (self.warm_start is not None or self.start_stage is None):
            raise DeepMTError(f"Job {self.name}: warm_from needs a start_stage and no warm_start")

    @property
    def name(self) -> str:
        return self.label or self.method

    def with_base(self, base: ExperimentResult) -> Job:
        """This job warm-started from ``base`` (the result its ``warm_from`` job gave)."""
        return dataclasses.replace(self, warm_start=base, warm_from=None)

    def cached(self) -> ExperimentResult | None:
        if self.warm_from is not None:
            base = self.warm_from.cached()
            return None if base is None else self.with_base(base).cached()
        return cached_result(self.method, self.cfg, warm_start=self.warm_start, start_stage=self.start_stage)

    def entry(self) -> tuple[str, str, str | None, str | None]:
        """What identifies the cache entry (two jobs with the same entry train once)."""
        if self.warm_from is not None:
            base = self.warm_from.entry()[1]  # a result's key is its resolved config's key
        else:
            base = self.warm_start.key if self.warm_start is not None else None
        cfg = resolve_config(self.method, self.cfg, check_names=self.builder is None)  # as run_experiment keys it
        return (self.method, cfg.key(), base, self.start_stage)


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


def prepare_data(jobs: Sequence[Job]) -> None:
    """Build every dataset the jobs need, once, here (workers then only read the cache)."""
    from deepmt.data import build_datasets

    seen: set[str] = set()
    for job in jobs:
        key = json.dumps(dataclasses.asdict(job.cfg.data), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            build_datasets(job.cfg.data)


# --------------------------------------------------------------------------- pools
@dataclass
class Finished:
    """What a pool hands back for a run that ended well (for one that failed: the exception it raised)."""

    run_dir: str  # the cache entry
    from_cache: bool  # loaded, not trained (another process trained it meanwhile)
    seconds: float
    where: str = ""  # "worker 2", "job 4711_0 on node7"; "" in this process
    result: ExperimentResult | None = None  # when at hand (else run_jobs loads the entry)


Outcome = Any  # Finished, or its first four fields as a tuple, or the exception the run raised


class InProcessPool:
    """One run at a time, in this process (one worker, or one run left)."""

    def __init__(self, workers: int = 1, jobs: Sequence[Job] = ()) -> None:
        self.queue: list[tuple[int, Job]] = []

    def submit(self, items: Sequence[tuple[int, Job]]) -> None:
        self.queue.extend(items)

    def wait(self) -> list[tuple[int, Outcome]]:
        g, job = self.queue.pop(0)
        t0 = time.perf_counter()
        try:
            res = run_experiment(job.method, job.cfg, builder=job.builder, warm_start=job.warm_start,
                                 start_stage=job.start_stage)
        except Exception as exc:  # noqa: BLE001 - handed to run_jobs, which raises it
            return [(g, exc)]
        return [(g, Finished(str(res.run_dir), res.from_cache, time.perf_counter() - t0, result=res))]

    def stop(self, interrupted: bool) -> int:
        return 0

    def close(self) -> None:
        pass


class ProcessPool:
    """``workers`` spawned worker processes (:class:`~concurrent.futures.ProcessPoolExecutor`)."""

    def __init__(self, workers: int, jobs: Sequence[Job]) -> None:
        prepare_data(jobs)
        threads = max(int(j.cfg.train.threads) for j in jobs)
        self.before = set(multiprocessing.active_children())
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(threads,))
        self.futures: dict[Future, tuple[int, Job]] = {}
        self.worker_no: dict[int, int] = {}

    def submit(self, items: Sequence[tuple[int, Job]]) -> None:
        for g, job in items:
            self.futures[self.pool.submit(_run_in_worker, job)] = (g, job)

    def wait(self) -> list[tuple[int, Outcome]]:
        done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
        out: list[tuple[int, Outcome]] = []
        for fut in done:
            g, job = self.futures.pop(fut)
            try:
                run_dir, from_cache, seconds, pid = fut.result()
            except BrokenProcessPool:
                out.append((g, TrainingError(
                    f"{job.name}: a worker process died (killed or out of memory; or it could not start: a script "
                    f"that trains in workers must guard its code with `if __name__ == \"__main__\":`). Finished runs "
                    f"are cached, so running again continues from there; {JOBS_ENV}=1 trains in this process")))
            except Exception as exc:  # noqa: BLE001 - handed to run_jobs, which raises it
                out.append((g, exc))
            else:
                w = self.worker_no.setdefault(pid, len(self.worker_no) + 1)
                out.append((g, Finished(run_dir, bool(from_cache), seconds, f"worker {w}")))
        return out

    def stop(self, interrupted: bool) -> int:
        running = sum(1 for f in self.futures if f.running())
        self.pool.shutdown(wait=False, cancel_futures=True)
        if interrupted:
            children = [p for p in multiprocessing.active_children() if p not in self.before]
            for p in children:
                p.terminate()
            for p in children:
                p.join(timeout=10)
            return 0
        return running

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _local_pool(workers: int, jobs: Sequence[Job], options: Mapping[str, Any] | None = None):
    return InProcessPool() if workers <= 1 else ProcessPool(workers, jobs)


def _submitit_pool(workers: int, jobs: Sequence[Job], options: Mapping[str, Any] | None = None):
    from deepmt.cluster import SubmititPool

    prepare_data(jobs)  # on the shared cache, once, before any job starts
    return SubmititPool(workers, jobs, options)


#: backend name -> factory(workers, jobs, options) of the pool that runs the jobs: an object with ``submit(items)``
#: (``(group, job)`` pairs to start now), ``wait() -> [(group, Outcome)]`` (blocks until one or more ended),
#: ``stop(interrupted) -> runs left running`` and ``close()``
BACKENDS: dict[str, Callable[..., Any]] = {"local": _local_pool, "submitit": _submitit_pool}


def backend_from_env(backend: str | None = None) -> str:
    """``backend``, else ``$DEEPMT_BACKEND``, else ``local``; checked against :data:`BACKENDS`."""
    name = (backend if backend is not None else os.environ.get(BACKEND_ENV, "")).strip() or "local"
    if name not in BACKENDS:
        what = f"{BACKEND_ENV}={name!r}" if backend is None else f"backend {name!r}"
        raise DeepMTError(f"{what}: not a runner backend (one of {', '.join(sorted(BACKENDS))})")
    return name


# --------------------------------------------------------------------------- the pool
def run_jobs(jobs: Sequence[Job], workers: int | None = None, *, progress: bool = True, backend: str | None = None,
             cluster: Mapping[str, Any] | None = None) -> list[ExperimentResult]:
    """Train (or load) every job and return their results in order; see the module docstring.

    ``workers`` overrides ``$DEEPMT_JOBS``; ``backend`` overrides ``$DEEPMT_BACKEND``; ``cluster``: settings of the
    ``submitit`` backend (:class:`deepmt.cluster.ClusterSettings` fields; else from the environment).
    ``progress=False`` silences the per-run lines."""
    jobs = list(jobs)
    backend = backend_from_env(backend)
    batch = new_batch()  # $DEEPMT_GRID_LOG: every entry the jobs need, trained or cached (deepmt.grid_log)
    results: list[ExperimentResult | None] = [None] * len(jobs)
    finished = 0

    def report(indices: Sequence[int], how: str) -> None:
        nonlocal finished
        for i in indices:
            finished += 1
            if progress:
                print(f"[{finished}/{len(jobs)}] {jobs[i].name}: {how}", flush=True)

    group_of: dict[tuple, int] = {}  # entry -> its group: the indices of the jobs that need it (trained once)
    groups: list[list[int]] = []
    for i, job in enumerate(jobs):
        entry = job.entry()
        if entry not in group_of:
            group_of[entry] = len(groups)
            groups.append([])
        groups[group_of[entry]].append(i)
    dependents: dict[int, list[int]] = {}  # group -> the groups warm-started from its result
    waiting: set[int] = set()
    for g, members in enumerate(groups):
        job = jobs[members[0]]
        if job.warm_from is not None:
            base = group_of.get(job.warm_from.entry())
            if base is None:
                raise DeepMTError(f"run_jobs: {job.name} waits for {job.warm_from.name}, which is not one of the jobs")
            dependents.setdefault(base, []).append(g)
            waiting.add(g)
    ready: list[int] = []  # a heap of runnable groups: list order is the priority
    resolved: dict[int, Job] = {}  # group -> its job, warm_start filled in

    def finish(g: int, res: ExperimentResult, how: str) -> None:
        """``g`` has its result: hand it to its jobs, and its dependents become runnable (or load from the cache)."""
        todo = [(g, res, how)]
        while todo:
            g, res, how = todo.pop(0)
            for i in groups[g]:
                results[i] = res
            report(groups[g], how)
            for d in dependents.get(g, []):
                waiting.discard(d)
                hit = make_runnable(d, res)
                if hit is not None:
                    todo.append((d, hit, "from cache"))

    def make_runnable(g: int, base: ExperimentResult | None) -> ExperimentResult | None:
        """Record ``g``'s entries; its cached result, else None and ``g`` joins the runnable ones."""
        job = jobs[groups[g][0]]
        resolved[g] = job.with_base(base) if base is not None else job
        for i in groups[g]:
            j = jobs[i].with_base(base) if base is not None else jobs[i]
            record_entry(j.method, j.cfg, warm_start=j.warm_start, start_stage=j.start_stage, batch=batch)
        hit = resolved[g].cached()
        if hit is None:
            heapq.heappush(ready, g)
        return hit

    for g in range(len(groups)):
        if g not in waiting:
            hit = make_runnable(g, None)
            if hit is not None:
                finish(g, hit, "from cache")
    left = [g for g in range(len(groups)) if results[groups[g][0]] is None]
    if not left:
        return results  # type: ignore[return-value]
    n = workers
    if n is None and backend == "submitit" and not os.environ.get(JOBS_ENV, "").strip():
        from deepmt.cluster import runs_in_flight

        n = runs_in_flight(len(left), cluster)  # Slurm queues them all
    if n is None:
        n = workers_from_env([jobs[groups[g][0]] for g in left])
    if n < 1:
        raise DeepMTError(f"run_jobs: workers={workers!r}: expected a whole number >= 1")
    n = min(n, len(left))
    pool = BACKENDS[backend](n, [resolved.get(g, jobs[groups[g][0]]) for g in left], cluster)
    in_flight = 0
    try:
        while ready or in_flight:
            start = [heapq.heappop(ready) for _ in range(min(len(ready), n - in_flight))]
            if start:
                pool.submit([(g, resolved[g]) for g in start])
                in_flight += len(start)
            for g, out in pool.wait():
                in_flight -= 1
                job = resolved[g]
                if isinstance(out, BaseException):
                    report(groups[g], f"FAILED ({type(out).__name__})")
                    try:
                        out.run_name = job.name  # type: ignore[attr-defined]
                    except AttributeError:  # pragma: no cover - an exception type without a __dict__
                        pass
                    if isinstance(out, DeepMTError):
                        raise out from None  # one line in the CLI: no remote traceback
                    raise out
                if isinstance(out, tuple):
                    out = Finished(*out)
                res = out.result if out.result is not None else job.cached()
                if res is None:
                    raise TrainingError(f"{job.name}: its run finished, but the cache entry {Path(out.run_dir)} cannot be read")
                res.from_cache = bool(out.from_cache)
                how = "from cache" if out.from_cache else (
                    f"trained in {out.seconds:.0f} s" + (f" ({out.where})" if out.where else ""))
                finish(g, res, how)
    except KeyboardInterrupt:
        pool.stop(interrupted=True)
        raise
    except BaseException:
        running = pool.stop(interrupted=False)
        if running:
            print(f"stopping: {running} run(s) already training finish in the background (and are cached)", flush=True)
        raise
    pool.close()
    return results  # type: ignore[return-value]


__all__ = ["BACKENDS", "BACKEND_ENV", "Finished", "InProcessPool", "JOBS_ENV", "Job", "ProcessPool", "backend_from_env",
           "default_workers", "prepare_data", "run_jobs", "usable_cores", "workers_from_env"]
