"""``python -m deepmt bench``: how fast DeepMT-DR trains and infers here, against this machine's peak.

One run measures, on the current machine (CPU or CUDA):

* **peak** – large matmul GFLOP/s in fp32 (TF32 off on CUDA) and in the fast dtype (bf16 where the
  CPU/GPU supports it, else fp16 on old GPUs);
* per profile (``smoke``, ``quick``, ``paper``):

  - FLOPs per image of the DeepMT-DR model (counted by :mod:`deepmt.models.cost` on the meta device):
    training step (forward + backward of ``training_loss``, double
    backward of the task-aware loss included) per stage, and inference (``forward`` on LR, Grad-CAM
    visualization map included);
  - the training step's images/s and achieved GFLOP/s for **(a)** plain fp32 eager NCHW and **(b)** the
    engine's default fast path (:func:`deepmt.engine.device.resolve_precision` with the profile's
    ``train.precision`` / ``train.channels_last``, :func:`~deepmt.engine.device.to_device`, autocast,
    AdamW, gradient clipping: the same step as :mod:`deepmt.engine.trainer`), their ratio, and the
    fast path's share of the same-dtype matmul peak (MFU). Stages: ``stage2`` (joint fine-tuning with
    the task-aware loss: the most expensive) first, ``stage1a`` and ``stage1b`` when the budget allows.
    The ``paper`` profile is timed at 256-px HR (the paper's training crop; LR 64) on a CPU and at the
    paper's 1024-px HR on CUDA;
  - synthetic data generation images/s (:func:`deepmt.data.synthetic.generate_sample`, one process,
    at the profile's HR size) and data loading images/s (the engine's
    :func:`~deepmt.engine.device.make_loader` over the cached, augmented synthetic train split, with
    the host-to-device copy);
  - inference images/s of ``method(batch)`` on LR input, fp32 eager and fast path (what ``predict`` runs);
  - peak memory: CUDA ``max_memory_allocated`` per measurement, or the process's max RSS on a CPU.

Every number is a list of repeated measurements after one warm-up; the JSON keeps min / median / max
and the count, the markdown shows them. ``--budget-seconds`` (default 180) is the total time: each
measurement gets a share of what is left, in proportion to its expected cost, and repeats until its
share is spent (at least once). The load average (``os.getloadavg``) at start and end is recorded,
because other processes on a shared machine slow every number down.

Targets (stated met / not met in the output): fast path >= 3x fp32 eager images/s (quick and paper);
fast path >= 60% of the same-dtype matmul peak on the paper model and >= 40% for the quick profile's stages 1a
and 2; data generation >= 10x the fast
training images/s.

Files: ``<out>/bench_<host-or-gpu>.json`` and ``.md`` (atomic writes).

One module per concern: :mod:`~deepmt.bench.measure` (budget, repeated timings, peak memory),
:mod:`~deepmt.bench.machine` (the machine and its matmul peak), :mod:`~deepmt.bench.steps` (the timed training
step and inference, their FLOPs, the profiler), :mod:`~deepmt.bench.data` (generation and loading),
:mod:`~deepmt.bench.scaling` (the runner's scaling grid), :mod:`~deepmt.bench.suite` (the plan, the budget,
speed-ups, MFU, targets), :mod:`~deepmt.bench.report` (the JSON and markdown files),
:mod:`~deepmt.bench.performance_page` (the generated block of docs/PERFORMANCE.md; ``./run_all.sh``'s timing
file is written by :mod:`deepmt.run_all_timing`) and :mod:`~deepmt.bench.command` (the command line). ``python -m deepmt plan`` (what a grid of trainings will cost, before it trains) lives beside it:
:mod:`~deepmt.bench.plan` (the work per entry and stage), :mod:`~deepmt.bench.plan_inventory` (the grid inventory),
:mod:`~deepmt.bench.plan_measure` (seconds per image here), :mod:`~deepmt.bench.plan_schedule` (workers, wall time,
tables) and :mod:`~deepmt.bench.plan_command` (its command line). Import the public names from here. From Python::

    from deepmt.bench import run_benchmark
    result = run_benchmark(profiles=("quick", "paper"), budget_s=180, out_dir="results/bench")
"""

from deepmt.bench.command import add_arguments, run
from deepmt.bench.data import LOAD_SPLIT_SIZE, measure_generation, measure_loading
from deepmt.bench.machine import cpu_model, fast_dtype, machine_info, matmul_peak, output_tag
from deepmt.bench.measure import Budget, max_rss_mb, summarize, time_repeated
from deepmt.bench.report import render_markdown, write_outputs
from deepmt.bench.scaling import (
    SCALING_LAYOUTS,
    SCALING_METHODS,
    SCALING_SEEDS,
    SCALING_SPLIT,
    measure_runner_scaling,
    scaling_jobs,
)
from deepmt.bench.steps import (
    BATCH_CPU,
    BATCH_CUDA,
    METHOD,
    MODES,
    PAPER_CPU_HR,
    STAGES,
    bench_config,
    build_bench_method,
    count_gflops,
    make_inference,
    make_train_step,
    precision_for,
    profile_step,
    timed_hr_size,
)
from deepmt.bench.suite import (
    DEFAULT_BUDGET_S,
    DEFAULT_PROFILES,
    TARGET_DATA_RATIO,
    TARGET_MFU,
    TARGET_QUICK_MFU,
    TARGET_SPEEDUP,
    run_benchmark,
    targets,
)

__all__ = [
    "run_benchmark", "render_markdown", "count_gflops", "matmul_peak", "profile_step", "measure_runner_scaling",
    "add_arguments", "run",
    "BATCH_CPU", "BATCH_CUDA", "Budget", "DEFAULT_BUDGET_S", "DEFAULT_PROFILES", "LOAD_SPLIT_SIZE", "METHOD", "MODES",
    "PAPER_CPU_HR", "SCALING_LAYOUTS", "SCALING_METHODS", "SCALING_SEEDS", "SCALING_SPLIT", "STAGES",
    "TARGET_DATA_RATIO", "TARGET_MFU", "TARGET_QUICK_MFU", "TARGET_SPEEDUP", "bench_config", "build_bench_method", "cpu_model",
    "fast_dtype", "machine_info", "make_inference", "make_train_step", "max_rss_mb", "measure_generation",
    "measure_loading", "output_tag", "precision_for", "scaling_jobs", "summarize", "targets", "time_repeated",
    "timed_hr_size", "write_outputs",
]
