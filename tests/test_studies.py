"""deepmt.studies.common / finding1 / grading, ISR and segmentation tables / summary: effects, CIs and the README results section, on fake runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepmt import controls as K
from deepmt import metrics as M
from deepmt.claims import Claim, claims_table
from deepmt.controls import regime_of
from deepmt.config import get_config
from deepmt.errors import SettingError
from deepmt.experiment_cache import ExperimentResult
from deepmt.studies import common as C
from deepmt.studies import few_labels as FL
from deepmt.studies import summary as S
from deepmt.studies import dial as DIAL
from deepmt.studies import finding1 as F1
from deepmt.studies import grading_table as G
from deepmt.studies import isr_table as I
from deepmt.studies import segmentation_table as SEG


def fake_run(method: str, seed: int, correct: float, n: int = 200, rng_seed: int = 0, train_seconds: float = 1.0) -> ExperimentResult:
    """A run whose grade predictions are right on a fraction ``correct`` of images, with per-image ISR/seg values
    that grow with ``correct`` as well."""
    rng = np.random.default_rng(rng_seed + 17 * seed)
    y = np.arange(n) % 5
    right = rng.random(n) < correct
    pred = np.where(right, y, (y + 1 + rng.integers(0, 4, n)) % 5)
    probs = np.full((n, 5), 0.05)
    probs[np.arange(n), pred] = 0.8
    seg = rng.random((n, 4)) * correct
    seg[rng.random((n, 4)) < 0.3] = np.nan  # lesion absent in some images
    preds = {"id": np.array([f"img{i}" for i in range(n)]), "grade_true": y, "grade_probs": probs.astype(np.float32),
             "isr_psnr_lesion": 20 + 10 * correct + rng.normal(0, 1, n), "seg_aupr": seg}
    preds.update(isr_psnr=25 + 10 * correct + rng.normal(0, 1, n), isr_ssim=0.5 + 0.4 * correct + rng.normal(0, 0.01, n),
                 isr_ssim_lesion=0.4 + 0.4 * correct + rng.normal(0, 0.01, n), seg_auc=0.5 + 0.5 * seg, seg_dice=0.8 * seg)
    cfg = get_config("smoke", {"train.seed": seed})
    metrics = {k: float(v) for k, v in M.grading_metrics(y, probs).items() if np.ndim(v) == 0}
    return ExperimentResult(method=method, config=cfg, metrics=metrics, val_metrics={"qwk": correct}, predictions=preds,
                            checkpoint=Path("x"), run_dir=Path("."), train_seconds=train_seconds, history=pd.DataFrame(), key="k")


@pytest.fixture
def runs():
    return {"good": [fake_run("good", s, 0.8) for s in range(3)], "bad": [fake_run("bad", s, 0.4, rng_seed=5) for s in range(3)]}


def test_paired_effect_detects_a_real_difference(runs):
    e = C.paired_effect(runs["good"], runs["bad"], "accuracy", n_boot=300)
    assert e["lo"] > 0 and e["diff"] > 0.2 and e["p_value"] < 0.01
    assert e["a"] == pytest.approx(np.mean([C.metric_value(r, "accuracy") for r in runs["good"]]))
    reverse = C.paired_effect(runs["bad"], runs["good"], "accuracy", n_boot=300)
    assert reverse["hi"] < 0 and reverse["diff"] == pytest.approx(-e["diff"])


def test_paired_effect_of_a_method_with_itself_is_zero(runs):
    e = C.paired_effect(runs["good"], runs["good"], "qwk", n_boot=200)
    assert e["diff"] == 0 and e["lo"] == 0 and e["hi"] == 0 and e["p_value"] == 1.0


@pytest.mark.parametrize("metric", ["aupr", "aupr_MA", "psnr_lesion"])
def test_batched_per_image_metrics_match_the_plain_ones(runs, metric):
    fn, arrays = C.per_image_metric(runs["good"], metric)
    rng = np.random.default_rng(0)
    n = len(arrays[0])
    idx = rng.integers(0, n, size=(5, n))
    w = np.stack([np.bincount(i, minlength=n) for i in idx]).astype(float)
    got = fn.batched(w, *arrays)
    want = [fn(*[a[i] for a in arrays]) for i in idx]
    np.testing.assert_allclose(got, want, rtol=1e-10)


#: paired effects of two fake methods (2 seeds each), computed before the bootstrap API became public (issue 14)
PINNED_EFFECTS = {
    "qwk": (0.32019634458651924, 0.21882352302256453, 0.4347926988749939, 0.7466199069988615, 0.42642356241234225),
    "aupr_MA": (0.11876025006772922, 0.0802361838197559, 0.14792214583495694, 0.4086517168477906, 0.2898914667800614),
    "dice": (0.08989765078373052, 0.07374621520200463, 0.10534939369952524, 0.32192853133797594, 0.23203088055424542),
    "psnr_lesion": (1.9053594509309555, 1.7439035663204154, 2.0491379180962355, 27.915232443083042, 26.009872992152086),
}


@pytest.mark.parametrize("metric", list(PINNED_EFFECTS))
def test_paired_effect_numbers_are_pinned(metric):
    """Effects, CIs and p-values to the last digit: a refactoring of the bootstrap changes none of them."""
    good = [fake_run("good", s, 0.8) for s in range(2)]
    bad = [fake_run("bad", s, 0.6, rng_seed=5) for s in range(2)]
    diff, lo, hi, a, b = PINNED_EFFECTS[metric]
    assert C.paired_effect(good, bad, metric, n_boot=100, seed=1) == {
        "diff": diff, "lo": lo, "hi": hi, "p_value": 0.019801980198019802, "a": a, "b": b,
        "n_seeds": 2, "n_images": 200, "n_boot": 100}
    if metric == "qwk":  # the image bootstrap of the seed-averaged metric (method_ci's path for one run)
        fn, arrays = C.per_image_metric(good, "aupr")
        assert M.bootstrap_ci(fn, *arrays, n_boot=100, seed=2) == (0.40241066417246973, 0.39052769432840095, 0.4146452211623076)


def test_method_ci_covers_training_seeds():
    """A method's level with its interval over seeds and images when its runs have 2 seeds or more (wider when the
    seeds disagree), over images for one run."""
    from deepmt.metrics.uncertainty import hierarchical_bootstrap_ci

    good = [fake_run("good", s, 0.8) for s in range(3)]
    per = [C.per_image_metric([r], "accuracy") for r in good]
    assert C.method_ci(good, "accuracy", n_boot=200) == hierarchical_bootstrap_ci(per[0][0], [x for _, x in per], n_boot=200)
    v, lo, hi = C.method_ci(good, "accuracy", n_boot=200)
    assert v == pytest.approx(np.mean([C.metric_value(r, "accuracy") for r in good])) and lo <= v <= hi
    fn, arrays = C.per_image_metric(good[:1], "accuracy")
    assert C.method_ci(good[:1], "accuracy", n_boot=200) == M.bootstrap_ci(fn, *arrays, n_boot=200, seed=0)
    mixed = [good[0], fake_run("good", 1, 0.3, rng_seed=9), good[2]]
    fn, arrays = C.per_image_metric(mixed, "accuracy")
    image_lo, image_hi = M.bootstrap_ci(fn, *arrays, n_boot=200, seed=0)[1:]
    lo, hi = C.method_ci(mixed, "accuracy", n_boot=200)[1:]
    assert hi - lo > 2 * (image_hi - image_lo)


def test_hierarchical_effect_pairs_runs_by_seed(runs):
    """The record of paired_effect plus the interval used; the effect is the mean of the per-seed differences; with
    one seed it is paired_effect exactly (nothing to resample but the images); runs not paired by seed are refused."""
    e = C.hierarchical_effect(runs["good"], runs["bad"], "accuracy", n_boot=200)
    assert set(e) == set(C.paired_effect(runs["good"], runs["bad"], "accuracy", n_boot=10)) | {"interval"}
    per_seed = [C.metric_value(g, "accuracy") - C.metric_value(b, "accuracy") for g, b in zip(runs["good"], runs["bad"])]
    assert e["diff"] == pytest.approx(np.mean(per_seed)) and e["lo"] > 0 and e["n_seeds"] == 3 and e["n_images"] == 200
    assert e["interval"] in ("hierarchical", "seed t")
    one = C.hierarchical_effect(runs["good"][:1], runs["bad"][:1], "psnr_lesion", n_boot=100, seed=2)
    assert one == {**C.paired_effect(runs["good"][:1], runs["bad"][:1], "psnr_lesion", n_boot=100, seed=2), "interval": "hierarchical"}
    with pytest.raises(ValueError, match="paired by training seed"):
        C.hierarchical_effect(runs["good"], runs["bad"][::-1], "accuracy")


def test_method_ci_brackets_the_point_and_a_missing_task_is_named(runs):
    v, lo, hi = C.method_ci(runs["good"], "accuracy", n_boot=200)
    assert lo <= v <= hi
    del runs["bad"][0].predictions["seg_aupr"]
    with pytest.raises(ValueError, match="bad.*aupr"):
        C.paired_effect(runs["good"], runs["bad"], "aupr")


def test_misaligned_test_images_are_refused(runs):
    runs["bad"][1].predictions["id"] = runs["bad"][1].predictions["id"][::-1].copy()
    with pytest.raises(ValueError, match="same images"):
        C.paired_effect(runs["good"], runs["bad"], "accuracy")


def test_effects_table_covers_training_noise_where_the_seeds_pair(runs):
    """The tables' effects (issue 27): over seeds and images when A and B share their training seeds, and wider for
    it when the seeds disagree; images only (and said so) for one seed or runs not paired by seed."""
    eff = C.effects_table(runs, [("good", "bad")], ["accuracy"], n_boot=200).iloc[0]
    h = C.hierarchical_effect(runs["good"], runs["bad"], "accuracy", n_boot=200)
    assert eff["interval"] == h["interval"] in ("hierarchical", "seed t")
    assert (eff["diff"], eff["lo"], eff["hi"], eff["p_value"]) == (h["diff"], h["lo"], h["hi"], h["p_value"])
    # seeds that disagree: seed 1's "good" run is as bad as "bad"; the image-level interval stays narrow, ours widens
    mixed = {"good": [runs["good"][0], fake_run("good", 1, 0.4, rng_seed=9), runs["good"][2]], "bad": runs["bad"]}
    m = C.effects_table(mixed, [("good", "bad")], ["accuracy"], n_boot=200).iloc[0]
    img = C.paired_effect(mixed["good"], mixed["bad"], "accuracy", n_boot=200)
    assert m["hi"] - m["lo"] > 1.5 * (img["hi"] - img["lo"])
    one = C.effects_table({"good": runs["good"][:1], "bad": runs["bad"][:1]}, [("good", "bad")], ["accuracy"], n_boot=100).iloc[0]
    assert one["interval"] == "images" and one["n_seeds"] == 1
    unpaired = C.effects_table({"good": runs["good"], "bad": runs["bad"][:1]}, [("good", "bad")], ["accuracy"], n_boot=100).iloc[0]
    e = C.paired_effect(runs["good"], runs["bad"][:1], "accuracy", n_boot=100)
    assert unpaired["interval"] == "images" and (unpaired["lo"], unpaired["hi"]) == (e["lo"], e["hi"])


def test_the_claims_table_says_where_stage_2_fell_back(runs, tmp_path):
    """A run whose last stage kept the weights it started from (epoch 0) is counted on its claim rows, with the
    p-value and the interval kind of the effect; a run whose stage 2 trained on is not counted."""
    import dataclasses

    def staged(r, kept_stage2: int, d: Path):
        d.mkdir()
        h = pd.DataFrame({"stage": ["stage1", "stage1", "stage2", "stage2"], "epoch": [1, 2, 1, 2],
                          "best": [False, True, False, False]})
        (d / "result.json").write_text(json.dumps({"best": {"stage1": {"epoch": 2}, "stage2": {"epoch": kept_stage2}}}))
        return dataclasses.replace(r, history=h, run_dir=d)

    fell = {"good": [staged(r, k, tmp_path / f"g{i}") for i, (r, k) in enumerate(zip(runs["good"], (0, 2, 0)))],
            "bad": runs["bad"]}
    assert C.stage2_fallbacks(fell["good"]) == 2 and C.stage2_fallbacks(runs["bad"]) == 0
    eff = C.effects_table(fell, [("good", "bad"), ("bad", "good")], ["accuracy"], n_boot=100)
    assert list(eff.stage2_fallbacks) == [2, 0]
    from deepmt.claims import claims_markdown
    from deepmt.studies.paper_tables import effect_claims

    claims = effect_claims("C1", eff, "good", "bad", ["accuracy"], "01_finding1_isr_helps")
    row = claims.iloc[0]
    assert row.stage2_fallbacks == 2 and row.interval == eff.interval.iloc[0] and row.p_value == eff.p_value.iloc[0]
    assert "stage 2 fell back on 2" in claims_markdown(claims)
    assert "fell back" not in claims_markdown(effect_claims("C1", eff, "bad", "good", ["accuracy"], "x"))


def test_the_claims_table_says_whose_stage_2_was_still_rising(runs, tmp_path):
    """A run whose last stage's validation curve (from the weights it started from) was still rising by notebook 03's
    rule is counted on its side of every claim row that compares it, and agrees with notebook 03's own table; a
    levelled one is not counted."""
    import dataclasses

    from deepmt.claims import claims_markdown
    from deepmt.studies.convergence import convergence_curves, convergence_table
    from deepmt.studies.paper_tables import effect_claims

    def staged(r, curve, d: Path):
        d.mkdir()
        h = pd.DataFrame({"stage": ["stage1"] * 2 + ["stage2"] * len(curve), "epoch": [1, 2, *range(1, len(curve) + 1)],
                          "best": False, "selection_metric": "qwk", "val_qwk": [0.5, 0.6, *curve]})
        (d / "result.json").write_text(json.dumps({"best": {"stage1": {"epoch": 2, "metric": "qwk"}, "stage2": {
            "epoch": int(np.argmax(curve)) + 1, "metric": "qwk", "start_val": {"qwk": 0.6}}}}))
        return dataclasses.replace(r, history=h, run_dir=d)

    rising, flat = [0.62, 0.7, 0.8, 0.9, 0.95, 0.99], [0.9, 0.95, 0.95, 0.95, 0.95, 0.95]
    twin = [staged(r, c, tmp_path / f"b{i}") for i, (r, c) in enumerate(zip(runs["bad"], (rising, flat, flat)))]
    full = [staged(r, flat, tmp_path / f"g{i}") for i, r in enumerate(runs["good"])]
    assert C.stage2_rising(twin) == 1 and C.stage2_rising(full) == 0
    conv = convergence_table(convergence_curves({"bad": twin}))
    assert list(conv.query("stage == 'stage2' and selects").levelled) == ["no", "yes", "yes"]
    eff = C.effects_table({"good": full, "bad": twin}, [("good", "bad")], ["accuracy"], n_boot=100)
    assert (eff.stage2_rising.iloc[0], eff.stage2_rising_b.iloc[0]) == (0, 1)
    claims = effect_claims("C1", eff, "good", "bad", ["accuracy"], "01_finding1_isr_helps")
    assert (claims.iloc[0].stage2_rising, claims.iloc[0].stage2_rising_b) == (0, 1)
    assert "3 (B's stage 2 still rising on 1)" in claims_markdown(claims)


def test_summary_and_sentence(runs):
    s = C.summary_table(runs, ["accuracy"])
    assert list(s.method) == ["good", "bad"] and "±" in s.loc[0, "accuracy"] and s.loc[0, "n_seeds"] == 3
    eff = C.effects_table(runs, [("good", "bad")], ["accuracy"], n_boot=200)
    assert "better than" in C.sentence(eff, "good", "bad", "accuracy")
    assert "not measured" in C.sentence(eff, "good", "bad", "qwk")
    both = C.sentences(eff, ("good", "bad", "accuracy"), ("good", "bad", "qwk"))
    assert both == C.sentence(eff, "good", "bad", "accuracy") + "; " + C.sentence(eff, "good", "bad", "qwk")


def test_study_config_and_seeds(monkeypatch):
    monkeypatch.setenv("DEEPMT_PROFILE", "smoke")
    cfg = C.study_config("", "synthetic", "")
    assert cfg.profile == "smoke" and C.study_seeds(cfg, [3, 4, 5]) == [3]
    assert C.study_seeds(get_config("quick"), [3, 4, 5]) == [3, 4, 5]
    with pytest.raises(ValueError, match="data_root"):
        C.study_config("smoke", "ddr", "")
    with pytest.raises(ValueError, match="at least one"):
        C.study_seeds(cfg, [])


def test_readme_results_section_from_results_folder(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    claims_table([Claim.from_paper("C1", metric="accuracy", effect=0.1, lo=0.05, hi=0.15, n_seeds=3, evidence="01")]).to_csv(res / "01_claims.csv", index=False)
    pd.DataFrame({"label": ["A"], "input": ["LR"], "n_seeds": [3], "accuracy [95% CI]": ["0.5 [0.4, 0.6]"]}).to_csv(res / "01_grading_by_input.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- BEGIN results -->\nstale-block\n<!-- END results -->\n")
    timing = {"command": "./run_all.sh", "profile": "quick", "total_s": 1500, "date": "2026-11-25", "machine": "test box",
              "cache_at_start": "empty", "data": "HR 96"}
    assert S.update_readme(readme, res, timing)
    text = readme.read_text()
    assert "25.0 min" in text and "test box" in text and "from an empty cache" in text
    assert "| **C1**" in text and "reproduced" in text and "0.5 [0.4, 0.6]" in text and "stale-block" not in text
    assert "not measured" in text  # the other claims are listed too
    (res / "04_grading_table.csv").write_text("not,a\n\"broken")
    with pytest.raises(Exception, match="04_grading_table"):
        S.results_markdown(res, timing)
    assert json.dumps(timing)


# --------------------------------------------------------------------------- tables (notebooks 01, 04-06)
#: how well each fake method does (grading, ISR and segmentation alike)
QUALITY = {"grader_lr": 0.3, "unet_lr": 0.3, "bicubic": 0.3, "grader_bicubic": 0.4, "unet_bicubic": 0.4, "srcnn": 0.4,
           "foo_mt": 0.45, "two_stage": 0.5, "edsr": 0.5, "deepmt_dr_noisr": 0.6, "isr": 0.6, "deepmt_dr": 0.8,
           "grader_hr": 0.85, "unet_hr": 0.9, "foo_mt_hr": 0.9, "deepmt_dr_on_hr": 0.9, "deepmt_dr_on_bicubic": 0.5,
           "unet_hr_dice_skip": 0.95, "unet_lr_dice_skip": 0.35,
           "foo_mt_hr_dice_skip": 0.95, "unet_hr_dice_include": 0.85, "foo_mt_hr_dice_include": 0.85,
           "unet_lr_dice_include": 0.25,
           # table 04's tuning budget: twice the learning rate helps the best baseline, half of it hurts
           "deepmt_dr_noisr (lr x2)": 0.62, "deepmt_dr_noisr (lr x0.5)": 0.55}


@pytest.fixture
def fake_training(monkeypatch):
    """``run_methods`` of every table study made of :func:`fake_run`: the same numbers every time, but every "training" takes a
    new number of seconds (as a rerun does)."""
    import itertools

    clock = itertools.count(1)

    def run_methods(methods, cfg, seeds=(0,), overrides=None, names=None):
        few = cfg.data.label_fraction < 1
        quality = {m: QUALITY.get(m, QUALITY[(names or {}).get(m, m)]) for m in methods}  # a named variant: its method's
        runs = {m: [fake_run((names or {}).get(m, m), s, quality[m] - (FEW_LABELS_LOSS[m] if few else 0),
                             rng_seed=sum(map(ord, m)), train_seconds=float(next(clock))) for s in seeds]
                for m in methods}
        for m, rs in runs.items():  # each run's config holds the settings it was trained with
            for r in rs:
                r.config = cfg.replace({**(overrides or {}).get(m, {}), "train.seed": r.config.train.seed})
        return runs

    for module in (F1, DIAL, G, I, SEG, FL):  # each study module calls the runner under its own name
        monkeypatch.setattr(module, "run_methods", run_methods)

    def pathway_runs(results, cfg):  # DeepMT-DR's cached weights fed HR / bicubic: fake runs of the same seeds
        seeds = [r.config.train.seed for r in results]
        return {name: [fake_run(name, s, QUALITY[name], rng_seed=sum(map(ord, name))) for s in seeds]
                for name in (F1.PATHWAY_HR, F1.PATHWAY_BICUBIC)}

    def identity_control(runs, cfg, n_boot=1000, evidence=""):  # the MA maps' identity: nothing recovered
        identity_calls.append((float(cfg.data.synth.smudge_match), sorted(runs), len(runs["deepmt_dr"])))
        return K.control_row("negative:identity", 0.0, -0.02, 0.02, n_seeds=len(runs["deepmt_dr"]), evidence=evidence,
                             regime=regime_of(cfg))

    identity_calls: list = []
    monkeypatch.setattr(F1, "pathway_runs", pathway_runs)
    monkeypatch.setattr(FL, "pathway_runs", pathway_runs)
    monkeypatch.setattr(F1, "identity_control", identity_control)
    return identity_calls


#: how much each fake method of the dial loses with few labels: the bicubic-input nets most, DeepMT-DR least
FEW_LABELS_LOSS = {"foo_mt_hr": 0.1, "foo_mt": 0.25, "deepmt_dr_noisr": 0.3, "deepmt_dr": 0.1}


STUDIES = {
    "01": lambda cfg: F1.finding1(cfg, [0], [0], n_boot=50, dial=(0.0, 1.0)),
    "01_few_labels": lambda cfg: FL.few_labels_study(cfg, [0], 0.1, n_boot=50),
    "04": lambda cfg: G.grading_table(cfg, [0], n_boot=50),
    "05": lambda cfg: I.isr_table(cfg, [0], n_boot=50),
    "06": lambda cfg: SEG.segmentation_table(cfg, [0], n_boot=50),
    "06_dice_empty": lambda cfg: SEG.dice_empty_check(cfg, [0], n_boot=50),
}


@pytest.mark.parametrize("nb", sorted(STUDIES))
def test_a_rerun_leaves_identical_result_tables(nb, fake_training, result_tables):
    """Two runs with the same numbers but other training seconds write byte-identical result tables; the seconds
    go to the study's ``timing`` table only."""
    cfg = get_config("smoke")
    first, second = STUDIES[nb](cfg), STUDIES[nb](cfg)
    a, b = result_tables(first), result_tables(second)
    assert len(a) >= 2 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert not any(b"train_s" in v or b"seconds" in v for v in a.values())
    if "timing" in first:  # 04: each method's training seconds (mean over its seeds), different in each run
        t = first["timing"].set_index("method")
        assert list(t.columns) == ["label", "n_seeds", "train_s"] and list(t.index) == list(first["runs"])
        assert t.loc["deepmt_dr", "train_s"] == np.mean([r.train_seconds for r in first["runs"]["deepmt_dr"]])
        assert (first["timing"]["train_s"] != second["timing"]["train_s"]).all()


def test_what_we_see_01_is_written_from_the_numbers(fake_training):
    res = F1.finding1(get_config("smoke"), [0, 1], [0], n_boot=100, dial=(0.0, 1.0))
    text = F1.what_we_see_01(res)
    g, s = res["grading"].set_index("method"), res["segmentation"].set_index("method")
    assert text.startswith(f"Grading accuracy from LR {g.loc['grader_lr', 'accuracy']:.3f}, bicubic "
                           f"{g.loc['grader_bicubic', 'accuracy']:.3f}, DeepMT-DR without ISR {g.loc['deepmt_dr_noisr', 'accuracy']:.3f}")
    assert "(mean of 2 seed(s))" in text
    assert "DeepMT-DR is better than DeepMT-DR without ISR in accuracy" in text
    assert f"microaneurysm AUPR {s.loc['unet_bicubic', 'aupr_MA']:.3f} (bicubic) vs {s.loc['deepmt_dr', 'aupr_MA']:.3f}" in text
    assert list(res["controls"].id) == ["learnable", "gap", "gap:deepmt_dr", "lesion_resolution", "negative:grading",
                                        "negative:identity"]  # the dial's controls last
    c = res["controls"].set_index("id")
    assert f"Controls: learnable on {K.FOO_MT} {c.loc['learnable', 'value']:.3f} ({c.loc['learnable', 'status']}); gap" in text
    assert "DeepMT-DR's grading pathway on HR is better than DeepMT-DR's grading pathway on bicubic in accuracy" in text
    d = res["dial"].set_index("smudge_match")
    assert f"smudge_match 1: {d.loc[1.0, 'gap']:+.3f} / {d.loc[1.0, 'gain']:+.3f}." in text
    assert "C1 accuracy: reproduced" in text and "C2 aupr" in text
    assert text.endswith(C.SMOKE_NOTE)
    no_dial = F1.finding1(get_config("smoke"), [0], [0], n_boot=50)
    assert no_dial["dial"] is None and list(no_dial["controls"].id) == ["learnable", "gap", "gap:deepmt_dr", "lesion_resolution"]
    quiet = F1.what_we_see_01({**no_dial, "smoke": False})
    assert "Dial sweep" not in quiet and "(mean of 1 seed(s))" in quiet and "smoke" not in quiet


def test_finding1_measures_each_control_on_its_object(fake_training):
    """Finding 1 writes every control C1 and C2 need, each on its object: the benchmark's learnable and gap on the
    multi-task net, gap:deepmt_dr on DeepMT-DR's grading pathway (its cached weights on HR minus on bicubic, no
    training), and at "nothing left" the grading and identity negative controls of DeepMT-DR against its twin."""
    cfg = get_config("smoke")
    res = F1.finding1(cfg, [0, 1], [0], n_boot=20, dial=(1.0,), control_seeds=[0, 1])
    c = res["controls"].set_index("id")
    assert c["object"].to_dict() == {cid: K.CONTROLS[cid].object for cid in c.index}
    main, nothing_left = regime_of(cfg), regime_of(cfg.replace({"data.synth.smudge_match": 1.0}))
    assert c["regime"].to_dict() == {"learnable": main, "gap": main, "gap:deepmt_dr": main, "lesion_resolution": main,
                                     "negative:grading": nothing_left, "negative:identity": nothing_left}
    e = res["effects"].set_index(["a", "b", "metric"])
    pathway = e.loc[(F1.PATHWAY_HR, F1.PATHWAY_BICUBIC, "accuracy")]
    assert (c.loc["gap:deepmt_dr", "value"], c.loc["gap:deepmt_dr", "n_seeds"]) == (pathway["diff"], 2)
    assert c.loc["gap:deepmt_dr", "status"] == "pass"  # fake pathway: 0.9 on HR, 0.5 on bicubic
    assert c.loc["negative:grading", "value"] == res["dial"].set_index("smudge_match").loc[1.0, "gain"]
    assert fake_training == [(1.0, sorted(DIAL.DIAL_METHODS), 2)]  # identity from the runs at 1.0, with their seeds
    g = res["grading"].set_index("method")
    assert g.loc[F1.PATHWAY_HR, "input"] == "HR (DeepMT-DR's weights)" and g.loc[F1.PATHWAY_HR, "n_seeds"] == 2


def test_effect_change_is_the_difference_of_two_paired_effects(runs):
    good, bad = runs["good"], runs["bad"]
    same = C.effect_change(good, bad, good, bad, "accuracy", n_boot=200)
    assert (same["diff"], same["lo"], same["hi"], same["p_value"]) == (0, 0, 0, 1.0)
    worse = [fake_run("worse", s, 0.2, rng_seed=9) for s in range(3)]
    e = C.effect_change(good, worse, good, bad, "accuracy", n_boot=300)
    assert e["a"] == pytest.approx(C.effect(good, worse, "accuracy", n_boot=10)["diff"])
    assert e["b"] == pytest.approx(C.effect(good, bad, "accuracy", n_boot=10)["diff"]) and e["interval"] in ("hierarchical", "seed t")
    assert e["diff"] == pytest.approx(e["a"] - e["b"]) and 0 < e["lo"] < e["diff"] < e["hi"] and e["p_value"] < 0.05
    assert C.effect_change(good, worse, good, bad, "aupr_MA", n_boot=50)["n_images"] == 200  # segmentation too


def test_few_labels_study_compares_the_gain_with_few_and_with_all_labels(fake_training):
    cfg = get_config("smoke")
    res = FL.few_labels_study(cfg, [0, 1, 2], 0.1, n_boot=200)
    t = res["table"]
    assert list(t.label_fraction) == [1.0, 0.1] and list(t.n_seeds) == [3, 3]
    assert list(t.regime) == ["synthetic, smudge_match=0.8, x4, all masks",
                              "synthetic, smudge_match=0.8, x4, labels on 10% of training images"]
    numbers, _ = DIAL.gap_and_gain(res["runs"][1.0], n_boot=200)  # the dial sweep's numbers, setting by setting
    assert t.iloc[0][list(numbers)].to_dict() == numbers
    ch = res["change"].set_index("quantity")
    assert list(ch.index) == ["gap", "gain", "ma_aupr_gain"]
    for name in ch.index:
        assert ch.loc[name, "few_labels"] == pytest.approx(t.iloc[1][name])
        assert ch.loc[name, "all_labels"] == pytest.approx(t.iloc[0][name])
        assert ch.loc[name, "change"] == pytest.approx(t.iloc[1][name] - t.iloc[0][name])
    # the fake bicubic-input nets lose more with few labels than DeepMT-DR: the gain grows, and the CI says so
    assert ch.loc["gain", "change_lo"] > 0 and ch.loc["gap", "change_lo"] > 0
    assert res["label_fraction"] == 0.1 and res["smoke"] and set(res["runs"]) == {1.0, 0.1}
    for bad in (1.0, 0.0):
        with pytest.raises(SettingError, match="label_fraction"):
            FL.few_labels_study(cfg, [0], bad)
    with pytest.raises(SettingError, match="must label every image"):
        FL.few_labels_study(cfg.replace({"data.label_fraction": 0.5}), [0], 0.1)
    fig = FL.plot_few_labels(t)
    assert len(fig.axes) == 2 and list(fig.axes[0].get_xticks()) == [1.0, 0.1]


def test_few_labels_is_a_claim_regime_with_its_own_controls(fake_training, tmp_path):
    """Issue 27, item 5: C1 and C4 judged with few labels, gated by controls measured in that regime; a failing
    control of the few-labels regime makes those rows not testable and leaves the all-labels rows alone."""
    from deepmt.claims import collect_claims

    cfg = get_config("smoke")
    res = FL.few_labels_study(cfg, [0, 1], 0.1, n_boot=200)
    few_regime = "synthetic, smudge_match=0.8, x4, labels on 10% of training images"
    cl, co = res["claims"], res["controls"]
    assert set(cl.id) == {"C1", "C4"} and set(cl.regime) == {few_regime} and set(cl.metric) == {"accuracy", "qwk", "macro_f1"}
    c1 = cl[(cl.id == "C1") & (cl.metric == "accuracy")].iloc[0]
    e = C.paired_effect(res["runs"][0.1]["deepmt_dr"], res["runs"][0.1]["deepmt_dr_noisr"], "accuracy", n_boot=200)
    assert c1.effect == pytest.approx(e["diff"]) and c1.n_seeds == 2
    c4 = cl[(cl.id == "C4") & (cl.metric == "accuracy")].iloc[0]
    assert "multi-task net on bicubic" in c4.comparison
    assert list(co.id) == ["learnable", "gap", "gap:deepmt_dr"] and set(co.regime) == {few_regime}
    gap = co.set_index("id").loc["gap"]
    assert gap.value == pytest.approx(FL.effects_table(res["runs"][0.1], [("foo_mt_hr", "foo_mt")], ["accuracy"], 200).iloc[0]["diff"])
    # a failing gap in the few-labels regime gates only the few-labels rows
    few_fail = co.assign(status=["pass", "fail", "pass"])
    all_rows = cl.assign(regime="synthetic, smudge_match=0.8, x4, all masks")
    pd.concat([cl, all_rows], ignore_index=True).to_csv(tmp_path / "01_claims.csv", index=False)
    table = collect_claims(tmp_path, controls=few_fail, include_unmeasured=False)
    primary = table[(table.metric == "accuracy") & (table.id == "C1")].set_index("regime")["verdict"]
    assert primary[few_regime].startswith("not testable") and "gap failed" in primary[few_regime]
    assert "gap failed" not in primary["synthetic, smudge_match=0.8, x4, all masks"]


def _few_labels_result(gain_lo: float, gain_hi: float, ma_lo: float, ma_hi: float, smoke: bool) -> dict:
    """A few_labels_study result with fixed numbers (gain and MA AUPR gain changes with the given CIs)."""
    table = pd.DataFrame([
        {"label_fraction": 1.0, "n_seeds": 3, "gap [95% CI]": "+0.120 [+0.080, +0.160]", "gain [95% CI]": "+0.010 [-0.020, +0.040]",
         "ma_aupr_gain [95% CI]": "+0.030 [+0.010, +0.050]", "share_recovered": 0.0833},
        {"label_fraction": 0.1, "n_seeds": 3, "gap [95% CI]": "+0.200 [+0.150, +0.250]", "gain [95% CI]": "+0.060 [+0.020, +0.100]",
         "ma_aupr_gain [95% CI]": "+0.070 [+0.040, +0.100]", "share_recovered": float("nan")},
    ])
    change = pd.DataFrame([
        {"quantity": "gap", "change [95% CI]": "+0.080 [+0.020, +0.140]", "change_lo": 0.02, "change_hi": 0.14, "p_value": 0.01},
        {"quantity": "gain", "change [95% CI]": "+0.050 [x]", "change_lo": gain_lo, "change_hi": gain_hi, "p_value": 0.004},
        {"quantity": "ma_aupr_gain", "change [95% CI]": "+0.040 [y]", "change_lo": ma_lo, "change_hi": ma_hi, "p_value": 0.5},
    ])
    return {"table": table, "change": change, "label_fraction": 0.1, "smoke": smoke}


def test_what_we_see_few_labels_on_fixed_numbers():
    text = FL.what_we_see_few_labels(_few_labels_result(0.01, 0.09, -0.02, 0.1, smoke=False))
    assert text == (
        "With grade and masks on 10% of the training images (the others unlabelled HR images, which only the ISR learns "
        "from; 3 seed(s)), the lesion-supervised net loses +0.200 [+0.150, +0.250] accuracy on bicubic input against HR "
        "(all labels: +0.120 [+0.080, +0.160]). DeepMT-DR's gain over the same network without ISR is +0.060 [+0.020, "
        "+0.100] in accuracy and +0.070 [+0.040, +0.100] in MA AUPR (all labels: +0.010 [-0.020, +0.040] and +0.030 "
        "[+0.010, +0.050]), n/a (no positive gap) of the gap recovered (all labels: 8%). From all labels to few, the "
        "gain changes by +0.050 [x] in accuracy (p = 0.004) and +0.040 [y] in MA AUPR (p = 0.500): the ISR's advantage "
        "grows when labels are few in accuracy; no change the test images can resolve in MA AUPR."
    )
    shrinks = FL.what_we_see_few_labels(_few_labels_result(-0.09, -0.01, 0.01, 0.05, smoke=True))
    assert "the ISR's advantage shrinks when labels are few in accuracy; more microaneurysm detail recovered" in shrinks
    assert shrinks.endswith(C.SMOKE_NOTE)


def test_what_we_see_04_05_06_are_written_from_the_numbers(fake_training):
    cfg = get_config("smoke")
    g = G.grading_table(cfg, [0, 1], n_boot=100)
    assert g["best_baseline"] == "deepmt_dr_noisr"  # the best validation QWK among the baselines
    assert g["best_tuned"] == "deepmt_dr_noisr (lr x2)"  # then the best of its five configurations on validation
    text = G.what_we_see_04(g)
    t = g["table"].set_index("method")
    assert text.startswith(f"DeepMT-DR: accuracy {t.loc['deepmt_dr', 'accuracy']}, QWK {t.loc['deepmt_dr', 'qwk']}")
    assert "± " in text and "(mean ± std over 2 seed(s)). The best baseline on validation is DeepMT-DR without ISR" in text
    assert "of its 5 configurations, validation kept DeepMT-DR without ISR (lr x2)" in text
    assert "DeepMT-DR is not distinguishable from DeepMT-DR without ISR (lr x2) in qwk (" in text  # against the kept one
    assert f"the multi-task net {t.loc['foo_mt_hr', 'accuracy']}." in text
    assert "Verdicts (C4): accuracy: inconclusive; qwk: inconclusive; macro_f1: inconclusive." in text and text.endswith(C.SMOKE_NOTE)
    isr = I.isr_table(cfg, [0], n_boot=100)
    text = I.what_we_see_05({**isr, "smoke": False})
    i = isr["table"].set_index("method")
    assert text.startswith(f"PSNR over the whole image: bicubic {i.loc['bicubic', 'psnr']:.2f} dB, single-task ISR "
                           f"{i.loc['isr', 'psnr']:.2f} dB, DeepMT-DR {i.loc['deepmt_dr', 'psnr']:.2f} dB")
    assert "DeepMT-DR is better than Single-task ISR in psnr_lesion" in text
    assert "Controls: sr_works:srcnn +" in text and "dB (pass)" in text
    assert text.endswith("Verdicts (C6, before controls): psnr_lesion: reproduced; ssim_lesion: reproduced.")
    seg = SEG.segmentation_table(cfg, [0], n_boot=100)
    text = SEG.what_we_see_06(seg)
    a = seg["table"][seg["table"].metric == "aupr"].set_index("method")
    assert text.startswith(f"Microaneurysm AUPR: U-Net on LR {a.loc['unet_lr', 'MA']:.3f}, on bicubic {a.loc['unet_bicubic', 'MA']:.3f}")
    assert f"Haemorrhage AUPR {a.loc['unet_bicubic', 'HE']:.3f} (bicubic U-Net) vs {a.loc['deepmt_dr', 'HE']:.3f} (DeepMT-DR)" in text
    assert "DeepMT-DR is better than U-Net on bicubic in aupr_MA" in text and text.endswith(C.SMOKE_NOTE)


def test_dice_empty_check_trains_the_other_setting_and_compares_it(fake_training, monkeypatch):
    """Notebook 06's loss check: each checked method again under its own name with the other ``loss.seg_dice_empty``
    setting than the profile's, beside its run under the profile's; per-lesion AUPR, the lesion-channel count and the
    paired effects skip - include whichever is the default, with accuracy and QWK only where both runs grade."""
    seen = {}
    fake = SEG.run_methods

    def spy(methods, cfg, seeds=(0,), overrides=None, names=None):
        seen.update(methods=list(methods), overrides=overrides, names=names)
        runs = fake(methods, cfg, seeds, overrides=overrides)
        for r in (r for m, rs in runs.items() if m.startswith("unet_hr") for r in rs):  # a U-Net does not grade
            r.metrics.pop("accuracy")
        return runs

    monkeypatch.setattr(SEG, "run_methods", spy)
    assert SEG.DICE_EMPTY_METHODS == ("unet_hr", "unet_lr", "foo_mt_hr")
    for default, other in (("include", "skip"), ("skip", "include")):
        cfg = get_config("smoke", {"loss.seg_dice_empty": default})
        res = SEG.dice_empty_check(cfg, [0, 1], methods=["unet_hr", "foo_mt_hr"], n_boot=100)
        check = {f"unet_hr_dice_{other}": "unet_hr", f"foo_mt_hr_dice_{other}": "foo_mt_hr"}
        assert seen == {"methods": ["unet_hr", "foo_mt_hr", *check],
                        "overrides": {n: {"loss.seg_dice_empty": other} for n in check}, "names": check}
        skip, include = ("unet_hr_dice_skip", "unet_hr") if other == "skip" else ("unet_hr", "unet_hr_dice_include")
        assert res["pairs"][0] == ("unet_hr", skip, include)
        t = res["table"].set_index("method")
        assert t.loc["unet_hr", "seg_dice_empty"] == default and t.loc[f"unet_hr_dice_{other}", "seg_dice_empty"] == other
        assert t.loc[f"unet_hr_dice_{other}", "label"] == "U-Net on HR, " + C.DICE_EMPTY_WORDS[other]
        assert t.loc["unet_hr", "kept_all"] == "n/a"  # fake runs record no per-epoch history
        assert np.isnan(t.loc["unet_hr", "accuracy"]) and t.loc["unet_hr", "accuracy [95% CI]"] == ""
        e = res["effects"]
        seg = {"aupr", "aupr_MA", "aupr_HE", "aupr_EX", "aupr_SE", "dice"}
        assert set(e.loc[e.a == skip, "metric"]) == seg and set(e.loc[e.a == skip, "b"]) == {include}
        assert set(e.loc[e.a.str.startswith("foo_mt_hr"), "metric"]) == seg | {"accuracy", "qwk"}
        text = SEG.what_we_see_dice_empty(res)
        assert text.startswith(f"U-Net on HR: mean AUPR {t.loc[include, 'mean']:.3f} with Dice on every annotated mask, "
                               f"{t.loc[skip, 'mean']:.3f} when Dice skips empty masks")
        assert text.endswith(C.SMOKE_NOTE) and "U-Net on HR in accuracy" not in text
    # fake quality: the skip run is the better one under either default (2 seeds: the interval over seeds and images
    # is too wide to call it, and the sentence says what the interval says)
    for a, b, met in (("unet_hr", "unet_hr_dice_include", "aupr"), ("foo_mt_hr", "foo_mt_hr_dice_include", "accuracy")):
        r = e[(e.a == a) & (e.b == b) & (e.metric == met)].iloc[0]
        assert r["diff"] > 0 and r["n_seeds"] == 2 and r["interval"] in ("hierarchical", "seed t")
        assert C.sentence(e, a, b, met) in text
    assert "U-Net on HR is not distinguishable from U-Net on HR, Dice on every mask in aupr" in text
    assert C.label("unet_lr_dice_include") == "U-Net on LR, Dice on every mask" and C.label("x_dice_skip") == "x_dice_skip"


def test_the_best_baseline_gets_deepmt_drs_tuning_budget_and_c4_judges_the_configuration_validation_kept(fake_training):
    cfg = get_config("smoke")
    g = G.grading_table(cfg, [0, 1], n_boot=50)
    tuning = g["tuning_table"].set_index("configuration")
    assert len(tuning) == 1 + len(G.BASELINE_TUNING) and tuning["n_seeds"].eq(2).all()
    assert tuning["kept"].sum() == 1 and tuning.loc["deepmt_dr_noisr (lr x2)", "kept"]  # the best mean validation QWK
    assert tuning["val_qwk_mean"].idxmax() == "deepmt_dr_noisr (lr x2)"
    assert "deepmt_dr_noisr (lr x2)" in set(g["table"].method)  # in the table beside its method's own settings
    c4 = g["claims"]
    assert c4.comparison.str.contains(r"DeepMT-DR without ISR; lr x2 kept on validation among 5", regex=False).all()
    e = g["effects"].set_index(["b", "metric"])
    assert c4.set_index("metric").loc["qwk", "effect"] == pytest.approx(float(e.loc[("deepmt_dr_noisr (lr x2)", "qwk"), "diff"]))


def test_the_tuning_scales_the_learning_rate_and_epochs_a_method_trains_with():
    from deepmt.models.methods import build_method

    q = get_config("quick")
    for name, stage in (("foo_mt", "single"), ("grader_hr", "single"), ("deepmt_dr", "stage2")):
        m = build_method(name, q)
        lr, ep = m.stage_lr(stage, q.train), m.stage_epochs(stage, q.train)
        assert m.stage_lr(stage, q.replace(G.BASELINE_TUNING["lr x2"]).train) == pytest.approx(2 * lr)
        assert m.stage_epochs(stage, q.replace(G.BASELINE_TUNING["epochs x0.5"]).train) == round(ep / 2)
    assert q.replace({"train.lr_scale": 1.0, "train.epochs_scale": 1.0}).key() == q.key()  # neutral at 1: no key moved
    assert q.replace(G.BASELINE_TUNING["lr x2"]).key() != q.key()
