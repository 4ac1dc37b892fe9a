"""``python -m deepmt data check --format FMT ROOT``: validate a real dataset root before training on it.

:func:`check_root` indexes ROOT in its published layout (:mod:`deepmt.data.real`), then (unless
``decode=False``) fully decodes every image and lesion mask and checks that each mask has its image's size.
It returns a :class:`CheckReport`: image counts per official split and grade, and every problem found
(``fatal``/``error``: missing labels file or columns, grade outside the dataset's range, image listed but
missing on disk, unreadable or corrupt image/mask, mask size differs from its image; ``warning``: image on
disk but not listed, duplicate rows, missing lesion folder). The command prints the counts and the problems
(at most ``--max-problems``; all are counted) and exits 1 when there is any error, 0 otherwise.

IDRiD and DDR releases keep their grading and lesion-segmentation parts under one root. On such a root,
:func:`check_release` (and so the command, for any of ``idrid``, ``idrid-seg``, ``ddr``, ``ddr-seg``) checks
both parts; when the other part is not there, the command says which part it checked and that the other is absent.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from deepmt.data.io import read_image, read_mask
from deepmt.data.real import COMPANION, PART_DIRS, IndexReport, Problem, ProblemsBySeverity, check_format_and_root, index_dataset
from deepmt.errors import DataError, SettingError

#: Show a progress bar when decoding at least this many images.
PROGRESS_MIN = 50
_SPLIT_ORDER = ("train", "val", "test")


@dataclass
class CheckReport(ProblemsBySeverity):
    """What :func:`check_root` found. ``ok`` is True when there is no error (warnings are allowed)."""

    fmt: str
    root: Path
    counts: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    n_images: int = 0
    n_ungradable: int = 0
    n_unlisted: int = 0
    decoded: bool = True

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [
            f"dataset {self.fmt!r} at {self.root}: {self.n_images} indexed image(s)"
            + ("" if self.decoded else " (files not decoded: --no-decode)"),
        ]
        if len(self.counts):
            lines += ["images per official split (rows) and DR grade (columns; '-' = no grade):", self.counts.to_string()]
        if self.fmt in ("messidor1", "messidor2", "aptos", "eyepacs"):
            lines.append("(no official val/test split: stratified ones are carved from 'train' at load time)")
        lines.append(f"excluded as ungradable: {self.n_ungradable}; on disk but not listed: {self.n_unlisted}")
        lines.append(f"problems: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def _counts(rep: IndexReport) -> pd.DataFrame:
    rows = [(split, "-" if r.grade < 0 else str(r.grade)) for split, recs in rep.splits.items() for r in recs]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows, columns=["split", "grade"])
    table = pd.crosstab(df["split"], df["grade"], margins=True, margins_name="total")
    order = [s for s in _SPLIT_ORDER if s in table.index] + ["total"]
    return table.loc[order]


def _decode_all(rep: IndexReport, progress: bool | None = None) -> None:
    records = rep.records
    show = len(records) >= PROGRESS_MIN if progress is None else progress
    for rec in tqdm(records, desc="decoding images", unit="img", disable=not show, file=sys.stderr):
        try:
            size = read_image(rec.image).shape[:2]
        except DataError as exc:
            rep.error(str(exc))
            continue
        for mp in rec.masks or ():
            if mp is None:
                continue
            try:
                m = read_mask(mp)
            except DataError as exc:
                rep.error(str(exc))
                continue
            if m.shape != size:
                rep.error(
                    f"{mp}: mask size {m.shape[1]}x{m.shape[0]} differs from its image {rec.image.name} ({size[1]}x{size[0]})"
                )


def check_root(fmt: str, root: str | Path, decode: bool = True, progress: bool | None = None) -> CheckReport:
    """Index (and by default decode) a dataset root; see the module docstring.

    Raises :class:`DataError` only when ``fmt`` is unknown or ``root`` is missing, not a folder or empty;
    every other problem is collected in the report.
    """
    rep = index_dataset(fmt, root)
    if decode:
        _decode_all(rep, progress)
    return CheckReport(
        fmt=fmt,
        root=rep.root,
        counts=_counts(rep),
        problems=sorted(rep.problems, key=lambda p: p.severity == "warning"),  # errors first, stable
        n_images=len(rep.records),
        n_ungradable=rep.n_ungradable,
        n_unlisted=rep.n_unlisted,
        decoded=decode,
    )


def check_release(fmt: str, root: str | Path, decode: bool = True, progress: bool | None = None) -> list[CheckReport]:
    """:func:`check_root` of ``fmt``, and of the other part of the same release (IDRiD, DDR) when ``root`` holds it."""
    path = check_format_and_root(fmt, root)
    other = COMPANION.get(fmt)
    formats = [fmt] + ([other] if other and (path / PART_DIRS[other]).is_dir() else [])
    return [check_root(f, path, decode, progress) for f in formats]


def run_check_command(args: argparse.Namespace) -> int:
    """``python -m deepmt data check``: print the report(s); exit code 1 when any error was found."""
    limit = int(args.max_problems)
    if limit < 1:  # 0 or less would hide every problem while still failing
        raise SettingError(f"--max-problems {limit}: expected an integer >= 1 (how many problems to print; "
                           "all are counted)")
    reports = check_release(args.format, args.root, decode=not args.no_decode)
    for report in reports:
        if len(reports) > 1:
            print(f"== {report.fmt}: {report.root / PART_DIRS[report.fmt]}")
        print(report.summary())
        for p in report.problems[:limit]:
            print(f"  {p}")
        if len(report.problems) > limit:
            print(f"  ... and {len(report.problems) - limit} more (raise --max-problems to see them)")
    other = COMPANION.get(args.format)
    if other and len(reports) == 1:
        root = reports[0].root
        print(f"checked the {args.format!r} part ({PART_DIRS[args.format]}) only: {root / PART_DIRS[other]} is not there; "
              f"where that part lives, `python -m deepmt data check --format {other} ROOT` checks it")
    errors = sum(len(r.errors) for r in reports)
    print("OK" if not errors else f"FAILED: {errors} error(s) in {reports[0].root}")
    return 0 if not errors else 1


__all__ = ["CheckReport", "check_release", "check_root", "run_check_command"]
