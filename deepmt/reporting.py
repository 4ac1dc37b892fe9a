"""Helpers for notebooks: where figures and tables go, written atomically.

Every notebook saves its figures as ``figures/NN_name.png`` (and ``.pdf``) and its tables as
``results/NN_name.csv`` through these two functions, so a crash never leaves a half-written file
and figures from other notebooks are never touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from deepmt.utils import atomic_path, repo_root

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


def figures_dir() -> Path:
    """``$DEEPMT_FIGURES`` or ``<repo>/figures``."""
    d = Path(os.environ.get("DEEPMT_FIGURES", repo_root() / "figures"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def results_dir() -> Path:
    """``$DEEPMT_RESULTS`` or ``<repo>/results`` (tables as CSV)."""
    d = Path(os.environ.get("DEEPMT_RESULTS", repo_root() / "results"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_figure(fig: "Figure", name: str, formats: tuple[str, ...] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.<fmt>`` for each format, atomically. Returns the paths."""
    paths = []
    for fmt in formats:
        path = figures_dir() / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata={"CreationDate": None} if fmt == "pdf" else None)
        paths.append(path)
    return paths


def save_table(df: "pd.DataFrame", name: str, index: bool = False) -> Path:
    """Save ``df`` as ``results/<name>.csv`` atomically. Returns the path."""
    path = results_dir() / f"{name}.csv"
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index, float_format="%.6g")
    return path


#: A line a notebook prints starting with this marker is shown live in the terminal by ``./run_all.sh`` (as are the
#: experiment runner's ``[k/n] ...`` lines); everything else goes only to the notebook's log. See :func:`progress`.
PROGRESS_MARKER = ">> "


def progress(message: str) -> None:
    """Print ``message`` as a progress line: ``./run_all.sh`` shows it in the terminal while the notebook runs."""
    print(f"{PROGRESS_MARKER}{message}", flush=True)


def report_banner(profile: str | None, complete: bool | None, note: str = "", when: str | None = None) -> str:
    """The banner at the top of the HTML report: which profile made it, when, and whether the run was complete
    (every notebook, none failed) or partial (``--only``, a failure; ``note`` says which). HTML inside markdown."""
    import html
    from datetime import datetime

    when = when or datetime.now().strftime("%Y-%m-%d %H:%M")
    if complete is None:
        state, colour = "run of unknown extent", "#888"
    elif complete:
        state, colour = "complete run", "#2a7d2a"
    else:
        state, colour = "partial run", "#c06000"
    text = f"<b>Profile: {html.escape(profile or '?')}</b> &middot; {html.escape(when)} &middot; <b>{state}</b>"
    if note:
        text += f" ({html.escape(note)})"
    if profile == "smoke":
        text += "<br>smoke checks the mechanics only: its numbers are not results"
    return (f'<div class="deepmt-report-banner" style="border: 2px solid {colour}; border-left: 10px solid {colour}; '
            f'padding: 0.6em 1em; margin: 0.5em 0; font-size: 1.15em;">{text}</div>')


def render_report(notebooks: list[str | os.PathLike], out_html: str | os.PathLike, *, profile: str | None = None,
                  complete: bool | None = None, note: str = "", when: str | None = None) -> Path:
    """Concatenate executed notebooks (in order) into one browsable HTML report, written atomically, under a banner
    naming the profile, the date and whether the run was complete (see :func:`report_banner`)."""
    import nbformat
    from nbconvert import HTMLExporter

    merged = nbformat.v4.new_notebook()
    toc = ["# deepmt replication report", "", report_banner(profile, complete, note, when), "", "Notebooks in this report:", ""]
    for path in notebooks:
        path = Path(path)
        if not path.exists():
            continue
        nb = nbformat.read(path, as_version=4)
        if not merged.metadata:
            merged.metadata = nb.metadata
        toc.append(f"- {path.stem}")
        merged.cells.append(nbformat.v4.new_markdown_cell(f"---\n<a id='{path.stem}'></a>\n\n*Notebook `{path.name}`*"))
        for cell in nb.cells:  # cell ids must be unique across the merged notebooks
            cell["id"] = f"{path.stem[:40]}-{cell.get('id', len(merged.cells))}"
            merged.cells.append(cell)
    merged.cells.insert(0, nbformat.v4.new_markdown_cell("\n".join(toc)))
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(merged)
    out = Path(out_html)
    with atomic_path(out) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return out
