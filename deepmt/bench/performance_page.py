"""The performance numbers of docs/PERFORMANCE.md, generated from the measurement files.

Sources, never typed by hand:

* ``results/bench/bench_*.json`` – one per machine, written by ``python -m deepmt bench``
  (:mod:`deepmt.bench`): matmul peaks, training images/s per stage with the fraction of the same-dtype
  peak, inference, data, the runner's scaling, targets;
* ``results/timing/run_all.json`` – the per-notebook wall times of the last complete ``./run_all.sh``
  (:func:`deepmt.run_all_timing.write_run_all_timing`), kept apart from the result tables;
* ``results/timing/grid.json`` – the training FLOPs of every run in an experiment cache and the floor they set at
  the machine's peak (``python -m deepmt bench --grid ~/.cache/deepmt/quick``, :mod:`deepmt.bench.grid`).

::

    python -m deepmt bench --readme docs/PERFORMANCE.md

rewrites the text between ``<!-- BEGIN performance -->`` and ``<!-- END performance -->`` of each file that holds
them (:func:`update_docs`; only when it changes, atomically). The block lives in docs/PERFORMANCE.md only (the
README links to it): a named file without the markers, e.g. ``README.md``, is left alone, but when none of the
files holds them the command fails naming them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from deepmt.errors import DataError
from deepmt.run_all_timing import GRID_QUEUE, cache_at_start_phrase

MARKER = "performance"
STAGE_ORDER = ("stage1a", "stage1b", "stage2")
MODE_NAMES = {"fast": "fast path", "fp32_eager": "fp32 eager"}


def fmt_number(x: Any, digits: int = 3) -> str:
    """``digits`` significant digits below 1,000, whole numbers with thousands separators above; ``-`` for None."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}" if abs(x) < 1e3 else f"{x:,.0f}"
    return str(x)


def _flops(gflops: float | None) -> str:
    if gflops is None:
        return "-"
    return f"{fmt_number(gflops / 1e3)} TFLOP/s" if gflops >= 1e4 else f"{fmt_number(gflops)} GFLOP/s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{fmt_number(100 * x, 2)}%"


def _median(entry: dict | None, key: str = "images_per_s") -> float | None:
    return entry[key]["median"] if entry and key in entry else None


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# --------------------------------------------------------------------------- reading
def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def load_bench_files(folder: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``bench_*.json`` in ``folder``, sorted by name, as (path, content)."""
    out = []
    for path in sorted(Path(folder).glob("bench_*.json")):
        data = _read_json(path)
        missing = [k for k in ("machine", "peak", "profiles") if k not in data]
        if missing:
            raise DataError(f"{path}: not a bench file (no {', '.join(missing)})")
        out.append((path, data))
    return out


def load_timing(path: str | Path) -> dict[str, Any] | None:
    """The ``run_all.sh`` timing file, or None when there is none yet."""
    path = Path(path)
    return _read_json(path) if path.is_file() else None


# --------------------------------------------------------------------------- rendering
def machine_name(bench: dict[str, Any]) -> str:
    """The machine, and the settings a ``bench --set`` changed (``NVIDIA H200, train.deterministic=false``)."""
    m = bench["machine"]
    name = m.get("gpu_name") or f"{m.get('cpu_model', '?')} ({m.get('usable_cores', m.get('cores', '?'))}-core CPU)"
    sets = bench.get("options", {}).get("overrides") or {}
    return ", ".join([name, *(f"{k}={v}" for k, v in sorted(sets.items()))])


def _machine_line(path: Path, bench: dict[str, Any]) -> str:
    m, o = bench["machine"], bench.get("options", {})
    la = bench.get("load_avg_start", [math.nan])[0]
    busy = la > 1.5 * m.get("usable_cores", 1)
    host = f" (host: {m.get('cpu_model')}, {m.get('cores')} cores)" if m.get("gpu_name") else ""
    cmd = f"python -m deepmt bench --profiles {' '.join(o.get('profiles', []))} --budget-seconds {bench.get('budget_s', 0):g}"
    cmd += "".join(f" --batch-size {k}={v}" for k, v in sorted((o.get("batch_sizes") or {}).items()))
    cmd += "".join(f" --set {k}={v}" for k, v in sorted((o.get("overrides") or {}).items()))
    return (f"- `{path.name}`: {machine_name(bench)}{host}, CPU capability {m.get('cpu_capability')}, torch "
            f"{m.get('torch')} with {m.get('torch_threads')} threads; `{cmd}`, {str(bench.get('created', ''))[:10]}, "
            f"load average {la:.2f} at start" + (" (**busy machine: pessimistic numbers**)" if busy else ""))


def _peak(bench: dict[str, Any], fp32: bool) -> float | None:
    """The fp32 matmul peak, or the fast dtype's (GFLOP/s)."""
    return next((v["gflops_per_s"]["median"] for k, v in bench["peak"].items() if (k == "fp32") == fp32), None)


def _profiles(benches: Sequence[tuple[Path, dict[str, Any]]]) -> list[tuple[dict, str, dict]]:
    return [(b, p, rec) for _, b in benches for p, rec in b["profiles"].items()]


def _stage_table(benches: Sequence[tuple[Path, dict[str, Any]]]) -> list[str]:
    """One row per machine, profile and trained stage: images/s and the share of the same-dtype peak."""
    lines = ["| machine | profile (timed HR px, batch) | stage | training GFLOPs per image | fast path img/s | share of "
             "the peak (dtype) | fp32 eager img/s | share of the fp32 peak | speed-up |", "|---" * 9 + "|"]
    for b, p, rec in _profiles(benches):
        for stage in [s for s in STAGE_ORDER if s in rec["train"]]:
            g = rec["train"][stage]
            fast, base = g.get("fast"), g.get("fp32_eager")
            lines.append(
                f"| {machine_name(b)} | `{p}` ({rec['timed_hr_size']}, {rec['batch_size']}) | {stage} | "
                f"{fmt_number(rec['gflops_per_image'].get(f'train_{stage}'))} | {fmt_number(_median(fast))} | "
                f"{_pct(fast.get('mfu') if fast else None)}{' ' + fast['precision'] if fast else ''} | "
                f"{fmt_number(_median(base))} | {_pct(base.get('mfu') if base else None)} | "
                f"{fmt_number(g.get('speedup'))}{'x' if g.get('speedup') else ''} |")
    return lines


def _other_table(benches: Sequence[tuple[Path, dict[str, Any]]]) -> list[str]:
    """One row per machine and profile: matmul peaks, inference, data generation and loading."""
    lines = ["| machine | profile | matmul peak fp32 / fast dtype | inference fast / fp32 eager | data generation "
             "(1 process) | data loading |", "|---" * 6 + "|"]
    for b, p, rec in _profiles(benches):
        inf, gen, load = rec.get("inference", {}), rec.get("data_generation"), rec.get("data_loading")
        lines.append(
            f"| {machine_name(b)} | `{p}` | {_flops(_peak(b, True))} / {_flops(_peak(b, False))} | "
            f"{fmt_number(_median(inf.get('fast')))} / {fmt_number(_median(inf.get('fp32_eager')))} img/s | "
            + (f"{fmt_number(_median(gen))} img/s at {gen['hr_size']} px" if gen else "-") + " | "
            + (f"{fmt_number(_median(load))} img/s" if load else "-") + " |")
    return lines


def _runner_table(benches: Sequence[tuple[Path, dict[str, Any]]]) -> list[str]:
    have = [(p, b) for p, b in benches if b.get("runner")]
    if not have:
        return ["The runner's scaling has not been measured yet (bench files older than schema 2): run "
                "`python -m deepmt bench`."]
    lines = ["| machine | grid | workers x threads per run | wall time | runs/min | load at start |",
             "|---|---|---|---|---|---|"]
    for _, b in have:
        r = b["runner"]
        grid = (f"{len(r['methods']) * len(r['seeds'])} `{r['profile']}` runs ({', '.join(r['methods'])}; "
                f"{r['split']['n_train']} images, {r['epochs_per_stage']} epoch per stage)")
        for e in r["layouts"]:
            best = " (fastest)" if f"{e['workers']}x{e['threads']}" == r["fastest"] else ""
            lines.append(f"| {machine_name(b)} | {grid} | {e['workers']} x {e['threads']}{best} | {fmt_number(e['wall_s'])} s | "
                         f"{fmt_number(e['runs_per_min'])} | {e['load_avg_start']:.2f} |")
    return lines


def _timing_lines(timing: dict[str, Any] | None) -> list[str]:
    if not timing:
        return ["No complete `./run_all.sh` has recorded its times yet (`results/timing/run_all.json`)."]
    lines = [
        f"`{timing.get('command', './run_all.sh')}` (profile `{timing.get('profile')}`, {timing.get('jobs')} worker(s) x "
        f"{timing.get('threads')} thread(s) per run) on {timing.get('machine', '?')}, {timing.get('date', '')}, "
        + cache_at_start_phrase(timing) + f": **{_minutes(timing.get('total_s'))}** in all.",
        "",
        "| notebook | wall time | status |",
        "|---|---|---|",
    ]
    for nb in timing.get("notebooks", []):
        lines.append(f"| `{nb['name']}` | {_minutes(nb.get('seconds'))} | {nb.get('status', '')} |")
    return lines


def load_grid(path: str | Path | None) -> dict[str, Any] | None:
    """The grid summary of ``bench --grid`` (``results/timing/grid.json``), or None when there is none."""
    if path is None or not Path(path).is_file():
        return None
    return _read_json(Path(path))


def _whole_run_clause(grid: dict[str, Any], timing: dict[str, Any] | None) -> str:
    """The whole ``./run_all.sh`` beside the grid. A run that reused cached runs (a resumed or repeated run) did
    not pay for their training: from an empty cache it needs at least the notebooks' own time (the run's total less
    its grid queue, which trained what the cache lacked) plus the whole grid's training, packed perfectly on the
    grid's workers (a lower bound: worker start-up, evaluation and idle workers at a notebook's end add to it)."""
    if not timing:
        return "."
    total = float(timing.get("total_s") or 0.0)
    if timing.get("cache_at_start") == "empty":
        return f"; the whole `./run_all.sh` took {_minutes(total)} from an empty cache."
    queue = sum(float(n.get("seconds") or 0.0) for n in timing.get("notebooks", []) if n.get("name") == GRID_QUEUE)
    return (f"; the whole `./run_all.sh` took {_minutes(total)} {cache_at_start_phrase(timing)}, so from an empty "
            f"cache it needs at least {_minutes(total - queue + float(grid['train_wall_s_at_workers']))} (the "
            f"notebooks' own {_minutes(total - queue)} plus the grid's training on {grid['workers']} workers).")


def _trained_on_clause(grid: dict[str, Any]) -> str:
    """Where the grid's runs trained (``bench --grid`` reads it from each run's ``result.json``): CPU numbers are
    bit-identical only on the same CPU kind, so a grid trained on several is named as such."""
    machines = grid.get("trained_on") or {}
    if not machines:
        return ""
    if len(machines) == 1:
        return f" Every run trained on {next(iter(machines))}."
    return (" The runs trained on more than one machine, so a rerun on one of them reproduces only its own runs exactly: "
            + "; ".join(f"{m} ({n} run{'' if n == 1 else 's'})" for m, n in machines.items()) + ".")


def _grid_lines(grid: dict[str, Any], timing: dict[str, Any] | None) -> list[str]:
    """What the grid's training FLOPs allow: totals, the achieved rate, the floors at the peak, per method."""
    lines = [
        f"{grid['runs']} finished runs in `{grid.get('cache', '?')}` on {grid.get('machine', '?')} "
        f"({grid.get('created', '')[:10]}): {fmt_number(grid['tflop'])} TFLOP of training, "
        f"{_minutes(grid['train_worker_s'])} of training summed over the runs "
        f"({fmt_number(grid['achieved_gflops_per_worker'])} GFLOP/s per run; {grid['workers']} side by side: "
        f"{_minutes(grid['train_wall_s_at_workers'])} of training wall time). At the machine's bf16 matmul peak "
        f"({fmt_number(grid['peak_gflops'])} GFLOP/s, every core) the same FLOPs need "
        f"**{_minutes(grid['floor_min_at_100pct'] * 60)}** at 100% and **{_minutes(grid['floor_min_at_40pct'] * 60)}** "
        "at 40% of it" + _whole_run_clause(grid, timing) + _trained_on_clause(grid),
        "",
        "| method | runs | training TFLOP | share | worker time |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in grid.get("by_method", []):
        lines.append(f"| `{m['method']}` | {int(m['runs'])} | {fmt_number(m['tflop'])} | {_pct(m['share_of_tflop'])} | "
                     f"{_minutes(m['worker_min'] * 60)} |")
    return lines


def _targets_table(benches: Sequence[tuple[Path, dict[str, Any]]]) -> list[str]:
    lines = ["| machine | target | value | met |", "|---|---|---|---|"]
    for _, b in benches:
        for t in b.get("targets", []):
            met = "not measured" if t.get("met") is None else ("met" if t["met"] else "**not met**")
            lines.append(f"| {machine_name(b)} | {t['target']} | {fmt_number(t.get('value'))} | {met} |")
    return lines


def performance_markdown(benches: Sequence[tuple[Path, dict[str, Any]]], timing: dict[str, Any] | None,
                         grid: dict[str, Any] | None = None) -> str:
    """The generated block: machines, speed per stage, the runner's scaling, run_all.sh's times, the grid's
    training FLOPs and the floor they set (``bench --grid``), targets."""
    parts = [
        "*Generated by `python -m deepmt bench --readme docs/PERFORMANCE.md` from `results/bench/bench_*.json` "
        "and `results/timing/run_all.json`; medians (min / max and repeat counts in the bench files).*",
        "\n".join(_machine_line(p, b) for p, b in benches) or "No bench files yet: run `python -m deepmt bench`.",
    ]
    if _profiles(benches):
        parts.append("**Training speed per stage** (images/s; the share of the machine's matmul peak in the same "
                     "dtype: bf16 for the fast path on a CPU with native bf16)\n\n" + "\n".join(_stage_table(benches)))
        parts.append("**Peaks, inference and data**\n\n" + "\n".join(_other_table(benches)))
    parts.append("**The experiment runner's scaling** (`deepmt.worker_pool`: the same grid in each layout, from an empty "
                 "cache)\n\n" + "\n".join(_runner_table(benches)))
    parts.append("**`./run_all.sh`, per notebook**\n\n" + "\n".join(_timing_lines(timing)))
    if grid:
        parts.append("**What the grid's training FLOPs allow** (`python -m deepmt bench --grid ~/.cache/deepmt/quick`)\n\n"
                     + "\n".join(_grid_lines(grid, timing)))
    if any(b.get("targets") for _, b in benches):
        parts.append("**Targets**\n\n" + "\n".join(_targets_table(benches)))
    return "\n\n".join(parts) + "\n"


def update_docs(files: Sequence[str | Path], bench_dir: str | Path, timing_path: str | Path,
                grid_path: str | Path | None = None) -> dict[str, bool]:
    """Rewrite the ``performance`` block of each file that holds it; returns {file: changed, or None for a file
    without the block, left alone}. ``DataError`` when none of the files holds it
    (:func:`deepmt.results_io.update_sections`)."""
    from deepmt.results_io import update_sections

    text = performance_markdown(load_bench_files(bench_dir), load_timing(timing_path), load_grid(grid_path))
    return {f: done.get(MARKER) for f, done in update_sections(files, {MARKER: text}).items()}


__all__ = ["fmt_number", "load_bench_files", "load_timing", "load_grid", "performance_markdown", "update_docs", "machine_name"]
