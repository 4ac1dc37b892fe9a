"""deepmt.controls: the pre-registered controls, their rules at the boundaries, collecting and showing them."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from deepmt import controls as K
from deepmt.errors import DataError


def test_registry_holds_the_preregistered_thresholds():
    """The thresholds stated in issue 11 before any measurement, and those issue 27 added before theirs, each on its
    object; this test fails if one is loosened or moved to another object."""
    got = {cid: (c.object, c.metric, c.unit, c.rule, c.threshold, c.same_regime) for cid, c in K.CONTROLS.items()}
    assert got == {
        "learnable": (K.FOO_MT, "accuracy", "accuracy", "at_least", 0.90, True),
        "learnable:grader_hr": (K.GRADER_HR, "accuracy", "accuracy", "at_least", 0.90, True),
        "learnable:deepmt_dr_oracle": (K.DR_ORACLE, "accuracy", "accuracy", "at_least", 0.90, False),
        "gap": (K.FOO_MT, "accuracy", "accuracy", "diff_at_least", 0.08, True),
        "gap:deepmt_dr": (K.DR_PATHWAY, "accuracy", "accuracy", "diff_at_least", 0.08, True),
        "sr_works:srcnn": ("srcnn (SR baseline)", "psnr", "dB", "ci_above", 0.0, True),
        "sr_works:edsr": ("edsr (EDSR-style SR baseline)", "psnr", "dB", "ci_above", 0.0, True),
        "sr_works:isr": ("isr (single-task ISR)", "psnr", "dB", "diff_at_least", 2.0, True),
        "lesion_resolution": ("U-Net (lesion segmentation only)", "aupr_MA", "AUPR", "ci_above", 0.0, True),
        "negative:grading": (K.TWIN_GRADING, "accuracy", "accuracy", "ci_holds", 0.0, False),
        "negative:identity": (K.TWIN_IDENTITY, "ma_smudge_auc", "AUC", "ci_holds", 0.0, False),
    }
    assert all(c.reason and c.text for c in K.CONTROLS.values())  # every threshold says why
    assert K.members("sr_works") == ["sr_works:srcnn", "sr_works:edsr", "sr_works:isr"]
    assert K.members("gap") == ["gap", "gap:deepmt_dr"] and K.members("negative") == ["negative:grading", "negative:identity"]
    with pytest.raises(KeyError, match="sr_work"):
        K.members("sr_work")
    assert [K.CONTROLS[c].requirement() for c in ("learnable", "gap", "sr_works:srcnn", "negative:identity")] == [
        "≥ 0.9 accuracy", "≥ 0.08 accuracy, CI above 0", "CI above 0 dB", "CI not above 0 AUC, below +0.02"]
    # a negative control must be able to fail: each asks its interval to exclude the minimum effect it guards
    assert {c: K.CONTROLS[c].margin for c in K.members("negative")} == {"negative:grading": 0.02, "negative:identity": 0.02}
    assert "negative" not in K.CONTROLS and "negative" in K.RETIRED


def test_a_need_takes_the_members_of_its_family_on_its_object():
    assert K.Need("gap", K.FOO_MT).ids() == ["gap"] and K.Need("gap", K.DR_PATHWAY).ids() == ["gap:deepmt_dr"]
    assert K.Need("gap").ids() == ["gap", "gap:deepmt_dr"]  # no object: every member, each on its own
    assert K.Need("learnable", K.GRADER_HR).ids() == ["learnable:grader_hr"]
    assert [str(n) for n in (K.Need("sr_works"), K.Need("gap", K.FOO_MT), K.Need("negative", K.TWIN_IDENTITY))] == [
        "sr_works", "gap", "negative:identity"]
    with pytest.raises(KeyError, match="no member registered on 'grader_hr"):
        K.Need("gap", K.GRADER_HR).ids()


@pytest.mark.parametrize(
    "rule, t, value, lo, hi, expected",
    [
        ("at_least", 0.9, 0.9, math.nan, math.nan, "pass"),  # equality passes; no CI needed
        ("at_least", 0.9, 0.8999, 0.85, 0.95, "fail"),
        ("at_least", 0.9, 0.8999999999999999, 0.85, 0.95, "pass"),  # compared as the CSV keeps it (%.6g)
        ("diff_at_least", 0.08, 0.08, 0.001, 0.16, "pass"),  # equality passes, CI above 0
        ("diff_at_least", 0.08, 0.0799, 0.03, 0.13, "fail"),
        ("diff_at_least", 0.08, 0.1, 0.0, 0.2, "fail"),  # CI touching 0 does not exclude it
        ("diff_at_least", 0.08, 0.1, -0.01, 0.21, "fail"),
        ("diff_at_least", 2.0, 2.0, 1.5, 2.5, "pass"),
        ("diff_at_least", 0.08, 0.1, math.nan, math.nan, "not measured"),  # the rule needs the CI
        ("ci_above", 0.0, 0.3, 0.0, 0.6, "fail"),  # strictly above
        ("ci_above", 0.0, 0.3, 1e-5, 0.6, "pass"),
        ("ci_above", 0.0, -0.3, -0.6, -0.1, "fail"),
        ("ci_holds", 0.0, 0.02, 0.0, 0.04, "pass"),  # holds 0 at its edge
        ("ci_holds", 0.0, 0.0, -0.03, 0.03, "pass"),
        ("ci_holds", 0.0, -0.05, -0.08, -0.02, "pass"),  # below 0: nothing recovered either
        ("ci_holds", 0.0, 0.05, 1e-5, 0.1, "fail"),  # a recovered effect
        ("ci_holds", 0.0, 0.05, math.nan, math.nan, "not measured"),
        ("at_least", 0.9, math.nan, math.nan, math.nan, "not measured"),
    ],
)
def test_rules_at_their_boundaries(rule, t, value, lo, hi, expected):
    assert K.check(rule, t, value, lo, hi) == expected


@pytest.mark.parametrize(
    "value, lo, hi, expected",
    [
        (0.0, -0.015, 0.015, "pass"),  # nothing gained, and a gain of 0.02 is ruled out
        (0.0, -0.03, 0.02, "fail"),  # the interval reaches the margin: a gain of 0.02 is not ruled out
        (-0.008, -0.538, 0.522, "fail"),  # holds 0 only because it is wide: could not have failed
        (0.01, 0.001, 0.019, "fail"),  # narrow, but above 0: a recovered effect
        (-0.05, -0.08, -0.02, "pass"),
    ],
)
def test_a_negative_control_with_a_margin_passes_only_where_it_could_have_failed(value, lo, hi, expected):
    assert K.check("ci_holds", 0.0, value, lo, hi, margin=0.02) == expected
    row = K.control_row("negative:grading", value, lo, hi, n_seeds=3)
    assert row.status == expected  # the registry's margin is applied


def test_check_rejects_bad_input():
    with pytest.raises(ValueError, match="lo > hi"):
        K.check("ci_above", 0.0, 0.1, 0.2, 0.0)
    with pytest.raises(ValueError, match="unknown control rule"):
        K.check("roughly", 0.0, 0.1)


def test_control_row_takes_rule_and_threshold_from_the_registry():
    r = K.control_row("gap", 0.12, 0.05, 0.19, n_seeds=3, evidence="01_x", regime="r")
    assert (r.threshold, r.rule, r.unit, r.status, r.regime) == (0.08, "diff_at_least", "accuracy", "pass", "r")
    assert K.control_row("gap", 0.06, 0.01, 0.11).status == "fail"
    assert K.control_row("negative:grading").status == "not measured"
    assert (r.object, K.control_row("gap:deepmt_dr").object) == (K.FOO_MT, K.DR_PATHWAY)
    with pytest.raises(KeyError, match="sr_works'"):
        K.control_row("sr_works", 1.0, 0.5, 1.5)  # a family: measure each member
    df = K.controls_table([r])
    assert list(df.columns) == list(K.COLUMNS) and df["value"].dtype == float


def test_collect_controls_round_trip_recomputes_from_the_registry(tmp_path):
    rows = [K.control_row("learnable", 0.9, 0.88, 0.92, n_seeds=3, evidence="01_x", regime="r"),
            K.control_row("sr_works:isr", 1.5, 1.2, 1.8, n_seeds=3, evidence="05_x", regime="r")]
    df = K.controls_table(rows)
    df.to_csv(tmp_path / "01_controls.csv", index=False, float_format="%.6g")
    back = K.collect_controls(tmp_path, include_unmeasured=False)
    pd.testing.assert_frame_equal(back, df)  # the CSV keeps every number and the pass/fail
    assert back["status"].tolist() == ["pass", "fail"]
    # a hand-edited pass or a loosened threshold in the file changes nothing
    df.loc[1, ["status", "threshold"]] = ["pass", 1.0]
    df.to_csv(tmp_path / "01_controls.csv", index=False)
    back = K.collect_controls(tmp_path, include_unmeasured=False)
    assert back.loc[1, "status"] == "fail" and back.loc[1, "threshold"] == 2.0
    # the collected table the last notebook writes is never read back; unmeasured controls are listed
    K.controls_table([K.control_row("gap", 0.5, 0.4, 0.6, regime="r")]).to_csv(tmp_path / K.COLLECTED, index=False)
    full = K.collect_controls(tmp_path)
    assert full["id"].tolist() == list(K.CONTROLS)  # registry order
    assert full.set_index("id").loc["gap", "status"] == "not measured"
    # a minimal file: only the required columns (evidence from the file name, regime empty, the registered object)
    pd.DataFrame({"id": ["negative:grading"], "value": [0.0], "lo": [-0.01], "hi": [0.01]}).to_csv(tmp_path / "00_controls.csv", index=False)
    neg = K.collect_controls(tmp_path).set_index("id").loc["negative:grading"]
    assert (neg["status"], neg["evidence"], neg["regime"], neg["n_seeds"], neg["object"]) == (
        "pass", "00_controls.csv", "", 0, K.TWIN_GRADING)


def test_rejudge_rewrites_only_what_todays_registry_changes(tmp_path, monkeypatch):
    """A change of a control's rule, threshold or margin reaches a notebook's table without training: the row gets
    the registry's rule, threshold and status, every other byte stays, a table already judged by today's registry
    is left untouched, and the collected table the last notebook writes is never rewritten."""
    rows = [K.control_row("learnable", 0.95, 0.93, 0.97, n_seeds=3, evidence="01_x", regime="r"),
            K.control_row("negative:grading", 0.0, -0.01, 0.015, n_seeds=3, evidence="01_x", regime="r1")]
    (tmp_path / "01_controls.csv").write_text(K.controls_table(rows).to_csv(index=False, float_format="%.6g"))
    K.controls_table(rows[:1]).to_csv(tmp_path / K.COLLECTED, index=False)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert K.rejudge_tables(tmp_path) == []
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
    # a tightened margin: the negative control's interval [-0.01, 0.015] no longer excludes a gain of the margin
    monkeypatch.setitem(K.CONTROLS, "negative:grading", dataclasses.replace(K.CONTROLS["negative:grading"], margin=0.01))
    assert K.rejudge_tables(tmp_path) == [tmp_path / "01_controls.csv"]
    after = (tmp_path / "01_controls.csv").read_text().splitlines()
    old = before["01_controls.csv"].splitlines()
    assert [i for i, (a, b) in enumerate(zip(old, after)) if a != b] == [2] and after[2] == old[2].replace(",pass,", ",fail,")
    assert (tmp_path / K.COLLECTED).read_text() == before[K.COLLECTED]
    # a raised threshold reaches the file's threshold column too
    monkeypatch.setitem(K.CONTROLS, "learnable", dataclasses.replace(K.CONTROLS["learnable"], threshold=0.96))
    K.rejudge_tables(tmp_path)
    back = pd.read_csv(tmp_path / "01_controls.csv").set_index("id")
    assert (back.loc["learnable", "threshold"], back.loc["learnable", "status"]) == (0.96, "fail")


def test_rejudge_names_the_bad_file(tmp_path):
    pd.DataFrame({"id": ["gap"], "value": [0.1], "lo": [0.2], "hi": [0.0]}).to_csv(tmp_path / "02_controls.csv", index=False)
    with pytest.raises(DataError, match="02_controls.csv: control 'gap': .*lo > hi"):
        K.rejudge_tables(tmp_path)


def test_committed_controls_tables_are_judged_by_todays_registry(tmp_path):
    """Every committed results/*controls*.csv carries the status main's registry gives its numbers (the statuses'
    counterpart of tests/test_stale_tables.py): a rule, threshold or margin changed without
    ``python -m deepmt.studies.summary --rejudge`` fails here. No training."""
    import shutil

    from deepmt.utils import repo_root

    for path in (repo_root() / "results").glob("*controls*.csv"):
        shutil.copy(path, tmp_path / path.name)
    changed = K.rejudge_tables(tmp_path)
    assert not changed, (f"{[p.name for p in changed]}: statuses are not what deepmt/controls.py gives their numbers; "
                         "run python -m deepmt.studies.summary --rejudge, then notebook 11 (./run_all.sh --only 11)")


@pytest.mark.parametrize(
    "other, fragment",
    [
        (pd.DataFrame({"id": ["learnabel"], "value": [0.9], "lo": [0.8], "hi": [1.0]}), "02_controls.csv: unknown control 'learnabel'"),
        (pd.DataFrame({"id": ["learnable"], "value": [0.9], "lo": [0.8], "hi": [1.0], "regime": ["r"]}),
         r"02_controls.csv: control 'learnable' on 'foo_mt \(lesion-supervised seg\+grade net\)' in regime 'r' is also "
         "measured in 01_controls.csv"),
        (pd.DataFrame({"id": ["gap"], "value": [0.1], "lo": [0.2], "hi": [0.0]}), "02_controls.csv: control 'gap': .*lo > hi"),
        (pd.DataFrame({"id": ["gap"], "value": [0.1]}), r"02_controls.csv: controls table lacks columns \['lo', 'hi'\]"),
    ],
)
def test_collect_controls_names_the_bad_file(tmp_path, other, fragment):
    K.controls_table([K.control_row("learnable", 0.9, 0.88, 0.92, regime="r")]).to_csv(tmp_path / "01_controls.csv", index=False)
    other.to_csv(tmp_path / "02_controls.csv", index=False)
    with pytest.raises(DataError, match=fragment):
        K.collect_controls(tmp_path)


def test_old_files_load_each_row_on_its_controls_object_and_retired_controls_are_skipped(tmp_path):
    """results/01_controls.csv as committed before issue 27: no object column, and the retired pixel MA AUPR
    ``negative`` control. It loads; every row is on its control's registered object (the ids kept their meaning),
    the retired row is dropped, and the controls it lacks are listed as not measured."""
    old = ("id,text,metric,unit,rule,threshold,value,lo,hi,n_seeds,status,regime,evidence\n"
           "learnable,t,accuracy,accuracy,at_least,0.9,0.94,0.917778,0.961139,3,pass,\"synthetic, smudge_match=0.8, x4, all masks\",01\n"
           "gap,t,accuracy,accuracy,diff_at_least,0.08,0.0988889,0.0555556,0.143333,3,pass,\"synthetic, smudge_match=0.8, x4, all masks\",01\n"
           "negative,t,aupr_MA,AUPR,ci_holds,0,0.0895018,0.081551,0.0979039,3,fail,\"synthetic, smudge_match=1, x4, all masks\",01\n")
    (tmp_path / "01_controls.csv").write_text(old)
    df = K.collect_controls(tmp_path)
    assert df["id"].tolist() == list(K.CONTROLS) and "negative" not in set(df["id"])
    got = df.set_index("id")
    assert got.loc["learnable", ["object", "status"]].tolist() == [K.FOO_MT, "pass"]
    assert got.loc["gap", ["object", "status"]].tolist() == [K.FOO_MT, "pass"]
    assert got.loc["gap:deepmt_dr", ["object", "status"]].tolist() == [K.DR_PATHWAY, "not measured"]
    # a file with the column: an empty cell is the registered object, another object is kept as written
    rows = pd.DataFrame({"id": ["gap:deepmt_dr", "learnable:grader_hr"], "object": [K.FOO_MT, None],
                         "value": [0.1, 0.95], "lo": [0.05, 0.9], "hi": [0.15, 0.98], "regime": ["r", "r"]})
    rows.to_csv(tmp_path / "02_controls.csv", index=False)
    got = K.collect_controls(tmp_path)
    other = got[got["id"] == "gap:deepmt_dr"]
    assert other["object"].tolist() == [K.DR_PATHWAY, K.FOO_MT]  # its own object, not measured, listed first
    assert other["status"].tolist() == ["not measured", "pass"]
    assert got.set_index("id").loc["learnable:grader_hr", "object"] == K.GRADER_HR
    md = K.controls_markdown(got)
    assert f"| {K.FOO_MT} (not {K.DR_PATHWAY}: gates nothing) |" in md
    # one control on one object in one regime has one source; on two objects it may have two
    rows.assign(object=[K.DR_PATHWAY, None]).iloc[:1].to_csv(tmp_path / "03_controls.csv", index=False)
    assert len(K.collect_controls(tmp_path, include_unmeasured=False)) == 5
    rows.iloc[:1].to_csv(tmp_path / "04_controls.csv", index=False)
    with pytest.raises(DataError, match="04_controls.csv: control 'gap:deepmt_dr' on 'foo_mt .* also measured in 02_controls.csv"):
        K.collect_controls(tmp_path)


def test_controls_markdown_shows_object_requirement_measurement_and_result():
    md = K.controls_markdown([K.control_row("learnable", 0.75, 0.7, 0.8, n_seeds=3, regime="r", evidence="01_x"),
                              K.control_row("negative:identity")])
    lines = md.strip().split("\n")
    assert lines[0] == "| control | object | required | measured [CI] | seeds | regime | result | evidence |"
    assert f"| {K.FOO_MT} | ≥ 0.9 accuracy | 0.750 [0.700, 0.800] | 3 | r | fail | 01_x |" in lines[2]
    assert lines[3].endswith(f"| {K.TWIN_IDENTITY} | CI not above 0 AUC, below +0.02 | n/a |  |  | not measured |  |")


def test_regime_of_names_the_dial_the_scale_and_the_masks():
    from deepmt.config import get_config
    from deepmt.controls import regime_of

    assert regime_of(get_config("smoke", {"data.synth.smudge_match": 0.8})) == "synthetic, smudge_match=0.8, x4, all masks"
    r = regime_of(get_config("smoke", {"data.scale": 8, "data.mask_fraction": 0.1, "data.synth.smudge_match": 1.0}))
    assert r == "synthetic, smudge_match=1, x8, masks on 10% of training images"
    assert regime_of(get_config("smoke", {"data.dataset": "ddr", "data.root": "/x"})) == "ddr, x4, all masks"
    few = get_config("smoke", {"data.label_fraction": 0.17})
    assert regime_of(few) == "synthetic, smudge_match=0.8, x4, labels on 17% of training images"
    both = few.replace({"data.mask_fraction": 0.5})
    assert regime_of(both) == "synthetic, smudge_match=0.8, x4, masks on 50% of training images, labels on 17% of training images"
