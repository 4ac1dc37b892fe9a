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


def render_report(notebooks: list[str | os.PathLike], out_html: str | os.PathLike) -> Path:
    """Concatenate executed notebooks (in order) into one browsable HTML report, written atomically."""
    import nbformat
    from nbconvert import HTMLExporter

    merged = nbformat.v4.new_notebook()
    toc = ["# deepmt replication report", "", "Notebooks in this report:", ""]
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
