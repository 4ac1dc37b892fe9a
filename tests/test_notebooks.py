"""Notebook hygiene (no stored outputs, one literal-only `parameters` cell), notebooks in sync with their jupytext
sources, progress-bar widgets, and run_all.sh failure handling."""

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


def test_run_all_names_the_failing_notebook(tmp_path, run_all_sandbox):
    env = run_all_sandbox({"00_ok.ipynb": "x = 1", "01_broken.ipynb": "raise RuntimeError('boom')",
                                     "02_never.ipynb": "x = 2"})
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


# --------------------------------------------------------------------------- jupytext pairs
# notebooks/jupytext.toml pairs every notebooks/NN_*.ipynb with its percent-format source notebooks/src/NN_*.py;
# JupyterLab (with jupytext) saves both, elsewhere `jupytext --sync notebooks/*.ipynb` brings a pair back together.
SYNC = "jupytext --sync notebooks/*.ipynb"


def _jupytext_config(folder: Path):
    from jupytext.config import load_jupytext_config

    config = load_jupytext_config(str(folder / "00.ipynb"))
    assert config is not None and config.formats, f"{folder}: no jupytext.toml pairing the notebooks with their sources"
    return config


def paired_source(nb_path: Path) -> tuple[Path, dict]:
    """The percent-format source that jupytext's pairing (notebooks/jupytext.toml) gives ``nb_path``, and its format."""
    from jupytext.paired_paths import paired_paths

    config = _jupytext_config(nb_path.parent)
    (path, fmt), = [(Path(p), f) for p, f in paired_paths(str(nb_path), "ipynb", config.formats[0]) if f["extension"] == ".py"]
    return path, fmt


def pair_differences(nb_path: Path) -> str:
    """How a notebook and its source disagree, as jupytext sees them ("" when in sync): the source must be exactly
    what `jupytext --sync` writes from the notebook (same cells, sources, tags and kernel), and every cell of
    the notebook must keep a unique id."""
    import difflib

    import jupytext
    import nbformat

    src, fmt = paired_source(nb_path)
    if not src.exists():
        return f"{src.relative_to(nb_path.parent)} missing"
    nb = nbformat.read(nb_path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    if None in ids or len(set(ids)) != len(ids):
        return f"{nb_path.name}: cell ids missing or repeated: {ids}"
    want = jupytext.writes(nb, fmt=fmt, config=_jupytext_config(nb_path.parent))
    have = src.read_text()
    if want == have:
        return ""
    diff = difflib.unified_diff(want.splitlines(), have.splitlines(), f"from {nb_path.name}", str(src.name), lineterm="", n=1)
    return "\n".join(list(diff)[:30])


def test_run_all_records_what_the_cache_held_at_start(tmp_path, run_all_sandbox):
    """``cache_at_start`` of the timing record: ``empty``, ``warm`` when the run trained nothing, ``partial`` when the
    cache held runs but the run added some (deepmt.run_all_timing.CACHE_AT_START), so that the performance page does
    not count a partly filled cache's training twice."""
    env = run_all_sandbox({"00_train.ipynb": (  # a stand-in for a training: a complete cache entry, when asked
        "import os, pathlib\nname = os.environ.get('NEW_ENTRY')\nif name:\n"
        "    d = pathlib.Path(os.environ['DEEPMT_CACHE']) / 'runs' / name\n    d.mkdir(parents=True)\n"
        "    (d / 'result.json').write_text('{}')")})
    states = []
    for entry in ("a", "", "b"):
        proc = subprocess.run(["bash", "run_all.sh", "--profile", "smoke"], cwd=tmp_path, env={**env, "NEW_ENTRY": entry},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        states.append(json.loads((tmp_path / "results/executed/smoke/timing.json").read_text())["cache_at_start"])
    assert states == ["empty", "warm", "partial"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_matches_its_source(path):
    problem = pair_differences(path)
    assert not problem, f"{path.name} and its source disagree; run `{SYNC}`:\n{problem}"


def test_every_source_has_its_notebook():
    sources = sorted((ROOT / "notebooks" / "src").glob("*.py"))
    paired = {paired_source(p)[0] for p in NOTEBOOKS}
    assert sources and set(sources) == paired, f"sources without a notebook: {sorted(set(sources) - paired)}; run `{SYNC}`"


def test_jupytext_sync_repairs_an_edited_notebook(tmp_path):
    """The documented sync command: a notebook edited as in JupyterLab without jupytext (the source left behind)
    is detected, and `jupytext --sync` carries the edit into the source, keeping cell ids, tags and the kernel."""
    import nbformat

    nb_src = ROOT / "notebooks" / "04_grading_table.ipynb"
    shutil.copy(ROOT / "notebooks" / "jupytext.toml", tmp_path)
    (tmp_path / "src").mkdir()
    shutil.copy(paired_source(nb_src)[0], tmp_path / "src")
    nb_path = tmp_path / nb_src.name
    nb = nbformat.read(nb_src, as_version=4)
    before = [(c.id, c.metadata.get("tags")) for c in nb.cells]
    nb.cells[0].source += "\n\nAn edit made in JupyterLab."
    nbformat.write(nb, nb_path)
    os.utime(nb_path, (nb_path.stat().st_mtime + 5,) * 2)  # the notebook is the newer file of the pair
    assert "An edit made in JupyterLab." in pair_differences(nb_path)

    proc = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(nb_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert pair_differences(nb_path) == ""
    assert "# An edit made in JupyterLab." in paired_source(nb_path)[0].read_text()
    synced = nbformat.read(nb_path, as_version=4)
    assert [(c.id, c.metadata.get("tags")) for c in synced.cells] == before
    assert synced.metadata.kernelspec.name == "deepmt"  # papermill runs every notebook with `-k deepmt`


def test_progress_bars_render_as_widgets():
    """tqdm.auto draws a progress widget in JupyterLab only when ipywidgets is installed (else it falls back to
    text with "IProgress not found"); the project must install it, and jupytext, for every user."""
    import tomllib

    import tqdm.notebook

    deps = {d.split(">")[0].split("=")[0] for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert {"ipywidgets", "jupytext"} <= deps
    assert tqdm.notebook.IProgress is not None, "ipywidgets is not installed"
    bar = tqdm.notebook.tqdm(total=3, display=False, desc="epoch")
    for _ in range(3):
        bar.update(1)
    bar.refresh()
    progress = bar.container.children[1]
    assert isinstance(progress, tqdm.notebook.IProgress) and (progress.value, progress.max) == (3, 3)
    bar.close()
    assert progress.bar_style == "success"
