"""Studies of notebooks 02 (lesions vs attention) and 09 (qualitative): measures on tiny synthetic arrays,
visualization maps of untrained smoke-size methods, the study functions end to end on an in-memory split."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from deepmt import LESIONS
from deepmt.models.methods import build_method
from deepmt.studies import attention as A
from deepmt.studies import finding2 as F2
from deepmt.studies import qualitative as Q
from deepmt.studies.finding2 import figure_energy, figure_examples

H = 64


def disk(n=H, r=None, centre=None):
    r = r if r is not None else n / 2 - 2
    cy, cx = centre if centre is not None else ((n - 1) / 2, (n - 1) / 2)
    yy, xx = np.mgrid[0:n, 0:n]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def make_split(n=6, size=H, scale=4, seed=0):
    """An in-memory list of Sample dicts: a red disk fundus, a few square lesions, grades 0..4."""
    from deepmt.data.degradation import degrade

    rng = np.random.default_rng(seed)
    fov = disk(size)
    out = []
    for i in range(n):
        g = i % 5
        hr = np.zeros((3, size, size), np.float32)
        hr[0], hr[1], hr[2] = 0.8 * fov, 0.35 * fov, 0.1 * fov
        hr += 0.02 * rng.random((3, size, size)).astype(np.float32) * fov
        masks = np.zeros((4, size, size), np.float32)
        for j in range(g * 2):
            k = 0 if j == 0 else int(rng.integers(4 if g > 1 else 1))  # every lesion image has an MA
            y, x = rng.integers(size // 4, 3 * size // 4, 2)
            masks[k, y : y + 2, x : x + 2] = 1
            hr[:, y : y + 2, x : x + 2] *= 0.5
        hr_t = torch.from_numpy(hr).clamp(0, 1)
        out.append({
            "hr": hr_t, "lr": degrade(hr_t, scale), "masks": torch.from_numpy(masks),
            "mask_present": torch.ones(4, dtype=torch.bool), "fov": torch.from_numpy(fov[None].astype(np.float32)),
            "grade": torch.tensor(g), "id": f"img{i}",
        })
    return out


# --------------------------------------------------------------------------- measures
def test_energy_share_uniform_map_is_area_share():
    fov = disk()
    region = disk(r=8) & fov
    assert A.energy_share(np.ones((H, H)), region, fov) == pytest.approx(region.sum() / fov.sum())
    assert A.energy_share(region.astype(float), region, fov) == pytest.approx(1.0)
    assert math.isnan(A.energy_share(np.zeros((H, H)), region, fov))
    # outside the FOV does not count; a stack of regions gives one value each
    v = np.ones((H, H))
    v[~fov] = 100
    stack = A.energy_share(v, np.stack([region, np.zeros_like(region)]), fov)
    assert stack.shape == (2,) and stack[0] == pytest.approx(region.sum() / fov.sum()) and stack[1] == 0


def test_random_rotations_keep_area_inside_fov_and_move_lesions():
    rng = np.random.default_rng(0)
    fov = disk()
    m = np.zeros((2, H, H), bool)
    m[0, 10:16, 30:36] = True  # off-centre blob
    m[1] = disk(r=5)  # centred disk: invariant under rotation about the centre
    out = A.random_rotations(m, fov, 30, rng)
    assert out.shape == (30, 2, H, H) and out.dtype == bool
    assert not (out & ~fov).any()
    area = out[:, 0].sum((1, 2))
    assert np.all(np.abs(area - m[0].sum()) <= 0.25 * m[0].sum())
    assert np.mean([(o & m[0]).sum() == m[0].sum() for o in out[:, 0]]) < 0.2  # lesion moved in most draws
    assert all(np.logical_xor(o, m[1]).sum() <= 0.25 * m[1].sum() for o in out[:, 1])  # up to edge pixels
    # same seed, same placements
    again = A.random_rotations(m, fov, 30, np.random.default_rng(0))
    assert np.array_equal(out, again)
    with pytest.raises(ValueError):
        A.random_rotations(m[0], fov, 2, rng)


def test_rank_auc_matches_sklearn_with_ties():
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    score = np.round(rng.random(300), 1)  # many ties
    labels = rng.random((5, 300)) < 0.2
    got = A.rank_auc(rankdata(score), labels)
    want = [roc_auc_score(l, score) for l in labels]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.isnan(A.rank_auc(rankdata(score), np.zeros((1, 300), bool))[0])
    assert A.pixel_auc(score.reshape(15, 20), labels[0].reshape(15, 20)) == pytest.approx(want[0])
    assert math.isnan(A.pixel_auc(score, np.zeros(300, bool)))


def test_image_agreement_perfect_map_and_no_lesions():
    rng = np.random.default_rng(0)
    fov = disk()
    masks = np.zeros((4, H, H), bool)
    masks[0, 12:14, 30:32] = masks[1, 40:44, 20:24] = True
    from deepmt.metrics import lesion_region

    region = lesion_region(masks[None], 2, fov[None, None])[0]
    row = A.image_agreement(region.astype(float), masks, fov, dilation=2, n_random=10, rng=rng)
    assert row["energy"] == pytest.approx(1.0)
    assert row["energy_random"] < 0.5
    assert row["auc"] > 0.95 and row["auc_MA"] > 0.95 and math.isnan(row["auc_EX"])
    assert abs(row["auc_random"] - 0.5) < 0.3
    assert row["area_share"] == pytest.approx(region.sum() / fov.sum())
    assert math.isnan(row["energy_pred"])
    # predicted lesion maps -> energy in predicted regions
    probs = masks.astype(np.float32)
    row = A.image_agreement(region.astype(float), masks, fov, lesion_probs=probs, dilation=2, n_random=5, rng=rng)
    assert row["energy_pred"] == pytest.approx(1.0) and row["pred_lesion_px"] == masks.any(0).sum()
    assert A.image_agreement(np.ones((H, H)), np.zeros((4, H, H)), fov) is None
    assert A.image_agreement(np.ones((H, H)), masks, fov, mask_present=np.zeros(4, bool)) is None
    assert A.auto_dilation(96) == 3 and A.auto_dilation(16) == 1


# --------------------------------------------------------------------------- maps
@pytest.mark.parametrize("name", ["deepmt_dr", "grader_hr", "grader_bicubic"])
def test_visualization_maps_match_forward(cfg, name):
    torch.manual_seed(0)
    m = build_method(name, cfg).eval()
    batch = torch.utils.data.default_collate(make_split(3))
    out = A.visualization_maps(m, batch)
    assert out.vis_map.shape == (3, 1, H, H) and not out.vis_map.requires_grad
    assert float(out.vis_map.min()) >= 0 and float(out.vis_map.max()) <= 1 + 1e-6
    m.compute_vis = True
    with torch.no_grad():
        ref = m(batch)
    torch.testing.assert_close(out.vis_map, ref.vis_map, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.grade_logits, ref.grade_logits, rtol=1e-4, atol=1e-5)
    true = A.visualization_maps(m, batch, target="true")
    assert true.vis_map.shape == (3, 1, H, H)
    with pytest.raises(ValueError):
        A.visualization_maps(m, batch, target="other")


@pytest.mark.parametrize("name", ["isr", "unet_hr", "two_stage"])
def test_visualization_maps_refuse_a_method_without_grader(cfg, name):
    m = build_method(name, cfg).eval()
    with pytest.raises(ValueError, match=f"{name}.*no grader"):
        A.visualization_maps(m, torch.utils.data.default_collate(make_split(2)))


@pytest.mark.parametrize("name", ["deepmt_dr", "grader_lr"])
def test_visualize_targets_the_true_grade_where_known(cfg, name):
    """``Method.visualize(batch, "true")`` explains the true grade: the predicted grade's map where the true one
    is unknown (-1) or equal to the prediction, another map where they differ; a DDP-style wrapper is unwrapped."""
    torch.manual_seed(0)
    m = build_method(name, cfg).eval()
    batch = torch.utils.data.default_collate(make_split(4))
    pred = m.visualize(batch)
    g = pred.grade_logits.argmax(1)
    batch["grade"] = torch.stack([g[0], torch.tensor(-1), (g[2] + 2) % 5, (g[3] + 3) % 5])
    wrapper = torch.nn.Module()
    wrapper.module = m
    true = A.visualization_maps(wrapper, batch, target="true")
    torch.testing.assert_close(true.grade_logits, pred.grade_logits, rtol=0, atol=0)
    torch.testing.assert_close(true.vis_map[:2], pred.vis_map[:2], rtol=0, atol=0)
    assert all(not torch.equal(true.vis_map[i], pred.vis_map[i]) for i in (2, 3))


# --------------------------------------------------------------------------- the study
@pytest.fixture(scope="module")
def study(cfg):
    torch.manual_seed(0)
    methods = {n: build_method(n, cfg).eval() for n in ("grader_hr", "deepmt_dr")}
    return A.attention_study(methods, cfg, n_images=4, n_random=5, dataset=make_split(8), batch_size=3)


def test_attention_study_tables_and_claims(study):
    from deepmt.claims import claims_table

    pi = study.per_image
    assert study.n_images == 4 and set(pi["method"]) == {"grader_hr", "deepmt_dr"}
    assert study.n_without_lesions >= 1  # grade-0 images carry no lesions
    assert (pi["grade"] > 0).all() and pi["energy"].between(0, 1).all()
    assert pi.loc[pi.method == "grader_hr", "energy_pred"].isna().all()
    assert pi.loc[pi.method == "deepmt_dr", "pred_lesion_px"].notna().all()
    s = F2.summary_table(pi, n_boot=200)
    assert list(s["method"]) == ["grader_hr", "deepmt_dr"]
    r = s.iloc[0]
    assert r["effect"] == pytest.approx(r["energy"] - r["energy_random"])
    assert r["effect_lo"] <= r["effect"] <= r["effect_hi"]
    assert r["n_images"] == 4
    g = F2.by_grade_table(pi)
    assert set(g["grade"]) == set(pi["grade"]) and list(dict.fromkeys(g["method"])) == ["grader_hr", "deepmt_dr"]
    les = F2.by_lesion_table(pi)
    assert len(les) == 2 * len(LESIONS)
    claims = claims_table(F2.claims_rows(s, methods=["grader_hr", "deepmt_dr", "missing"]))
    assert list(claims["id"]) == ["C3"] * 3 and (claims["metric"] == "energy_in_lesions").all()
    assert claims["effect"].iloc[0] == pytest.approx(r["effect"]) and claims["verdict"].iloc[2] == "not measured"
    assert len(study.examples) >= 1 and set(study.examples[0]["maps"]) == {"grader_hr", "deepmt_dr"}
    import matplotlib.pyplot as plt

    plt.close(figure_examples(study))
    plt.close(figure_energy(pi, s))


def test_attention_study_over_seeds_averages_each_image_before_the_bootstrap(cfg):
    """Several runs per method (one per seed): one per-image row per seed, the tables average each image over
    the seeds and bootstrap over the images (not over image x seed rows)."""
    torch.manual_seed(0)
    runs = {n: [build_method(n, cfg).eval() for _ in range(2)] for n in ("grader_hr", "deepmt_dr")}
    st = A.attention_study(runs, cfg, n_images=4, n_random=3, dataset=make_split(8), batch_size=3)
    pi = st.per_image
    assert st.seeds == {"grader_hr": [0, 1], "deepmt_dr": [0, 1]} and st.n_images == 4
    assert len(pi) == 2 * 2 * 4 and set(pi["seed"]) == {0, 1}
    g = pi[pi.method == "grader_hr"]
    assert not np.allclose(g[g.seed == 0]["energy"], g[g.seed == 1]["energy"])  # two different networks
    per_img = g.groupby("id", sort=False)[["energy", "energy_random"]].mean()
    s = F2.summary_table(pi, n_boot=200).set_index("method")
    assert s.loc["grader_hr", "n_seeds"] == 2 and s.loc["grader_hr", "n_images"] == 4
    assert s.loc["grader_hr", "energy"] == pytest.approx(per_img["energy"].mean())
    assert s.loc["grader_hr", "effect"] == pytest.approx((per_img["energy"] - per_img["energy_random"]).mean())
    # C3's number has its interval over the seeds and the images, as every effect of the tables (issue 27)
    assert s.loc["grader_hr", "interval"] in ("hierarchical", "seed t")
    assert s.loc["grader_hr", "effect_lo"] <= s.loc["grader_hr", "effect"] <= s.loc["grader_hr", "effect_hi"]
    means = F2.seed_means(pi)
    assert len(means) == 2 * 4 and (means["n_seeds"] == 2).all() and "grade_pred" not in means
    assert F2.by_grade_table(pi)["n_images"].sum() == 2 * 4
    # the example maps are the first seed's, with that seed's measures
    ex = st.examples[0]
    assert ex["seed"] == {"grader_hr": 0, "deepmt_dr": 0} and ex["measures"]["grader_hr"]["seed"] == 0
    # one seed gives the numbers of a single-run study
    single = A.attention_study({n: r[0] for n, r in runs.items()}, cfg, n_images=4, n_random=3, dataset=make_split(8), batch_size=3)
    one = F2.summary_table(single.per_image, n_boot=200)
    assert (one["n_seeds"] == 1).all() and (one["interval"] == "images").all()
    np.testing.assert_array_equal(single.per_image["energy"], pi[pi.seed == 0]["energy"])
    with pytest.raises(ValueError, match="no trained run"):
        A.attention_study({"grader_hr": []}, cfg, dataset=make_split(2))


def test_c3_rows_carry_the_regime_and_two_distinct_comparisons(study):
    from deepmt.claims import claims_table
    from deepmt.studies.verdicts import short_comparison

    f2 = F2.finding2(study, "synthetic, smudge_match=0.8, x4, all masks", n_boot=200)
    c = f2.claims
    assert list(c["id"]) == ["C3", "C3"] and (c["regime"] == "synthetic, smudge_match=0.8, x4, all masks").all()
    assert c["comparison"].nunique() == 2
    shorts = [short_comparison(x) for x in c["comparison"]]
    assert shorts == ["HR grader's plain Grad-CAM", "DeepMT-DR's map, trained toward the lesions"]
    assert (c["n_seeds"] == 1).all()
    assert c["effect"].tolist() == pytest.approx(f2.summary["effect"].tolist())
    rows = claims_table(F2.claims_rows(f2.summary.assign(n_seeds=3), regime="r", methods=["deepmt_dr"]))
    assert rows["n_seeds"].tolist() == [3] and rows["regime"].tolist() == ["r"]


def _fixed_finding2(smoke=False):
    """A Finding2 built by hand: HR grader with a clear excess, DeepMT-DR with none."""
    summary = pd.DataFrame([
        {"method": "grader_hr", "n_seeds": 3, "n_images": 40, "energy": 0.30, "energy_lo": 0.25, "energy_hi": 0.35,
         "energy_random": 0.10, "effect": 0.20, "effect_lo": 0.15, "effect_hi": 0.25, "p_value": 0.001, "lift": 3.0,
         "area_share": 0.08, "auc": 0.80, "auc_lo": 0.75, "auc_hi": 0.85, "auc_random": 0.50, "energy_pred": math.nan,
         "energy_pred_random": math.nan, "effect_pred": math.nan, "effect_pred_lo": math.nan, "effect_pred_hi": math.nan,
         "n_pred": 0},
        {"method": "deepmt_dr", "n_seeds": 3, "n_images": 40, "energy": 0.11, "energy_lo": 0.09, "energy_hi": 0.13,
         "energy_random": 0.10, "effect": 0.01, "effect_lo": -0.02, "effect_hi": 0.04, "p_value": 0.5, "lift": 1.1,
         "area_share": 0.08, "auc": 0.55, "auc_lo": 0.50, "auc_hi": 0.60, "auc_random": 0.49, "energy_pred": 0.4,
         "energy_pred_random": 0.1, "effect_pred": 0.3, "effect_pred_lo": 0.2, "effect_pred_hi": 0.4, "n_pred": 30},
    ])
    by_grade = pd.DataFrame({"method": ["grader_hr"] * 2, "grade": [1, 3], "grade_name": ["mild", "severe"],
                             "n_images": [20, 20], "energy": [0.2, 0.4], "energy_random": [0.1, 0.15],
                             "effect": [0.10, 0.25], "auc": [0.7, 0.9]})
    by_lesion = pd.DataFrame({"method": ["grader_hr", "grader_hr", "deepmt_dr"], "lesion": ["MA", "HE", "MA"],
                              "n_images": [30, 25, 0], "auc": [0.7, 0.9, math.nan]})
    study = A.AttentionStudy(pd.DataFrame(), methods=["grader_hr", "deepmt_dr"])
    from deepmt.claims import claims_table

    claims = claims_table(F2.claims_rows(summary, regime="synthetic, smudge_match=0.8, x4, all masks"))
    return F2.Finding2(study, summary, by_grade, by_lesion, claims, "synthetic, smudge_match=0.8, x4, all masks", smoke)


def test_what_we_see_is_written_from_the_numbers():
    text = F2.what_we_see(_fixed_finding2())
    assert text.startswith("Grader on HR (40 images, each averaged over 3 training seeds): 30.0% of the map's energy "
                           "lies inside the lesion regions (which cover 8.0% of the field of view) against 10.0% for the "
                           "same regions placed at random, a difference of +0.200 [+0.150, +0.250] (x3.00; above the "
                           "random baseline, p = 0.001).")
    assert "ROC-AUC 0.800 [0.750, 0.850] (random placements: 0.500; chance 0.5)" in text
    assert "largest in grade 3 (+25.0%) and smallest in grade 1 (+10.0%)" in text
    assert "Its map detects HE best (AUC 0.900 over 25 images)." in text
    assert "+0.010 [-0.020, +0.040] (x1.10; not distinguishable from the random baseline, p = 0.500)" in text
    assert "Against its own predicted lesion regions (30 images with any), the excess is +0.300 [+0.200, +0.400]" in text
    assert ("Claim C3, HR grader's plain Grad-CAM: reproduced (regime: synthetic, smudge_match=0.8, x4, all masks). "
            "Claim C3, DeepMT-DR's map, trained toward the lesions: reported without a verdict (regime: ") in text
    assert "smoke profile" not in text and "smoke profile" in F2.what_we_see(_fixed_finding2(smoke=True))
    empty = F2.Finding2(A.AttentionStudy(pd.DataFrame(), notes=["no masks here"]), F2.summary_table(pd.DataFrame()),
                       pd.DataFrame(columns=["method", "grade", "effect"]), pd.DataFrame(columns=["method", "n_images"]),
                       pd.DataFrame(columns=["regime", "comparison", "verdict"]))
    assert F2.what_we_see(empty) == "Nothing was measured: no masks here"


def test_finding2_measures_c3s_control_on_the_plain_grader_and_judges_only_its_map():
    """learnable:grader_hr from the plain HR grader's runs (accuracy, mean over seeds, on that grader's object), not
    from any other method's; C3's primary row is that grader's map, DeepMT-DR's is labelled as trained toward the
    lesions and, once collected, carries no verdict."""
    from pathlib import Path

    from deepmt import controls as K
    from deepmt.claims import SECONDARY, apply_controls, claims_table, is_primary
    from deepmt.config import get_config
    from deepmt.experiment_cache import ExperimentResult

    def run(method, seed, right):
        y = np.arange(40) % 5
        pred = np.where(np.arange(40) < right, y, (y + 1) % 5)
        return ExperimentResult(method=method, config=get_config("smoke", {"train.seed": seed}), metrics={}, val_metrics={},
                                predictions={"id": np.array([f"i{k}" for k in range(40)]), "grade_true": y,
                                             "grade_probs": np.eye(5)[pred]},
                                checkpoint=Path("x"), run_dir=Path("."), train_seconds=1.0, history=pd.DataFrame(), key="k")

    runs = {"grader_hr": [run("grader_hr", 0, 36), run("grader_hr", 1, 38)], "deepmt_dr": [run("deepmt_dr", 0, 24)]}
    study = A.AttentionStudy(pd.DataFrame(), methods=["grader_hr", "deepmt_dr"])
    f2 = F2.finding2(study, "r", n_boot=50, runs=runs)
    c = f2.controls.iloc[0]
    assert (len(f2.controls), c["id"], c["object"], c["n_seeds"], c["regime"]) == (1, "learnable:grader_hr", K.GRADER_HR, 2, "r")
    assert c["value"] == pytest.approx((36 + 38) / 80) and c["status"] == "pass"  # 0.925, not DeepMT-DR's 0.6
    assert "Control learnable:grader_hr (grader_hr (plain ResNet grader, no masks)): test accuracy 0.925, required ≥ 0.9 " \
           "accuracy: pass." in F2.what_we_see(f2)
    assert len(F2.finding2(study, "r", n_boot=50).controls) == 0  # no runs given: nothing measured
    rows = F2.claims_rows(_fixed_finding2().summary, regime="r")
    assert [r.min_effect for r in rows] == [0.03, 0.03]  # the minimum lift, in the notebook's own reading too
    claims = apply_controls(claims_table(rows), f2.controls)
    assert [is_primary("C3", "energy_in_lesions", x) for x in claims["comparison"]] == [True, False]
    assert claims["verdict"].tolist() == ["reproduced", SECONDARY]
    assert "trained toward the lesions: not evidence for Finding 2" in claims["comparison"].iloc[1]


def test_attention_study_without_masks(cfg):
    split = make_split(4)
    for s in split:
        s["mask_present"] = torch.zeros(4, dtype=torch.bool)
    st = A.attention_study({"grader_hr": build_method("grader_hr", cfg).eval()}, cfg, n_images=10, n_random=2, dataset=split)
    assert st.n_images == 0 and st.notes
    s = F2.summary_table(st.per_image)
    assert len(s) == 0
    assert F2.claims_rows(s, methods=["grader_hr"])[0].verdict == "not measured"
    assert len(F2.by_grade_table(st.per_image)) == 0 and len(F2.by_lesion_table(st.per_image)) == 0
    import matplotlib.pyplot as plt

    plt.close(figure_examples(st))
    plt.close(figure_energy(st.per_image, s))


# --------------------------------------------------------------------------- qualitative (09)
def test_best_centre_and_crop_half():
    m = np.zeros((H, H), bool)
    m[2, 2] = True  # near the corner: the box is moved inside
    m[30, 40] = True
    all_l = m.copy()
    all_l[28:33, 38:43] = True
    x, y = Q.best_centre(m, all_l, 8)
    assert (x, y) == (40, 30)
    m2 = np.zeros((H, H), bool)
    m2[1, 1] = True
    assert Q.best_centre(m2, m2, 8) == (8, 8)
    assert Q.crop_half(96, 4) == 16 and Q.crop_half(64, 4) == 8 and Q.crop_half(16, 4) == 4


def test_pick_crops_prefers_grades_and_falls_back():
    split = make_split(10)
    picks, note = Q.pick_crops(split, n=4, lesion="MA")
    assert note == "" and len(picks) == 4
    assert sorted(p["grade"] for p in picks) == [1, 2, 3, 4]
    for p in picks:
        assert p["half"] <= p["x"] <= H - p["half"] and p["lesion"] == "MA"
    for s in split:
        s["masks"][0] = 0  # no MA anywhere
    picks, note = Q.pick_crops(split, n=2, lesion="MA")
    assert "any lesion" in note and picks and picks[0]["lesion"] == "any"
    for s in split:
        s["mask_present"] = torch.zeros(4, dtype=torch.bool)
    picks, note = Q.pick_crops(split, n=3)
    assert "random points" in note and len(picks) == 3
    with pytest.raises(ValueError):
        Q.pick_crops(split, lesion="XX")


def test_qualitative_study_and_figures(cfg):
    import matplotlib.pyplot as plt

    torch.manual_seed(0)
    methods = {n: build_method(n, cfg).eval() for n in Q.SR_METHODS}
    qs = Q.qualitative_study(methods, cfg, n_crops=3, dataset=make_split(6))
    assert qs.methods == list(Q.SR_METHODS) and len(qs.picks) == 3
    assert len(qs.table) == 3 * len(Q.SR_METHODS) and np.isfinite(qs.table["psnr_crop"]).all()
    w = Q.psnr_wide(qs.table)
    assert len(w) == 3 and {f"psnr_{m}" for m in Q.SR_METHODS} <= set(w.columns) and set(w["best"]) <= set(Q.SR_METHODS)
    img = qs.images[0]
    assert img["vis"].shape == (H, H) and img["probs"].shape == (4, H, H) and img["grade_probs"].sum() == pytest.approx(1, abs=1e-5)
    plt.close(Q.figure_sr_crops(qs))
    plt.close(Q.figure_full_images(qs))


def test_real_photo_study_through_predict(cfg, tmp_path):
    import matplotlib.pyplot as plt

    from deepmt.engine.checkpoint import config_json, save_checkpoint

    torch.manual_seed(0)
    m = build_method("deepmt_dr", cfg)
    ckpt = save_checkpoint(tmp_path / "final.pt", {"kind": "final", "method": "deepmt_dr", "config": config_json(cfg),
                                                  "class_counts": None, "model": m.state_dict()})
    yy, xx = np.mgrid[0:150, 0:160]
    photo = np.zeros((150, 160, 3), np.uint8)
    photo[(yy - 75) ** 2 + (xx - 80) ** 2 <= 60**2] = (200, 90, 40)  # a red disk on black
    real = Q.real_photo_study(ckpt, image=photo, name="test photo", device="cpu")
    assert real.table["probability"].sum() == pytest.approx(1, abs=1e-4)
    np.testing.assert_allclose(real.table["probability"], real.table["probability_fp32"], atol=0.05)
    assert real.table["predicted"].sum() == 1 and real.summary["image"] == "test photo"
    assert real.sr.shape == (H, H, 3) and real.lr.shape == (H // 4, H // 4, 3) and real.vis.shape == (H, H)
    plt.close(Q.figure_real_photo(real))


def test_c3_interval_widens_when_seeds_disagree():
    """Two seeds whose maps put very different shares of energy on the lesions: the image-level interval of the seed
    means stays narrow, the interval over seeds and images does not."""
    rng = np.random.default_rng(0)
    rows = []
    for seed, lift in ((0, 0.02), (1, 0.30)):
        for i in range(60):
            r = rng.uniform(0.1, 0.3)
            rows.append({"method": "grader_hr", "seed": seed, "id": f"img{i}", "grade": i % 5, "grade_pred": 0,
                         "energy": r + lift + rng.normal(0, 0.01), "energy_random": r, "area_share": 0.3, "auc": 0.6,
                         "auc_random": 0.5, "energy_pred": np.nan, "energy_pred_random": np.nan})
    pi = pd.DataFrame(rows)
    s = F2.summary_table(pi, n_boot=300).iloc[0]
    images = F2._paired(*(F2.seed_means(pi)[c].to_numpy() for c in ("energy", "energy_random")), n_boot=300, seed=0)
    assert s["interval"] in ("hierarchical", "seed t") and s["effect"] == pytest.approx(images["diff"], abs=1e-9)
    assert s["effect_hi"] - s["effect_lo"] > 5 * (images["hi"] - images["lo"])

