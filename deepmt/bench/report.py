"""The bench's output files: ``bench_<tag>.json`` (every measurement) and its markdown rendering
``bench_<tag>.md``, both written atomically. (docs/PERFORMANCE.md's performance block is generated from these
files by :mod:`deepmt.bench.performance_page`.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from deepmt.bench.machine import output_tag
from deepmt.bench.steps import MODES
from deepmt.bench.performance_page import fmt_number
from deepmt.utils import atomic_write_text, repo_root


def _row(name: str, stats: dict[str, float] | None, unit: str, note: str = "") -> str:
    if not stats:
        return f"| {name} | - | - | - | - | {unit} | {note} |"
    return f"| {name} | {fmt_number(stats['min'])} | {fmt_number(stats['median'])} | {fmt_number(stats['max'])} | {stats['n']} | {unit} | {note} |"


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    la0, la1 = result["load_avg_start"], result.get("load_avg_end", result["load_avg_start"])
    lines = [
        f"# deepmt bench: {m.get('gpu_name') or m['cpu_model']}",
        "",
        f"- created {result['created']}, `python -m deepmt bench --profiles {' '.join(result['options']['profiles'])}"
        f" --budget-seconds {result['budget_s']:g}`{' --compile' if result['options']['compile'] else ''}; took {result.get('elapsed_s', 0):.0f} s",
        f"- machine: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), CPU capability {m['cpu_capability']}, "
        f"native CPU bf16: {m['cpu_bf16']}; torch {m['torch']} with {m['torch_threads']} threads; device `{m['device']}`"
        + (f" ({m['gpu_name']}, {m.get('gpu_memory_gb')} GiB)" if m.get("gpu_name") else ""),
        f"- load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in la0)}; at end {', '.join(f'{x:.2f}' for x in la1)}"
        + (" - **the machine was busy: numbers are pessimistic**" if max(la0[0], la1[0]) > 1.5 * m["usable_cores"] else ""),
        "- medians over repeated steps after one warm-up step; min / median / max and n (repeats) shown",
        "",
        "## Peak (large matmul)",
        "",
        "| dtype | min | median | max | n | unit | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, pk in result["peak"].items():
        lines.append(_row(name, pk["gflops_per_s"], "GFLOP/s", f"{pk['n']}x{pk['n']}"))
    for p, rec in result["profiles"].items():
        gf = rec["gflops_per_image"]
        lines += [
            "",
            f"## Profile `{p}`: HR {rec['hr_size']} px, timed at HR {rec['timed_hr_size']} / LR {rec['timed_lr_size']} px, batch {rec['batch_size']}",
            "",
            "GFLOPs per image (forward + backward for training): "
            + ", ".join(f"{k.replace('train_', 'train ')} {fmt_number(v)}" for k, v in gf.items()),
            "",
            "| measurement | min | median | max | n | unit | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for stage, group in rec["train"].items():
            for mode in MODES:
                e = group.get(mode)
                if not e:
                    continue
                tag = f"{e['precision']}{', channels_last' if e['channels_last'] else ''}"
                lines.append(_row(f"train {stage} {mode} ({tag})", e["images_per_s"], "images/s",
                                  f"peak mem {fmt_number(e.get('peak_memory_mb'), 4)} MiB"))
                lines.append(_row(f"train {stage} {mode} achieved", e["gflops_per_s"], "GFLOP/s",
                                  f"MFU {fmt_number(100 * e['mfu'], 3)}% of {fmt_number(e['peak_gflops_per_s'])}" if "mfu" in e else ""))
            if "speedup" in group:
                lines.append(f"| train {stage} speed-up fast / fp32 eager | | {fmt_number(group['speedup'])} | | | x | medians |")
        for mode in MODES:
            e = rec["inference"].get(mode)
            if e:
                lines.append(_row(f"inference {mode} ({e['precision']})", e["images_per_s"], "images/s",
                                  f"peak mem {fmt_number(e.get('peak_memory_mb'), 4)} MiB"))
        if "speedup" in rec["inference"]:
            lines.append(f"| inference speed-up fast / fp32 eager | | {fmt_number(rec['inference']['speedup'])} | | | x | medians |")
        gen, load = rec.get("data_generation"), rec.get("data_loading")
        if gen:
            lines.append(_row(f"data generation ({gen['hr_size']} px, 1 process)", gen["images_per_s"], "images/s",
                              f"{fmt_number(gen.get('vs_training'))}x fast stage2 training" if gen.get("vs_training") else ""))
        if load:
            lines.append(_row(f"data loading (batch {load['batch_size']}, {load['num_workers']} workers)", load["images_per_s"],
                              "images/s", f"crop {load['crop_size']}" if load["crop_size"] else ""))
    run = result.get("runner")
    if run:
        lines += [
            "", f"## Runner scaling: {len(run['methods']) * len(run['seeds'])} `{run['profile']}` runs "
            f"({', '.join(run['methods'])} x seeds {', '.join(map(str, run['seeds']))}; {run['split']['n_train']} training "
            f"images, {run['epochs_per_stage']} epoch per stage)", "",
            "| workers x threads | wall s | runs/min | summed train s | load at start |", "|---|---|---|---|---|",
        ]
        for e in run["layouts"]:
            lines.append(f"| {e['workers']} x {e['threads']} | {fmt_number(e['wall_s'])} | {fmt_number(e['runs_per_min'])} | "
                         f"{fmt_number(e['train_s'])} | {fmt_number(e['load_avg_start'])} |")
        lines += ["", f"Fastest: {run['fastest'].replace('x', ' x ')}; wall-time ratio first / last layout {fmt_number(run['speedup'])}."]
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    for t in result["targets"]:
        met = "not measured" if t["met"] is None else ("met" if t["met"] else "not met")
        lines.append(f"| {t['target']} | {fmt_number(t['value'])} | {met} |")
    if result["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out_dir: str | os.PathLike | None) -> dict[str, Path]:
    out = Path(out_dir) if out_dir is not None else repo_root() / "results" / "bench"
    tag = output_tag(result["machine"], result.get("options", {}).get("overrides"))
    paths = {"json": out / f"bench_{tag}.json", "md": out / f"bench_{tag}.md"}
    atomic_write_text(paths["json"], json.dumps(result, indent=1, allow_nan=False) + "\n")
    atomic_write_text(paths["md"], render_markdown(result))
    result["files"] = {k: str(v) for k, v in paths.items()}
    return paths
