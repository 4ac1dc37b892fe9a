"""deepmt.claims: verdict rule, claims table, markdown and the README section update."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from deepmt import claims as C
from deepmt.errors import DataError


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
    assert list(C.PAPER_CLAIMS) == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert all(pc.text and pc.comparison and pc.metrics for pc in C.PAPER_CLAIMS.values())
    c = C.Claim.from_paper("C1", metric="accuracy", effect=0.05, lo=0.01, hi=0.09, n_seeds=3, evidence="03_x")
    assert c.verdict == "reproduced" and c.text == C.PAPER_CLAIMS["C1"].text
    with pytest.raises(KeyError, match="C9"):
        C.Claim.from_paper("C9", metric="accuracy")
    with pytest.raises(ValueError, match="unknown verdict"):
        C.Claim("C1", "t", "m", "a vs b", verdict="probably")
    df = C.claims_table([c, C.Claim.from_paper("C6", metric="psnr_lesion")])
    assert list(df.columns) == list(C.COLUMNS)
    assert df["verdict"].tolist() == ["reproduced", "not measured"]
    assert df["effect"].dtype == float


def test_claims_markdown_formats_effect_and_ci():
    df = C.claims_table([C.Claim.from_paper("C4", metric="qwk", effect=0.031, lo=-0.002, hi=0.064, n_seeds=3)])
    md = C.claims_markdown(df)
    assert "+0.031 [-0.002, +0.064]" in md and "inconclusive" in md and "**C4**" in md


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
    out = C.collect_claims(tmp_path)
    assert out["id"].tolist() == ["C1", "C2", "C3", "C4", "C5", "C6"]
    v = dict(zip(out["id"], out["verdict"]))
    assert v == {"C1": "not reproduced", "C2": "reproduced", "C3": "not measured", "C4": "not measured", "C5": "inconclusive", "C6": "not measured"}
    c5 = out[out["id"] == "C5"].iloc[0]
    assert c5["text"] == C.PAPER_CLAIMS["C5"].text and c5["evidence"] == "07_claims.csv"
    assert len(C.collect_claims(tmp_path, include_unmeasured=False)) == 3
    pd.DataFrame({"id": ["C1"], "metric": ["qwk"]}).to_csv(tmp_path / "09_claims.csv", index=False)
    with pytest.raises(DataError, match="09_claims.csv.*effect"):
        C.collect_claims(tmp_path)
