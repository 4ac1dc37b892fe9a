"""deepmt.studies.convergence and deepmt.studies.training (notebook 03): the "levelled off" rule on fixed curves, the curves
and convergence table of hand-made runs (DeepMT-DR's three stages with a stage-2 start candidate, a single-stage
baseline), the feedback calibration table, and the notebook's "what we see" on a fixed input."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from deepmt.config import get_config  # noqa: E402
from deepmt.experiment_cache import ExperimentResult  # noqa: E402
from deepmt.studies import convergence as CV  # noqa: E402
from deepmt.studies import training as T  # noqa: E402
from deepmt.studies.training_figures import figure_convergence  # noqa: E402

CFG = get_config("smoke", {"train.device": "cpu"})


# ----------------------------------------------------------------------------- the rule
@pytest.mark.parametrize("values, n, levelled, share", [
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 6, "no", 0.4),  # still rising: 2 of 5 steps in the last third
    ([0.1, 0.5, 0.6, 0.62, 0.62, 0.62], 6, "yes", 0.0),  # saturated
    ([0.5, 0.3, 0.6, 0.4, 0.61, 0.5], 6, "yes", 0.01 / 0.11),  # noisy, running best +0.01 of +0.11 at the end
    ([0.0, 5.0, 9.0, 10.0], 3, "yes", 0.1),  # start point + 3 epochs, exactly the threshold: levelled (<=)
    ([0.0, 5.0, 8.9, 10.0], 3, "no", 0.11),
    ([0.7, 0.6, 0.5, 0.4], 4, "yes", 0.0),  # never beat its first point
    ([0.3, 0.9], 2, "n/a", 1.0),  # too few epochs to judge (the numbers are still reported)
    ([27.0, 28.0, 28.5, 28.6], 3, "yes", 0.1 / 1.6),  # a start point (epoch 0) before 3 epochs: last third = 1 epoch
    ([np.nan, 0.2, np.nan, 0.5, 0.5], 5, "no", 1.0),  # nan points never count
])
def test_level_check(values, n, levelled, share):
    r = CV.level_check(values, n)
    assert r["levelled"] == levelled
    assert r["share"] == pytest.approx(share)
    finite = [v for v in values if np.isfinite(v)]
    assert r["first"] == finite[0] and r["best"] == max(finite)
    assert r["total_gain"] == pytest.approx(max(finite) - finite[0])
    assert CV.level_check([np.nan, np.nan, np.nan], 3)["levelled"] == "n/a"


# ----------------------------------------------------------------------------- hand-made runs
def _rows(stage, metric, vals, extra=None, loss0=2.0):
    """History rows of one stage: ``vals`` the selection metric per epoch, ``extra`` {metric: values}."""
    rows, best = [], -math.inf
    for e, v in enumerate(vals, start=1):
        row = {"stage": stage, "epoch": e, "loss_total": loss0 / e, f"val_{metric}": v, "selection_metric": metric,
               "selection_score": v, "best": v > best, "seconds": 1.0, "images_per_s": 16.0, "lr": 1e-3}
        row.update({f"val_{m}": xs[e - 1] for m, xs in (extra or {}).items()})
        best = max(best, v)
        rows.append(row)
    return rows


def _run(tmp_path: Path, method: str, rows: list[dict], best: dict | None = None, seed: int = 0, **metrics) -> ExperimentResult:
    h = pd.DataFrame(rows)
    h["global_epoch"] = np.arange(1, len(h) + 1)
    run_dir = tmp_path / f"{method}-{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if best is not None:
        (run_dir / "result.json").write_text(json.dumps({"best": best}))
    return ExperimentResult(method=method, config=CFG.replace({"train.seed": seed}), metrics=metrics, val_metrics={},
                            predictions={}, checkpoint=run_dir / "final.pt", run_dir=run_dir, train_seconds=float(len(h)),
                            history=h, key="k")


START = {"qwk": 0.30, "accuracy": 0.5, "psnr": 30.0, "aupr": 0.40}


@pytest.fixture
def runs(tmp_path):
    mt = _rows("stage1a", "aupr", [0.1, 0.35, 0.4], {"psnr": [28.0, 29.9, 30.0], "qwk": [np.nan] * 3})
    mt += _rows("stage1b", "qwk", [0.1, 0.3, 0.3], {"psnr": [30.0] * 3})
    mt += _rows("stage2", "qwk", [0.32, 0.28, 0.29], {"psnr": [29.0, 29.1, 29.2], "aupr": [0.41] * 3})
    best = {"stage1a": {"score": 0.4, "epoch": 3, "metric": "aupr"},
            "stage1b": {"score": 0.3, "epoch": 2, "metric": "qwk"},
            # stage 2: its epoch 1 fell > 0.5 dB below the start's PSNR, so the start (epoch 0) was kept
            "stage2": {"score": 0.30, "epoch": 0, "metric": "qwk", "start_val": START}}
    deepmt = _run(tmp_path, "deepmt_dr", mt, best, accuracy=0.6, qwk=0.5, psnr=29.5, aupr=0.4)
    isr = [_run(tmp_path, "isr", _rows("single", "psnr", [25.0, 26.0, 27.0, 28.0, 29.0, 30.0]), seed=s, psnr=30.0 + s)
           for s in (0, 1)]
    grader = _run(tmp_path, "grader_hr", _rows("single", "qwk", [0.2, 0.69, 0.7, 0.7]), accuracy=0.8, qwk=0.7)
    return {"deepmt_dr": [deepmt], "isr": isr, "grader_hr": [grader]}


def test_convergence_curves_mark_the_kept_epoch_and_the_stage2_start(runs):
    c = CV.convergence_curves(runs)
    mt = c[c.method == "deepmt_dr"]
    assert {st: sorted(set(d.metric)) for st, d in mt.groupby("stage")} == {
        "stage1a": ["aupr", "psnr"], "stage1b": ["qwk"], "stage2": ["psnr", "qwk"]}  # aupr of stage 2 is not drawn
    s2 = mt[(mt.stage == "stage2") & (mt.metric == "qwk")].sort_values("epoch")
    assert s2["epoch"].tolist() == [0, 1, 2, 3] and s2["start"].tolist() == [True, False, False, False]
    assert s2["value"].tolist() == [0.30, 0.32, 0.28, 0.29] and s2["kept"].tolist() == [True, False, False, False]
    assert math.isnan(s2["loss"].iloc[0]) and s2["loss"].iloc[1] == pytest.approx(2.0)
    assert mt.loc[(mt.stage == "stage1a") & (mt.metric == "aupr"), "selects"].all()
    assert not mt.loc[(mt.stage == "stage1a") & (mt.metric == "psnr"), "selects"].any()
    assert mt.loc[(mt.stage == "stage1b") & mt.kept, "epoch"].tolist() == [2]
    assert sorted(set(c.loc[c.method == "isr", "seed"])) == [0, 1] and not c.loc[c.method == "isr", "start"].any()


def test_convergence_table_applies_the_rule_per_curve(runs):
    t = CV.convergence_table(CV.convergence_curves(runs)).set_index(["method", "seed", "stage", "metric"])
    s1a = t.loc[("deepmt_dr", 0, "stage1a", "aupr")]
    assert s1a["epochs"] == 3 and s1a["best_epoch"] == 3 and s1a["selects"]
    assert s1a["last_third_gain"] == pytest.approx(0.05) and s1a["total_gain"] == pytest.approx(0.3)
    assert s1a["levelled"] == "no"  # 0.05 / 0.3 > 10 %
    s2 = t.loc[("deepmt_dr", 0, "stage2", "qwk")]
    assert s2["epochs"] == 3 and s2["best_epoch"] == 0  # the start candidate is a point, not an epoch
    assert s2["first"] == pytest.approx(0.30) and s2["total_gain"] == pytest.approx(0.02)
    assert s2["levelled"] == "yes"  # the running best did not move in the last epoch
    assert t.loc[("deepmt_dr", 0, "stage1b", "qwk"), "levelled"] == "yes"
    assert t.loc[("isr", 1, "single", "psnr"), "levelled"] == "no"
    assert t.loc[("isr", 1, "single", "psnr"), "share"] == pytest.approx(0.4)
    assert t.loc[("grader_hr", 0, "single", "qwk"), "levelled"] == "yes"
    assert t["rule"].str.contains("0.1 x total gain").all()
    fig = figure_convergence(CV.convergence_curves(runs), t.reset_index())
    assert sum(ax.get_visible() and ax.has_data() for ax in fig.axes) >= 7  # 5 DeepMT-DR curves + isr + grader
    plt.close(fig)
    plt.close(figure_convergence(CV.convergence_curves({})))


def test_convergence_summary_counts_levelled_seeds_per_part():
    """One row per method, stage and selection metric; non-selecting curves (stage 1a's PSNR) never count; the
    seeds still rising are named with their last-third share; curves too short to judge give "n/a"."""
    rule = {"rule": "r"}
    conv = pd.DataFrame([
        {"method": "deepmt_dr", "label": "DeepMT-DR", "seed": 0, "stage": "stage1b", "metric": "qwk", "selects": True,
         "epochs": 36, "share": 0.23, "levelled": "no", **rule},
        {"method": "deepmt_dr", "label": "DeepMT-DR", "seed": 1, "stage": "stage1b", "metric": "qwk", "selects": True,
         "epochs": 36, "share": 0.05, "levelled": "yes", **rule},
        {"method": "deepmt_dr", "label": "DeepMT-DR", "seed": 0, "stage": "stage1a", "metric": "psnr", "selects": False,
         "epochs": 15, "share": 0.5, "levelled": "no", **rule},
        {"method": "isr", "label": "Single-task ISR", "seed": 0, "stage": "single", "metric": "psnr", "selects": True,
         "epochs": 2, "share": 1.0, "levelled": "n/a", **rule},
    ])
    s = CV.convergence_summary(conv).set_index(["method", "stage"])
    assert list(s.index) == [("deepmt_dr", "stage1b"), ("isr", "single")]  # stage 1a's PSNR does not select
    assert s.loc[("deepmt_dr", "stage1b"), "levelled"] == "1 of 2"
    assert s.loc[("deepmt_dr", "stage1b"), "still_rising"] == "seed 0 (23%)"
    assert s.loc[("deepmt_dr", "stage1b"), "epochs"] == "36" and s.loc[("deepmt_dr", "stage1b"), "label"] == "DeepMT-DR"
    assert s.loc[("isr", "single"), "levelled"] == "n/a" and s.loc[("isr", "single"), "still_rising"] == ""
    assert CV.convergence_summary(conv.iloc[:0]).empty


def test_lesion_channels_flag_a_channel_the_kept_epoch_lost(tmp_path):
    """U-Net on HR's pattern: the mean AUPR that selects the epoch rises while the SE channel dies after its peak;
    a channel that only dips (above half its peak) is kept; a stage that kept its start reads start_val; a stage
    without per-lesion columns gives no rows; a kept start without per-lesion values is not judged."""
    per_lesion = {"aupr_MA": [0.2, 0.5, 0.6, 0.7], "aupr_HE": [0.6, 0.8, 0.5, 0.85], "aupr_EX": [0.7, 0.8, 0.85, 0.9],
                  "aupr_SE": [0.3, 0.6, 0.05, 0.02]}
    unet = _run(tmp_path, "unet_hr", _rows("single", "aupr", [0.45, 0.67, 0.5, 0.62], per_lesion),
                {"single": {"score": 0.67, "epoch": 2, "metric": "aupr"}})
    later = _run(tmp_path, "unet_hr", _rows("single", "aupr", [0.45, 0.5, 0.55, 0.62], per_lesion), seed=1)
    s2 = _rows("stage2", "qwk", [0.4, 0.5], {"aupr_SE": [0.1, 0.1], "aupr_MA": [0.3, 0.3]})
    start = {"stage2": {"score": 0.6, "epoch": 0, "metric": "qwk", "start_val": {"aupr_SE": 0.8}}}
    mt = _run(tmp_path, "deepmt_dr", _rows("stage1b", "qwk", [0.1, 0.2]) + s2, start, seed=2)
    ch = CV.lesion_channels({"unet_hr": [unet, later], "deepmt_dr": [mt]}).set_index(["method", "seed", "stage", "lesion"])
    assert ch.loc[("unet_hr", 0, "single", "SE"), "collapsed"] == "no"  # seed 0 kept epoch 2, the SE peak
    se = ch.loc[("unet_hr", 1, "single", "SE")]  # seed 1 kept its last epoch (0.62 mean): SE 0.02 of its 0.6 peak
    assert se["kept_epoch"] == 4 and se["peak_epoch"] == 2 and se["kept"] == 0.02 and se["peak"] == 0.6
    assert se["share"] == pytest.approx(0.02 / 0.6) and se["collapsed"] == "yes"
    assert ch.loc[("unet_hr", 1, "single", "HE"), "collapsed"] == "no"  # 0.85 is its peak; the dip to 0.5 was not kept
    assert ch.loc[("deepmt_dr", 2, "stage2", "SE"), "kept"] == 0.8  # the start's value: no collapse
    assert ch.loc[("deepmt_dr", 2, "stage2", "SE"), "collapsed"] == "no"
    assert ch.loc[("deepmt_dr", 2, "stage2", "MA"), "collapsed"] == "n/a"  # the start recorded no MA value
    assert ("deepmt_dr", 2, "stage1b") not in {k[:3] for k in ch.index}
    summary = CV.lesion_channel_summary(ch.reset_index()).set_index(["method", "stage"])
    assert summary.loc[("unet_hr", "single"), "kept_all"] == "1 of 2"
    assert summary.loc[("unet_hr", "single"), "collapsed"] == "seed 1 SE 0.02 / 0.60"
    assert summary.loc[("deepmt_dr", "stage2"), "kept_all"] == "1 of 1"
    text = CV.collapse_sentence(ch.reset_index())
    assert "8 of 9 channels kept; collapsed: U-Net on HR single SE (seed 1: 0.02 of 0.60)" in text  # MA n/a
    assert CV.lesion_channels({}).empty and CV.collapse_sentence(CV.lesion_channels({})) == ""


def test_selected_epoch_zero_reports_the_start_weights_metrics(runs):
    sel = T.selected_epochs(runs["deepmt_dr"][0]).set_index("stage")
    assert sel.loc["stage2", "selected_epoch"] == 0
    assert sel.loc["stage2", "val_qwk"] == pytest.approx(START["qwk"]) and sel.loc["stage2", "val_psnr"] == 30.0
    assert sel.loc["stage1a", "val_psnr"] == 30.0 and sel.loc["stage1b", "val_qwk"] == pytest.approx(0.3)


# ----------------------------------------------------------------------------- feedback calibration
def _calibrated(norms):
    from deepmt.models.methods import build_method

    m = build_method("deepmt_dr", CFG)
    for n in norms:
        m.feedback_calibration.update(n)
    return m


def test_feedback_table_shows_norms_scales_and_the_calibrated_ratio():
    m = _calibrated([{"isr_pixel": 1e-3, "seg_aware": 4e-3, "cls_aware": 10.0, "grading_feedback": 2.0},
                     {"isr_pixel": 3e-3, "seg_aware": 6e-3, "cls_aware": 30.0, "grading_feedback": 2.0}])
    fb = T.feedback_table(m.feedback_summary()).set_index("term")
    assert list(fb.index) == ["isr_pixel", "seg_aware", "cls_aware", "grading_feedback"]
    assert fb.loc["isr_pixel", "grad_norm"] == pytest.approx(2e-3) and fb.loc["cls_aware", "grad_norm"] == pytest.approx(20.0)
    assert fb.loc["cls_aware", "scale"] == pytest.approx(CFG.loss.feedback_ratio * 2e-3 / 20.0)
    np.testing.assert_allclose(fb["ratio_to_pixel"].iloc[1:], CFG.loss.feedback_ratio)  # what calibration sets
    assert (fb["scaling"] == "calibrated").all() and (fb["batches"] == 2).all()
    empty = T.feedback_table(_calibrated([]).feedback_summary())  # nothing measured: no numbers made up
    assert empty["grad_norm"].isna().all() and empty["ratio_to_pixel"].isna().all()
    authors = T.feedback_table({"scaling": "authors", "scale_seg_aware": 1.0, "scale_cls_aware": 10.0,
                                "scale_grading_feedback": 1.0}).set_index("term")
    assert authors.loc["cls_aware", "scale"] == 10.0 and authors["grad_norm"].isna().all()


# ----------------------------------------------------------------------------- timings apart
def test_a_rerun_leaves_identical_result_tables(runs, result_tables):
    """Two studies of runs with the same numbers but other seconds write byte-identical result tables (notebook
    03's schedule, history and test metrics included); the seconds are all in ``timing``, keyed to rebuild them."""
    first = T.training_study(runs)
    slower = {name: [dataclasses.replace(r, train_seconds=2 * r.train_seconds,
                                         history=r.history.assign(seconds=3 * r.history["seconds"], images_per_s=1.5))
                     for r in rs] for name, rs in runs.items()}
    second = T.training_study(slower)
    a, b = result_tables(first), result_tables(second)
    assert {"schedule", "history", "final"} <= a.keys() and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert not any(b"train_s" in v or b"seconds" in v or b"images_per_s" in v for v in a.values())
    t1, t2 = first.timing, second.timing
    assert t2["schedule"]["seconds"].tolist() == pytest.approx(3 * t1["schedule"]["seconds"])
    assert t2["runs"]["train_s"].tolist() == pytest.approx(2 * t1["runs"]["train_s"])
    res = runs["deepmt_dr"][0]
    rebuilt = first.history.merge(t1["history"], on=["stage", "epoch", "global_epoch"])[list(res.history.columns)]
    pd.testing.assert_frame_equal(rebuilt, res.history)


# ----------------------------------------------------------------------------- what we see
def test_what_we_see_is_written_from_the_numbers(runs):
    m = _calibrated([{"isr_pixel": 2e-3, "seg_aware": 4e-3, "cls_aware": 20.0, "grading_feedback": 2.0}])
    study = T.training_study(runs, [m])
    assert len(study.convergence) == 5 + 2 + 1 and set(study.final["method"]) == {"deepmt_dr", "isr", "grader_hr"}
    text = T.what_we_see(study)
    assert text.startswith("Schedule: stage1a trains isr, seg (")
    assert "keeps epoch 3 by validation aupr; stage1b" in text and "keeps epoch 0 by validation qwk." in text
    assert "The total training loss changes by -67% over stage1a, -67% over stage1b, -67% over stage2" in text
    assert "Stage 2 kept the weights it started from (epoch 0)" in text
    assert "Validation QWK of the kept epoch: 0.300 after stage 1b" in text and "0.300 after joint fine-tuning (+0.000)" in text
    assert "Validation PSNR is 30.00 dB after stage 1a and 30.00 dB after stage 2 (+0.00 dB)." in text
    assert ("calibrated over 1 training batch(es) (seed 0; 1 of 1 seeds' kept models hold a measurement): gradient norms "
            "on the ISR before weighting were 0.002 for the pixel term and 0.004 for seg_aware, 20 for cls_aware, 2 for "
            "grading_feedback") in text
    assert "pulls on the ISR with 0.50, 0.50, 0.50 x the pixel term's gradient" in text
    assert "5 of 8 curves levelled off (3 of 6 selection-metric curves)" in text
    assert ("still rising: DeepMT-DR stage1a aupr (seed 0: +0.05 in the last third of +0.3); Single-task ISR single psnr "
            "(seeds 0, 1: +2, +2 in the last third of +5, +5)") in text
    assert "On the test split DeepMT-DR reaches accuracy 0.600, QWK 0.500, PSNR 29.50 dB and mean AUPR 0.400" in text
    assert "Single-task ISR psnr 30.500 in 6 s" in text and "(test metrics: mean over 2 seed(s))." in text
    assert "smoke" not in text
    study.smoke = True
    assert T.what_we_see(study).endswith("(smoke profile: not results; one epoch per stage on a handful of images.)")
    study.feedback = T.feedback_table(_calibrated([]).feedback_summary()).assign(seed=0)
    assert "holds no measured batch in the kept model of any seed" in T.what_we_see(study)
    # two seeds: the one that kept a stage-2 epoch is reported, the other counted
    runs["deepmt_dr"].append(_run(Path(runs["deepmt_dr"][0].run_dir).parent, "deepmt_dr", runs["deepmt_dr"][0].history.to_dict("records"),
                                  seed=1, accuracy=0.6))
    two = T.training_study(runs, [_calibrated([]), m])
    assert list(dict.fromkeys(two.feedback["seed"])) == [0, 1] and two.feedback.loc[two.feedback.seed == 0, "grad_norm"].isna().all()
    assert "(seed 1; 1 of 2 seeds' kept models hold a measurement)" in T.what_we_see(two)
    bare = T.training_study(runs)  # no loaded method: no parameter counts, no calibration, the rest is there
    assert bare.feedback.empty and bare.schedule["trained_params"].isna().all()
    assert T.what_we_see(bare).startswith("Schedule: stage1a trains its parts for 3 epoch(s) in 3.0 s")
