"""Notebook hygiene (no stored outputs, one literal-only `parameters` cell) and run_all.sh failure handling."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_committed_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name} has stored outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: expected exactly one cell tagged 'parameters'"
    tree = ast.parse("".join(params[0]["source"]))
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{path.name}: parameters cell may only assign literals"
        ast.literal_eval(node.value)  # raises if not a literal
    names = {t.id for node in tree.body for t in node.targets}
    assert "profile" in names, f"{path.name}: parameters cell must define `profile`"
    assert nb["cells"][0]["cell_type"] == "markdown", f"{path.name}: must open with a markdown title"


def test_run_all_names_the_failing_notebook(tmp_path):
    if not (Path(sys.prefix) / "bin" / "papermill").exists():
        pytest.skip("papermill is not installed in this environment")
    for name in ("run_all.sh", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    import nbformat

    def write(name, src):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("profile = ''")
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell, nbformat.v4.new_code_cell(src)]
        nb.metadata["kernelspec"] = {"name": "deepmt", "display_name": "deepmt", "language": "python"}
        nbformat.write(nb, nbdir / name)

    write("00_ok.ipynb", "x = 1")
    write("01_broken.ipynb", "raise RuntimeError('boom')")
    write("02_never.ipynb", "x = 2")
    env = dict(os.environ, DEEPMT_VENV=str(Path(sys.prefix)), DEEPMT_CACHE=str(tmp_path / "cache"), DEEPMT_SKIP_INSTALL="1")
    proc = subprocess.run(["bash", "run_all.sh", "--profile", "smoke", "-j", "2"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "01_broken.ipynb" in proc.stderr
    assert (tmp_path / "results/executed/smoke/00_ok.ipynb").exists()
    assert not (tmp_path / "results/executed/smoke/02_never.ipynb").exists()
    # per-notebook wall times, in their own file (a smoke run: not the committed results/timing/run_all.json)
    timing = json.loads((tmp_path / "results/executed/smoke/timing.json").read_text())
    assert [(n["name"], n["status"]) for n in timing["notebooks"]] == [("00_ok", "ok"), ("01_broken", "failed")]
    assert timing["jobs"] == 2 and timing["command"] == "./run_all.sh --profile smoke -j 2" and timing["profile"] == "smoke"
    assert timing["total_s"] >= sum(n["seconds"] for n in timing["notebooks"]) and not (tmp_path / "results/timing").exists()
    bad = subprocess.run(["bash", "run_all.sh", "-j", "0"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "-j 0: expected a whole number" in bad.stderr


SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("src", SOURCES, ids=[p.name for p in SOURCES])
def test_notebook_matches_its_source(src):
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import build
    finally:
        sys.path.pop(0)
    nb_path = ROOT / "notebooks" / (src.stem + ".ipynb")
    assert nb_path.exists(), f"{nb_path.name} missing: run python notebooks/build.py"
    built = build.parse(src.read_text())
    on_disk = json.loads(nb_path.read_text())
    assert [c["source"] for c in on_disk["cells"]] == [
        c["source"] for c in json.loads(__import__("nbformat").writes(built))["cells"]
    ], f"{nb_path.name} differs from {src.name}: run python notebooks/build.py"
