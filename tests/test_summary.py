"""deepmt.studies.summary: the README results section puts the controls above the claims, with regime and verdict rule."""

from __future__ import annotations

import pandas as pd

from deepmt import controls as K
from deepmt.claims import Claim, claims_table
from deepmt.studies import summary as S

MAIN = "smudge_match=0.7, x4, all masks"


def test_readme_shows_controls_above_claims_with_regime_and_not_testable(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    claims_table([
        Claim.from_paper("C1", metric="accuracy", effect=0.1, lo=0.05, hi=0.15, n_seeds=3, evidence="01", regime=MAIN),
        Claim.from_paper("C3", metric="energy_in_lesions", effect=0.01, lo=0.005, hi=0.015, n_seeds=3, evidence="02", regime=MAIN),
    ]).to_csv(res / "01_claims.csv", index=False)
    K.controls_table([K.control_row("learnable", 0.93, 0.91, 0.95, n_seeds=3, evidence="01", regime=MAIN),
                      K.control_row("gap", 0.05, 0.01, 0.09, n_seeds=3, evidence="01", regime=MAIN)]).to_csv(res / "01_controls.csv", index=False)
    pd.DataFrame({"label": ["A"], "input": ["LR"], "n_seeds": [3], "accuracy [95% CI]": ["0.5 [0.4, 0.6]"]}).to_csv(res / "01_grading_by_input.csv", index=False)
    text = S.results_markdown(res, {"command": "./run_all.sh", "profile": "quick", "total_s": 60, "machine": "box"})
    i_controls, i_claims = text.index("### Controls"), text.index("### Claims of the paper")
    assert text.index("Made by") < i_controls < i_claims < text.index("### Finding 1")  # the rest is kept, after them
    controls_part, claims_part = text[i_controls:i_claims], text[i_claims:text.index("### Finding 1")]
    assert "| **learnable**" in controls_part and "| ≥ 0.08 accuracy, CI above 0 | 0.050 [0.010, 0.090] | 3 |" in controls_part
    assert "| fail |" in controls_part and "| not measured |" in controls_part and "before the measurements" in controls_part
    assert f"The claims come from regime `{MAIN}` (C1, C3)." in claims_part
    assert "not testable (control gap failed; controls sr_works:srcnn, sr_works:edsr, sr_works:isr, negative not measured)" in claims_part
    assert "| reproduced | 02 |" in claims_part  # C3 needs only learnable, which passed
    assert "*not testable (control … failed / not measured)*" in claims_part and "*not measured*" in claims_part
    assert "0.5 [0.4, 0.6]" in text
