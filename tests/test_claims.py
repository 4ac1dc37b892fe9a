"""deepmt.claims: verdict rule, claims table, controls turning verdicts into "not testable", markdown."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepmt import claims as C
from deepmt import controls as K
from deepmt.errors import DataError

REGIME = "smudge_match=0.7, x4, all masks"
NOTHING_LEFT = "smudge_match=1.0, x4, all masks"


#: the comparison of C3's judged row (the plain HR grader's map), and of DeepMT-DR's row, reported beside it
C3_PLAIN = f"{C.PLAIN_GRADER_MAP}: map energy inside lesion masks vs the same masks moved"
C3_TRAINED = "DeepMT-DR's map, trained toward the lesions: not evidence for Finding 2"


def passing_controls(regime: str = REGIME) -> list[K.ControlResult]:
    """One passing measurement of every registered control (the negative ones in their own regime)."""
    return [
        K.control_row("learnable", 0.93, 0.91, 0.95, n_seeds=3, regime=regime),
        K.control_row("learnable:grader_hr", 0.92, 0.90, 0.94, n_seeds=3, regime=regime),
        K.control_row("learnable:deepmt_dr_oracle", 0.93, 0.91, 0.95, n_seeds=3, regime=regime),
        K.control_row("gap", 0.12, 0.08, 0.16, n_seeds=3, regime=regime),
        K.control_row("gap:deepmt_dr", 0.10, 0.06, 0.14, n_seeds=3, regime=regime),
        K.control_row("sr_works:srcnn", 1.1, 0.9, 1.3, regime=regime),
        K.control_row("sr_works:edsr", 1.5, 1.2, 1.8, regime=regime),
        K.control_row("sr_works:isr", 2.4, 2.1, 2.7, regime=regime),
        K.control_row("lesion_resolution", 0.2, 0.15, 0.25, regime=regime),
        K.control_row("negative:grading", 0.0, -0.015, 0.015, regime=NOTHING_LEFT),
        K.control_row("negative:identity", 0.0, -0.015, 0.015, regime=NOTHING_LEFT),
    ]


def with_row(rows: list[K.ControlResult], row: K.ControlResult) -> "pd.DataFrame":
    """The controls table of ``rows`` with the row of ``row``'s control replaced by ``row``."""
    return K.controls_table([row if r.id == row.id else r for r in rows])


@pytest.mark.parametrize(
    "effect, lo, hi, min_effect, p, expected",
    [
        (0.05, 0.01, 0.09, 0.0, math.nan, "reproduced"),  # CI above 0
        (0.05, -0.01, 0.11, 0.0, math.nan, "inconclusive"),  # CI holds 0
        (-0.05, -0.09, -0.01, 0.0, math.nan, "not reproduced"),  # significantly the other way
        (0.05, 0.01, 0.09, 0.02, math.nan, "reproduced"),  # clear and large enough
        (0.01, 0.005, 0.015, 0.02, math.nan, "negligible"),  # real but below the minimum: inside the band
        (0.01, 0.005, 0.015, 0.02, 1e-6, "negligible"),  # whatever the p-value
        (0.0, -0.004, 0.004, 0.01, math.nan, "negligible"),
        (-0.01, -0.03, 0.015, 0.02, math.nan, "not reproduced"),  # rules out 0.02, reaches -0.02: not inside the band
        (0.015, 0.005, 0.03, 0.02, math.nan, "inconclusive"),  # real, size uncertain
        (0.0, -0.05, 0.05, 0.01, math.nan, "inconclusive"),
        (0.05, 0.01, 0.09, 0.02, 0.049, "reproduced"),  # the (Holm-adjusted) p-value is below 0.05
        (0.05, 0.01, 0.09, 0.02, 0.05, "inconclusive"),  # the interval says reproduced, the adjusted p does not
        (-0.05, -0.09, -0.01, 0.02, 0.8, "not reproduced"),  # p gates "reproduced" only
        (0.03, math.nan, math.nan, 0.0, math.nan, "inconclusive"),  # no interval
        (math.nan, math.nan, math.nan, 0.0, math.nan, "not measured"),
    ],
)
def test_verdict_rule(effect, lo, hi, min_effect, p, expected):
    assert C.verdict(effect, lo, hi, min_effect, p) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="min_effect"):
        C.verdict(0.1, 0.0, 0.2, -0.1)
    with pytest.raises(ValueError, match="lo > hi"):
        C.verdict(0.1, 0.2, 0.0)


def test_paper_claims_and_claim_rows():
    assert list(C.PAPER_CLAIMS) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    assert all(pc.text and pc.comparison and pc.metrics and pc.controls for pc in C.PAPER_CLAIMS.values())
    primary = {cid: pc.primary for cid, pc in C.PAPER_CLAIMS.items()}
    assert primary == {"C1": "accuracy", "C2": "aupr", "C3": "energy_in_lesions", "C4": "accuracy", "C5": "accuracy",
                       "C6": "psnr_lesion", "C7": "accuracy"}
    assert C.PAPER_CLAIMS["C1"].metrics == ("accuracy", "qwk", "macro_f1")
    assert all(C.unit_of(m) for pc in C.PAPER_CLAIMS.values() for m in pc.metrics)  # every metric has a minimum
    assert all(need.ids() for pc in C.PAPER_CLAIMS.values() for need in pc.controls)  # each need has its controls
    needs = {cid: [str(n) for n in pc.controls] for cid, pc in C.PAPER_CLAIMS.items()}
    assert needs == {
        "C1": ["learnable", "learnable:deepmt_dr_oracle", "gap", "gap:deepmt_dr", "sr_works", "negative:grading"],
        "C2": ["lesion_resolution", "sr_works", "negative:identity"],
        "C3": ["learnable:grader_hr"],
        "C4": ["learnable", "learnable:deepmt_dr_oracle", "gap"],
        "C5": ["gap", "gap:deepmt_dr", "sr_works"],
        "C6": ["sr_works"],
        "C7": ["learnable"],
    }
    assert C.PAPER_CLAIMS["C1"].controls[3] == K.Need("gap", K.DR_PATHWAY) and "fraction" in C.PAPER_CLAIMS["C7"].text
    assert [pc.id for pc in C.PAPER_CLAIMS.values() if pc.primary_comparison] == ["C3"]
    c = C.Claim.from_paper("C1", metric="accuracy", effect=0.05, lo=0.01, hi=0.09, n_seeds=3, evidence="03_x")
    assert c.verdict == "reproduced" and c.text == C.PAPER_CLAIMS["C1"].text
    with pytest.raises(KeyError, match="C9"):
        C.Claim.from_paper("C9", metric="accuracy")
    with pytest.raises(ValueError, match="unknown verdict"):
        C.Claim("C1", "t", "m", "a vs b", verdict="probably")
    assert C.Claim("C1", "t", "m", "a vs b", verdict="not testable (control gap failed)").verdict.startswith("not testable")
    df = C.claims_table([c, C.Claim.from_paper("C6", metric="psnr_lesion")])
    assert list(df.columns) == list(C.COLUMNS)
    assert df["verdict"].tolist() == ["reproduced", "not measured"]
    assert df["effect"].dtype == float


def test_claims_markdown_formats_effect_and_ci():
    df = C.claims_table([C.Claim.from_paper("C4", metric="accuracy", effect=0.031, lo=-0.002, hi=0.064, n_seeds=3, regime=REGIME,
                                            interval="seed t", stage2_fallbacks=1),
                         C.Claim.from_paper("C4", metric="qwk", effect=0.02, lo=0.01, hi=0.03, p_value=0.004, regime=REGIME)])
    md = C.claims_markdown(df)
    assert "+0.031 [-0.002, +0.064]" in md and "inconclusive" in md and "**C4**" in md
    assert md.split("\n")[0].split(" | ")[2] == "regime" and f"| {REGIME} |" in md
    # a primary row: no p-value to adjust; what its interval resamples; stage 2 fell back on one of its seeds
    assert "| 0 | 3 (stage 2 fell back on 1) | seeds (t) | not adjusted: no p-value | inconclusive |" in md
    assert "| qwk | +0.020 [+0.010, +0.030] | 0 |  |  | 0.004 | reproduced |" in md  # a secondary row: its own p


def test_collect_claims_reads_results_and_recomputes_verdicts(tmp_path):
    rows = [
        C.Claim.from_paper("C2", metric="aupr", effect=0.04, lo=0.02, hi=0.06, n_seeds=3, evidence="04_seg"),
        C.Claim.from_paper("C1", metric="accuracy", effect=-0.1, lo=-0.2, hi=-0.05, n_seeds=3),
    ]
    df = C.claims_table(rows)
    df.loc[1, "verdict"] = "reproduced"  # a hand-edited verdict is overridden by the numbers
    df.to_csv(tmp_path / "03_claims.csv", index=False)
    pd.DataFrame({"id": ["C5"], "metric": ["qwk"], "effect": [0.01], "lo": [-0.01], "hi": [0.03]}).to_csv(
        tmp_path / "07_claims.csv", index=False
    )
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "other.csv", index=False)  # not a claims file: ignored
    K.controls_table(passing_controls(regime="")).to_csv(tmp_path / "01_controls.csv", index=False)
    out = C.collect_claims(tmp_path)
    assert out["id"].tolist() == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    v = dict(zip(out["id"], out["verdict"]))
    assert v == {"C1": "not reproduced", "C2": "reproduced", "C3": "not measured", "C4": "not measured",
                 "C5": "secondary (no verdict)", "C6": "not measured", "C7": "not measured"}
    c5 = out[out["id"] == "C5"].iloc[0]
    assert c5["text"] == C.PAPER_CLAIMS["C5"].text and c5["evidence"] == "07_claims.csv" and c5["regime"] == ""
    assert c5["min_effect"] == 0.01 and pd.isna(c5["p_value"])  # the file had neither column: the unit's minimum
    assert out.set_index("id").loc["C6", "metric"] == "psnr_lesion"  # a claim not measured: one row, its primary metric
    assert list(out.columns) == [*C.COLUMNS[:9], "p_holm", *C.COLUMNS[9:]]
    assert len(C.collect_claims(tmp_path, include_unmeasured=False)) == 3
    pd.DataFrame({"id": ["C1"], "metric": ["qwk"]}).to_csv(tmp_path / "09_claims.csv", index=False)
    with pytest.raises(DataError, match="09_claims.csv.*effect"):
        C.collect_claims(tmp_path)
    pd.DataFrame({"id": ["C1"], "metric": ["qwk"], "effect": [0.1], "lo": [0.2], "hi": [0.0]}).to_csv(tmp_path / "09_claims.csv", index=False)
    with pytest.raises(DataError, match=r"09_claims.csv: claim C1 \(qwk\): .*lo > hi"):
        C.collect_claims(tmp_path)


# --------------------------------------------------------------------------- controls before claims
C1_ROW = C.Claim.from_paper("C1", metric="accuracy", effect=0.05, lo=0.01, hi=0.09, n_seeds=3, regime=REGIME)


def _verdict(claim: C.Claim, controls) -> str:
    return C.apply_controls(C.claims_table([claim]), controls)["verdict"].iloc[0]


def test_passing_controls_keep_the_verdict_rule():
    controls = K.controls_table(passing_controls())
    assert _verdict(C1_ROW, controls) == "reproduced"
    c6 = C.Claim.from_paper("C6", metric="psnr_lesion", effect=-1.2, lo=-1.3, hi=-1.1, regime=REGIME)
    assert _verdict(c6, controls) == "not reproduced"
    assert C.not_testable_reason("C1", REGIME, controls) == ""
    assert C.not_testable_reason("X9", REGIME, K.controls_table([])) == ""  # not a paper claim: needs nothing


@pytest.mark.parametrize(
    "row, reason",
    [
        (K.control_row("gap", 0.05, 0.01, 0.09, regime=REGIME), "control gap failed"),  # too small a gap
        (K.control_row("learnable", 0.899, 0.88, 0.92, regime=REGIME), "control learnable failed"),
        (K.control_row("sr_works:edsr", -0.3, -0.5, -0.1, regime=REGIME), "control sr_works:edsr failed"),
        (K.control_row("gap:deepmt_dr", 0.02, -0.02, 0.06, regime=REGIME), "control gap:deepmt_dr failed"),  # C1's grader
        (K.control_row("negative:grading", 0.06, 0.02, 0.10, regime=NOTHING_LEFT), "control negative:grading failed"),  # recovered the unrecoverable
        (K.control_row("gap", regime=REGIME), "control gap not measured"),  # a row without a value
        (K.control_row("gap", 0.12, 0.08, 0.16, regime="smudge_match=0.5, x4, all masks"),
         "control gap measured only in another regime"),
    ],
)
def test_a_failing_or_missing_control_makes_the_claim_not_testable(row, reason):
    controls = with_row(passing_controls(), row)
    assert _verdict(C1_ROW, controls) == f"not testable ({reason})"
    assert C.is_verdict(f"not testable ({reason})")


def test_not_testable_lists_failures_then_missing_and_only_the_needed_controls():
    rows = [r for r in passing_controls() if r.id != "negative:grading"]  # never measured
    rows = [K.control_row("learnable", 0.8, 0.78, 0.82, regime=REGIME) if r.id == "learnable" else r for r in rows]
    controls = K.controls_table(rows)
    assert _verdict(C1_ROW, controls) == "not testable (control learnable failed; control negative:grading not measured)"
    c6 = C.Claim.from_paper("C6", metric="psnr_lesion", effect=0.5, lo=0.2, hi=0.8, regime=REGIME)
    assert _verdict(c6, controls) == "reproduced"  # C6 needs only sr_works
    unmeasured = C.Claim.from_paper("C1", metric="qwk", regime=REGIME)
    assert _verdict(unmeasured, controls) == "not measured"  # nothing to judge: stays not measured
    assert _verdict(C1_ROW, K.controls_table([])) == (
        "not testable (controls learnable, learnable:deepmt_dr_oracle, gap, gap:deepmt_dr, sr_works:srcnn, sr_works:edsr, sr_works:isr, "
        "negative:grading not measured)")
    two_failed = with_row(rows, K.control_row("gap", 0.01, -0.02, 0.04, regime=REGIME))
    assert _verdict(C1_ROW, two_failed) == "not testable (controls learnable, gap failed; control negative:grading not measured)"


def test_negative_control_counts_in_any_regime_but_every_measurement_must_pass():
    rows = passing_controls()
    rows.append(K.control_row("negative:grading", 0.05, 0.01, 0.09, regime="smudge_match=0.95, x4, all masks"))
    assert _verdict(C1_ROW, K.controls_table(rows)) == "not testable (control negative:grading failed)"


def _on(row: K.ControlResult, obj: str) -> K.ControlResult:
    """``row`` as measured on ``obj`` instead of its control's registered object (as a file may say)."""
    import dataclasses

    return dataclasses.replace(row, object=obj)


def test_a_control_measured_on_another_object_than_the_claim_does_not_gate_it():
    """Each claim is gated by its controls on the objects it names (issue 27). The benchmark's gap (on foo_mt) does
    not stand in for the gap of the grader C1 judges, nor foo_mt's learnable for the grader C3 judges; a row of the
    right control but measured on another object counts for nothing, passing or failing; each claim's grading or
    identity negative control gates that claim only."""
    rows = passing_controls()
    without = K.controls_table([r for r in rows if r.id != "gap:deepmt_dr"])
    assert _verdict(C1_ROW, without) == "not testable (control gap:deepmt_dr not measured)"  # gap on foo_mt passed
    on_foo = K.controls_table([_on(r, K.FOO_MT) if r.id == "gap:deepmt_dr" else r for r in rows])
    assert _verdict(C1_ROW, on_foo) == "not testable (control gap:deepmt_dr not measured)"  # passing, on foo_mt
    failing_elsewhere = K.controls_table(rows + [_on(K.control_row("gap:deepmt_dr", 0.01, -0.03, 0.05, regime=REGIME), K.FOO_MT)])
    assert _verdict(C1_ROW, failing_elsewhere) == "reproduced"  # failing, on foo_mt: does not gate C1 either
    c3 = C.Claim.from_paper("C3", metric="energy_in_lesions", effect=0.05, lo=0.04, hi=0.06, regime=REGIME, comparison=C3_PLAIN)
    foo_fails = with_row(rows, K.control_row("learnable", 0.62, 0.58, 0.66, regime=REGIME))
    assert _verdict(c3, foo_fails) == "reproduced"  # foo_mt's learnable is not about the grader C3 judges
    assert _verdict(C1_ROW, foo_fails) == "not testable (control learnable failed)"  # but it is C1's
    grader_fails = with_row(rows, K.control_row("learnable:grader_hr", 0.626, 0.58, 0.67, regime=REGIME))
    assert _verdict(c3, grader_fails) == "not testable (control learnable:grader_hr failed)"
    assert _verdict(C1_ROW, grader_fails) == "reproduced"
    c2 = C.Claim.from_paper("C2", metric="aupr", effect=0.05, lo=0.03, hi=0.07, regime=REGIME)
    identity_fails = with_row(rows, K.control_row("negative:identity", 0.1, 0.05, 0.15, regime=NOTHING_LEFT))
    assert (_verdict(c2, identity_fails), _verdict(C1_ROW, identity_fails)) == (
        "not testable (control negative:identity failed)", "reproduced")
    grading_fails = with_row(rows, K.control_row("negative:grading", 0.1, 0.05, 0.15, regime=NOTHING_LEFT))
    assert (_verdict(c2, grading_fails), _verdict(C1_ROW, grading_fails)) == (
        "reproduced", "not testable (control negative:grading failed)")
    statuses = C.control_statuses("C1", REGIME, on_foo)
    assert statuses["gap:deepmt_dr"] == K.NOT_MEASURED and statuses["gap"] == K.PASS


def test_apply_controls_recomputes_stale_verdicts():
    claims = C.claims_table([C1_ROW])
    claims.loc[0, "verdict"] = "not testable (control gap failed)"  # stale: the controls pass now
    assert C.apply_controls(claims, K.controls_table(passing_controls()))["verdict"].tolist() == ["reproduced"]


def test_collect_claims_applies_the_controls_of_the_same_folder(tmp_path):
    C.claims_table([C1_ROW, C.Claim.from_paper("C3", metric="energy_in_lesions", effect=0.04, lo=0.035, hi=0.045,
                                              regime=REGIME, comparison=C3_PLAIN)]).to_csv(tmp_path / "01_claims.csv", index=False)
    rows = passing_controls()
    K.controls_table([r for r in rows if r.id != "gap"]).to_csv(tmp_path / "01_controls.csv", index=False)
    K.controls_table([K.control_row("gap", 0.02, -0.01, 0.05, regime=REGIME)]).to_csv(tmp_path / "04_controls.csv", index=False)
    out = C.collect_claims(tmp_path).set_index("id")
    assert out.loc["C1", "verdict"] == "not testable (control gap failed)"
    assert out.loc["C3", "verdict"] == "reproduced"  # C3 needs only learnable:grader_hr, which passed
    assert out.loc["C1", "regime"] == REGIME
    given = K.controls_table(passing_controls())
    assert C.collect_claims(tmp_path, controls=given).set_index("id").loc["C1", "verdict"] == "reproduced"


# --------------------------------------------------------------------------- primary metric, minimum effect, Holm
def test_every_unit_states_its_minimum_effect_and_a_row_is_judged_by_the_larger():
    assert all(m.value > 0 and m.reason for m in C.MIN_EFFECTS.values())
    assert {k: v.value for k, v in C.MIN_EFFECTS.items()} == {
        "accuracy": 0.02, "qwk": 0.01, "macro_f1": 0.02, "psnr": 0.1, "ssim": 0.01, "aupr": 0.02, "dice": 0.02,
        "energy_in_lesions": 0.03}
    assert [C.unit_of(m) for m in ("psnr_lesion", "ssim_lesion", "aupr_MA", "dice", "macro_f1", "ece")] == [
        "psnr", "ssim", "aupr", "dice", "macro_f1", None]
    assert C.min_effect("accuracy") == C.min_effect("accuracy", 0.0) == C.min_effect("accuracy", math.nan) == 0.02
    assert C.min_effect("accuracy", 0.05) == 0.05  # a notebook may be stricter, never looser
    with pytest.raises(ValueError, match="no minimum effect is stated for metric 'ece'"):
        C.min_effect("ece")
    with pytest.raises(ValueError, match="min_effect must be >= 0"):
        C.min_effect("qwk", -0.01)


def test_an_effect_below_the_minimum_is_negligible_whatever_its_p_value(tmp_path):
    """C6 +0.05 dB [+0.02, +0.08], p = 0.001, written with min_effect 0 as older notebooks did: clearly above 0, but
    inside the stated 0.1-dB band: negligible (by the old rule, minimum 0, it was reproduced)."""
    row = C.Claim.from_paper("C6", metric="psnr_lesion", effect=0.05, lo=0.02, hi=0.08, p_value=0.001, n_seeds=3, regime=REGIME)
    assert row.verdict == "reproduced" and row.min_effect == 0  # the notebook's own verdict, on its own numbers
    C.claims_table([row]).to_csv(tmp_path / "05_claims.csv", index=False)
    out = C.collect_claims(tmp_path, include_unmeasured=False, controls=K.controls_table(passing_controls()))
    assert out[["min_effect", "p_holm", "verdict"]].values.tolist() == [[0.1, 0.001, "negligible"]]
    assert C.is_verdict("negligible")
    pd.DataFrame({"id": ["C1"], "metric": ["ece"], "effect": [0.1], "lo": [0.0], "hi": [0.2]}).to_csv(
        tmp_path / "09_claims.csv", index=False)
    with pytest.raises(DataError, match="09_claims.csv: claim C1 \\(ece\\): no minimum effect"):
        C.collect_claims(tmp_path)


def test_secondary_rows_carry_no_verdict():
    """Only a claim's primary metric is judged: a secondary row keeps its effect and interval, whatever its numbers or
    controls say, and its verdict column is not a verdict; a claim outside the paper's declares no primary metric."""
    rows = [C.Claim.from_paper("C1", metric=m, effect=0.2, lo=0.1, hi=0.3, regime=REGIME) for m in ("accuracy", "qwk", "aupr_MA")]
    rows.append(C.Claim("X9", "t", "accuracy", "a vs b", effect=0.2, lo=0.1, hi=0.3))
    rows.append(C.Claim.from_paper("C1", metric="qwk", regime=REGIME))  # not measured stays not measured
    for controls in (K.controls_table(passing_controls()), K.controls_table([])):
        out = C.apply_controls(C.claims_table(rows), controls)
        assert out["verdict"].tolist()[1:] == [C.SECONDARY, C.SECONDARY, C.SECONDARY, "not measured"]
        assert out.loc[1, ["effect", "lo", "hi"]].tolist() == [0.2, 0.1, 0.3]
    assert out["verdict"].iloc[0].startswith("not testable") and not C.is_verdict(C.SECONDARY)
    assert [C.is_primary(*k, "a vs b") for k in (("C1", "accuracy"), ("C1", "qwk"), ("C2", "aupr"), ("C2", "aupr_MA"),
                                                 ("X9", "accuracy"))] == [True, False, True, False, False]


def test_c3_is_judged_on_the_plain_hr_graders_map_only():
    """C3's primary comparison is the plain HR grader's map (a grader that never saw a mask): DeepMT-DR's row, whose
    map is trained toward the lesions, and a row that names no map are reported without a verdict and stay out of
    Holm's family, however strong their effect."""
    P = C.Claim.from_paper
    rows = [P("C3", metric="energy_in_lesions", effect=0.04, lo=0.033, hi=0.044, p_value=0.001, regime=REGIME, comparison=C3_TRAINED),
            P("C3", metric="energy_in_lesions", effect=0.003, lo=0.0002, hi=0.006, p_value=0.04, regime=REGIME, comparison=C3_PLAIN),
            P("C3", metric="energy_in_lesions", effect=0.04, lo=0.033, hi=0.044, regime=REGIME)]  # the default comparison
    out = C.apply_controls(C.claims_table(rows), K.controls_table(passing_controls()))
    assert out["verdict"].tolist() == [C.SECONDARY, "negligible", C.SECONDARY]  # the minimum lift, 0.03, judges the plain map
    assert out["p_holm"].notna().tolist() == [False, True, False] and out["p_holm"].iloc[1] == 0.04  # a family of one
    assert C.comparison_label(C3_TRAINED) == "DeepMT-DR's map, trained toward the lesions"
    assert C.comparison_label("no colon here ") == "no colon here" and C.comparison_label(math.nan) == ""


def test_holm_matches_a_hand_computed_oracle():
    """Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04, then running max -> 0.06 for the last;
    capped at 1."""
    np.testing.assert_allclose(C.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    np.testing.assert_allclose(C.holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(C.holm([0.02, 0.02, 0.9]), [0.06, 0.06, 0.9], rtol=1e-12)  # ties: the order kept
    assert C.holm([0.2]).tolist() == [0.2] and C.holm([]).size == 0
    with pytest.raises(ValueError, match="p-values"):
        C.holm([0.1, math.nan])


def test_holm_matches_statsmodels():
    """Where statsmodels is installed (it is not a dependency of this project): its multipletests(method="holm")."""
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.011]
    np.testing.assert_allclose(C.holm(p), multipletests(p, method="holm")[1])


def test_holm_runs_over_the_primary_rows_and_gates_reproduced():
    """The family: every measured primary row (one without a p-value counts in it, never significant, and is not
    adjusted); secondary rows stay outside. A primary row whose interval says reproduced but whose adjusted p is not
    below 0.05 is inconclusive."""
    P = C.Claim.from_paper
    rows = [P("C1", metric="accuracy", effect=0.1, lo=0.05, hi=0.15, p_value=0.02, regime=REGIME),
            P("C4", metric="accuracy", effect=0.1, lo=0.05, hi=0.15, p_value=0.01, regime=REGIME),
            P("C6", metric="psnr_lesion", effect=0.5, lo=0.3, hi=0.7, regime=REGIME),
            P("C1", metric="qwk", effect=0.1, lo=0.05, hi=0.15, p_value=0.001, regime=REGIME),
            P("C5", metric="accuracy", p_value=0.5)]  # not measured: outside the family
    out = C.apply_controls(C.claims_table(rows), K.controls_table(passing_controls()))
    # family of 3 (C1, C4, C6): 0.01 x 3 = 0.03, 0.02 x 2 = 0.04, C6 with no p-value counted as 1
    np.testing.assert_allclose(out["p_holm"].tolist(), [0.04, 0.03, math.nan, math.nan, math.nan], rtol=1e-12)
    assert out["verdict"].tolist() == ["reproduced", "reproduced", "reproduced", C.SECONDARY, "not measured"]
    rows[0] = P("C1", metric="accuracy", effect=0.1, lo=0.05, hi=0.15, p_value=0.03, regime=REGIME)  # 0.03 x 2 = 0.06
    out = C.apply_controls(C.claims_table(rows), K.controls_table(passing_controls()))
    assert out["verdict"].tolist()[:3] == ["inconclusive", "reproduced", "reproduced"]
    assert "| not adjusted: no p-value | reproduced |" in C.claims_markdown(out)  # C6
    assert "| 0.06 (raw 0.03) | inconclusive |" in C.claims_markdown(out)
