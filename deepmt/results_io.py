"""Reading the results tables back, and showing them as markdown (the docs and the last notebook).

The notebooks write ``results/NN_name.csv`` through :func:`deepmt.reporting.save_table`; the claims and
controls tables are then gathered from every file that matches a pattern, and shown as markdown::

    from deepmt.results_io import read_result_tables, to_markdown, update_readme_section

    frames = read_result_tables("results", "*claims*.csv", required=("id", "effect"), what="claims table")
    md = to_markdown(pd.concat(frames))                      # GitHub-flavoured table, nan as empty cells
    update_readme_section("README.md", "results", md)       # between <!-- BEGIN results --> and <!-- END results -->
    update_sections(["README.md", "docs/RESULTS.md"], {"results": md})   # into whichever of the files holds the block

Files that cannot be read, or lack a required column, raise :class:`deepmt.errors.DataError` naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from deepmt.errors import DataError
from deepmt.utils import atomic_write_text


def read_result_tables(root: str | Path, pattern: str, required: Sequence[str], what: str,
                       exclude: Sequence[str] = (), text_columns: Sequence[str] = ()) -> list[pd.DataFrame]:
    """Every ``root/pattern`` file (sorted by name, those named in ``exclude`` skipped) as a DataFrame with
    an added ``source`` column (the file name). ``text_columns`` (where present) are read as text, so that a
    cell like ``02`` or ``0.7`` stays as written. A file pandas cannot read, or one without the ``required``
    columns, raises ``DataError`` naming the file and ``what`` it should have been."""
    frames = []
    for path in sorted(Path(root).glob(pattern)):
        if path.name in exclude:
            continue
        try:
            df = pd.read_csv(path, dtype={c: str for c in text_columns})
        except Exception as e:  # noqa: BLE001 - name the file whatever pandas says
            raise DataError(f"{path}: cannot read {what} ({e})") from e
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise DataError(f"{path}: {what} lacks columns {missing}")
        df["source"] = path.name
        frames.append(df)
    return frames


def text_or(value: Any, default: str = "") -> str:
    """``value`` when it is a string (a CSV cell), else ``default`` (pandas reads empty cells as nan)."""
    return value if isinstance(value, str) else default


def _cell(v: Any, floatfmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        s = format(v, floatfmt)
    else:
        s = str(v)
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".3f", index: bool = False) -> str:
    """A GitHub-flavoured markdown table of ``df`` (no tabulate needed): floats as ``floatfmt``, nan empty,
    ``|`` escaped; numeric columns right-aligned."""
    cols = list(df.columns)
    rows = [[_cell(v, floatfmt) for v in rec] for rec in df.itertuples(index=False, name=None)]
    if index:
        cols = [df.index.name or ""] + cols
        rows = [[_cell(i, floatfmt)] + r for i, r in zip(df.index, rows)]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    if index:
        numeric = [pd.api.types.is_numeric_dtype(df.index)] + numeric
    header = "| " + " | ".join(_cell(c, floatfmt) for c in cols) + " |"
    align = "|" + "|".join("---:" if num else "---" for num in numeric) + "|"
    body = ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([header, align, *body]) + "\n"


def _section_span(text: str, marker: str, path: Path) -> tuple[int, int]:
    """Where the ``marker`` block's BEGIN and END comments start in ``text``; ``DataError`` naming ``path`` when a
    marker is missing, repeated or out of order."""
    begin, end = f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->"
    nb, ne = text.count(begin), text.count(end)
    if nb != 1 or ne != 1:
        problem = []
        if nb != 1:
            problem.append(f"{begin!r} occurs {nb} times")
        if ne != 1:
            problem.append(f"{end!r} occurs {ne} times")
        raise DataError(f"{path}: cannot update section {marker!r}: " + "; ".join(problem) + " (expected once each)")
    i, j = text.index(begin), text.index(end)
    if j < i:
        raise DataError(f"{path}: {end!r} comes before {begin!r}")
    return i, j


def update_readme_section(readme_path: str | Path, marker: str, markdown: str) -> bool:
    """Replace the text between ``<!-- BEGIN marker -->`` and ``<!-- END marker -->`` with ``markdown``.

    The file is rewritten atomically (:func:`deepmt.utils.atomic_path`) and only when the text changes;
    returns whether it changed. Raises ``DataError`` naming the file when a marker is missing, repeated or
    out of order.
    """
    path = Path(readme_path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (cannot update section {marker!r})")
    text = path.read_text(encoding="utf-8")
    i, j = _section_span(text, marker, path)
    new = text[: i + len(f"<!-- BEGIN {marker} -->")] + "\n" + markdown.strip("\n") + "\n" + text[j:]
    if new == text:
        return False
    atomic_write_text(path, new)
    return True


def holds_section(text: str, marker: str) -> bool:
    """Whether ``text`` holds the ``marker`` block, or a part of it (a lone BEGIN or END counts: it is malformed)."""
    return f"<!-- BEGIN {marker} -->" in text or f"<!-- END {marker} -->" in text


def update_sections(files: Sequence[str | Path], sections: dict[str, str | Callable[[Path], str]]) -> dict[str, dict[str, bool]]:
    """Write each generated block of ``sections`` (marker -> markdown, or a function of the file's path giving it,
    e.g. for links relative to the file) into every file of ``files`` that holds its markers
    (:func:`update_readme_section`); a file that holds none of them is left alone.

    Returns ``{file: {marker: changed}}``, with an empty dict for a file left alone. Raises ``DataError`` naming
    the files when a block is held by none of them (it would silently go stale), for a missing file, and for a
    malformed block (a marker missing, repeated or out of order); each is checked before any file is written.
    """
    texts = {}
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise DataError(f"{path}: no such file (cannot update the generated blocks {', '.join(sections)})")
        texts[str(f)] = path.read_text(encoding="utf-8")
    for f, text in texts.items():  # every block well-formed before any file is written
        for marker in sections:
            if holds_section(text, marker):
                _section_span(text, marker, Path(f))
    for marker in sections:
        if not any(holds_section(t, marker) for t in texts.values()):
            raise DataError(f"{', '.join(texts)}: none holds the {marker!r} block (<!-- BEGIN {marker} --> ... "
                            f"<!-- END {marker} -->), so it cannot be written")
    return {f: {m: update_readme_section(f, m, md(Path(f)) if callable(md) else md)
                for m, md in sections.items() if holds_section(t, m)}
            for f, t in texts.items()}
