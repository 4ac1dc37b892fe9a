"""run_all.sh checks its arguments before anything runs, shows progress lines live, and writes one report per
profile under a banner (issue 29). The scripts run on a copy of the repository's scripts in a temporary folder
(DEEPMT_SKIP_INSTALL=1, as in test_notebooks.py), so the real results/ is never touched."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepmt.config import PROFILES
from deepmt.reporting import PROGRESS_MARKER, progress, render_report, report_banner

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_NAMES = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBERS = ", ".join(name[:2] for name in NOTEBOOK_NAMES)
ALLOWED = ", ".join(PROFILES)


def _copy_scripts(dst: Path) -> None:
    for name in ("run_all.sh", "pyproject.toml"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "scripts", dst / "scripts")


def _env(tmp_path: Path, **extra) -> dict:
    env = dict(os.environ, DEEPMT_VENV=str(Path(sys.prefix)), DEEPMT_CACHE=str(tmp_path / "cache"), DEEPMT_SKIP_INSTALL="1")
    env.pop("DEEPMT_PROFILE", None)
    env.update(extra)
    return env


def _tree(folder: Path) -> dict:
    """Every path under ``folder`` with its modification time and size (what 'untouched' compares)."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def repo_copy(tmp_path):
    """run_all.sh and scripts/ beside the real notebook names (empty files: the checks only read the names) and a
    results/ holding a real report."""
    _copy_scripts(tmp_path)
    (tmp_path / "notebooks").mkdir()
    for name in NOTEBOOK_NAMES:
        (tmp_path / "notebooks" / name).write_text("{}")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "report-quick.html").write_text("<html>a real run</html>")
    (tmp_path / "results" / "01_claims.csv").write_text("claim\n")
    return tmp_path


BAD = {
    "unknown profile": (["--profile", "nonsense"], {}, f"run_all.sh: --profile nonsense: not a profile (one of {ALLOWED})"),
    "profile without value": (["--profile"], {}, f"run_all.sh: --profile needs a value (one of {ALLOWED})"),
    "profile followed by an option": (["--profile", "--only", "01"], {}, f"run_all.sh: --profile needs a value (one of {ALLOWED})"),
    "only without value": (["--only"], {}, f"run_all.sh: --only needs a value: notebook numbers separated by commas (notebooks: {NUMBERS})"),
    "only matching nothing": (["--only", "99"], {}, f"run_all.sh: --only 99: no notebook numbered 99 (notebooks: {NUMBERS})"),
    "only partly matching": (["--only", "01,98,99"], {}, f"run_all.sh: --only 01,98,99: no notebook numbered 98, 99 (notebooks: {NUMBERS})"),
    "unknown DEEPMT_PROFILE": ([], {"DEEPMT_PROFILE": "nonsense"},
                               f"run_all.sh: DEEPMT_PROFILE=nonsense: not a profile (one of {ALLOWED}; or pass --profile)"),
    "jobs": (["-j", "0"], {}, "run_all.sh: -j 0: expected a whole number of worker processes >= 1"),
    "unknown option": (["--profiles", "smoke"], {}, "run_all.sh: unknown option --profiles (see --help)"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_arguments_are_refused_in_one_line_before_anything_runs(repo_copy, case):
    args, env, message = BAD[case]
    before = _tree(repo_copy)
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "run_all.sh", *args], cwd=repo_copy, env=_env(repo_copy, **env), capture_output=True,
                          text=True, timeout=30)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [message] and proc.stdout == ""
    assert seconds < 1.0, f"{case}: refused after {seconds:.2f} s"
    assert _tree(repo_copy) == before  # no results/executed/<profile>/, no report, no cache


def test_help_is_accurate():
    proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and not proc.stderr
    text = proc.stdout
    for option in ("--profile", "--only", "--keep-going", "-j 2", "DEEPMT_PROFILE", "DEEPMT_NOTEBOOK", "exit status 2"):
        assert option in text, option
    assert "results/report-<profile>.html" in text and "results/report.html" not in text
    assert f"({ALLOWED})" in text  # the profiles it names are the code's
    assert f'starting with "{PROGRESS_MARKER}"' in text
    assert not any(line.startswith("#") for line in text.splitlines())


SAMPLE_LOG = """\
Input Notebook:  notebooks/04_grading_table.ipynb
Executing notebook with kernel: deepmt
Executing Cell 3---------------------------------------
quick profile | seeds (0, 1, 2)
[1/8] grader_lr seed 0: trained in 12 s (worker 1)
[2/8] deepmt_dr seed 1: from cache

  [3/8] indented: not the runner's line
see [4/8] mid-line: not the runner's line
>> notebook 04: tables written
>>no space after the marker
[5/8] deepmt_dr seed 2: trained in 95 s (worker 2)
Ending Cell 3------------------------------------------
"""


def test_progress_filter_passes_runner_lines_and_marked_lines_only(capsys):
    progress("from deepmt.reporting.progress")
    printed = capsys.readouterr().out
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "progress_filter.sh")], input=SAMPLE_LOG + printed,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and not proc.stderr
    assert proc.stdout.splitlines() == [
        "    [1/8] grader_lr seed 0: trained in 12 s (worker 1)",
        "    [2/8] deepmt_dr seed 1: from cache",
        "    >> notebook 04: tables written",
        "    [5/8] deepmt_dr seed 2: trained in 95 s (worker 2)",
        "    >> from deepmt.reporting.progress",
    ]
    quiet = subprocess.run(["bash", str(ROOT / "scripts" / "progress_filter.sh")], input="nothing to show\n",
                           capture_output=True, text=True, timeout=30)
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_banner_names_the_profile_the_date_and_the_extent():
    complete = report_banner("quick", True, when="2026-12-01 10:00")
    assert "Profile: quick" in complete and "2026-12-01 10:00" in complete and "complete run" in complete
    partial = report_banner("smoke", False, note="--only 01,04", when="2026-12-01 10:00")
    assert "Profile: smoke" in partial and "partial run" in partial and "(--only 01,04)" in partial
    assert "not results" in partial and "not results" not in complete
    assert "Profile: paper" in report_banner("paper", False) and "partial run" not in complete


def test_report_opens_with_the_banner(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# The notebook's own title"), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "00_t.ipynb")
    out = render_report([tmp_path / "00_t.ipynb"], tmp_path / "report-smoke.html", profile="smoke", complete=False,
                        note="failed: 00_t.ipynb")
    html = out.read_text()
    banner = html.index("Profile: smoke")
    assert banner < html.index("own title")
    assert "partial run" in html[banner:banner + 400] and "failed: 00_t.ipynb" in html


def test_run_shows_progress_live_names_the_notebook_and_reports_per_profile(tmp_path):
    """A one-notebook smoke run (``--only 0``, read as 00): the runner-like and '>> ' lines reach the terminal,
    other output only the log; DEEPMT_NOTEBOOK names the notebook; results/report-smoke.html (banner: partial)
    beside an untouched quick report; a failing timing writer says so in one line, no traceback."""
    if not (Path(sys.prefix) / "bin" / "papermill").exists():
        pytest.skip("papermill is not installed in this environment")
    import nbformat

    _copy_scripts(tmp_path)
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = ''")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(
        "import os\n"
        "print('[1/2] fake seed 0: trained in 1 s (worker 1)', flush=True)\n"
        "print('noise that stays in the log', flush=True)\n"
        "print('>> notebook', os.environ['DEEPMT_NOTEBOOK'], 'profile', profile, flush=True)\n"
        "print('[2/2] fake seed 1: from cache', flush=True)")]
    nb.metadata["kernelspec"] = {"name": "deepmt", "display_name": "deepmt", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "00_progress.ipynb")
    quick = tmp_path / "results" / "report-quick.html"
    quick.parent.mkdir()
    quick.write_text("<html>a real run</html>")
    quick_before = quick.stat().st_mtime_ns
    (tmp_path / "results" / "executed" / "smoke" / "timing.json").mkdir(parents=True)  # the timing writer must fail
    proc = subprocess.run(["bash", "run_all.sh", "--profile", "smoke", "--only", "0"], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert "    [1/2] fake seed 0: trained in 1 s (worker 1)" in out and "    [2/2] fake seed 1: from cache" in out
    assert "    >> notebook 00_progress profile smoke" in out
    assert "noise that stays in the log" not in proc.stdout
    assert "noise that stays in the log" in (tmp_path / "results/executed/smoke/00_progress.log").read_text()
    report = (tmp_path / "results" / "report-smoke.html").read_text()
    assert "Profile: smoke" in report and "partial run" in report and "(--only 00)" in report
    assert quick.stat().st_mtime_ns == quick_before and not (tmp_path / "results" / "report.html").exists()
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("run_all.sh:")]
    assert len(errors) == 1 and errors[0].startswith("run_all.sh: could not record the timings in results/executed/smoke/timing.json: ")
