"""deepmt.studies.ablations: variants, how each is trained (warm start / full run / the base itself), tables,
claims and figures. Training is faked (no run takes more than a moment); the warm-start mechanics themselves are
tested in test_warm_start.py and the notebooks run end to end under smoke (nbval)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import deepmt.studies.ablation_loss as AL
import deepmt.studies.ablation_structure as AS
import deepmt.studies.ablations as A
import deepmt.studies.common as common
from deepmt.config import get_config
from deepmt.experiment_cache import ExperimentResult

N = 40


def _fake(method, cfg, quality=0.0, warm=None, seconds=3.0):
    """A result whose numbers improve with ``quality`` (deterministic per config; validation as test). A warm start
    trains a third of ``seconds`` and skips the other two thirds (the base's earlier stages)."""
    rng = np.random.default_rng(int(cfg.key(), 16) % 2**32)
    y = np.arange(N) % 5
    logits = rng.normal(size=(N, 5)) + (2.0 + quality) * np.eye(5)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = {"id": np.array([f"test_{i:04d}" for i in range(N)]), "grade_true": y, "grade_probs": probs}
    if method != "deepmt_dr_noisr":
        pred.update(isr_psnr_lesion=30 + quality + rng.normal(0, 0.1, N), isr_ssim_lesion=0.8 + 0.01 * quality + rng.normal(0, 0.01, N))
    pred.update(seg_aupr=np.clip(0.3 + 0.05 * quality + rng.normal(0, 0.05, (N, 4)), 0, 1),
                seg_dice=np.clip(0.2 + rng.normal(0, 0.05, (N, 4)), 0, 1))
    from deepmt import metrics as M

    metrics = {"accuracy": M.accuracy(y, probs), "qwk": M.qwk(y, probs), "macro_f1": M.macro_f1(y, probs),
               "aupr": float(pred["seg_aupr"].mean()), "dice": float(pred["seg_dice"].mean()),
               "aupr_MA": float(pred["seg_aupr"][:, 0].mean())}
    if "isr_psnr_lesion" in pred:
        metrics.update(psnr_lesion=float(pred["isr_psnr_lesion"].mean()), ssim_lesion=float(pred["isr_ssim_lesion"].mean()))
    return ExperimentResult(method=method, config=cfg, metrics=metrics, val_metrics={"qwk": metrics["qwk"]}, predictions=pred,
                            checkpoint=Path("final.pt"), run_dir=Path("."), train_seconds=seconds / 3 if warm else seconds,
                            history=pd.DataFrame(), key=cfg.key(), from_cache=False,
                            warm_start={"base_key": "b", "start_stage": warm, "earlier_stages_seconds": 2 * seconds / 3} if warm else None)


@pytest.fixture
def fake_runs(monkeypatch):
    """Fake run_jobs / run_methods; records every run. Each "training" takes longer than the one before (the
    numbers do not change: as in a rerun)."""
    import itertools

    calls = []
    clock = itertools.count(3)

    def run_jobs(jobs, **kw):
        out = []
        for job in jobs:
            calls.append((job.method, job.cfg, job.start_stage))
            quality = -1.0 if job.cfg.loss.cls_aware == 0 and job.cfg.loss.seg_aware == 0 else 0.0
            out.append(_fake(job.method, job.cfg, quality, warm=job.start_stage, seconds=float(next(clock))))
        return out

    def run_methods(methods, cfg, seeds=(0,), **kw):
        return {m: [_fake(m, cfg.replace({"train.seed": s}), seconds=float(next(clock))) for s in seeds] for m in methods}

    monkeypatch.setattr(A, "run_jobs", run_jobs)
    monkeypatch.setattr(A, "run_methods", run_methods)
    monkeypatch.setattr(AS, "run_methods", run_methods)
    return calls


@pytest.fixture
def loaded_methods(monkeypatch):
    """``load_method`` returns an object whose ``feedback_summary`` is fixed gradient norms and scales."""
    import deepmt.experiment_cache as E

    class _Loaded:
        def __init__(self, res):
            self.scaling = res.config.loss.feedback_scaling

        def feedback_summary(self):
            return {"scaling": self.scaling, "grad_norm_isr_pixel": 1e-3, "grad_norm_cls_aware": 2.0, "scale_cls_aware": 1e-4,
                    "grad_norm_seg_aware": 1e-2, "scale_seg_aware": 0.05, "grad_norm_grading_feedback": 1.0,
                    "scale_grading_feedback": 5e-4}

    monkeypatch.setattr(E, "load_method", _Loaded)


def test_variants_and_their_training_plan(cfg):
    names = [v.name for v in AL.task_aware_variants([0, 10, 100], [1], [0.1, 2])]
    assert names[:6] == ["authors_weights", "no_seg_aware", "no_cls_aware", "no_grading_feedback", "no_vis_consistency", "no_task_aware"]
    assert names[6:] == ["cls_aware=0", "cls_aware=10", "cls_aware=100", "seg_aware=1", "feedback_ratio=0.1", "feedback_ratio=2"]
    off = {v.name: v for v in AL.task_aware_variants()}["no_task_aware"].overrides
    assert off == {"loss.seg_aware": 0.0, "loss.cls_aware": 0.0, "loss.grading_feedback": 0.0}
    plan = {v.name: A.start_stage(v.method, cfg, cfg.replace(dict(v.overrides)))
            for v in AL.task_aware_variants([10], (), [0.5, 2]) + AS.structure_variants([2, 4, 8], 4)}
    assert plan == {
        "authors_weights": "stage2", "feedback_ratio=0.5": "base", "feedback_ratio=2": "stage2",
        "no_seg_aware": "stage2", "no_cls_aware": "stage2", "no_grading_feedback": "stage2", "no_task_aware": "stage2",
        "no_vis_consistency": "stage1b", "cls_aware=10": "base",
        "no_isr": "full", "no_seg": "full", "no_feature_selection": "stage1b", "stage1b_on_sr": "stage1b",
        "unsupervised": "stage2", "scale_x2": "full", "scale_x8": "full",
    }
    # mixed changes start at the earliest stage they touch; keys that never change weights do not count
    assert A.start_stage("deepmt_dr", cfg, cfg.replace({"loss.cls_aware": 1.0, "loss.vis_consistency": 0.1})) == "stage1b"
    assert A.start_stage("deepmt_dr", cfg, cfg.replace({"train.progress": True, "train.device": "cuda"})) == "base"
    assert A.start_stage("deepmt_dr", cfg, cfg.replace({"loss.cls_aware": 1.0, "train.lr": 1e-3})) == "full"


def test_task_aware_study_warm_starts_dedupes_and_claims(cfg, fake_runs, loaded_methods):
    res = AL.task_aware_study(cfg, [0], cls_aware_weights=[0, 10, 100], feedback_ratios=(), n_boot=200)
    trained = {(c[1].loss.seg_aware, c[1].loss.cls_aware, c[1].loss.grading_feedback, c[1].loss.vis_consistency,
                c[1].loss.feedback_scaling): c[2] for c in fake_runs}
    assert len(fake_runs) == 7  # the authors' weights + 5 ablations + cls_aware=100; cls_aware=0 and =10 are reused
    assert trained[(1.0, 10.0, 1.0, 0.3, "authors")] == "stage2"
    g = res["gradients"].set_index("variant")
    assert list(g.index) == ["deepmt_dr", "authors_weights"]
    assert g.loc["deepmt_dr", "ratio_cls_aware"] == pytest.approx(1e-4 * 2.0 / 1e-3)
    assert trained[(1.0, 10.0, 1.0, 0.0, "calibrated")] == "stage1b" and trained[(0.0, 0.0, 0.0, 0.3, "calibrated")] == "stage2"
    plan = res["plan"].set_index("variant")
    assert plan.loc["cls_aware=0", "trained"] == "same as no_cls_aware"
    assert plan.loc["cls_aware=10", "trained"] == "same as deepmt_dr"
    assert plan.loc["no_vis_consistency", "trained"] == "warm start at stage1b"
    assert plan.loc["deepmt_dr", "trained"] == "base" and not set(A.TIMING_COLUMNS) & set(plan.columns)
    timing = res["timing"].set_index("variant")  # seconds apart: the variant's own, and those its warm start skipped
    assert list(timing.index) == list(plan.index) and list(timing.trained) == list(plan.trained)
    warm = res["ablation"].runs["no_seg_aware"][0]
    assert timing.loc["no_seg_aware", "train_s"] == warm.train_seconds
    assert timing.loc["no_seg_aware", "shared_s"] == warm.warm_start["earlier_stages_seconds"] > 0
    assert timing.loc["cls_aware=10", "train_s"] == 0 and timing.loc["deepmt_dr", "shared_s"] == 0
    # one summary row and one set of effects per distinct run
    assert list(res["summary"].variant) == ["deepmt_dr", "authors_weights", "no_seg_aware", "no_cls_aware", "no_grading_feedback",
                                            "no_vis_consistency", "no_task_aware", "cls_aware=100"]
    eff = res["effects"]
    assert set(eff.a) == set(res["summary"].variant) - {"deepmt_dr"} and set(eff.b) == {"deepmt_dr"}
    assert set(eff.metric) == set(A.METRICS)
    e = eff[(eff.a == "no_task_aware") & (eff.metric == "psnr_lesion")].iloc[0]
    assert e["diff"] == pytest.approx(e["value_a"] - e["value_b"]) and e["diff"] < 0 and e["hi"] < 0
    # claim C5: full minus all feedback off, signed in the claim's direction
    claims = res["claims"].set_index("metric")
    assert list(claims.index) == list(AL.C5_METRICS) and set(claims.id) == {"C5"}
    assert claims.loc["psnr_lesion", "effect"] == pytest.approx(-e["diff"]) and claims.loc["psnr_lesion", "verdict"] == "reproduced"
    assert (claims.n_seeds == 1).all() and (claims.evidence == "07_ablation_task_aware_loss").all()
    sweep = res["sweeps"]["cls_aware"]
    assert list(sweep.weight) == [0.0, 10.0, 100.0] and list(sweep.variant) == ["no_cls_aware", "deepmt_dr", "cls_aware=100"]
    assert sweep.is_base.tolist() == [False, True, False] and np.isfinite(sweep.qwk_lo).all()
    assert "without task-aware loss" in A.effect_clause(eff, "no_task_aware", ["qwk", "psnr_lesion"], res["ablation"].labels)
    assert "(lower)" in A.effect_clause(eff, "no_task_aware", "psnr_lesion")
    assert list(res["wide"].variant) == list(res["summary"].variant)[1:]
    A.plot_effects(eff, ["accuracy", "psnr_lesion"], res["ablation"].labels)
    AL.plot_sweep(sweep, ["qwk", "psnr_lesion"], "sweep")


def test_structure_study_plan_skip_and_scale_check(cfg, fake_runs, monkeypatch):
    monkeypatch.setattr(AS, "scale_alignment", lambda ab, c, scale_of: pd.DataFrame(
        [{"variant": v, "scale": s, "ids_match": True} for v, s in scale_of.items() if v != "deepmt_dr"]))
    res = AS.structure_study(cfg, [0, 1], scales=[4, 8], unsupervised=0.5, n_boot=100)
    plan = res["plan"].set_index("variant")
    assert plan.loc["unsupervised", "trained"] == "not run" and "annotation" in plan.loc["unsupervised", "note"]
    assert plan.loc["no_isr", "trained"] == "full run" and plan.loc["no_seg", "trained"] == "full run"
    assert plan.loc["no_feature_selection", "trained"] == "warm start at stage1b"
    assert plan.loc["stage1b_on_sr", "trained"] == "warm start at stage1b"
    assert plan.loc["scale_x8", "trained"] == "full run" and "scale_x4" not in plan.index
    methods = [(c[0], c[1].train.seed, c[2]) for c in fake_runs]
    assert ("deepmt_dr_noisr", 1, None) in methods and len(fake_runs) == 2 * 5
    assert res["scale_of"] == {"deepmt_dr": 4, "scale_x8": 8}
    eff = res["effects"]
    assert not ((eff.a == "no_isr") & (eff.metric == "psnr_lesion")).any()  # no ISR, no ISR metrics
    assert ((eff.a == "no_isr") & (eff.metric == "qwk")).any() and (eff.n_seeds == 2).all()
    assert "not measured" in A.effect_clause(eff, "no_isr", "psnr_lesion")
    AS.plot_scales(res["summary"], res["scale_of"], ["accuracy", "qwk"])


def _scale_check(ab, c, scale_of):
    """What :func:`AS.scale_alignment` would say of the scale variants: same ids, other grades, HR differs by 0.25."""
    return pd.DataFrame([{"variant": v, "scale": s, "lr_size": c.data.hr_size // s, "ids_match": True, "grades_match": False,
                          "hr_max_abs_diff": 0.25} for v, s in scale_of.items() if v != "deepmt_dr"])


def test_a_rerun_leaves_identical_result_tables(cfg, fake_runs, loaded_methods, monkeypatch, result_tables):
    """Notebooks 07 and 08 run twice: the same numbers, other training seconds. The plans and every result table
    are byte-identical; only the timing tables differ."""
    monkeypatch.setattr(AS, "scale_alignment", _scale_check)

    def studies():
        return (AL.task_aware_study(cfg, [0], cls_aware_weights=[100], feedback_ratios=[], n_boot=50),
                AS.structure_study(cfg, [0], scales=[4, 8], n_boot=50), AS.unsupervised_study(cfg, [0], n_boot=50))

    for first, second in zip(studies(), studies()):
        a, b = result_tables(first), result_tables(second)
        assert {"plan", "summary", "effects"} <= a.keys() and a.keys() == b.keys()
        assert [k for k in a if a[k] != b[k]] == []
        assert not any(b"train_s" in v or b"shared_s" in v for v in a.values())
        assert not first["timing"].equals(second["timing"])


def test_what_we_see_07_is_written_from_the_numbers(cfg, fake_runs, loaded_methods):
    res = AL.task_aware_study(cfg, [0], cls_aware_weights=[0, 10, 100], feedback_ratios=[0.5, 2.0], n_boot=100)
    text = AL.what_we_see_07(res)
    s = res["summary"].set_index("variant")
    assert text.startswith(f"The full DeepMT-DR reaches accuracy {s.loc['deepmt_dr', 'accuracy']}, QWK {s.loc['deepmt_dr', 'qwk']} "
                           f"and PSNR {s.loc['deepmt_dr', 'psnr_lesion']} dB in lesion regions.")
    assert f"it reaches accuracy {s.loc['no_task_aware', 'accuracy']}, QWK {s.loc['no_task_aware', 'qwk']}" in text
    c5 = res["claims"].set_index("metric")
    assert (f"Claim C5 (full − without, 95% CI over test images, 1 seed(s)): accuracy {c5.loc['accuracy', 'effect']:+.3f} "
            f"[{c5.loc['accuracy', 'lo']:+.3f}, {c5.loc['accuracy', 'hi']:+.3f}] -> {c5.loc['accuracy', 'verdict']}") in text
    assert "psnr_lesion " in text and "-> reproduced" in text
    assert "Each term off in turn (variant − full, 95% CI): the authors' weights (1 / 10 / 1, not calibrated): qwk" in text
    assert "without vis-map consistency: qwk" in text
    sweep = res["sweeps"]["cls_aware"]
    assert (f"Over the cls_aware weights [0.0, 10.0, 100.0], test QWK (described, not used to choose anything) is highest at "
            f"{sweep.loc[sweep.qwk.idxmax(), 'weight']:g} (QWK {sweep.qwk.max():.3f}; the paper's weight 10 gives "
            f"{sweep.loc[sweep.is_base, 'qwk'].iloc[0]:.3f})") in text
    assert res["ratio_on_validation"] in (0.5, 2.0) and res["feedback_ratio"] == 0.5
    assert f"validation QWK is best at {res['ratio_on_validation']:g} (the config uses 0.5)." in text
    warm = res["timing"][res["timing"].trained.str.startswith("warm")]
    assert len(warm) == 8 and (f"8 variant(s) were warm-started from the base and trained {warm.train_s.sum():.0f} s in all; "
                               f"training them from scratch would have repeated {warm.shared_s.sum():.0f} s") in text
    assert "with 1 seed(s) training noise is not measured" in text and text.endswith(common.SMOKE_NOTE)
    plain = AL.what_we_see_07({**res, "sweeps": {}, "smoke": False})
    assert "cls_aware weights" not in plain and "smoke" not in plain


def test_what_we_see_08_is_written_from_the_numbers(cfg, fake_runs, monkeypatch):
    monkeypatch.setattr(AS, "scale_alignment", _scale_check)
    res = AS.structure_study(cfg, [0, 1], scales=[4, 8], unsupervised=0.5, n_boot=100)
    c7 = AS.unsupervised_study(cfg, [0], mask_fraction=0.1, unsupervised=0.5, n_boot=100)
    text = AS.what_we_see_08(res, c7)
    s = res["summary"].set_index("variant")
    assert text.startswith(f"The full DeepMT-DR reaches accuracy {s.loc['deepmt_dr', 'accuracy']}, QWK {s.loc['deepmt_dr', 'qwk']}")
    assert "Variant − full: without ISR (bicubic input): accuracy " in text and "psnr_lesion not measured" in text
    assert "; without lesion-oriented feature selection: accuracy" in text
    assert "Not run: with the unsupervised part (weight 0.5) (every training image has lesion annotations" in text
    assert (f"Other scales: x8 (LR {cfg.data.hr_size // 8} px) has accuracy {s.loc['scale_x8', 'accuracy']}, QWK "
            f"{s.loc['scale_x8', 'qwk']}") in text
    assert ("(test ids match, grades DIFFER, HR images differ by up to 0.250 because the synthetic benchmark re-matches "
            "its distractors to each scale's LR)") in text
    r = c7["claims"].set_index("metric").loc["qwk"]
    assert (f"Claim C7 (synthetic, smudge_match=0.8, x4, masks on 10% of training images, 1 seed(s)): " in text
            and f"qwk {r.effect:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] ({r.verdict} before controls)" in text)
    ctrl = c7["controls"].iloc[0]
    assert f"; control learnable: {ctrl.value:.3f} ({ctrl.status})." in text
    assert "(2 seed(s); training noise is not measured)." in text and text.endswith(common.SMOKE_NOTE)
    real = AS.what_we_see_08({**res, "synthetic": False, "smoke": False}, c7)
    assert "HR images differ by up to 0.250)" in real and "re-matches" not in real and "smoke" not in real


def test_real_datasets_run_the_unsupervised_variant_when_images_lack_annotations(cfg, monkeypatch):
    class Train:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            import torch

            return {"mask_present": torch.tensor([i == 0] * 4)}

    monkeypatch.setattr("deepmt.data.build_datasets", lambda data_cfg, splits: {"train": Train()})
    assert AS.annotated_everywhere(cfg)  # synthetic: by construction
    assert not AS.annotated_everywhere(cfg.replace({"data.dataset": "idrid", "data.root": "/nowhere"}))


def test_scale_alignment_on_the_synthetic_benchmark(cfg, tmp_path, monkeypatch):
    """Same ids and grades at x4 and x8; HR images differ only by the re-matched distractors."""
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path))
    cfg = cfg.replace({"data.n_train": 2, "data.n_val": 2, "data.n_test": 4})
    from deepmt.data import build_datasets

    def result(c):
        ds = build_datasets(c.data, ("test",))["test"]
        pred = {"id": np.array([ds[i]["id"] for i in range(len(ds))]), "grade_true": np.asarray(ds.grades)}
        return ExperimentResult("deepmt_dr", c, {}, {}, pred, Path("f"), Path("."), 0.0, pd.DataFrame(), c.key())

    ab = A.Ablation(runs={"deepmt_dr": [result(cfg)], "scale_x8": [result(cfg.replace({"data.scale": 8}))]},
                    plan=pd.DataFrame(), variants=[], labels={})
    check = AS.scale_alignment(ab, cfg, {"deepmt_dr": 4, "scale_x8": 8}, n_check=4)
    r = check.iloc[0]
    assert r.variant == "scale_x8" and r.lr_size == cfg.data.hr_size // 8 and r.ids_match and r.grades_match
    assert 0 <= r.hr_max_abs_diff < 0.5 and r.hr_images_checked == 4


def test_unsupervised_study_claims_c7_in_the_partial_mask_regime(cfg, fake_runs):
    res = AS.unsupervised_study(cfg, [0, 1], mask_fraction=0.1, unsupervised=0.5, n_boot=200)
    assert res["regime"] == "synthetic, smudge_match=0.8, x4, masks on 10% of training images"
    # the variant is warm-started at stage 2 from the partial-mask base, which itself has masks on 10%
    assert all(c[1].data.mask_fraction == 0.1 for c in fake_runs)
    assert {c[2] for c in fake_runs} == {"stage2"} and {c[1].loss.unsupervised for c in fake_runs} == {0.5}
    claims = res["claims"]
    assert set(claims.id) == {"C7"} and set(claims.metric) == set(AS.C7_METRICS) and (claims.regime == res["regime"]).all()
    assert (claims.n_seeds == 2).all()
    ctrl = res["controls"].iloc[0]
    assert ctrl["id"] == "learnable" and ctrl["regime"] == res["regime"] and ctrl["n_seeds"] == 2


def test_dial_sweep_gap_gain_share_and_the_negative_control(monkeypatch):
    from deepmt.studies import dial as T

    cfg = get_config("smoke", {"data.synth.smudge_match": 0.8})
    seen = []

    def run_methods(methods, c, seeds=(0,), **kw):
        seen.append((float(c.data.synth.smudge_match), tuple(seeds)))
        sm = float(c.data.synth.smudge_match)
        q = {"foo_mt_hr": 1.0, "foo_mt": 1.0 - sm, "deepmt_dr": 1.0 - 0.5 * sm, "deepmt_dr_noisr": 1.0 - sm}
        return {m: [_fake(m, c.replace({"train.seed": s}), q[m]) for s in seeds] for m in methods}

    monkeypatch.setattr(T, "run_methods", run_methods)
    res = T.dial_sweep(cfg, (0.0, 0.8, 1.0), seeds=(0,), default_seeds=(0, 1, 2), n_boot=200)
    # the profile's own setting and the negative control's ("nothing left") get the main seeds, the others `seeds`
    assert seen == [(0.0, (0,)), (0.8, (0, 1, 2)), (1.0, (0, 1, 2))]
    t = res["table"].set_index("smudge_match")
    assert t.loc[0.8, "n_seeds"] == 3 and t.loc[0.8, "regime"] == "synthetic, smudge_match=0.8, x4, all masks"
    assert t.loc[1.0, "gap"] > t.loc[0.0, "gap"]  # more information lost as the dial rises
    assert t.loc[1.0, "share_recovered"] == pytest.approx(t.loc[1.0, "gain"] / t.loc[1.0, "gap"])
    neg = res["controls"]
    assert list(neg.id) == ["negative:grading"] and neg.iloc[0]["regime"] == "synthetic, smudge_match=1, x4, all masks"
    assert neg.iloc[0]["n_seeds"] == 3 and neg.iloc[0]["value"] == t.loc[1.0, "gain"]  # accuracy: C1's comparison
    T.plot_dial(res["table"])
    seen.clear()
    res = T.dial_sweep(cfg, (0.0, 1.0), seeds=(0,), default_seeds=(0, 1, 2), n_boot=200, control_seeds=(0, 1))
    assert seen == [(0.0, (0,)), (1.0, (0, 1))] and res["controls"].iloc[0]["n_seeds"] == 2


# --------------------------------------------------------------------------- notebook 08: the grading pathway's diagnosis
def _fake_pathway(quality_of):
    """pathway_runs as a function of each run's config: the HR pathway grades with ``quality_of(cfg)``."""

    def pathway_runs(results, cfg, sources=("hr",), device=None):
        name = f"{results[0].method}_on_{sources[0]}"
        return {name: [_fake(results[0].method, r.config.replace({"train.seed": r.config.train.seed}), quality_of(r.config))
                       for r in results]}

    return pathway_runs


@pytest.mark.parametrize("oracle_quality, testable", [(8.0, True), (-3.0, False)])
def test_pathway_diagnosis_trains_each_change_where_it_acts_and_reads_the_oracle(cfg, fake_runs, monkeypatch,
                                                                               oracle_quality, testable):
    monkeypatch.setattr(AS, "pathway_runs", _fake_pathway(lambda c: oracle_quality if c.model.grader.oracle_maps else 0.0))
    diag = AS.pathway_diagnosis(cfg, [0, 1, 2], n_boot=100)
    plan = diag["plan"].set_index("variant")
    assert plan.loc["oracle_maps", "trained"] == plan.loc["spp_avg", "trained"] == "warm start at stage1b"
    assert plan.loc["maps_attached", "trained"] == "warm start at stage2"
    t = diag["table"]
    assert set(t.input) == {"SR (the method)", "HR pathway"} and (t.n_seeds == 3).all()
    oracle = t[(t.variant == "oracle_maps") & (t.input == "HR pathway")].iloc[0]
    assert oracle.accuracy == pytest.approx(diag["oracle_hr_accuracy"]) and diag["testable"] is testable
    assert bool(oracle.accuracy_effect > 0) is testable and oracle.accuracy_lo <= oracle.accuracy_effect <= oracle.accuracy_hi
    assert np.isnan(t[t.variant == "deepmt_dr"].accuracy_effect).all()  # the reference has no effect against itself
    text = AS.what_we_see_pathway(diag)
    assert f"{diag['oracle_hr_accuracy']:.3f}" in text
    # validation, what a fix is chosen on: the method's own input only, and the sentence names its best variant
    sr, hr = t[t.input == AS.METHOD_INPUT], t[t.input == "HR pathway"]
    assert np.isfinite(sr.val_qwk).all() and np.isnan(hr.val_qwk).all() and np.isnan(hr.val_accuracy).all()
    fixes = sr[~sr.variant.isin(["deepmt_dr", AS.ORACLE_VARIANT])]
    best = fixes.loc[fixes.val_qwk.idxmax()]
    assert f"among the fixes (the oracle left out: it reads the ground truth) is {best['label']}'s ({best['val_qwk']:.3f}" in text
    assert ("C1 / C4 are testable" in text) is testable and ("cannot be tested at this size" in text) is not testable
    # the floor is a control that C1 and C4 need: it passes exactly when the oracle reaches it
    from deepmt import controls as K
    from deepmt.claims import PAPER_CLAIMS

    c = diag["controls"].iloc[0]
    assert c["id"] == AS.ORACLE_CONTROL and c["object"] == K.DR_ORACLE and c["n_seeds"] == 3
    assert c["value"] == pytest.approx(diag["oracle_hr_accuracy"]) and c["lo"] <= c["value"] <= c["hi"]
    assert (c["status"] == "pass") is testable and AS.ORACLE_FLOOR == K.CONTROLS[AS.ORACLE_CONTROL].threshold == 0.90
    for cid in ("C1", "C4"):
        assert AS.ORACLE_CONTROL in [i for need in PAPER_CLAIMS[cid].controls for i in need.ids()]
