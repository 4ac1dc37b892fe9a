"""The package's layers import in one direction, without cycles and without private names of other modules.

notebooks -> studies -> claims / controls -> experiment runner -> engine -> models / losses / data / metrics ->
reporting / results_io -> config / errors / utils / imaging, with the command line (``cli``, ``commands``, ``bench``)
beside the studies on top; every module has a layer. Read from the source
(every ``import``, also those inside functions), so a lazy import that reaches up is caught too. And no module
is longer than a few screens unless its docstring says why.
"""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "deepmt"

#: the top: what only the notebooks (studies) or the user (command line) import
TOP = ("deepmt.studies", "deepmt.cli", "deepmt.commands", "deepmt.bench", "deepmt.__main__", "deepmt.grid_queue",
       "deepmt.run_all_timing")
#: the paper's claims and their controls (verdict rules, thresholds): read by the studies and the reports
VERDICTS = ("deepmt.claims", "deepmt.controls")
#: the experiment runner: trained methods per config and seed, above the engine
RUNNER = ("deepmt.experiment_cache", "deepmt.worker_pool", "deepmt.cluster", "deepmt.grid_log")
ENGINE = ("deepmt.engine",)
#: the building blocks the engine trains and measures
CORE = ("deepmt.models", "deepmt.losses", "deepmt.data", "deepmt.metrics")
#: where tables and figures go, and how generated blocks are written
IO = ("deepmt.reporting", "deepmt.results_io")
BOTTOM = ("deepmt.config", "deepmt.config_checks", "deepmt.config_compat", "deepmt.errors", "deepmt.utils", "deepmt.imaging")
#: every layer, top first; each may import only the layers below it
LAYERS = (TOP, VERDICTS, RUNNER, ENGINE, CORE, IO, BOTTOM)

#: private names still imported across modules, with the work that removes them (nothing else may join)
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()
#: a module longer than this many lines says in its docstring why it is one file ("Kept in one file: ...")
MAX_LINES = 600
#: long modules still without that sentence, with the work that adds it (nothing else may join)
KNOWN_LONG_MODULES: set[str] = set()  # long modules not yet split or explained (it only shrinks)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _owner(name: str) -> str:
    """The package module that defines ``name`` (a module, or an attribute of one)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(deepmt modules that ``module`` imports anywhere in its source, private names it takes from other modules)."""
    tree = ast.parse(MODULES[module].read_text())
    modules: set[str] = set()
    private: set[str] = set()
    aliases: dict[str, str] = {}  # local name -> deepmt module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("deepmt"):
                    modules.add(_owner(a.name))
                    if a.asname:
                        aliases[a.asname] = _owner(a.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("deepmt"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                target = _owner(full)
                modules.add(target)
                if target == full:
                    aliases[a.asname or a.name] = target
                elif a.name.startswith("_") and target != module:
                    private.add(full)
    for node in ast.walk(tree):  # M._helper where M is another deepmt module
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__") and aliases[node.value.id] != module):
            private.add(f"{aliases[node.value.id]}.{node.attr}")
    modules.discard(module)
    return modules, private


IMPORTS = {m: _imports(m) for m in MODULES}


def _in(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in layers)


@pytest.mark.parametrize(
    "lower, higher",
    [(LAYERS[k], sum(LAYERS[:k], ())) for k in range(1, len(LAYERS))],
    ids=["verdicts", "runner", "engine", "models-losses-data-metrics", "reporting-results_io", "config-errors-utils"],
)
def test_no_layer_imports_a_layer_above_it(lower, higher):
    bad = sorted(f"{m} imports {t}" for m in MODULES if _in(m, lower) for t in IMPORTS[m][0] if _in(t, higher))
    assert bad == []


def test_every_module_has_a_layer():
    """A module in no layer is checked by nothing: each belongs to exactly one (the package's own __init__ aside)."""
    homeless = sorted(m for m in MODULES if m != "deepmt" and sum(_in(m, layer) for layer in LAYERS) != 1)
    assert homeless == []


def test_only_the_command_line_imports_the_commands_and_only_studies_import_studies():
    bad = [f"{m} imports {t}" for m in MODULES for t in IMPORTS[m][0]
           if (_in(t, ("deepmt.commands", "deepmt.cli")) and not _in(m, ("deepmt.cli", "deepmt.__main__")))
           or (_in(t, ("deepmt.studies",)) and not _in(m, ("deepmt.studies",)))]
    assert bad == []


def test_no_import_cycle():
    try:
        TopologicalSorter({m: IMPORTS[m][0] for m in MODULES}).prepare()
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_no_private_names_across_modules():
    used = {(m, name) for m in MODULES for name in IMPORTS[m][1]}
    assert sorted(used - KNOWN_PRIVATE_IMPORTS) == []


def _long_without_reason(path: Path) -> bool:
    """True when ``path`` has more than :data:`MAX_LINES` lines and its docstring has no sentence beginning
    "Kept in one file:" (at the start of the docstring, of a line, or after a full stop)."""
    text = path.read_text()
    if len(text.splitlines()) <= MAX_LINES:
        return False
    doc = ast.get_docstring(ast.parse(text)) or ""
    return not re.search(r"(?:^|[.!?]\s+|\n\s*)Kept in one file: \S", doc)


def test_no_long_module_without_a_reason():
    """Issue 14: no module above ~600 lines unless its docstring states why it is kept in one file. Known
    exceptions must still be long and unexplained, so that the list shrinks as they are fixed."""
    long = {m for m, p in MODULES.items() if _long_without_reason(p)}
    assert sorted(long - KNOWN_LONG_MODULES) == [], "split these, or say why in a 'Kept in one file: ...' sentence"
    assert sorted(KNOWN_LONG_MODULES - long) == [], "no longer long or unexplained: remove from KNOWN_LONG_MODULES"


def test_the_long_module_rule_can_fail(tmp_path):
    body = "x = 1\n" * MAX_LINES
    cases = {
        "short.py": ('"""Short."""\n', False),
        "long.py": ('"""One concern."""\n' + body, True),
        "mentions.py": ('"""Not every reason counts: the words Kept in one file: mid-sentence."""\n' + body, True),
        "first.py": ('"""Kept in one file: the profiles read best beside the fields they set."""\n' + body, False),
        "later.py": ('"""Settings.\n\nMany fields. Kept in one file: one dataclass per part."""\n' + body, False),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        assert _long_without_reason(tmp_path / name) is expected, name


def test_the_checker_sees_lazy_imports_and_private_access(tmp_path, monkeypatch):
    """The rules above can fail: an engine module that imports the runner inside a function, and a study that
    reads a private helper of metrics through its alias, are both found."""
    engine = tmp_path / "deepmt" / "engine" / "bad.py"
    study = tmp_path / "deepmt" / "studies" / "bad.py"
    for f in (engine, study):
        f.parent.mkdir(parents=True, exist_ok=True)
    engine.write_text("def f():\n    from deepmt.experiment_cache import load_method\n")
    study.write_text("from deepmt import metrics as M\nM._percentiles\nfrom deepmt.models.baselines import _image\n")
    monkeypatch.setitem(MODULES, "deepmt.engine.bad", engine)
    monkeypatch.setitem(MODULES, "deepmt.studies.bad", study)
    assert "deepmt.experiment_cache" in _imports("deepmt.engine.bad")[0]
    assert _imports("deepmt.studies.bad")[1] == {"deepmt.metrics._percentiles", "deepmt.models.baselines._image"}


# --------------------------------------------------------------------------- notebooks -> their study module
NOTEBOOKS = PACKAGE.parent / "notebooks" / "src"
#: each numbered notebook and the one study module it calls (issue 28): what else it needs, the module re-exports
NOTEBOOK_STUDY = {
    "00_benchmark": "deepmt.studies.benchmark",
    "01_finding1_isr_helps": "deepmt.studies.finding1",
    "02_finding2_lesions_vs_attention": "deepmt.studies.finding2",
    "03_training_deepmt_dr": "deepmt.studies.training",
    "04_grading_table": "deepmt.studies.grading_table",
    "05_isr_table": "deepmt.studies.isr_table",
    "06_segmentation_table": "deepmt.studies.segmentation_table",
    "07_ablation_task_aware_loss": "deepmt.studies.ablation_loss",
    "08_ablation_structure": "deepmt.studies.ablation_structure",
    "09_qualitative": "deepmt.studies.qualitative",
    "10_beyond_the_paper": "deepmt.studies.beyond",
    "11_claims": "deepmt.studies.verdicts",
}
#: the most lines a study module may have (the package-wide limit is :data:`MAX_LINES`)
MAX_STUDY_LINES = 450


def _notebook_imports(path: Path) -> set[str]:
    """The deepmt modules a notebook source imports (``from deepmt.studies import X`` counts as module X)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "deepmt"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "deepmt":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in MODULES else node.module)
    return found


def test_every_notebook_imports_only_its_own_study_module():
    sources = {p.stem: p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))}
    assert set(sources) == set(NOTEBOOK_STUDY), "every notebook needs its study module in NOTEBOOK_STUDY (and only they)"
    bad = {nb: sorted(_notebook_imports(p) - {NOTEBOOK_STUDY[nb]}) for nb, p in sources.items()}
    assert {nb: mods for nb, mods in bad.items() if mods} == {}
    assert all(NOTEBOOK_STUDY[nb] in _notebook_imports(p) for nb, p in sources.items())


def test_every_study_module_has_a_layer_and_stays_small():
    """The notebooks' study modules are the top of the package; each module of ``deepmt.studies`` is in the studies'
    layer (a layer of its own: nothing below imports it) and short enough to read in a few screens."""
    studies = [m for m in MODULES if _in(m, ("deepmt.studies",))]
    assert set(NOTEBOOK_STUDY.values()) <= set(studies)
    assert all(_in(m, TOP) for m in studies)
    long = {m: n for m in studies if (n := len(MODULES[m].read_text().splitlines())) > MAX_STUDY_LINES}
    assert long == {}


def test_the_notebook_rule_can_fail(tmp_path):
    nb = tmp_path / "04_grading_table.py"
    nb.write_text("from deepmt.studies import grading_table as T\nfrom deepmt.reporting import save_figure\n"
                  "from deepmt.studies.common import label\n")
    assert _notebook_imports(nb) - {NOTEBOOK_STUDY["04_grading_table"]} == {"deepmt.reporting", "deepmt.studies.common"}
