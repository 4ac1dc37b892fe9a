"""What indexing a dataset root produces: one :class:`FundusRecord` per image (no pixels loaded), the
:class:`Problem` s found (sorted by severity by :class:`ProblemsBySeverity`), and the :class:`IndexReport` that
holds both per official split."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from deepmt import LESIONS
from deepmt.data.sample import NO_GRADE
from deepmt.errors import DataError


@dataclass
class FundusRecord:
    """One image of a dataset index (no pixels loaded)."""

    id: str
    image: Path
    grade: int = NO_GRADE
    #: one path per lesion in LESIONS order (None = no mask file = lesion absent); None = not annotated at all
    masks: tuple[Path | None, ...] | None = None
    split: str = "train"
    source: str = ""  # where the record came from, e.g. "train.txt line 12"

    @property
    def mask_present(self) -> tuple[bool, ...]:
        return (self.masks is not None,) * len(LESIONS)


@dataclass
class Problem:
    """One problem found while indexing or checking; ``message`` always names the file."""

    severity: str  # "fatal" | "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.message}"


class ProblemsBySeverity:
    """The ``problems`` of a report sorted by severity: its ``errors`` (fatal or error) and its ``warnings``.

    A mixin, so that every report of problems (the :class:`IndexReport`, and the check report of
    :mod:`deepmt.data.check` that adds the decoding problems to it) sorts them by one rule."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity in ("fatal", "error")]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


@dataclass
class IndexReport(ProblemsBySeverity):
    """The records of a dataset root per official split, and everything found wrong with it."""

    fmt: str
    root: Path
    splits: dict[str, list[FundusRecord]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    n_ungradable: int = 0
    n_unlisted: int = 0
    n_skipped: int = 0

    def fatal(self, message: str) -> None:
        self.problems.append(Problem("fatal", message))

    def error(self, message: str) -> None:
        self.problems.append(Problem("error", message))

    def warn(self, message: str) -> None:
        self.problems.append(Problem("warning", message))

    @property
    def records(self) -> list[FundusRecord]:
        return [r for recs in self.splits.values() for r in recs]

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Record a DataError raised inside the block as a fatal problem, and go on."""
        try:
            yield
        except DataError as exc:
            self.fatal(str(exc))
