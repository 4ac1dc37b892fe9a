"""Build the numbered notebooks from their readable sources in ``notebooks/src/*.py``.

Sources use the "percent" cell format (as jupytext does)::

    # %% [markdown]
    # # 01 Finding 1 ...
    # %% tags=["parameters"]
    profile = ""
    # %%
    cfg = get_config(profile or None)

Run ``python notebooks/build.py`` after editing a source; the notebooks are written without
outputs (tests/test_notebooks.py checks that each .ipynb matches its source).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
CELL = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "deepmt", "display_name": "deepmt (.venv)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cells: list[tuple[bool, list[str], list[str]]] = []
    for line in text.splitlines():
        m = CELL.match(line)
        if m:
            cells.append((bool(m.group("md")), json.loads(m.group("tags")) if m.group("tags") else [], []))
        elif cells:
            cells[-1][2].append(line)
    for i, (is_md, tags, lines) in enumerate(cells):
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if is_md:
            src = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in lines)
            cell = nbformat.v4.new_markdown_cell(src)
        else:
            cell = nbformat.v4.new_code_cell("\n".join(lines))
        cell["id"] = f"cell-{i:02d}"
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def build(src: Path) -> Path:
    out = HERE / (src.stem + ".ipynb")
    nbformat.write(parse(src.read_text()), out)
    return out


def main(argv: list[str]) -> int:
    sources = [Path(a) for a in argv] or sorted((HERE / "src").glob("[0-9][0-9]_*.py"))
    for src in sources:
        print("built", build(src).relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
