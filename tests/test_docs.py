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
OUTSIDE = re.compile(r"shared/|PAPER\.md|PILOT\.md")


def test_no_reference_to_files_outside_the_repository():
    """The paper summary and the benchmark's rationale live in docs/ (METHOD.md, BENCHMARK.md); a clone has no
    ../shared/ folder, so nothing may send a reader there."""
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in TEXT_FILES if p.is_file() and p != Path(__file__).resolve()
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
