"""The docs are the repository's own and say what the code does: no reference to files a clone does not have,
links that resolve, and the numbers and names they quote equal the code's."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: text files a user reads or runs: every reference in them must resolve inside the repository
TEXT_FILES = [
    *DOCS,
    *sorted((ROOT / "deepmt").rglob("*.py")),
    *sorted((ROOT / "tests").rglob("*.py")),
    *sorted((ROOT / "notebooks").glob("*.ipynb")),
    *sorted((ROOT / "notebooks" / "src").glob("*.py")),
    *sorted(ROOT.glob("*.sh")),
    *sorted((ROOT / "scripts").glob("*")),
    ROOT / "pyproject.toml",
    ROOT / "environment.yml",
]
#: the sibling folder of internal notes a clone does not have, and its two files (spelled in pieces so that this
#: file does not itself match the pattern it enforces)
OUTSIDE = re.compile("|".join([r"shar" + r"ed/", r"PAP" + r"ER\.md", r"PIL" + r"OT\.md"]))


def test_no_reference_to_files_outside_the_repository():
    """The paper summary and the benchmark's rationale live in docs/ (METHOD.md, BENCHMARK.md); a clone has no
    folder of internal notes beside it, so nothing may send a reader there."""
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in TEXT_FILES if p.is_file()
            for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_relative_links_resolve(doc):
    """Every relative markdown link (a file, optionally with an #anchor) points at a file of the repository."""
    text = doc.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    missing = [t for t in targets if not re.match(r"[a-z]+:|#", t) and not (doc.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc.name}: links to missing files: {missing}"
    assert targets or doc.name != "README.md"


def _section(doc: Path, heading: str) -> str:
    """The text of the ``## heading`` section of ``doc`` (up to the next ``## `` heading)."""
    text = doc.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_layout_lists_every_module_once():
    """docs/LAYOUT.md: one table row per module of the package (paper section | module | notebooks), no module
    missing, none that no longer exists, and every notebook it names exists."""
    rows = [r for r in (ROOT / "docs" / "LAYOUT.md").read_text().splitlines() if r.startswith("| ") and "`deepmt/" in r]
    listed = [m for r in rows for m in re.findall(r"`(deepmt/[\w/]+\.py)`", r)]
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "deepmt").rglob("*.py"))
    assert sorted(set(modules) - set(listed)) == [], "modules missing from docs/LAYOUT.md"
    assert sorted(set(listed) - set(modules)) == [], "docs/LAYOUT.md lists modules that do not exist"
    assert len(listed) == len(set(listed)), "a module is listed twice"
    notebooks = {p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and cells[0], f"expected 'paper section | module | notebooks': {row}"
        named = set(re.findall(r"\b\d\d\b", cells[2]))
        for lo, hi in re.findall(r"\b(\d\d)-(\d\d)\b", cells[2]):
            named |= {f"{n:02d}" for n in range(int(lo), int(hi) + 1)}
        assert named <= notebooks, f"{cells[1]}: no notebook {sorted(named - notebooks)}"


#: the README's sections, in order: what this is (before the first), the commands and their times, the claims, the
#: notebook map, real data, links to the rest
README_SECTIONS = ["The two commands", "What was tested, and what was found", "The notebooks", "Real data", "More"]
#: each generated block: the one file that holds it, and the command (in run_all.sh) that writes it there
GENERATED = {"claims-summary": ("README.md", "python -m deepmt.studies.summary --readme"),
             "results": ("docs/RESULTS.md", "python -m deepmt.studies.summary --readme"),
             "performance": ("docs/PERFORMANCE.md", "python -m deepmt bench --readme")}


def test_readme_is_a_front_page():
    """The README fits about 200 lines, has its sections in the front page's order, and links every page of docs/
    (the rest of what it used to hold lives there)."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 220, f"README.md has {len(text.splitlines())} lines; move detail to docs/"
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == README_SECTIONS, headings
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    linked = set(re.findall(r"\]\((docs/[\w.]+\.md)(?:#[\w-]+)?\)", _section(ROOT / "README.md", "More")))
    assert sorted(set(pages) - linked) == [], "docs pages the README's \"More\" does not link"
    first = _section(ROOT / "README.md", "The two commands")
    assert "./run_all.sh" in first and "./run_tests.sh" in first and "| command | time | measured |" in first


def test_generated_blocks_live_in_one_file_each_and_run_all_writes_them_there():
    """Each generated block is held by exactly one doc (README.md or docs/*.md), the one listed in GENERATED, and
    run_all.sh's command for it names that file."""
    run_all = (ROOT / "run_all.sh").read_text()
    for marker, (home, command) in GENERATED.items():
        holders = [d.relative_to(ROOT).as_posix() for d in DOCS if f"<!-- BEGIN {marker} -->" in d.read_text()
                   or f"<!-- END {marker} -->" in d.read_text()]
        assert holders == [home], f"{marker}: held by {holders}, expected only {home}"
        call = next((line for line in run_all.splitlines() if command in line), "")
        assert re.search(rf"{re.escape(command)} [^|&;]*\b{re.escape(home)}\b", call), f"run_all.sh does not write {home}: {call!r}"


def test_readme_notebook_map_matches_the_notebooks():
    """README "The notebooks": one row per notebook (paper section | notebook | what | claims | study modules),
    and the study modules a row names are those its notebook imports from deepmt.studies (common.py aside)."""
    rows = [r for r in _section(ROOT / "README.md", "The notebooks").splitlines() if r.startswith("| ") and "| `" in r]
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    listed = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5 and cells[0] and cells[2], f"expected 'section | notebook | what | claims | modules': {row}"
        (name,) = re.findall(r"`(\d\d_\w+)`", cells[1])
        listed.append(name)
        source = (ROOT / "notebooks" / "src" / f"{name}.py").read_text()
        imported = set(re.findall(r"from deepmt\.studies import (\w+)", source))
        imported |= set(re.findall(r"from deepmt\.studies\.(\w+) import", source))
        modules = set(re.findall(r"`(\w+)\.py`", cells[4]))
        assert modules == imported - {"common"}, f"{name}: the map names {sorted(modules)}, the notebook imports {sorted(imported)}"
        assert all((ROOT / "deepmt" / "studies" / f"{m}.py").is_file() for m in modules)
    assert listed == names, "the README's notebook map must list every notebook once, in order"


def test_contracts_list_every_environment_variable():
    """docs/CONTRACTS.md names every DEEPMT_* variable the package and its scripts read, and no other."""
    sources = [*(ROOT / "deepmt").rglob("*.py"), *(ROOT / "scripts").glob("*"), *ROOT.glob("*.sh")]
    used = {v for p in sources for v in re.findall(r"\bDEEPMT_[A-Z_]+\b", p.read_text())}
    documented = set(re.findall(r"`(DEEPMT_[A-Z_]+)`", _section(ROOT / "docs" / "CONTRACTS.md", "Environment variables")))
    assert used == documented, f"read but not documented: {sorted(used - documented)}; documented, never read: {sorted(documented - used)}"


def test_usage_commands_run(tmp_path, monkeypatch, capsys):
    """docs/USAGE.md "Using the package", run as written (smoke sizes, one epoch, no bench): every command exists,
    and the files one command writes are the ones the next command is told to read."""
    import glob
    import shlex

    from deepmt.cli import main

    block = _section(ROOT / "docs" / "USAGE.md", "Using the package").split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.startswith("python -m deepmt ")]
    assert [c[3] for c in commands] == ["data", "train", "evaluate", "predict", "bench"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    fast = {"data": ["--n", "2", "--splits", "test"],
            # one epoch of one stage: a run that trains no epoch at all is refused (it would be an untrained final.pt)
            "train": ["--set=train.epochs_stage1a=1"] + [f"--set=train.epochs_{s}=0" for s in ("stage1b", "stage2")]}
    for argv in commands[:-1]:
        argv = ["smoke" if a == "quick" else a for a in argv[3:]]
        argv = [f for a in argv for f in (sorted(glob.glob(a)) if "*" in a else [a])]
        assert main(argv + fast.get(argv[0], [])) == 0, f"docs/USAGE.md command failed: {' '.join(argv)}\n{capsys.readouterr().err}"
    assert (tmp_path / "predictions").is_dir() and any((tmp_path / "predictions").glob("*.json"))


def test_data_synth_help_states_the_real_size_limits(tmp_path, capsys):
    """`data synth --help` gives the HR sizes the generator accepts: its lower bound works, one step (the scale)
    below it and above the upper bound are refused with one line."""
    from deepmt.cli import main

    with pytest.raises(SystemExit):
        main(["data", "synth", "--help"])
    lo, hi = map(int, re.search(r"HR side in px,\s+(\d+)\.\.(\d+)", capsys.readouterr().out).groups())
    synth = ["data", "synth", "--profile", "smoke", "--n", "1", "--splits", "test", "--scale", "4", "--hr-size"]
    assert main([*synth[:2], str(tmp_path / "lo"), *synth[2:], str(lo)]) == 0
    for bad in (lo - 4, hi + 4):
        assert main([*synth[:2], str(tmp_path / f"bad{bad}"), *synth[2:], str(bad)]) == 1
        assert f"--hr-size {bad}: must be in {lo}..{hi}" in capsys.readouterr().err


def test_method_profile_table_matches_the_config():
    """docs/METHOD.md's table of profiles (sizes, widths, epochs) is what get_config builds."""
    from deepmt.config import PROFILES, get_config

    rows = _section(ROOT / "docs" / "METHOD.md", "Training in stages").splitlines()
    for name in PROFILES:
        cells = [c.strip() for c in next(r for r in rows if r.startswith(f"| `{name}` |")).strip("|").split("|")]
        cfg = get_config(name)
        d, m, t = cfg.data, cfg.model, cfg.train
        crops = f" (crops {d.crop_size})" if d.crop_size else ""
        if d.nongrading_crop_size:
            crops += f" (crops {d.nongrading_crop_size} / {d.nongrading_crop_size // d.scale} for the stages that do not grade)"
        blocks = f"{m.isr.n_resblocks} block" + ("s" if m.isr.n_resblocks > 1 else "")
        assert cells[1:6] == [f"{d.hr_size} / {d.lr_size}{crops}", f"{m.isr.channels} ch x {blocks}",
                              f"base {m.seg.base_channels}, {m.seg.levels} levels", cells[4],
                              f"{t.epochs_stage1a} / {t.epochs_stage1b} / {t.epochs_stage2} / {t.epochs_single}"
                              + _own_epochs(t.epochs_by_method)], name
        assert cells[4].split(",")[0].split()[0] == str(m.grader.width), name
        spp = tuple(m.grader.spp_levels)  # named where a profile leaves the paper's levels
        assert ("SPP levels" in cells[4]) == (spp != (1, 2, 4)) and (spp == (1, 2, 4) or f"SPP levels {spp}" in cells[4]), name


def _own_epochs(mapping: dict) -> str:
    """The baselines with their own epochs as METHOD.md's profile table writes them: `` (`foo_mt` 72, ...)``."""
    return " (" + ", ".join(f"`{k}` {v}" for k, v in mapping.items()) + ")" if mapping else ""


def test_method_states_the_default_loss_weights():
    """The authors' weights quoted in docs/METHOD.md are the defaults of LossConfig."""
    from deepmt.config import LossConfig

    block = _section(ROOT / "docs" / "METHOD.md", "The losses and their weights").split("```\n", 1)[1].split("```", 1)[0]
    quoted = re.findall(r"\+ ([\d.e-]+) *\*? *(TV|MSE\(seg|MSE\(visualization|MSE\(vis|grading loss)", block)
    loss = LossConfig()
    assert [(term, float(w)) for w, term in quoted] == [
        ("TV", loss.tv), ("MSE(seg", loss.seg_aware), ("MSE(vis", loss.cls_aware), ("grading loss", loss.grading_feedback),
        ("MSE(visualization", loss.vis_consistency)]
