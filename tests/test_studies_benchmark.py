"""Notebook 00's study (:mod:`deepmt.studies.benchmark`): the MA/smudge contrast measurements on generated
samples, the LR-information dial, and figures that plot the numbers they are given."""

import numpy as np
import pandas as pd
import pytest

from deepmt.config import get_config
from deepmt.data.synthetic import generate_sample, grade_for_index
from deepmt.studies import benchmark as B


def test_peak_contrast_reads_the_darkest_pixel_against_the_ring():
    img = np.full((40, 40, 3), 200, np.uint8)
    img[20, 21, 1] = 50  # one dark green pixel
    img[20, 21, 0] = 0  # the red channel is not measured
    c = B.peak_contrast(img, np.array([[20.6, 20.4], [2.0, 2.0], [30.0, 30.0]]))
    assert c[0] == pytest.approx(0.75)  # (200 - 50) / 200: darkest of the 2 x 2 pixels at the centre
    assert np.isnan(c[1])  # too close to the border for the ring
    assert c[2] == 0.0
    # an LR image: HR point x lies at (x - (s - 1) / 2) / s, so HR (85.5, 81.5) is LR pixel (21, 20) at x4
    assert B.peak_contrast(img, np.array([[85.5, 81.5]]), factor=4)[0] == pytest.approx(0.75)
    dark = np.zeros((40, 40, 3), np.uint8)
    assert np.isnan(B.peak_contrast(dark, np.array([[20.0, 20.0]]))[0])  # no background to compare with


def test_ma_smudge_contrast_measures_the_recorded_lesions():
    cfg = get_config("smoke").data
    df = B.ma_smudge_contrast(cfg, n_images=2, grades=(1,))
    first = next(i for i in range(20) if grade_for_index(i, cfg.synth.class_prior, cfg.seed, "test") == 1)
    smp = generate_sample(first, cfg, "test")
    mine = df[df.image == smp["id"]]
    assert len(set(df.image)) == 2 and set(df.kind) == {"MA", "smudge"}
    ma = mine[mine.kind == "MA"]
    hr = B.peak_contrast(smp["hr"], smp["lesions"]["ma_xy"])
    lr = B.peak_contrast(smp["lr"], smp["lesions"]["ma_xy"], cfg.scale)
    kept = ~np.isnan(hr) & ~np.isnan(lr)  # lesions too near the border at either resolution are left out
    assert 0 < kept.sum() < len(kept) and len(ma) == kept.sum()
    np.testing.assert_allclose(ma.hr, hr[kept])
    np.testing.assert_allclose(ma.lr, lr[kept])
    np.testing.assert_allclose(ma.sigma, smp["lesions"]["ma_sigma"][kept])


def test_contrast_summary_on_known_values():
    df = pd.DataFrame({"kind": ["MA", "MA", "smudge", "smudge"], "hr": [0.6, 0.4, 0.2, 0.1], "lr": [0.1, 0.3, 0.2, 0.2]})
    s = B.contrast_summary(df).set_index("resolution")
    assert s.loc["HR", "MA mean"] == pytest.approx(0.5) and s.loc["HR", "smudge mean"] == pytest.approx(0.15)
    assert s.loc["HR", "AUC MA vs smudge"] == 1.0 and s.loc["LR", "AUC MA vs smudge"] == 0.5
    assert s.loc["LR", "MA/smudge ratio"] == pytest.approx(1.0) and s.loc["HR", "n MA"] == 2
    none = B.contrast_summary(df[df.kind == "MA"]).set_index("resolution")
    assert np.isnan(none.loc["HR", "AUC MA vs smudge"]) and np.isnan(none.loc["HR", "MA/smudge ratio"])


def test_ma_vanish_at_lr_but_separate_from_smudges_at_hr():
    """The benchmark's mechanism, measured: MA fade at x4 LR; MA vs smudge separate at HR, not at LR."""
    cfg = get_config("smoke", {"data.hr_size": 256}).data
    df = B.ma_smudge_contrast(cfg, n_images=6)
    summ = B.contrast_summary(df).set_index("resolution")
    assert summ.loc["HR", "MA mean"] > 2.5 * summ.loc["LR", "MA mean"]  # MA nearly vanish at LR
    assert summ.loc["HR", "AUC MA vs smudge"] > 0.8  # separable at HR
    assert abs(summ.loc["LR", "AUC MA vs smudge"] - 0.5) < 0.15  # not at LR (matched LR peak)
    assert 0.7 < summ.loc["LR", "MA/smudge ratio"] < 1.4
    # the dial: smudges at a quarter of the matched strength separate from MA at LR too
    cfg2 = get_config("smoke", {"data.hr_size": 256, "data.synth.smudge_match": 0.25}).data
    s2 = B.contrast_summary(B.ma_smudge_contrast(cfg2, n_images=6)).set_index("resolution")
    assert s2.loc["LR", "AUC MA vs smudge"] > summ.loc["LR", "AUC MA vs smudge"] + 0.15
    assert s2.loc["LR", "MA/smudge ratio"] > 1.3


def test_information_dial_rows_are_the_contrast_summaries_of_each_setting():
    cfg = get_config("smoke").data  # 64 px: x8 (8 px LR, below MIN_LR_SIZE) and x3 (not a divisor) are left out
    dial = B.information_dial(cfg, smudge_matches=(0.0, 0.5), scales=(2, 3, 4, 8), n_images=2)
    assert list(zip(dial.smudge_match, dial.scale, dial.lr_size)) == [(0.0, 2, 32), (0.0, 4, 16), (0.5, 2, 32), (0.5, 4, 16)]
    assert dial["AUC MA vs smudge LR"].iloc[:2].isna().all()  # no smudges at smudge_match 0
    c = get_config("smoke", {"data.scale": 2, "data.synth.smudge_match": 0.5}).data
    s = B.contrast_summary(B.ma_smudge_contrast(c, n_images=2)).set_index("resolution")
    row = dial.iloc[2]
    assert row["MA contrast LR"] == s.loc["LR", "MA mean"] and row["AUC MA vs smudge HR"] == s.loc["HR", "AUC MA vs smudge"]


def test_first_index_of_grade_follows_the_grade_sequence():
    cfg = get_config("smoke").data
    for g in range(5):
        i = B.first_index_of_grade(cfg, g, "val", start=3)
        assert i >= 3 and grade_for_index(i, "balanced", cfg.seed, "val") == g
        assert all(grade_for_index(j, "balanced", cfg.seed, "val") != g for j in range(3, i))


def test_figures_plot_the_numbers_they_are_given():
    import matplotlib.pyplot as plt

    table = pd.DataFrame({"prior": ["balanced"] * 5 + ["ddr"] * 5, "split": ["train"] * 5 + ["10 draws"] * 5,
                          "grade": list(range(5)) * 2, "fraction": [0.2] * 5 + [0.5, 0.1, 0.3, 0.0, 0.1]})
    fig = B.figure_grade_distribution(table)
    bars = fig.axes[0].containers
    assert [b.get_label() for b in bars] == ["balanced / train", "ddr / 10 draws"]
    assert [r.get_height() for r in bars[1]] == [0.5, 0.1, 0.3, 0.0, 0.1]
    plt.close(fig)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"kind": ["MA"] * 30 + ["smudge"] * 30, "hr": rng.uniform(0, 0.8, 60), "lr": rng.uniform(0, 0.3, 60)})
    fig = B.figure_contrast(df)
    ax_lr = fig.axes[1]
    heights = [p.get_height() for p in ax_lr.patches]
    bins = np.linspace(-0.1, 1.0, 36)
    expect = np.r_[np.histogram(df[df.kind == "MA"].lr, bins, density=True)[0], np.histogram(df[df.kind == "smudge"].lr, bins, density=True)[0]]
    np.testing.assert_allclose(heights, expect)
    plt.close(fig)


# ----------------------------------------------------------------------------- the study
class _Split:
    """A stand-in for a cached split: its grades and per-image metadata."""

    def __init__(self, grades, n_ma):
        self.grades = np.asarray(grades)
        self.meta = pd.DataFrame({"grade": self.grades, "n_MA": n_ma, "n_HE": 1, "n_EX": 0, "n_SE": 0, "has_nv": self.grades == 4,
                                  "n_smudge": 2, "n_nv_decoy": 0})


def test_grade_distribution_and_lesions_per_grade():
    splits = {"train": _Split([0, 1, 1, 4], [0, 3, 5, 9]), "test": _Split([1, 2], [1, 2])}
    t = B.grade_distribution(splits, "balanced", seed=0, n_prior=200)
    tr = t[t.split == "train"]
    assert list(tr.n) == [1, 2, 0, 0, 1] and list(tr.fraction) == [0.25, 0.5, 0.0, 0.0, 0.25]
    ddr = t[t.prior == "ddr"]
    assert set(ddr.split) == {"200 draws"} and ddr.n.sum() == 200
    assert list(ddr.n) == list(np.bincount([grade_for_index(i, "ddr", 0, "train") for i in range(200)], minlength=5))
    les = B.lesions_per_grade(splits)
    assert list(les.index) == [0, 1, 2, 4] and list(les.n_MA) == [0.0, 3.0, 2.0, 9.0] and list(les.has_nv) == [0, 0, 0, 1]


def test_measure_config_and_describe():
    smoke = get_config("smoke")
    # measured at the size the profile trains at: its lesions are the ones its networks see
    assert B.measure_config(smoke) is smoke.data
    quick = get_config("quick")
    q_size = quick.data.hr_size
    assert B.measure_config(quick).hr_size == q_size and B.measure_config(quick).synth.size_reference == q_size
    assert B.describe(smoke) == "profile smoke: HR 64px, LR 16px (x4), 16/8/8 train/val/test images, prior 'balanced'"


def test_benchmark_study_measures_what_it_is_asked_and_smoke_what_smoke_allows():
    splits = {"train": _Split([0, 1, 2, 3, 4, 4], 1), "test": _Split([1, 2], 1)}
    s = B.benchmark_study(get_config("smoke"), splits, n_images=40, smudge_matches=[0.0, 0.25], scales=[2, 8], dial_images=12)
    assert s.smoke and s.measure_cfg.hr_size == 64 and s.contrast.image.nunique() == 3  # SMOKE_SIZES, not the arguments
    assert list(zip(s.dial.smudge_match, s.dial.scale)) == [(0.5, 4), (1.0, 4)]
    assert s.train_grades == [1, 1, 1, 1, 2] and s.scale == 4 and s.class_prior == "balanced"
    pd.testing.assert_frame_equal(s.contrast_table, B.contrast_summary(s.contrast))
    q = B.benchmark_study(get_config("quick"), splits, n_images=1, smudge_matches=[0.25], scales=[2, 8], dial_images=1)
    # quick measures at its own size (64 px): x8 (8 px LR) is below MIN_LR_SIZE
    assert not q.smoke and q.contrast.image.nunique() == 1 and list(zip(q.dial.smudge_match, q.dial.scale)) == [(0.25, 2)]
    assert q.measure_cfg.hr_size == get_config("quick").data.hr_size


def _study(dial_rows, smoke=False):
    table = pd.DataFrame([
        {"resolution": "HR", "MA mean": 0.6, "smudge mean": 0.3, "AUC MA vs smudge": 0.9, "n MA": 40, "n smudge": 30},
        {"resolution": "LR", "MA mean": 0.15, "smudge mean": 0.12, "AUC MA vs smudge": 0.55, "n MA": 40, "n smudge": 30},
    ])
    dial = pd.DataFrame(dial_rows, columns=["smudge_match", "scale", "AUC MA vs smudge LR"])
    return B.BenchmarkStudy(grades=pd.DataFrame(), lesions=pd.DataFrame(), contrast=pd.DataFrame(), contrast_table=table,
                            dial=dial, measure_cfg=get_config("smoke", {"data.hr_size": 256, "data.scale": 4}).data, scale=4,
                            class_prior="balanced", train_grades=[3, 3, 4, 2, 4], smoke=smoke)


def test_what_we_see_is_written_from_the_numbers():
    text = B.what_we_see(_study([(0.0, 4, np.nan), (0.25, 4, 0.8), (0.25, 8, 0.9), (1.0, 4, 0.52), (1.0, 2, 0.6)]))
    assert text.startswith("Over 40 microaneurysms and 30 smudges at HR 256px, an MA darkens the green channel by 0.60 at HR "
                           "but only 0.15 after x4 bicubic downsampling (25% of it survives). Smudges peak at 0.30 at HR and "
                           "0.12 at LR, so MA and smudges separate at HR (ROC-AUC 0.90) and hardly at LR (AUC 0.55; 0.5 = chance).")
    # the dial sentence compares the weakest smudges (smallest smudge_match > 0) with matched ones, at the profile's scale
    assert "with smudges at 0.25 x the matched strength the LR AUC is 0.80 (matched: 0.52)." in text
    assert text.endswith("Grades in the balanced training split: [3, 3, 4, 2, 4].")
    without = B.what_we_see(_study([(0.5, 4, 0.6)], smoke=True))  # no matched setting at the profile's scale
    assert "The dial works" not in without and "the HR detail. Grades in" in without
    assert without.endswith("(smoke profile: few images, the numbers are not results.)")
