"""deepmt.claims: verdict rule, claims table, controls turning verdicts into "not testable", markdown."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from deepmt import claims as C
from deepmt import controls as K
from deepmt.errors import DataError

REGIME = "smudge_match=0.7, x4, all masks"
NOTHING_LEFT = "smudge_match=1.0, x4, all masks"


def passing_controls(regime: str = REGIME) -> list[K.ControlResult]:
    """One passing measurement of every registered control (the negative one in its own regime)."""
    return [
        K.control_row("learnable", 0.93, 0.91, 0.95, n_seeds=3, regime=regime),
        K.control_row("gap", 0.12, 0.08, 0.16, n_seeds=3, regime=regime),
        K.control_row("sr_works:srcnn", 1.1, 0.9, 1.3, regime=regime),
        K.control_row("sr_works:edsr", 1.5, 1.2, 1.8, regime=regime),
        K.control_row("sr_works:isr", 2.4, 2.1, 2.7, regime=regime),
        K.control_row("lesion_resolution", 0.2, 0.15, 0.25, regime=regime),
        K.control_row("negative", 0.01, -0.02, 0.04, regime=NOTHING_LEFT),
    ]


def with_row(rows: list[K.ControlResult], row: K.ControlResult) -> "pd.DataFrame":
    """The controls table of ``rows`` with the row of ``row``'s control replaced by ``row``."""
    return K.controls_table([row if r.id == row.id else r for r in rows])


@pytest.mark.parametrize(
    "effect, lo, hi, min_effect, expected",
    [
        (0.05, 0.01, 0.09, 0.0, "reproduced"),  # CI above 0
        (0.05, -0.01, 0.11, 0.0, "inconclusive"),  # CI holds 0
        (-0.05, -0.09, -0.01, 0.0, "not reproduced"),  # significantly the other way
        (0.05, 0.01, 0.09, 0.02, "reproduced"),  # clear and large enough
        (0.01, 0.005, 0.015, 0.02, "not reproduced"),  # real but negligible: CI below min_effect
        (0.015, 0.005, 0.03, 0.02, "inconclusive"),  # real, size uncertain
        (0.0, -0.004, 0.004, 0.01, "not reproduced"),  # rules out an effect that matters
        (0.0, -0.05, 0.05, 0.01, "inconclusive"),
        (0.03, math.nan, math.nan, 0.0, "inconclusive"),  # no interval
        (math.nan, math.nan, math.nan, 0.0, "not measured"),
    ],
)
def test_verdict_rule(effect, lo, hi, min_effect, expected):
    assert C.verdict(effect, lo, hi, min_effect) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="min_effect"):
        C.verdict(0.1, 0.0, 0.2, -0.1)
    with pytest.raises(ValueError, match="lo > hi"):
        C.verdict(0.1, 0.2, 0.0)


def test_paper_claims_and_claim_rows():
    assert list(C.PAPER_CLAIMS) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    assert all(pc.text and pc.comparison and pc.metrics and pc.controls for pc in C.PAPER_CLAIMS.values())
    assert all(K.members(f) for pc in C.PAPER_CLAIMS.values() for f in pc.controls)  # every family is registered
    assert C.PAPER_CLAIMS["C1"].controls == ("learnable", "gap", "sr_works", "negative")
    assert C.PAPER_CLAIMS["C7"].controls == ("learnable",) and "fraction" in C.PAPER_CLAIMS["C7"].text
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
    df = C.claims_table([C.Claim.from_paper("C4", metric="qwk", effect=0.031, lo=-0.002, hi=0.064, n_seeds=3, regime=REGIME)])
    md = C.claims_markdown(df)
    assert "+0.031 [-0.002, +0.064]" in md and "inconclusive" in md and "**C4**" in md
    assert md.split("\n")[0].split(" | ")[2] == "regime" and f"| {REGIME} |" in md


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
    assert v == {"C1": "not reproduced", "C2": "reproduced", "C3": "not measured", "C4": "not measured", "C5": "inconclusive",
                 "C6": "not measured", "C7": "not measured"}
    c5 = out[out["id"] == "C5"].iloc[0]
    assert c5["text"] == C.PAPER_CLAIMS["C5"].text and c5["evidence"] == "07_claims.csv" and c5["regime"] == ""
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
        (K.control_row("negative", 0.06, 0.02, 0.10, regime=NOTHING_LEFT), "control negative failed"),  # recovered the unrecoverable
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
    rows = [r for r in passing_controls() if r.id != "negative"]  # never measured
    rows = [K.control_row("learnable", 0.8, 0.78, 0.82, regime=REGIME) if r.id == "learnable" else r for r in rows]
    controls = K.controls_table(rows)
    assert _verdict(C1_ROW, controls) == "not testable (control learnable failed; control negative not measured)"
    c6 = C.Claim.from_paper("C6", metric="psnr_lesion", effect=0.5, lo=0.2, hi=0.8, regime=REGIME)
    assert _verdict(c6, controls) == "reproduced"  # C6 needs only sr_works
    unmeasured = C.Claim.from_paper("C1", metric="qwk", regime=REGIME)
    assert _verdict(unmeasured, controls) == "not measured"  # nothing to judge: stays not measured
    assert _verdict(C1_ROW, K.controls_table([])) == (
        "not testable (controls learnable, gap, sr_works:srcnn, sr_works:edsr, sr_works:isr, negative not measured)")
    two_failed = with_row(rows, K.control_row("gap", 0.01, -0.02, 0.04, regime=REGIME))
    assert _verdict(C1_ROW, two_failed) == "not testable (controls learnable, gap failed; control negative not measured)"


def test_negative_control_counts_in_any_regime_but_every_measurement_must_pass():
    rows = passing_controls()
    rows.append(K.control_row("negative", 0.05, 0.01, 0.09, regime="smudge_match=0.95, x4, all masks"))
    assert _verdict(C1_ROW, K.controls_table(rows)) == "not testable (control negative failed)"


def test_apply_controls_recomputes_stale_verdicts():
    claims = C.claims_table([C1_ROW])
    claims.loc[0, "verdict"] = "not testable (control gap failed)"  # stale: the controls pass now
    assert C.apply_controls(claims, K.controls_table(passing_controls()))["verdict"].tolist() == ["reproduced"]


def test_collect_claims_applies_the_controls_of_the_same_folder(tmp_path):
    C.claims_table([C1_ROW, C.Claim.from_paper("C3", metric="energy_in_lesions", effect=0.01, lo=0.005, hi=0.015,
                                              regime=REGIME)]).to_csv(tmp_path / "01_claims.csv", index=False)
    rows = passing_controls()
    K.controls_table([r for r in rows if r.id != "gap"]).to_csv(tmp_path / "01_controls.csv", index=False)
    K.controls_table([K.control_row("gap", 0.02, -0.01, 0.05, regime=REGIME)]).to_csv(tmp_path / "04_controls.csv", index=False)
    out = C.collect_claims(tmp_path).set_index("metric")
    assert out.loc["accuracy", "verdict"] == "not testable (control gap failed)"
    assert out.loc["energy_in_lesions", "verdict"] == "reproduced"  # C3 needs only learnable, which passed
    assert out.loc["accuracy", "regime"] == REGIME
    given = K.controls_table(passing_controls())
    assert C.collect_claims(tmp_path, controls=given).set_index("metric").loc["accuracy", "verdict"] == "reproduced"
