"""Notebooks 01 and 04-06 on fixture datasets in the DDR and IDRiD layouts, run as a user with real data runs them.

A real release keeps its grading and lesion-segmentation parts under one root; the notebooks get that root as
``data_root`` and the format as ``dataset`` (papermill parameters, as ``run_all.sh`` passes ``profile``): the
grading format for 04 and 05, the segmentation format (the part with lesion masks) for 06, and both for 01,
whose grading and segmentation findings each need their own part. Each layout shares one experiment cache
across its notebooks, as ``run_all.sh`` does. The fixtures are tiny (2-5 training images): splits smaller
than the batch size, the case that used to crash the CPU fast path (tests/test_fast_path.py), and the
notebooks must still fill their tables with numbers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from fixtures_real import write_ddr, write_ddr_seg, write_idrid, write_idrid_seg

ROOT = Path(__file__).resolve().parent.parent

#: layout -> (writers of the full release root, {format of a part: (validation, test) images it holds})
LAYOUTS = {
    # DDR: grading 6 train, 3 valid (one ungradable each), 2 test; segmentation 2 train, 2 valid, 1 test
    "ddr": ((write_ddr, write_ddr_seg), {"ddr": (2, 2), "ddr-seg": (2, 1)}),
    # IDRiD: grading 6 train + 3 test, segmentation 3 train + 2 test; validation carved from train (stratified)
    "idrid": ((write_idrid, write_idrid_seg), {"idrid": (1, 3), "idrid-seg": (1, 2)}),
}


def _finite(table: str, column: str, rows: dict | None = None):
    """A check that ``results/<table>.csv`` holds finite numbers in ``column`` (for the ``rows`` selected)."""
    def check(results: Path) -> None:
        df = pd.read_csv(results / f"{table}.csv")
        for k, v in (rows or {}).items():
            df = df[df[k] == v]
        assert len(df) and df[column].map(math.isfinite).all(), (table, df[["method", column]])
    return check


#: (notebook, part of the root it reads, what its table must hold), in run order: 01 reuses 04's models,
#: and 01 on the segmentation part reuses 06's. 01 runs on both parts: grading from one, lesions from the other.
RUNS = [
    ("04_grading_table", "grading", _finite("04_grading_table", "accuracy_mean")),
    ("01_finding1_isr_helps", "grading", _finite("01_grading_by_input", "accuracy")),
    ("05_isr_table", "grading", _finite("05_isr_table", "psnr")),
    ("06_segmentation_table", "seg", _finite("06_segmentation_table", "mean", {"metric": "aupr"})),
    ("01_finding1_isr_helps", "seg", _finite("01_segmentation_by_input", "aupr")),
]

def _trained_runs(cache: Path) -> dict[str, list[dict]]:
    """The experiment cache's finished runs (``result.json``), by dataset format."""
    runs: dict[str, list[dict]] = {}
    for path in sorted((cache / "runs").glob("*/result.json")):
        record = json.loads(path.read_text())
        runs.setdefault(record["config"]["data"]["dataset"], []).append(record)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_notebooks_run_on_a_real_layout(layout, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    writers, parts = LAYOUTS[layout]
    grading_fmt, seg_fmt = parts
    data_root = tmp_path / layout
    for write in writers:
        write(data_root)
    results, cache = tmp_path / "results", tmp_path / "cache"
    for name, value in {"DEEPMT_CACHE": cache, "DEEPMT_FIGURES": tmp_path / "figures", "DEEPMT_RESULTS": results,
                        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}.items():
        monkeypatch.setenv(name, str(value))  # the kernel inherits them: this checkout, a fresh cache
    for nb, part, check in RUNS:
        fmt = grading_fmt if part == "grading" else seg_fmt
        papermill.execute_notebook(
            ROOT / "notebooks" / f"{nb}.ipynb", tmp_path / f"{nb}-{fmt}.ipynb", kernel_name="deepmt",
            cwd=str(ROOT / "notebooks"), progress_bar=False,
            parameters={"profile": "smoke", "dataset": fmt, "data_root": str(data_root)},
        )
        check(results)  # numbers from the real data, not n/a everywhere
    # every model was trained and measured on the fixture's own splits (ungradable images excluded)
    runs = _trained_runs(cache)
    assert sorted(runs) == sorted(parts), sorted(runs)
    for fmt, (n_val, n_test) in parts.items():
        for r in runs[fmt]:
            assert r["config"]["data"]["root"] == str(data_root), r["config"]["data"]
            assert (r["val_metrics"]["n_images"], r["metrics"]["n_images"]) == (n_val, n_test), (r["method"], fmt)
