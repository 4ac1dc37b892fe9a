"""deepmt.studies.verdicts: the claims figure with the controls beside it, and the "what we see" text, on a fixed table."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from deepmt import claims as C  # noqa: E402
from deepmt import controls as K  # noqa: E402
from deepmt.studies import verdicts as V  # noqa: E402

MAIN = "smudge_match=0.7, x4, all masks"
PARTIAL = "smudge_match=0.7, x4, 10% masks"
NOTHING_LEFT = "smudge_match=1.0, x4, all masks"


def fixed_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Controls: learnable passes (on foo_mt and on the plain HR grader), gap on foo_mt fails, gap:deepmt_dr is
    missing, the negative ones and lesion_resolution not measured. Claims of every kind; C3 with the plain HR
    grader's row (judged) and DeepMT-DR's (reported without a verdict)."""
    controls = K.controls_table([
        K.control_row("learnable", 0.93, 0.91, 0.95, n_seeds=3, regime=MAIN),
        K.control_row("learnable", 0.92, 0.90, 0.94, n_seeds=3, regime=PARTIAL),
        K.control_row("gap", 0.05, 0.02, 0.08, n_seeds=3, regime=MAIN),
        K.control_row("learnable:grader_hr", 0.91, 0.89, 0.93, n_seeds=3, regime=MAIN),
        K.control_row("sr_works:srcnn", 1.1, 0.9, 1.3, regime=MAIN),
        K.control_row("sr_works:edsr", 1.5, 1.2, 1.8, regime=MAIN),
        K.control_row("sr_works:isr", 2.4, 2.1, 2.7, regime=MAIN),
        K.control_row("lesion_resolution"),
        K.control_row("negative:grading"),
        K.control_row("negative:identity"),
    ])
    P = C.Claim.from_paper
    claims = C.claims_table([
        P("C1", metric="accuracy", effect=0.03, lo=0.01, hi=0.05, n_seeds=3, regime=MAIN),
        P("C1", metric="qwk", effect=0.02, lo=-0.01, hi=0.05, n_seeds=3, regime=MAIN),
        P("C3", metric="energy_in_lesions", effect=0.04, lo=0.035, hi=0.045, n_seeds=3, regime=MAIN,
          comparison="DeepMT-DR's map, trained toward the lesions: not evidence for Finding 2"),
        P("C3", metric="energy_in_lesions", effect=0.003, lo=0.0002, hi=0.006, n_seeds=3, regime=MAIN,
          comparison=f"{C.PLAIN_GRADER_MAP}: map energy inside lesion masks vs the same masks moved"),
        P("C6", metric="psnr_lesion", effect=-1.19, lo=-1.24, hi=-1.14, n_seeds=3, regime=MAIN),
        P("C6", metric="ssim_lesion", effect=0.004, lo=-0.001, hi=0.009, n_seeds=3, regime=MAIN),
        P("C2", metric="aupr", effect=0.05, lo=0.01, hi=0.09, n_seeds=3, regime=MAIN),
        P("C7", metric="accuracy", effect=0.01, lo=-0.03, hi=0.05, n_seeds=3, regime=PARTIAL),
        P("C4", metric="qwk"),
    ])
    return C.apply_controls(claims, controls), controls


def test_fixture_verdicts():
    claims, _ = fixed_tables()
    assert claims["verdict"].tolist() == [
        "not testable (control gap failed; controls learnable:deepmt_dr_oracle, gap:deepmt_dr, negative:grading not measured)", "secondary (no verdict)",
        "secondary (no verdict)", "negligible", "not reproduced", "secondary (no verdict)",
        "not testable (controls lesion_resolution, negative:identity not measured)",
        "inconclusive", "not measured",
    ]


def test_metric_panels_keep_units_apart():
    assert V.metric_panel("accuracy") == V.metric_panel("qwk") == V.metric_panel("macro_f1") == V.GRADING_PANEL
    assert V.metric_panel("psnr_lesion") == V.metric_panel("psnr") == V.PSNR_PANEL
    assert V.metric_panel("ssim_lesion") == V.SSIM_PANEL
    assert V.metric_panel("aupr") == V.metric_panel("dice_MA") == V.metric_panel("auc") == V.SEG_PANEL
    assert V.metric_panel("auc_ovr") == V.GRADING_PANEL and V.metric_panel("energy_in_lesions") == V.ENERGY_PANEL
    assert V.metric_panel("ece") == "ece effect"


def test_short_comparison_tells_rows_apart():
    assert V.short_comparison("Grader on HR: visualization-map energy inside lesion masks") == "Grader on HR"
    assert V.short_comparison("DeepMT-DR: visualization-map energy inside lesion masks") == "DeepMT-DR"
    assert V.short_comparison("DeepMT-DR SR input vs bicubic, same grader") == "DeepMT-DR SR input vs bicubic"
    long = V.short_comparison("DeepMT-DR vs the same run with the three feedback terms off in stage 2; stages shared")
    assert len(long) <= 44 and long.endswith("…") and long.startswith("DeepMT-DR vs the same run")
    assert V.short_comparison(math.nan) == ""


def test_regime_sentence():
    claims, _ = fixed_tables()
    assert V.regimes(claims) == [(MAIN, ["C1", "C3", "C6", "C2"]), (PARTIAL, ["C7"])]
    assert V.regime_sentence(claims) == (f"The main claims come from regime `{MAIN}` (C1, C3, C6, C2); "
                                         f"the others from regime `{PARTIAL}` (C7).")
    one = claims[claims["id"] == "C1"]
    assert V.regime_sentence(one) == f"The claims come from regime `{MAIN}` (C1)."
    assert V.regime_sentence(claims[claims["id"] == "C4"]) == "No claim has been measured yet."


def test_what_we_see_is_written_from_the_numbers():
    claims, controls = fixed_tables()
    text = V.what_we_see(claims, controls)
    assert text.split("\n") == [
        f"Controls: 6 of 10 pass; failed: gap on {K.FOO_MT} 0.050 [0.020, 0.080] (required ≥ 0.08 accuracy, CI above 0, "
        f"regime {MAIN}); not measured: lesion_resolution, negative:grading, negative:identity.",
        f"Claims: 8 of 9 rows measured. The main claims come from regime `{MAIN}` (C1, C3, C6, C2); the others from "
        f"regime `{PARTIAL}` (C7). "
        "reproduced: none; "
        "negligible: C3 energy_in_lesions (HR grader's plain Grad-CAM) +0.003 [+0.000, +0.006]; "
        "not reproduced: C6 psnr_lesion (DeepMT-DR ISR vs single-task ISR network…) -1.190 [-1.240, -1.140]; "
        "inconclusive: C7 (1 row); "
        "not testable: C1 (1 row: control gap failed; controls learnable:deepmt_dr_oracle, gap:deepmt_dr, negative:grading not measured), "
        "C2 (1 row: controls lesion_resolution, negative:identity not measured); "
        "not measured: C4.",
        "Secondary metrics, reported without a verdict: C1 qwk; C3 energy_in_lesions; C6 ssim_lesion.",
        "Multiplicity: Holm over the 5 measured primary rows, but none has a p-value: not adjusted, the intervals alone decide.",
        "A 'not testable' claim is one this benchmark cannot judge until its controls pass: it is evidence neither for "
        "nor against the paper.",
    ]
    assert V.what_we_see(claims, controls, smoke=True).endswith("(smoke profile: mechanics only, these numbers are not results.)")
    with_p = claims.assign(p_value=[0.01] + [float("nan")] * 8)
    assert ("Multiplicity: Holm over the 5 measured primary rows (1 with a p-value; 4 without one, not adjusted); "
            "\"reproduced\" needs an adjusted p below 0.05.") in V.what_we_see(with_p, controls)
    assert "Multiplicity: no primary row measured yet, nothing to adjust." in V.what_we_see(claims[claims["id"] == "C4"], controls)
    passing = claims[~claims["verdict"].str.startswith("not testable")]
    assert "A 'not testable' claim" not in V.what_we_see(passing, controls)


def test_claims_figure_one_panel_per_unit_with_labels_colours_and_controls():
    claims, controls = fixed_tables()
    fig = V.claims_figure(claims, controls, title="t")
    *axes, side = fig.axes
    titles = [ax.get_title(loc="left") for ax in axes]
    assert titles == [V.GRADING_PANEL, V.PSNR_PANEL, V.SSIM_PANEL, V.SEG_PANEL, V.ENERGY_PANEL]
    grading = axes[0]
    labels = [t.get_text() for t in grading.get_yticklabels()]
    assert labels[0] == f"C1 accuracy · DeepMT-DR SR input vs bicubic-upsampled LR…\n{MAIN}"
    assert labels[2].startswith("C7 accuracy") and labels[2].endswith(PARTIAL)
    energy = [t.get_text() for t in axes[4].get_yticklabels()]
    assert energy[0] != energy[1] and energy[1].startswith("C3 energy_in_lesions · HR grader's plain Grad-CAM")
    assert energy[0].startswith("C3 energy_in_lesions · DeepMT-DR's map, trained toward the lesions")
    # not testable rows in their own colour, hollow; secondary rows grey, hollow, small; reproduced rows green and filled
    dots = [l for l in grading.lines if l.get_marker() == "o"]
    assert dots[0].get_color() == V.VERDICT_COLOURS["not testable"] and dots[0].get_markerfacecolor() == "white"
    assert dots[1].get_color() == V.SECONDARY_COLOUR and dots[1].get_markerfacecolor() == "white"
    assert dots[1].get_markersize() < dots[0].get_markersize()
    assert dots[2].get_color() == V.VERDICT_COLOURS["inconclusive"]
    energy_dots = [l for l in axes[4].lines if l.get_marker() == "o"]
    assert energy_dots[0].get_color() == V.SECONDARY_COLOUR  # DeepMT-DR's map: no verdict
    assert energy_dots[1].get_color() == V.VERDICT_COLOURS["negligible"] == energy_dots[1].get_markerfacecolor()
    # each row over its band ± the minimum effect: accuracy 0.02, QWK 0.01
    bands = [c.get_paths()[0].get_extents() for c in grading.collections]
    assert [(b.x0, b.x1) for b in bands] == [pytest.approx((-0.02, 0.02)), pytest.approx((-0.01, 0.01)), pytest.approx((-0.02, 0.02))]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["reproduced", "negligible", "not reproduced", "inconclusive", "not testable", "secondary (no verdict)",
                      "± minimum effect (negligible inside)"]
    assert side.get_title(loc="left") == "controls (pre-registered thresholds)"
    table = side.tables[0]
    cells = table.get_celld()
    rows = [[cells[i, j].get_text().get_text() for j in range(5)] for i in range(1, len(controls) + 1)]
    assert rows[2][0] == "gap\non foo_mt (lesion-\nsupervised seg+grade\nnet)" and rows[2][2] == "0.050 [0.020, 0.080]"
    assert rows[2][4] == "fail" and rows[3][0].startswith("learnable:grader_hr\non grader_hr")
    assert rows[2][1] == "≥ 0.08 accuracy,\nCI above 0"
    assert cells[3, 4].get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb(V.STATUS_COLOURS["fail"]))
    assert [t.get_text() for t in side.texts] == ["claims not measured (not drawn): C4"]
    plt.close(fig)
    empty = V.claims_figure(claims[claims["id"] == "C4"], controls)
    assert any(t.get_text() == "no claim measured yet" for ax in empty.axes for t in ax.texts)
    plt.close(empty)
