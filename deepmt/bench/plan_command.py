"""``python -m deepmt plan``: predict, before any training, how long the notebooks' grid takes on this machine.

    python -m deepmt plan                                   # quick profile, 2 workers: tables + results/timing/plan.json
    python -m deepmt plan --set train.val_every=3           # what a setting would change
    python -m deepmt plan --check-against results/timing/grid_compute.csv   # predicted vs measured training seconds
    python -m deepmt plan --record-inventory                # re-record results/timing/grid_inventory.jsonl (smoke)
    python -m deepmt plan --estimate ~/.cache/deepmt/quick   # one line: time left with this cache (run_all.sh)

The inventory (:mod:`deepmt.bench.plan_inventory`) lists the grid's entries; :mod:`deepmt.bench.plan` maps them onto
the profile and counts their work, :mod:`deepmt.bench.plan_measure` times that work here and
:mod:`deepmt.bench.plan_schedule` schedules it on the workers. Writes ``--out`` (JSON) and a CSV beside it (one row per
entry and stage). ``--check-against`` compares the predicted training seconds of each (entry, stage) of a
``bench --grid`` file (:mod:`deepmt.bench.grid`) with its measured ones: the ratio per method / stage and overall.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from deepmt.bench.plan import PlanEntry, build_entries, data_sets, entry_seconds, price, summary_rows
from deepmt.bench.plan_inventory import INVENTORY, InventoryError, load_inventory, record_inventory
from deepmt.bench.plan_schedule import by_method_stage, render, wall_plan
from deepmt.run_all_timing import GRID_QUEUE, RUN_ALL_TIMING
from deepmt.config import PROFILES
from deepmt.config_checks import parse_set_items
from deepmt.errors import ConfigMismatchError
from deepmt.utils import atomic_write_text, repo_root

DEFAULT_OUT = "results/timing/plan.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Predict how long ./run_all.sh takes from an empty cache on this machine: the grid's runs and "
                     "worker-minutes per notebook and per method / stage, and the wall time on --workers workers, "
                     "from the grid inventory and a few timed training steps per distinct configuration.")
    p.add_argument("--profile", choices=PROFILES, default="quick", help="profile to plan (default quick)")
    p.add_argument("--workers", type=int, default=2, help="runs trained side by side (default 2, as run_all.sh on 2 cores)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting on top of the profile (repeatable), e.g. --set train.val_every=3")
    p.add_argument("--inventory", default=None, help=f"grid inventory (default {INVENTORY})")
    p.add_argument("--out", default=None, help=f"JSON file to write (default {DEFAULT_OUT}; the CSV goes beside it)")
    p.add_argument("--timing", default=None,
                   help=f"run_all.sh timing file of a warm pass: each notebook's own seconds (default {RUN_ALL_TIMING})")
    p.add_argument("--alone", dest="busy", action="store_false",
                   help="time the steps alone, assuming each worker runs at one-thread speed (default: while workers-1 "
                   "other processes train, as ./run_all.sh -j 2 runs them: on the 2-core AMD EPYC, 2026-12-06, steps "
                   "timed alone came out 1.33-1.39x faster than the grid's own trainings)")
    p.add_argument("--busy", dest="busy", action="store_true", default=True,
                   help="the default; kept so that older command lines still work")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps per measurement (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per measurement at least (default 3)")
    p.add_argument("--seconds", type=float, default=1.0,
                   help="seconds per measurement, warm-up included: cheap steps repeat until they are spent (default 1)")
    p.add_argument("--check-against", metavar="CSV", default=None,
                   help="also compare predicted with measured training seconds per (entry, stage) of a bench --grid file, "
                   "e.g. results/timing/grid_compute.csv")
    p.add_argument("--record-inventory", action="store_true",
                   help="instead of planning, run every notebook under smoke with every seed and write the inventory "
                   "(--inventory; a few minutes)")
    p.add_argument("--only", default="", help="with --record-inventory: notebooks by number prefix, e.g. 01,07")
    p.add_argument("--estimate", metavar="CACHE", default=None,
                   help="instead of measuring, one line: the time left for ./run_all.sh with this experiment cache, from "
                   f"the committed plan ({DEFAULT_OUT} and its CSV) less the entries CACHE already holds (run_all.sh "
                   "prints it before it starts)")


def estimate_line(cache: str | os.PathLike, profile: str, workers: int, plan_path: Path | None = None) -> str:
    """One line for ``run_all.sh``: the time left for the grid, from the committed plan (made on a machine it names,
    for the inventory's entries) less the entries the cache ``cache`` holds complete. Says so, instead of guessing,
    when there is no plan for ``profile`` or the plan was made with other settings or for entries main's code no
    longer names."""
    from deepmt.bench.plan_inventory import needed_entries
    from deepmt.experiment_cache import RESULT_FILE

    plan_path = plan_path or repo_root() / DEFAULT_OUT
    try:
        plan = json.loads(plan_path.read_text())
        seconds = entry_seconds(plan_path.with_suffix(".csv"))
    except (OSError, ValueError, KeyError) as exc:
        return f"time estimate: none ({plan_path}: {exc}; make one with `python -m deepmt plan --profile {profile}`)"
    if plan.get("profile") != profile or plan.get("settings"):
        return (f"time estimate: none for profile {profile} ({plan_path} plans {plan.get('profile')}"
                f"{' with ' + str(plan.get('settings')) if plan.get('settings') else ''}; `python -m deepmt plan --profile {profile}`)")
    needed = set(needed_entries(load_inventory(), profile))
    if not set(seconds) & needed or needed - set(seconds) - {e for e in needed if e.startswith("bicubic-")}:
        return f"time estimate: none ({plan_path} was made for other cache entries than main's code needs: make it again)"
    runs = Path(cache) / "runs"
    grid = [e for e in seconds if e in needed]
    left = [e for e in grid if not (runs / e / RESULT_FILE).is_file()]
    totals = plan.get("totals", {})
    own = float(totals.get("own_min", 0.0)) * 60
    train_wall = float(totals.get("wall_min", math.nan)) * 60 - own  # the plan's schedule, stragglers included
    share = sum(seconds[e] for e in left) / max(1e-9, sum(seconds[e] for e in grid))
    wall = (train_wall * share) * int(plan.get("workers", workers)) / max(1, workers) + own
    return (f"time estimate: {len(left)} of {len(grid)} trainings to do, about {wall / 60:.0f} min on {workers} workers "
            f"(plan of {str(plan.get('created', ''))[:10]} on {plan.get('machine', 'an unnamed machine')}: "
            f"{float(plan.get('totals', {}).get('wall_min', math.nan)):.0f} min from an empty cache; slower while other "
            "work shares the CPU)")


def _log(line: str) -> None:
    print(line, flush=True)


def _own_seconds(path: Path, profile: str) -> tuple[dict[str, float], str]:
    """Each notebook's seconds in a warm ``run_all.sh`` pass of ``profile``, and a note on where they came from."""
    from deepmt.bench.performance_page import load_timing

    timing = load_timing(path)
    if not timing:
        return {}, f"{path}: no timing file; the notebooks' own time is left out"
    if timing.get("profile") != profile:
        return {}, f"{path} timed profile {timing.get('profile')!r}, not {profile!r}; the notebooks' own time is left out"
    # run_all.sh's grid queue is training, which the plan prices entry by entry: not a notebook's own time
    own = {str(n["name"]): float(n["seconds"]) for n in timing.get("notebooks", [])
           if "seconds" in n and n.get("name") != GRID_QUEUE}
    note = f"{path} ({timing.get('date', '?')}, cache {timing.get('cache_at_start', '?')} at start)"
    if timing.get("cache_at_start") == "empty":
        note += "; not a warm pass: its seconds include training, so the prediction counts that twice"
    return own, note


def make_plan(records: Sequence[dict], profile: str, workers: int, settings: dict[str, Any], meter,
              own_s: dict[str, float] | None = None, busy: bool = False) -> tuple[list[PlanEntry], dict[str, Any]]:
    """Map, count, measure, price and schedule; returns (entries, the plan as a JSON-able dict)."""
    from deepmt.config import get_config
    from deepmt.worker_pool import usable_cores

    _log(f"mapping {len(records)} inventory records onto profile {profile}" + (f" with {settings}" if settings else ""))
    try:
        entries = build_entries(records, profile, settings, log=_log)
    except (ValueError, KeyError, TypeError) as exc:  # a record naming an unknown method, stage or setting
        raise InventoryError(f"the inventory does not fit this code ({exc}); re-record it with --record-inventory") from None
    cfg = get_config(profile, settings)
    threads = max(1, int(cfg.train.threads) or usable_cores())
    _log(f"{len(entries)} entries; timing their work on this machine ({threads} thread(s) per run)")
    with meter.busy(max(0, workers - 1) if busy else 0, cfg):
        price(entries, meter, log=_log)
        again = getattr(meter, "second_round", None)
        if again is not None:
            _log("timing every training step once more (the faster of two windows counts)")
            again()
            price(entries, meter)
        gen: dict[str, float] = {}
        data = []
        for d in data_sets(entries):
            s = d["images"] * meter.generation(d["data"])
            gen[d["entry"]] = gen.get(d["entry"], 0.0) + s
            data.append({"key": d["key"], "split": d["split"], "images": d["images"], "first_entry": d["entry"], "seconds": s})
    slots = workers * threads
    factor = 1.0 if busy or slots <= usable_cores() else slots / usable_cores()
    if factor != 1.0:
        _log(f"{workers} workers x {threads} thread(s) > {usable_cores()} cores: every time scaled by {factor:.2f}")
        for e in entries:
            for s in e.stages:
                s.train_s, s.val_s, s.overhead_s = s.train_s * factor, s.val_s * factor, s.overhead_s * factor
            e.eval_s *= factor
    wall = wall_plan(entries, workers, own_s or {}, gen)
    totals = {"entries": len(entries), "runs": sum(1 for e in entries if e.stages),
              "train_worker_min": sum(e.train_s for e in entries) / 60, "worker_min": wall["worker_s"] / 60,
              "generation_min": sum(gen.values()) / 60, "own_min": sum((own_s or {}).values()) / 60,
              "wall_min": wall["wall_s_one_queue"] / 60, "batches_min": wall["wall_s"] / 60,
              "longest_first_min": wall["wall_s_longest_first"] / 60,
              "lower_bound_min": wall["lower_bound_s"] / 60}
    plan = {"profile": profile, "settings": settings, "workers": workers, "threads": threads, "busy_workers": busy,
            "contention_factor": factor, "totals": totals, "wall": wall, "by_method_stage": by_method_stage(entries),
            "data": data, "measurements": list(getattr(meter, "rows", []))}
    return entries, plan


# --------------------------------------------------------------------------- check against a measured grid
def check_against(entries: Sequence[PlanEntry], compute) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Predicted vs measured training seconds of each (entry, stage) row of a ``bench --grid`` table ``compute``
    (columns method, entry, stage, epochs, images, train_s). A row's prediction is its measured images x the plan's
    seconds per training image of that entry's stage; a row whose entry is not in the plan uses the median of the
    plan's stages of the same method and stage. Returns (rows per method / stage, overall)."""
    per_image: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    by_kind: dict[tuple[str, str], list[float]] = {}
    for e in entries:
        for s in e.stages:
            if s.images:
                per_image[(e.entry, s.stage)] = s.train_s / s.images
                counts[(e.entry, s.stage)] = (s.epochs, s.images)
                by_kind.setdefault((e.method, s.stage), []).append(s.train_s / s.images)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    ratios, matched, same_counts = [], 0, 0
    for r in compute.itertuples():
        key = (str(r.entry), str(r.stage))
        if key in per_image:
            spi = per_image[key]
            matched += 1
            same_counts += counts[key] == (int(r.epochs), int(round(r.images)))
        elif by_kind.get((r.method, r.stage)):
            spi = statistics.median(by_kind[(r.method, r.stage)])
        else:
            continue
        pred, meas = spi * float(r.images), float(r.train_s)
        g = groups.setdefault((r.method, r.stage), {"method": r.method, "stage": r.stage, "rows": 0, "measured_s": 0.0,
                                                    "predicted_s": 0.0, "ratios": []})
        g["rows"] += 1
        g["measured_s"] += meas
        g["predicted_s"] += pred
        if meas > 0:
            g["ratios"].append(pred / meas)
            ratios.append(pred / meas)
    rows = []
    for g in sorted(groups.values(), key=lambda g: -g["measured_s"]):
        rs = g.pop("ratios")
        rows.append({**g, "ratio": g["predicted_s"] / g["measured_s"] if g["measured_s"] else math.nan,
                     "median_ratio": statistics.median(rs) if rs else math.nan})
    meas, pred = sum(g["measured_s"] for g in rows), sum(g["predicted_s"] for g in rows)
    overall = {"rows": len(compute), "compared": sum(g["rows"] for g in rows), "matched_by_entry": matched,
               "same_epochs_and_images": same_counts, "measured_min": meas / 60, "predicted_min": pred / 60,
               "ratio": pred / meas if meas else math.nan, "median_ratio": statistics.median(ratios) if ratios else math.nan}
    return rows, overall


def render_check(rows: Sequence[dict[str, Any]], overall: dict[str, Any], source: str) -> str:
    lines = [f"predicted / measured training seconds, per (entry, stage) of {source}:",
             f"{'method':<18} {'stage':<8} {'rows':>4} {'measured-min':>12} {'predicted-min':>13} {'ratio':>6} {'median':>6}"]
    for r in rows:
        lines.append(f"{r['method']:<18} {r['stage']:<8} {r['rows']:>4} {r['measured_s'] / 60:>12.1f} "
                     f"{r['predicted_s'] / 60:>13.1f} {r['ratio']:>6.2f} {r['median_ratio']:>6.2f}")
    o = overall
    lines.append(f"overall: {o['compared']} of {o['rows']} rows compared ({o['matched_by_entry']} matched by entry, "
                 f"{o['same_epochs_and_images']} of those with the same epochs and images), measured {o['measured_min']:.0f} "
                 f"worker-min, predicted {o['predicted_min']:.0f}: ratio {o['ratio']:.2f} (median per row {o['median_ratio']:.2f})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command
def run(args: argparse.Namespace) -> int:
    inventory = Path(args.inventory) if args.inventory else repo_root() / INVENTORY
    if args.estimate:
        print(estimate_line(args.estimate, args.profile, args.workers))
        return 0
    if args.record_inventory:
        record_inventory(inventory, only=args.only)
        return 0
    if args.workers < 1:
        raise ConfigMismatchError(f"--workers {args.workers}: expected a whole number >= 1")
    if args.warmup < 0 or args.repeats < 1 or not args.seconds > 0:
        raise ConfigMismatchError("--warmup must be >= 0, --repeats >= 1 and --seconds > 0")
    settings = parse_set_items(args.set)
    from deepmt.config import get_config

    get_config(args.profile, settings)  # a bad --set fails here, before any work
    compute = None
    if args.check_against:
        import pandas as pd

        path = Path(args.check_against)
        if not path.is_file():
            raise InventoryError(f"--check-against {path}: no such file (made by `python -m deepmt bench --grid CACHE`)")
        compute = pd.read_csv(path)
        missing = {"method", "entry", "stage", "epochs", "images", "train_s"} - set(compute.columns)
        if missing:
            raise InventoryError(f"--check-against {path}: lacks the column(s) {', '.join(sorted(missing))}")
    records = load_inventory(inventory)
    out = Path(args.out) if args.out else repo_root() / DEFAULT_OUT
    own, own_note = _own_seconds(Path(args.timing) if args.timing else repo_root() / RUN_ALL_TIMING, args.profile)
    import torch

    from deepmt.bench.machine import machine_info
    from deepmt.bench.plan_measure import Meter
    from deepmt.bench.performance_page import machine_name

    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    t0 = time.perf_counter()
    entries, plan = make_plan(records, args.profile, args.workers, settings, Meter(args.warmup, args.repeats, args.seconds, _log),
                              own, busy=args.busy)
    info = machine_info(torch.device("cpu"))
    plan = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_name({"machine": info}),
            "command": "python -m deepmt plan " + " ".join(_argv(args)), "inventory": str(inventory),
            "own_time_from": own_note, "load_avg_start": load_start,
            "load_avg_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
            "measure_s": round(time.perf_counter() - t0, 1), **plan}
    if compute is not None:
        rows, overall = check_against(entries, compute)
        plan["check"] = {"against": str(args.check_against), "by_method_stage": rows, "overall": overall}
    print()
    print(render(plan))
    if load_start and load_start[0] > 0.5 * (info.get("usable_cores") or 1):
        print(f"note: load average {load_start[0]:.1f} at start: other processes were running, so the timings (and the "
              "prediction) may be too slow")
    if compute is not None:
        print()
        print(render_check(plan["check"]["by_method_stage"], plan["check"]["overall"], args.check_against))
    import pandas as pd

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(plan, indent=1, default=str) + "\n")
    atomic_write_text(out.with_suffix(".csv"), pd.DataFrame(summary_rows(entries)).to_csv(index=False))
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    parts = [f"--profile {args.profile}", f"--workers {args.workers}", *(f"--set {s}" for s in args.set)]
    if not args.busy:
        parts.append("--alone")
    if args.check_against:
        parts.append(f"--check-against {args.check_against}")
    return parts


__all__ = ["DEFAULT_OUT", "add_arguments", "check_against", "estimate_line", "make_plan", "render_check", "run"]
