"""deepmt.studies.summary: docs/RESULTS.md's results block puts the controls above the claims, with regime and verdict
rule; the README's claim summary has one row per claim and equals what the committed results/ give."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from deepmt import controls as K
from deepmt.claims import PLAIN_GRADER_MAP, Claim, claims_table, collect_claims, not_testable_reason
from deepmt.errors import DataError
from deepmt.results_io import update_sections
from deepmt.studies import summary as S

ROOT = Path(__file__).resolve().parent.parent

MAIN = "smudge_match=0.7, x4, all masks"
#: C3's judged comparison (the plain HR grader's map) and DeepMT-DR's, reported beside it without a verdict
C3_PLAIN = f"{PLAIN_GRADER_MAP}: map energy vs random placements"
C3_TRAINED = "DeepMT-DR's map, trained toward the lesions: not evidence for Finding 2"


def test_readme_shows_controls_above_claims_with_regime_and_not_testable(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    claims_table([
        Claim.from_paper("C1", metric="accuracy", effect=0.1, lo=0.05, hi=0.15, n_seeds=3, evidence="01", regime=MAIN),
        Claim.from_paper("C3", metric="energy_in_lesions", effect=0.04, lo=0.035, hi=0.045, n_seeds=3, evidence="02", regime=MAIN,
                         comparison=C3_PLAIN),
    ]).to_csv(res / "01_claims.csv", index=False)
    K.controls_table([K.control_row("learnable", 0.93, 0.91, 0.95, n_seeds=3, evidence="01", regime=MAIN),
                      K.control_row("learnable:grader_hr", 0.92, 0.90, 0.94, n_seeds=3, evidence="02", regime=MAIN),
                      K.control_row("gap", 0.05, 0.01, 0.09, n_seeds=3, evidence="01", regime=MAIN)]).to_csv(res / "01_controls.csv", index=False)
    pd.DataFrame({"label": ["A"], "input": ["LR"], "n_seeds": [3], "accuracy [95% CI]": ["0.5 [0.4, 0.6]"]}).to_csv(res / "01_grading_by_input.csv", index=False)
    text = S.results_markdown(res, {"command": "./run_all.sh", "profile": "quick", "total_s": 60, "machine": "box"})
    i_controls, i_claims = text.index("### Controls"), text.index("### Claims of the paper")
    assert text.index("Made by") < i_controls < i_claims < text.index("### Finding 1")  # the rest is kept, after them
    controls_part, claims_part = text[i_controls:i_claims], text[i_claims:text.index("### Finding 1")]
    assert "| **learnable**" in controls_part and "| ≥ 0.08 accuracy, CI above 0 | 0.050 [0.010, 0.090] | 3 |" in controls_part
    assert "| fail |" in controls_part and "| not measured |" in controls_part and "before the measurements" in controls_part
    assert f"| **gap:deepmt_dr** | {K.DR_PATHWAY} | ≥ 0.08 accuracy, CI above 0 | gap's bar" in controls_part  # the registry
    assert f"| {K.TWIN_IDENTITY} | CI not above 0 AUC, below +0.02 | the SR image must not tell MAs from smudges" in controls_part
    assert f"The claims come from regime `{MAIN}` (C1, C3)." in claims_part
    assert ("not testable (control gap failed; controls learnable:deepmt_dr_oracle, gap:deepmt_dr, sr_works:srcnn, sr_works:edsr, sr_works:isr, "
            "negative:grading not measured)") in claims_part
    assert "| 0.03 | 3 |  | not adjusted: no p-value | reproduced | 02 |" in claims_part  # C3 needs only learnable:grader_hr
    assert "*not testable (control … failed / not measured)*" in claims_part and "*not measured*" in claims_part
    assert "*secondary (no verdict)*" in claims_part and "*negligible* when the whole 95% interval" in claims_part
    assert "Holm-adjusted p" in claims_part and "*not adjusted: no p-value*" in claims_part
    assert "| energy_in_lesions | 0.03 | a 1.1x energy lift" in claims_part  # the minimum effects, with their reasons
    assert "0.5 [0.4, 0.6]" in text


def test_readme_reads_the_timings_from_results_timing(tmp_path):
    """The 04 table's training seconds come from results/timing/04_train_seconds.csv (never from the result table),
    the provenance line from results/timing/run_all.json as run_all.sh records it (deepmt.run_all_timing)."""
    import json

    from deepmt.config import get_config

    res = tmp_path / "results"
    (res / "timing").mkdir(parents=True)
    pd.DataFrame({"method": ["grader_lr", "deepmt_dr"], "label": ["Grader on LR", "DeepMT-DR"], "input": ["LR", "SR"],
                  "n_seeds": [3, 3], "accuracy": ["0.500 ± 0.010", "0.700 ± 0.020"]}).to_csv(res / "04_grading_table.csv", index=False)
    text = S.results_markdown(res)
    assert "| DeepMT-DR | SR | 3 | 0.700 ± 0.020 |" in text and "train s" not in text  # no timing file: no column
    pd.DataFrame({"method": ["deepmt_dr", "grader_lr"], "label": ["DeepMT-DR", "Grader on LR"], "n_seeds": [3, 3],
                  "train_s": [1234.4, 56.0]}).to_csv(res / "timing" / "04_train_seconds.csv", index=False)
    text = S.results_markdown(res)
    assert "train s" in text and "| DeepMT-DR | SR | 3 | 0.700 ± 0.020 | 1234 |" in text and "| 0.500 ± 0.010 | 56 |" in text
    run_all = {"command": "./run_all.sh -j 2", "profile": "smoke", "jobs": 2, "total_s": 90.0, "cache_at_start": "empty",
               "date": "2026-11-30", "machine": "Test CPU (2 usable cores), torch 2", "notebooks": []}
    (res / "timing" / "run_all.json").write_text(json.dumps(run_all))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "04_grading_table.png").write_bytes(b"")
    readme, doc = tmp_path / "README.md", tmp_path / "docs" / "RESULTS.md"
    readme.write_text("# x\n<!-- BEGIN claims-summary -->\nold\n<!-- END claims-summary -->\n")
    doc.parent.mkdir()
    doc.write_text("# y\n<!-- BEGIN results -->\nold\n<!-- END results -->\n")
    assert S.main(["--readme", str(readme), str(doc), "--results", str(res), "--timing", str(res / "timing" / "run_all.json")]) == 0
    d = get_config("smoke").data
    assert (f"Made by `./run_all.sh -j 2` (profile `smoke`) on Test CPU (2 usable cores), torch 2, 2026-11-30: 1.5 min wall time "
            f"for all notebooks, from an empty cache. Synthetic benchmark: HR {d.hr_size} px, LR {d.lr_size} px (x{d.scale}), "
            f"{d.n_train}/{d.n_val}/{d.n_test} train/val/test images.") in doc.read_text()
    assert "![04_grading_table](../figures/04_grading_table.png)" in doc.read_text()  # linked from docs/
    assert "Made by" not in readme.read_text() and "| **C1** " in readme.read_text()  # the README gets the claim summary
    readme.write_text("# x\n")  # a block that no named file holds is an error, and nothing is written
    with pytest.raises(DataError, match="none holds the 'claims-summary' block"):
        S.main(["--readme", str(readme), str(doc), "--results", str(res)])
    assert "Made by" in doc.read_text()


def test_readme_shows_the_dial_the_few_labels_regime_and_convergence(tmp_path):
    """Notebook 01's dial sweep and few-labels tables and notebook 03's convergence, per trained part, when present."""
    res = tmp_path / "results"
    res.mkdir()
    assert "### The LR-information dial" not in S.results_markdown(res)  # absent tables: no section
    pd.DataFrame({"smudge_match": [0.0, 1.0], "regime": ["a", "b"], "n_seeds": [1, 1],
                  "gap [95% CI]": ["+0.240 [+0.2, +0.3]", "+0.150 [+0.1, +0.2]"], "gain [95% CI]": ["-0.077 [-0.1, 0.0]", "+0.000 [-0.1, +0.1]"],
                  "share_recovered": [-0.32, 0.0], "ma_aupr_gain [95% CI]": ["-0.039 [-0.1, 0.0]", "+0.001 [-0.01, +0.01]"]}
                 ).to_csv(res / "01_dial_sweep.csv", index=False)
    pd.DataFrame({"label_fraction": [1.0, 0.1], "regime": ["a", "c"], "n_seeds": [3, 3], "gap [95% CI]": ["x", "y"],
                  "gain [95% CI]": ["+0.010 [-0.02, +0.04]", "+0.050 [+0.01, +0.09]"], "share_recovered": [0.06, 0.4],
                  "ma_aupr_gain [95% CI]": ["z", "w"]}).to_csv(res / "01_few_labels.csv", index=False)
    pd.DataFrame({"quantity": ["gain"], "metric": ["accuracy"], "few_labels": [0.05], "all_labels": [0.01],
                  "change [95% CI]": ["+0.040 [+0.001, +0.080]"], "p_value": [0.04]}).to_csv(res / "01_few_labels_change.csv", index=False)
    pd.DataFrame({"method": ["foo_mt", "foo_mt"], "label": ["Seg+grade multi-task on bicubic"] * 2, "seed": [0, 1],
                  "stage": ["single"] * 2, "metric": ["qwk"] * 2, "selects": [True, True], "epochs": [36, 36],
                  "share": [0.13, 0.02], "levelled": ["no", "yes"], "rule": ["r"] * 2}).to_csv(res / "03_convergence.csv", index=False)
    pd.DataFrame({"smudge_match": [0.8, 0.8, 1.0, 1.0], "method": ["deepmt_dr", "foo_mt_hr"] * 2,
                  "label": ["DeepMT-DR", "Seg+grade multi-task on HR"] * 2, "n_seeds": [3] * 4,
                  "auc [95% CI]": ["0.635 [0.619, 0.650]", "0.997 [0.996, 0.998]", "0.533 [0.517, 0.549]", "0.995 [0.994, 0.996]"]}
                 ).to_csv(res / "01_ma_vs_smudge.csv", index=False)
    text = S.results_markdown(res)
    dial = text[text.index("### The LR-information dial"):text.index("### Few labels")]
    assert "| label | smudge_match 0.8 | smudge_match 1 |" in dial  # the identity table, wide
    assert "| DeepMT-DR | 0.635 [0.619, 0.650] | 0.533 [0.517, 0.549] |" in dial
    assert "| 1.000 | 1 | +0.150 [+0.1, +0.2] | +0.000 [-0.1, +0.1] | 0.000 | +0.001 [-0.01, +0.01] |" in dial
    few = text[text.index("### Few labels"):text.index("### Convergence")]
    assert "| 0.100 | 3 | y | +0.050 [+0.01, +0.09] | 0.400 | w |" in few and "+0.040 [+0.001, +0.080]" in few
    conv = text[text.index("### Convergence"):]
    assert "| Seg+grade multi-task on bicubic | single | qwk | 36 | 1 of 2 | seed 0 (13%) |" in conv and "10%" in conv
    assert "### Lesion channels" not in text  # no 03_lesion_channels.csv: no section
    pd.DataFrame({"method": ["unet_hr"] * 2, "label": ["U-Net on HR"] * 2, "seed": [0, 1], "stage": ["single"] * 2,
                  "lesion": ["SE", "SE"], "kept": [0.60, 0.02], "peak": [0.62, 0.55], "collapsed": ["no", "yes"]}
                 ).to_csv(res / "03_lesion_channels.csv", index=False)
    channels = S.results_markdown(res).split("### Lesion channels")[1]
    assert "| U-Net on HR | single | 1 of 2 | seed 1 SE 0.02 / 0.55 |" in channels and "below 50%" in channels
    assert "### Loss check" not in channels
    ci = {f"{l} [95% CI]": ["0.1 [0.0, 0.2]", "0.9 [0.8, 1.0]"] for l in ("MA", "HE", "EX", "SE", "mean")}
    pd.DataFrame({"label": ["U-Net on HR", "U-Net on HR, Dice skips empty masks"], "seg_dice_empty": ["include", "skip"],
                  "kept_all": ["0 of 3", "3 of 3"], **ci}).to_csv(res / "06_dice_empty.csv", index=False)
    check = S.results_markdown(res).split("### Loss check: Dice on empty masks (notebook 06)")[1]
    assert "| U-Net on HR, Dice skips empty masks | skip | 3 of 3 | 0.9 [0.8, 1.0] |" in check


def _block(path: Path, marker: str) -> str:
    text = path.read_text()
    return text.split(f"<!-- BEGIN {marker} -->\n", 1)[1].split(f"<!-- END {marker} -->", 1)[0]


def test_readme_claim_summary_is_what_the_committed_results_give(tmp_path):
    """README.md's claim summary is exactly what claims_summary_markdown makes of the committed results/ (rerun
    `python -m deepmt.studies.summary --readme README.md docs/RESULTS.md` after a results change); and it does
    depend on them: a changed effect changes it."""
    expected = S.claims_summary_markdown(ROOT / "results")
    assert _block(ROOT / "README.md", S.CLAIMS_SUMMARY) == expected.strip("\n") + "\n"
    rows = [r for r in expected.splitlines() if r.startswith("| **C")]
    assert [r.split("**")[1] for r in rows] == [f"C{i}" for i in range(1, 8)]  # one row per claim, C1..C7
    res = tmp_path / "results"
    shutil.copytree(ROOT / "results", res, ignore=shutil.ignore_patterns("bench", "timing", "executed", "*.html"))
    c4 = pd.read_csv(res / "04_claims.csv")
    c4.loc[c4.metric == "accuracy", ["effect", "lo", "hi"]] = [0.2, 0.1, 0.3]
    c4.to_csv(res / "04_claims.csv", index=False)
    changed = S.claims_summary_markdown(res)
    assert changed != expected and "accuracy +0.200 [+0.100, +0.300], 3 seeds, minimum 0.02 |" in changed


def test_claim_summary_picks_the_headline_row_and_shows_each_controls_status(tmp_path):
    """Primary row: the claim's primary metric (PaperClaim.primary) even when another row comes first; the other
    rows beside it (a secondary metric carries no verdict); the controls each claim needs with their status in its regime, agreeing with
    the verdict's reason (not testable exactly when one did not pass)."""
    res = tmp_path / "results"
    res.mkdir()
    claims_table([
        Claim.from_paper("C1", metric="qwk", effect=-0.1, lo=-0.15, hi=-0.05, n_seeds=3, evidence="01", regime=MAIN),
        Claim.from_paper("C1", metric="accuracy", effect=0.1, lo=0.05, hi=0.15, n_seeds=3, evidence="01", regime=MAIN),
        Claim.from_paper("C3", metric="energy_in_lesions", effect=0.04, lo=0.035, hi=0.045, n_seeds=1, evidence="02", regime=MAIN,
                         comparison=C3_TRAINED),
        Claim.from_paper("C3", metric="energy_in_lesions", effect=0.01, lo=0.005, hi=0.015, n_seeds=1, evidence="02", regime=MAIN,
                         comparison=C3_PLAIN),
        Claim.from_paper("C6", metric="psnr_lesion", effect=-0.5, lo=-0.6, hi=-0.4, n_seeds=3, evidence="05", regime=MAIN),
    ]).to_csv(res / "01_claims.csv", index=False)
    K.controls_table([K.control_row("learnable", 0.93, 0.91, 0.95, n_seeds=3, evidence="01", regime=MAIN),
                      K.control_row("learnable:grader_hr", 0.626, 0.58, 0.67, n_seeds=3, evidence="02", regime=MAIN),
                      K.control_row("learnable:deepmt_dr_oracle", 0.93, 0.91, 0.95, n_seeds=3, evidence="08", regime=MAIN),
                      K.control_row("gap", 0.12, 0.08, 0.16, n_seeds=3, evidence="01", regime=MAIN),
                      K.control_row("gap:deepmt_dr", -0.04, -0.08, 0.0, n_seeds=3, evidence="01", regime=MAIN),
                      K.control_row("sr_works:srcnn", 1.0, 0.5, 1.5, n_seeds=3, evidence="05", regime=MAIN),
                      K.control_row("sr_works:edsr", -0.2, -0.4, 0.1, n_seeds=3, evidence="05", regime=MAIN),
                      K.control_row("sr_works:isr", 3.0, 2.5, 3.5, n_seeds=3, evidence="05", regime="elsewhere"),
                      K.control_row("negative:grading", 0.0, -0.01, 0.01, n_seeds=3, evidence="01", regime="smudge_match=1"),
                      ]).to_csv(res / "01_controls.csv", index=False)
    rows = {r.split("**")[1]: [c.strip() for c in r.strip("|").split("|")]
            for r in S.claims_summary_markdown(res).splitlines() if r.startswith("| **C")}
    assert list(rows) == [f"C{i}" for i in range(1, 8)]
    c1 = rows["C1"]
    assert c1[2] == "accuracy +0.100 [+0.050, +0.150], 3 seeds, minimum 0.02" and c1[4] == "qwk: secondary (no verdict)"
    assert c1[5] == "learnable pass, gap **fail** (deepmt_dr), sr_works **fail** (edsr), negative:grading pass"  # negative: any regime
    assert c1[3].startswith("not testable (controls gap:deepmt_dr, sr_works:edsr failed")
    # C3: the plain grader's row is primary though DeepMT-DR's comes first; its control is on that grader
    assert rows["C3"][2:6] == ["energy_in_lesions +0.010 [+0.005, +0.015], 1 seed, minimum 0.03",
                               "not testable (control learnable:grader_hr failed)",
                               "energy_in_lesions: secondary (no verdict)", "learnable:grader_hr **fail**"]
    assert rows["C2"][2:4] == ["not measured", "not measured"]
    assert rows["C2"][5] == "lesion_resolution, sr_works, negative:identity"  # not measured: no regime to judge them in
    assert rows["C6"][5] == "sr_works **fail** (edsr)"  # the worst status, naming its members
    assert rows["C6"][3] == "not testable (control sr_works:edsr failed; control sr_works:isr measured only in another regime)"
    controls = K.collect_controls(res)
    for r in collect_claims(res, controls=controls).itertuples():
        statuses = S.control_statuses(r.id, r.regime, controls)
        assert (not_testable_reason(r.id, r.regime, controls) != "") == any(s != K.PASS for s in statuses.values()), r.id


def test_a_claim_judged_in_two_regimes_keeps_its_main_regime_row_as_headline():
    """C4 measured with few labels (notebook 01) before its main-regime row (notebook 04) in the claims table's order:
    the headline is the row in the regime most rows come from; a claim measured only elsewhere keeps its own row."""
    few = "smudge_match=0.7, x4, labels on 10% of training images"
    claims = claims_table([
        Claim.from_paper("C1", metric="accuracy", effect=0.01, lo=-0.1, hi=0.1, n_seeds=3, regime=MAIN),
        Claim.from_paper("C4", metric="accuracy", effect=-0.06, lo=-0.12, hi=0.0, n_seeds=3, regime=few),
        Claim.from_paper("C4", metric="qwk", effect=-0.04, lo=-0.08, hi=0.0, n_seeds=3, regime=MAIN),
        Claim.from_paper("C4", metric="accuracy", effect=-0.13, lo=-0.2, hi=-0.08, n_seeds=3, regime=MAIN),
        Claim.from_paper("C7", metric="accuracy", effect=-0.02, lo=-0.1, hi=0.1, n_seeds=3, regime=few),
    ])
    got = S.primary_rows(claims).set_index("id")
    assert (got.loc["C4", "regime"], got.loc["C4", "metric"], got.loc["C4", "effect"]) == (MAIN, "accuracy", -0.13)
    assert got.loc["C7", "regime"] == few and got.loc["C1", "regime"] == MAIN


def test_each_block_goes_to_the_files_that_hold_it(tmp_path):
    """update_sections writes a block into every named file that holds it and leaves the others alone; a block
    no file holds, or a malformed one anywhere, is an error before anything is written. The performance block
    (bench --readme) follows the same rule: README.md without it is left alone."""
    from deepmt.bench.performance_page import update_docs

    readme, perf = tmp_path / "README.md", tmp_path / "PERFORMANCE.md"
    readme.write_text("# front page\n")
    perf.write_text("# p\n<!-- BEGIN performance -->\ntyped\n<!-- END performance -->\n")
    assert update_sections([readme, perf], {"performance": "new"}) == {str(readme): {}, str(perf): {"performance": True}}
    assert readme.read_text() == "# front page\n" and "new" in perf.read_text()
    with pytest.raises(DataError, match="none holds the 'performance' block"):
        update_sections([readme], {"performance": "x"})
    perf.write_text("# p\n<!-- BEGIN performance -->\ntyped\n<!-- END performance -->\n")
    readme.write_text("<!-- BEGIN performance -->\n")  # malformed: checked before PERFORMANCE.md is written
    with pytest.raises(DataError, match="END performance"):
        update_sections([perf, readme], {"performance": "new"})
    assert "typed" in perf.read_text()
    readme.write_text("# front page\n")
    assert update_docs([readme, perf], tmp_path / "no-bench", tmp_path / "no-timing.json") == {str(readme): None, str(perf): True}
    assert "bench --readme docs/PERFORMANCE.md" in perf.read_text() and readme.read_text() == "# front page\n"
    with pytest.raises(DataError, match="README.md: none holds"):
        update_docs([readme], tmp_path / "no-bench", tmp_path / "no-timing.json")
