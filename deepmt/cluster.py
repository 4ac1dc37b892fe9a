"""Past one machine: the runner's ``submitit`` backend (``DEEPMT_BACKEND=submitit``).

:func:`deepmt.worker_pool.run_jobs` hands its runs to :class:`SubmititPool` instead of its local worker processes:
each run is a :mod:`submitit` job (``submitit.AutoExecutor``: a Slurm job where ``sbatch`` exists, else a local
process; the runs that start together are one Slurm job array, through ``executor.batch()``). A job runs
:func:`deepmt.experiment_cache.run_experiment` exactly as a local worker does and writes the cache entry; the runner
then loads it from the cache, so every machine must see the same ``$DEEPMT_CACHE`` (a shared filesystem). The
per-entry file lock (:func:`deepmt.experiment_cache.entry_lock`) keeps two machines from training one entry.

Settings (:class:`ClusterSettings`), from the environment unless given (``run_jobs(..., cluster={...})``):

* ``DEEPMT_SUBMITIT_CLUSTER``: ``slurm`` or ``local`` (default: Slurm where ``sbatch`` exists, else local);
* ``DEEPMT_SUBMITIT_FOLDER``: submitit's folder of job scripts, pickles and logs (default ``$DEEPMT_CACHE/submitit``);
* ``DEEPMT_SLURM_PARTITION`` (default: the cluster's), ``DEEPMT_SLURM_TIME`` (minutes per job, default 1440; a run
  cut off resumes from its ``last.pt`` when asked for again), ``DEEPMT_SLURM_GPUS`` (per job; default 1 when the
  runs ask for ``train.device=cuda``, else 0), ``DEEPMT_SLURM_CPUS`` (per job; default the runs' ``train.threads``,
  8 when that is 0).

The runs in flight at once: ``-j`` / ``$DEEPMT_JOBS`` (also Slurm's array parallelism); by default all of them on
Slurm, and the runner's local default (usable cores / ``train.threads``) on a local executor.

Errors come back as one exception per run: a :class:`~deepmt.errors.DeepMTError` raised in a job as it was;
any other exception, or a job that died (time limit, out of memory, cancelled), as a
:class:`~deepmt.errors.TrainingError` naming the run, its job and its log. This module imports submitit only
when the backend is used (``pip install -e '.[cluster]'``).
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import traceback
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from deepmt.errors import DeepMTError, TrainingError
from deepmt.experiment_cache import run_experiment
from deepmt.utils import cache_root

CLUSTER_ENV = "DEEPMT_SUBMITIT_CLUSTER"
FOLDER_ENV = "DEEPMT_SUBMITIT_FOLDER"
PARTITION_ENV = "DEEPMT_SLURM_PARTITION"
TIME_ENV = "DEEPMT_SLURM_TIME"
GPUS_ENV = "DEEPMT_SLURM_GPUS"
CPUS_ENV = "DEEPMT_SLURM_CPUS"
CLUSTERS = ("slurm", "local")


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how the jobs run (see the module docstring for the defaults)."""

    cluster: str = ""  # "" = Slurm where sbatch exists, else local
    folder: str = ""  # "" = $DEEPMT_CACHE/submitit
    partition: str = ""
    time_min: int = 1440
    gpus: int | None = None
    cpus: int | None = None
    poll_s: float = 1.0  # seconds between two looks at the jobs in flight

    @classmethod
    def from_env(cls, given: Mapping[str, Any] | None = None) -> ClusterSettings:
        """The settings from the environment, with ``given`` (field -> value) taking precedence."""
        env = os.environ
        out = cls(cluster=env.get(CLUSTER_ENV, "").strip(), folder=env.get(FOLDER_ENV, "").strip(),
                  partition=env.get(PARTITION_ENV, "").strip(),
                  time_min=_whole(TIME_ENV, 1440, minimum=1, what="minutes per job"),
                  gpus=_whole(GPUS_ENV, None, minimum=0, what="GPUs per job"),
                  cpus=_whole(CPUS_ENV, None, minimum=1, what="CPU cores per job"))
        given = dict(given or {})
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise DeepMTError(f"cluster settings: unknown {', '.join(unknown)} (known: {', '.join(f.name for f in fields(cls))})")
        out = replace(out, **given)
        if out.cluster not in ("",) + CLUSTERS:
            raise DeepMTError(f"{CLUSTER_ENV}={out.cluster!r}: expected one of {', '.join(CLUSTERS)} (or unset: Slurm "
                              "where sbatch exists, else local)")
        return out


def runs_in_flight(runs: int, options: Mapping[str, Any] | None = None) -> int | None:
    """How many of ``runs`` to keep in flight when ``-j`` / ``$DEEPMT_JOBS`` does not say: all of them on Slurm (it
    queues them); None on a local executor (the runner's local default then: usable cores / threads)."""
    s = ClusterSettings.from_env(options)
    if s.cluster:
        return runs if s.cluster == "slurm" else None
    try:
        import submitit
    except ImportError:
        return None
    return runs if submitit.AutoExecutor.which() == "slurm" else None


def _whole(name: str, default: int | None, *, minimum: int, what: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise DeepMTError(f"{name}={raw!r}: expected {what}, a whole number >= {minimum}")
    return value


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def executor_parameters(s: ClusterSettings, workers: int, jobs: Sequence[Any]) -> dict[str, Any]:
    """``AutoExecutor.update_parameters`` for ``jobs`` (runner jobs) with at most ``workers`` in flight: the
    settings, and their defaults from the runs' configs (``slurm_*`` reach Slurm only)."""
    threads = max([int(j.cfg.train.threads) for j in jobs] or [1])
    gpus = s.gpus if s.gpus is not None else int(any(str(j.cfg.train.device).startswith("cuda") for j in jobs))
    params: dict[str, Any] = dict(name="deepmt", timeout_min=s.time_min, cpus_per_task=s.cpus or (threads if threads > 0 else 8),
                                  gpus_per_node=gpus, nodes=1, tasks_per_node=1, slurm_array_parallelism=workers)
    if s.partition:
        params["slurm_partition"] = s.partition
    return params


def run_submitted(job: Any, threads: int) -> tuple:
    """What a submitit job runs: ``job`` (a :class:`deepmt.worker_pool.Job`) as a local worker runs it. Returns
    ``("ok", entry folder, loaded from the cache?, seconds, host)`` or ``("error", exception)``; an exception that
    is not a :class:`DeepMTError` becomes a one-line :class:`TrainingError` (its traceback goes to the job's log)."""
    if threads > 0:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ["TQDM_DISABLE"] = "1"
    t0 = time.perf_counter()
    try:
        res = run_experiment(job.method, job.cfg, builder=job.builder, warm_start=job.warm_start,
                             start_stage=job.start_stage)
    except Exception as exc:  # noqa: BLE001 - handed back as one line
        traceback.print_exc()
        if isinstance(exc, DeepMTError):
            try:
                pickle.loads(pickle.dumps(exc))
                return ("error", exc)
            except Exception:  # noqa: BLE001 - an error that does not travel: its type and text do
                pass
        return ("error", TrainingError(f"{job.name}: {type(exc).__name__}: {_first_line(exc)} (traceback: its submitit log)"))
    return ("ok", str(res.run_dir), bool(res.from_cache), time.perf_counter() - t0, socket.gethostname())


class SubmititPool:
    """A pool for :func:`deepmt.worker_pool.run_jobs` whose workers are submitit jobs (``workers``: jobs in flight)."""

    def __init__(self, workers: int, jobs: Sequence[Any], options: Mapping[str, Any] | None = None) -> None:
        try:
            import submitit
        except ImportError:
            raise DeepMTError("the submitit backend needs the submitit package: pip install -e '.[cluster]'") from None
        s = ClusterSettings.from_env(options)
        self.settings = s
        self.threads = max(int(j.cfg.train.threads) for j in jobs)
        folder = Path(s.folder) if s.folder else cache_root() / "submitit"
        try:
            self.executor = submitit.AutoExecutor(folder=folder, cluster=s.cluster or None)
        except RuntimeError as exc:  # "Could not detect srun": no Slurm here
            raise DeepMTError(f"submitit ({CLUSTER_ENV}={s.cluster or 'auto'}): {_first_line(exc)}") from None
        self.executor.update_parameters(**executor_parameters(s, workers, jobs))
        self.running: dict[Any, tuple[int, Any]] = {}  # submitit job -> (group, runner job)

    def submit(self, items: Sequence[tuple[int, Any]]) -> None:
        if len(items) > 1:
            with self.executor.batch():  # one Slurm job array
                handles = [self.executor.submit(run_submitted, job, self.threads) for _, job in items]
        else:
            handles = [self.executor.submit(run_submitted, job, self.threads) for _, job in items]
        for item, handle in zip(items, handles):
            self.running[handle] = item

    def wait(self) -> list[tuple[int, Any]]:
        """The runs that ended: (group, (entry folder, from the cache?, seconds, where) or the exception)."""
        while True:
            done = [h for h in self.running if h.done()]
            if done:
                break
            time.sleep(self.settings.poll_s)
        out: list[tuple[int, Any]] = []
        for handle in done:
            g, job = self.running.pop(handle)
            try:
                got = handle.result()
            except Exception as exc:  # noqa: BLE001 - the job died: one line naming it
                out.append((g, TrainingError(f"{job.name}: its submitit job {handle.job_id} failed: {_first_line(exc)} "
                                             f"(log: {handle.paths.stderr})")))
                continue
            if got[0] == "error":
                out.append((g, got[1]))
            else:
                _, run_dir, from_cache, seconds, host = got
                out.append((g, (run_dir, from_cache, seconds, f"job {handle.job_id} on {host}")))
        return out

    def stop(self, interrupted: bool) -> int:
        """Ctrl-C cancels the jobs in flight; after an error they go on (and cache their entries)."""
        if interrupted:
            for handle in self.running:
                handle.cancel(check=False)
            return 0
        return len(self.running)

    def close(self) -> None:
        pass


__all__ = ["CLUSTERS", "CLUSTER_ENV", "CPUS_ENV", "ClusterSettings", "FOLDER_ENV", "GPUS_ENV", "PARTITION_ENV",
           "SubmititPool", "TIME_ENV", "executor_parameters", "run_submitted", "runs_in_flight"]
