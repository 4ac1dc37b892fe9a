"""``python -m deepmt bench``: its arguments and what it runs (the benchmark, ``--profile-ops`` or ``--readme``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmt.bench.grid import GRID_SUMMARY
from deepmt.bench.report import render_markdown
from deepmt.run_all_timing import RUN_ALL_TIMING
from deepmt.bench.steps import profile_step
from deepmt.bench.suite import DEFAULT_BUDGET_S, DEFAULT_PROFILES, run_benchmark
from deepmt.config import PROFILES
from deepmt.config_checks import parse_set_items
from deepmt.errors import ConfigMismatchError
from deepmt.utils import repo_root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profiles", nargs="+", default=list(DEFAULT_PROFILES), choices=PROFILES,
                        help="profiles to time (default: quick paper; smoke for a seconds-long check)")
    parser.add_argument("--budget-seconds", type=float, default=DEFAULT_BUDGET_S,
                        help="total time budget; repeats are scaled to fit (default %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: results/bench/ in the checkout)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the ISR and segmentation subnets on the fast path (off by default: "
                        "on a small CPU it costs minutes and gains nothing)")
    parser.add_argument("--batch-size", action="append", default=[], metavar="PROFILE=N",
                        help="override the timed batch size of a profile (repeatable), e.g. --batch-size paper=2")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config setting for the timed steps (repeatable), e.g. --set train.deterministic=false; "
                        "recorded in the bench file, whose name gains it")
    parser.add_argument("--profile-ops", metavar="PROFILE:STAGE", default=None,
                        help="instead of the benchmark, print torch.profiler's top ops of a fast-path training step, "
                        "e.g. quick:stage2")
    parser.add_argument("--runner-profile", default="auto", choices=("auto", *PROFILES),
                        help="profile of the experiment runner's scaling grid, timed after the rest and outside the "
                        "budget (default: quick when timed, else the first profile)")
    parser.add_argument("--no-runner", action="store_true", help="skip the runner's scaling grid")
    parser.add_argument("--readme", nargs="+", metavar="FILE", default=None,
                        help="instead of the benchmark, rewrite the performance block of these files (e.g. "
                        "docs/PERFORMANCE.md) from the bench files in --out and results/timing/run_all.json; a file "
                        "without the block is left alone, but one of them must hold it")
    parser.add_argument("--grid", metavar="CACHE", default=None,
                        help="instead of the benchmark, count the training FLOPs of every finished run in this "
                        "experiment cache (e.g. ~/.cache/deepmt/quick) and compare them with the bf16 peak of this machine's "
                        "bench file in --out (or --peak-gflops); writes results/timing/grid_compute.csv")
    parser.add_argument("--grid-profile", default=None, metavar="PROFILE",
                        help="with --grid: count only the entries the grid inventory needs under this profile "
                        "(results/timing/grid_inventory.jsonl), not runs of older settings left in the cache")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="the machine's peak GFLOP/s for --grid (default: the bf16 matmul median of its bench file)")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs trained side by side, for --grid (default: the worker count of the last complete "
                        "run_all.sh, from its timing file; else 1)")
    parser.add_argument("--timing", default=None,
                        help=f"run_all.sh's timing file for --readme (default: {RUN_ALL_TIMING} in the checkout)")


def run(args: argparse.Namespace) -> int:
    if args.readme:
        from deepmt.bench.performance_page import update_docs

        bench_dir = Path(args.out) if args.out else repo_root() / "results" / "bench"
        timing = Path(args.timing) if args.timing else repo_root() / RUN_ALL_TIMING
        for name, changed in update_docs(args.readme, bench_dir, timing, timing.parent / GRID_SUMMARY).items():
            print(f"{name}: " + ("no performance section, left alone" if changed is None
                                 else f"performance section {'updated' if changed else 'unchanged'}"))
        return 0
    if args.grid:
        return _grid(args)
    overrides = parse_set_items(args.set)
    sizes = {}
    for item in args.batch_size:
        name, _, value = item.partition("=")
        if name not in PROFILES or not value.isdigit() or int(value) < 1:
            raise ConfigMismatchError(f"--batch-size {item!r}: expected PROFILE=N with PROFILE in {PROFILES} and N >= 1")
        sizes[name] = int(value)
    if args.profile_ops:
        profile, _, stage = args.profile_ops.partition(":")
        print(profile_step(profile, stage or "stage2", device=args.device, overrides=overrides,
                           batch_size=sizes.get(profile)))
        return 0
    if args.out is not None:
        from deepmt.utils import check_writable_dir

        check_writable_dir(args.out, "--out")
    result = run_benchmark(args.profiles, args.budget_seconds, args.out, device=args.device, compile=args.compile,
                           batch_sizes=sizes, runner_profile=None if args.no_runner else args.runner_profile,
                           overrides=overrides)
    print(render_markdown(result))
    print(f"wrote {result['files']['json']} and {result['files']['md']}")
    return 0


def _grid(args: argparse.Namespace) -> int:
    """``--grid CACHE``: the grid's training FLOPs, per method, and the floor they set at this machine's peak."""
    import json
    from datetime import datetime, timezone

    import torch

    from deepmt.bench.grid import grid_compute, grid_floor, summary_by_method
    from deepmt.bench.machine import machine_info, output_tag
    from deepmt.bench.performance_page import load_timing, machine_name
    from deepmt.utils import atomic_write_text

    peak = args.peak_gflops
    if peak is None:
        bench_dir = Path(args.out) if args.out else repo_root() / "results" / "bench"
        path = bench_dir / f"bench_{output_tag(machine_info(torch.device('cpu')))}.json"
        if not path.is_file():
            raise ConfigMismatchError(f"{path}: no bench file for this machine; run `python -m deepmt bench` or pass --peak-gflops")
        peak = float(json.loads(path.read_text())["peak"]["bfloat16"]["gflops_per_s"]["median"])
    runs = Path(args.grid) / "runs" if (Path(args.grid) / "runs").is_dir() else Path(args.grid)
    try:  # the cache as docs/PERFORMANCE.md should name it: relative to the checkout when inside it
        cache_name = str(Path(args.grid).resolve().relative_to(repo_root().resolve()))
    except ValueError:
        cache_name = str(Path(args.grid))
    entries = None
    if args.grid_profile:
        from deepmt.bench.plan_inventory import load_inventory, needed_entries

        entries = set(needed_entries(load_inventory(), args.grid_profile))
    compute = grid_compute(runs, entries)
    workers = args.workers
    if workers is None:
        timing = load_timing(repo_root() / RUN_ALL_TIMING)
        workers = int(timing.get("jobs") or 1) if timing else 1
    floor = grid_floor(compute, peak, workers)
    by_method = summary_by_method(compute)
    folder = repo_root() / "results" / "timing"
    atomic_write_text(folder / "grid_compute.csv", compute.to_csv(index=False))
    summary = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine_name({"machine": machine_info(torch.device("cpu"))}), "cache": cache_name,
               "workers": int(workers), **floor,
               "by_method": [{"method": m, **{k: float(v) for k, v in row.items()}} for m, row in by_method.iterrows()]}
    atomic_write_text(folder / GRID_SUMMARY, json.dumps(summary, indent=1) + "\n")
    print(by_method.to_string(float_format=lambda v: f"{v:.3g}"))
    print()
    for k, v in floor.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    print(f"wrote {folder / 'grid_compute.csv'} and {folder / GRID_SUMMARY}")
    return 0
