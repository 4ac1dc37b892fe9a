"""deepmt.results_io: reading results tables back, markdown tables and the README section update."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from deepmt import results_io as R
from deepmt.errors import DataError


def test_to_markdown_escapes_and_aligns():
    df = pd.DataFrame({"name": ["a|b", "c"], "value": [0.12345, math.nan], "n": [3, 4]})
    md = R.to_markdown(df)
    lines = md.strip().split("\n")
    assert lines[0] == "| name | value | n |"
    assert lines[1] == "|---|---:|---:|"
    assert lines[2] == "| a\\|b | 0.123 | 3 |"
    assert lines[3] == "| c |  | 4 |"


README = "# x\n\n## Results\n\n<!-- BEGIN results -->\nold text\n<!-- END results -->\n\nafter\n"


def test_update_readme_section_replaces_only_the_section(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(README)
    assert R.update_readme_section(path, "results", "| a |\n|---|\n| 1 |\n")
    text = path.read_text()
    assert text == "# x\n\n## Results\n\n<!-- BEGIN results -->\n| a |\n|---|\n| 1 |\n<!-- END results -->\n\nafter\n"
    assert not R.update_readme_section(path, "results", "| a |\n|---|\n| 1 |")  # unchanged: not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary file left behind


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("# x\nno markers\n", "occurs 0 times"),
        ("<!-- BEGIN results -->\n<!-- BEGIN results -->\n<!-- END results -->\n", "occurs 2 times"),
        ("<!-- END results -->\n<!-- BEGIN results -->\n", "comes before"),
    ],
)
def test_update_readme_section_errors(tmp_path, text, fragment):
    path = tmp_path / "README.md"
    path.write_text(text)
    with pytest.raises(DataError, match=fragment):
        R.update_readme_section(path, "results", "new")
    assert path.read_text() == text
    with pytest.raises(DataError, match="no such file"):
        R.update_readme_section(tmp_path / "missing.md", "results", "new")


def test_read_result_tables_names_the_bad_file(tmp_path):
    pd.DataFrame({"id": ["a"], "value": [1.0]}).to_csv(tmp_path / "02_x.csv", index=False)
    pd.DataFrame({"id": ["b"], "value": [2.0]}).to_csv(tmp_path / "01_x.csv", index=False)
    pd.DataFrame({"id": ["c"], "value": [3.0]}).to_csv(tmp_path / "11_x.csv", index=False)
    frames = R.read_result_tables(tmp_path, "*_x.csv", required=("id", "value"), what="x table", exclude=("11_x.csv",))
    assert [f["source"].iloc[0] for f in frames] == ["01_x.csv", "02_x.csv"]  # sorted, excluded file skipped
    assert [f["id"].iloc[0] for f in frames] == ["b", "a"]
    pd.DataFrame({"id": ["07"], "value": [1.0]}).to_csv(tmp_path / "04_x.csv", index=False)
    frames = R.read_result_tables(tmp_path, "04_x.csv", required=("id",), what="x table", text_columns=("id", "absent"))
    assert frames[0]["id"].tolist() == ["07"]  # as written, not the number 7
    with pytest.raises(DataError, match=r"01_x.csv: x table lacks columns \['lo'\]"):
        R.read_result_tables(tmp_path, "*_x.csv", required=("id", "lo"), what="x table")
    (tmp_path / "03_x.csv").write_bytes(b"\xff\xfe\x00broken")
    with pytest.raises(DataError, match="03_x.csv: cannot read x table"):
        R.read_result_tables(tmp_path, "*_x.csv", required=("id",), what="x table")
    assert R.text_or(math.nan, "d") == "d" and R.text_or("t", "d") == "t"
