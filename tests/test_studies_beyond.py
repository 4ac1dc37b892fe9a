"""deepmt.studies.training (notebook 03) and deepmt.studies.beyond (notebook 10).

Table functions are tested on hand-made histories and predictions; the functions that load models
(robustness, cost) on smoke runs of DeepMT-DR and the bicubic grader trained once into a temporary cache.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from deepmt.config import get_config  # noqa: E402
from deepmt.experiment_cache import ExperimentResult  # noqa: E402
from deepmt.studies import beyond as B  # noqa: E402
from deepmt.studies import convergence as CV  # noqa: E402
from deepmt.studies import training as T  # noqa: E402
from deepmt.studies.training_figures import figure_loss_curves, figure_schedule, figure_validation_curves  # noqa: E402

CPU = {"train.device": "cpu"}


# ----------------------------------------------------------------------------- hand-made runs
def _history() -> pd.DataFrame:
    rows = []
    g = 0
    for stage, n, metric in (("stage1a", 3, "dice"), ("stage1b", 2, "qwk"), ("stage2", 2, "qwk")):
        best = -1.0
        for e in range(1, n + 1):
            g += 1
            row = {"stage": stage, "epoch": e, "global_epoch": g, "loss_total": 2.0 / e}
            if stage != "stage1b":
                row.update(loss_isr_pixel=0.01 / e, loss_seg_dice=0.9 / e)
            if stage != "stage1a":
                row.update(loss_grade_ce=1.5 / e)
            if stage == "stage2":
                row.update(loss_cls_aware=0.3 / e)
            val = {"qwk": 0.1 * g, "accuracy": 0.2 + 0.01 * g, "psnr": 25.0 + (0.5 * e if stage == "stage1a" else 1.5),
                   "dice": [0.1, 0.3, 0.2][e - 1] if stage == "stage1a" else 0.2}
            row.update({f"val_{k}": v for k, v in val.items()})
            score = val[metric]
            row.update(selection_metric=metric, selection_score=score, best=score > best, lr=1e-3, seconds=2.0,
                       images_per_s=8.0)
            best = max(best, score)
            rows.append(row)
    df = pd.DataFrame(rows)
    df.loc[df.stage == "stage1a", "loss_grade_ce"] = np.nan
    return df


def _result(tmp_path: Path, method: str = "deepmt_dr", history: pd.DataFrame | None = None, probs=None, y=None,
            best: dict | None = None) -> ExperimentResult:
    run_dir = tmp_path / method
    run_dir.mkdir(parents=True, exist_ok=True)
    if best is not None:
        (run_dir / "result.json").write_text(json.dumps({"best": best}))
    pred = {"id": np.arange(len(y)).astype(str), "grade_true": np.asarray(y)} if y is not None else {"id": np.zeros(0)}
    if probs is not None:
        pred["grade_probs"] = np.asarray(probs, dtype=np.float32)
    h = _history() if history is None else history
    return ExperimentResult(method=method, config=get_config("smoke", CPU), metrics={"qwk": 0.5, "accuracy": 0.6},
                            val_metrics={}, predictions=pred, checkpoint=run_dir / "final.pt", run_dir=run_dir,
                            train_seconds=float(h["seconds"].sum()) if len(h) else 0.0, history=h, key="k")


# ----------------------------------------------------------------------------- training (notebook 03)
def test_best_info_from_result_json_or_history(tmp_path):
    res = _result(tmp_path)
    best = CV.best_info(res)  # no result.json: derived from the history's best flags
    assert best["stage1a"] == {"score": 0.3, "epoch": 2, "metric": "dice"}
    assert best["stage1b"]["epoch"] == 2 and best["stage2"]["epoch"] == 2
    res2 = _result(tmp_path / "b", best={"stage1a": {"score": 0.9, "epoch": 3, "metric": "dice"}})
    assert CV.best_info(res2)["stage1a"]["epoch"] == 3  # result.json wins
    assert CV.best_info(res2)["stage2"]["epoch"] == 2  # stages it lacks come from the history


def test_stage_schedule_counts_parameters_and_throughput(tmp_path):
    from deepmt.models.methods import build_method

    res = _result(tmp_path)
    method = build_method("deepmt_dr", res.config)
    sched = T.stage_schedule(res, method).set_index("stage")
    total = sum(p.numel() for p in method.parameters())
    assert list(sched.index) == ["stage1a", "stage1b", "stage2"]
    assert (sched["trained_params"] + sched["frozen_params"] == total).all()
    assert sched.loc["stage2", "trained_params"] == total  # joint fine-tuning trains everything
    assert sched.loc["stage1a", "parts"] == "isr, seg" and sched.loc["stage1b", "parts"] == "grader, vis"
    assert sched.loc["stage2", "peak_lr"] == pytest.approx(res.config.train.lr * res.config.train.lr_stage2_factor)
    assert sched.loc["stage1a", "epochs_run"] == 3 and sched.loc["stage1a", "selected_epoch"] == 2
    assert not {"seconds", "train_images", "images_per_s"} & set(sched.columns)  # timings: stage_timing
    timing = T.stage_timing(res).set_index("stage")
    assert list(timing.index) == ["stage1a", "stage1b", "stage2"]
    assert timing.loc["stage1a", "seconds"] == pytest.approx(6.0)
    assert timing.loc["stage1a", "train_images"] == pytest.approx(48.0)
    assert timing.loc["stage1a", "images_per_s"] == pytest.approx(8.0)
    assert math.isnan(T.stage_timing(res, ["stage1a", "nope"]).set_index("stage").loc["nope", "seconds"])
    no_method = T.stage_schedule(res)  # without the method: counts are nan, the rest is there
    assert no_method["trained_params"].isna().all() and list(no_method["epochs_run"]) == [3, 2, 2]


def test_loss_and_validation_curves_are_long_tables(tmp_path):
    h = _history()
    assert T.loss_terms(h)[0] == "total"
    long = T.loss_curves(h)
    assert set(long["term"]) == {"total", "isr_pixel", "seg_dice", "grade_ce", "cls_aware"}
    assert not long["value"].isna().any()  # terms a stage does not compute are dropped
    assert set(long.loc[long.stage == "stage1a", "term"]) == {"total", "isr_pixel", "seg_dice"}
    val = T.validation_curves(h.assign(val_aupr=np.nan))  # all-nan metrics (no masks) are left out
    assert set(val["metric"]) == {"qwk", "accuracy", "psnr", "dice"}
    assert val.loc[val.metric == "qwk", "train_seconds"].tolist() == pytest.approx([2.0 * (i + 1) for i in range(7)])
    assert set(val["task"]) == {"grading", "ISR", "segmentation"}


def test_selected_epochs_reports_the_kept_epoch_metrics(tmp_path):
    sel = T.selected_epochs(_result(tmp_path)).set_index("stage")
    assert sel.loc["stage1a", "selected_epoch"] == 2
    assert sel.loc["stage1a", "val_dice"] == pytest.approx(0.3)
    assert sel.loc["stage1a", "val_psnr"] == pytest.approx(26.0)
    assert list(sel.index) == ["stage1a", "stage1b", "stage2"]


def test_training_figures_draw(tmp_path):
    res = _result(tmp_path)
    other = _result(tmp_path, "grader_bicubic", history=_history()[lambda d: d.stage == "stage1b"].assign(stage="single"))
    runs = {"deepmt_dr": [res], "grader_bicubic": [other]}
    from deepmt.models.methods import build_method

    from deepmt.studies.common import label

    def lines(ax):
        return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}

    # the plotted values are the tables': loss terms per stage panel, validation metrics per metric panel
    fig = figure_loss_curves(res.history)
    long = T.loss_curves(res.history)
    assert len(fig.axes) == 3
    for ax, (stage, d) in zip(fig.axes, long.groupby("stage", sort=False)):
        assert lines(ax) == {t: (g["epoch"].tolist(), pytest.approx(g["value"].tolist())) for t, g in d.groupby("term", sort=False)}
    plt.close(fig)
    fig = figure_validation_curves(runs)
    for ax in fig.axes:
        metric = ax.get_title().removeprefix("validation ")
        main = T.validation_curves(res.history, [metric])
        expected = {f"{label('deepmt_dr')} {stage}": (g["train_seconds"].tolist(), pytest.approx(g["value"].tolist()))
                    for stage, g in main.groupby("stage", sort=False)}
        other = T.validation_curves(runs["grader_bicubic"][0].history, [metric])
        if len(other):
            expected[label("grader_bicubic")] = (other["train_seconds"].tolist(), pytest.approx(other["value"].tolist()))
        assert lines(ax) == expected, metric
    assert [ax.get_title() for ax in fig.axes] == [f"validation {m}" for m in ("qwk", "accuracy", "psnr", "dice")]
    plt.close(fig)
    sched = T.stage_schedule(res, build_method("deepmt_dr", res.config))
    timing = T.stage_timing(res)
    fig = figure_schedule(sched, timing.iloc[::-1])  # matched by stage, not by row
    params, seconds = fig.axes
    assert [b.get_height() for b in seconds.patches] == pytest.approx(timing["seconds"].tolist())
    bars = [b.get_height() for b in params.patches]  # trained bars, then frozen bars stacked on them
    assert bars == pytest.approx(sched["trained_params"].tolist() + sched["frozen_params"].tolist())
    plt.close(fig)
    fig = figure_loss_curves(pd.DataFrame())
    assert [t.get_text() for t in fig.axes[0].texts] == ["no training history"] and not fig.axes[0].get_lines()
    plt.close(fig)
    fin = T.final_metrics(runs)
    assert list(fin["method"]) == ["deepmt_dr", "grader_bicubic"] and math.isnan(fin.loc[0, "psnr"])
    assert "train_s" not in fin and T.run_seconds(runs)["train_s"].tolist() == [r[0].train_seconds for r in runs.values()]


# ----------------------------------------------------------------------------- beyond (notebook 10)
class _Base(torch.utils.data.Dataset):
    def __init__(self, n=4, hr=32):
        g = torch.Generator().manual_seed(0)
        self.hr = torch.rand(n, 3, hr, hr, generator=g)

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        from deepmt.data.degradation import degrade

        lr = torch.round(degrade(self.hr[i], 4) * 255) / 255
        return {"hr": self.hr[i], "lr": lr, "grade": torch.tensor(i % 5), "id": f"x{i}"}


def test_severity_levels_clean_first_and_config_values_not_repeated():
    cfg = get_config("smoke")
    lv = B.severity_levels(cfg, [0.0, 1.0, 2.0], [0.0, 0.05], [None, 90, 20])
    assert lv.iloc[0]["kind"] == "clean" and (lv["kind"] == "clean").sum() == 1
    assert lv[lv.kind == "blur"]["value"].tolist() == [1.0, 2.0]
    assert lv[lv.kind == "blur"]["severity"].tolist() == [1, 2]
    assert lv[lv.kind == "noise"]["noise_std"].tolist() == [0.05]
    jp = lv[lv.kind == "jpeg"]
    assert jp["value"].tolist() == [90.0, 20.0] and (jp["blur_sigma"] == 0).all()
    with pytest.raises(ValueError):
        B.severity_levels(cfg, jpeg_qualities=[0])
    with pytest.raises(ValueError):
        B.severity_levels(cfg, noise_stds=[-0.1])
    # a config that already blurs: its own blur is the clean level, "0" is a level of its own
    lv2 = B.severity_levels(cfg.replace({"data.degradation.blur_sigma": 1.0}), [0.0, 1.0])
    assert lv2[lv2.kind == "blur"]["value"].tolist() == [0.0] and lv2.iloc[0]["blur_sigma"] == 1.0


def test_degraded_dataset_keeps_everything_but_lr():
    base = _Base()
    cfg = get_config("smoke")
    lv = B.severity_levels(cfg, [2.0], [0.05], [20]).set_index("level")
    assert B.degraded_dataset(base, cfg, lv.loc["clean"].to_dict() | {"kind": "clean"}) is base
    plain = B.DegradedDataset(base, 4)  # no extra degradation: the base's (8-bit) LR image exactly
    assert torch.equal(plain[1]["lr"], base[1]["lr"])
    for level in ("blur 2", "noise 0.05", "jpeg 20"):
        ds = B.degraded_dataset(base, cfg, lv.loc[level].to_dict() | {"level": level})
        s, b = ds[2], base[2]
        assert len(ds) == len(base) and torch.equal(s["hr"], b["hr"]) and s["id"] == b["id"]
        assert s["lr"].shape == b["lr"].shape and not torch.equal(s["lr"], b["lr"])
        assert torch.equal(torch.round(s["lr"] * 255) / 255, s["lr"])  # 8-bit
        assert torch.equal(ds[2]["lr"], s["lr"])  # seeded: the same noise every time
    noisy = B.DegradedDataset(base, 4, noise_std=0.05)
    assert not torch.equal(noisy[0]["lr"], B.DegradedDataset(base, 4, noise_std=0.05, seed=1)[0]["lr"])


def test_robustness_drops_from_a_table():
    rows = []
    for m, clean, worst in (("deepmt_dr", 0.8, 0.5), ("grader_bicubic", 0.7, 0.6)):
        rows.append({"method": m, "kind": "clean", "level": "clean", "value": np.nan, "severity": 0, "qwk": clean})
        for k in ("blur", "noise"):
            rows.append({"method": m, "kind": k, "level": f"{k} 1", "value": 1.0, "severity": 1, "qwk": (clean + worst) / 2})
            rows.append({"method": m, "kind": k, "level": f"{k} 2", "value": 2.0, "severity": 2, "qwk": worst})
    table = pd.DataFrame(rows)
    d = B.robustness_drops(table, "qwk").set_index(["method", "kind"])
    assert d.loc[("deepmt_dr", "blur"), "change"] == pytest.approx(-0.3)
    assert d.loc[("grader_bicubic", "noise"), "level"] == "noise 2"
    from deepmt.studies.common import label

    shown = table.assign(accuracy=table.qwk - 0.1)
    fig = B.figure_robustness(shown, ("accuracy", "qwk"))
    axes = np.asarray(fig.axes).reshape(2, 2)  # rows: metrics; columns: kinds
    for r, metric in enumerate(("accuracy", "qwk")):
        for c, kind in enumerate(("blur", "noise")):
            ax = axes[r, c]
            assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", "1", "2"]
            plotted = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
            expected = {
                label(m): g[g.kind.isin(["clean", kind])].sort_values("severity")[metric].tolist()
                for m, g in shown.groupby("method", sort=False)
            }
            assert plotted.keys() == expected.keys()
            for name, values in expected.items():  # the plotted values are the table's
                assert plotted[name] == pytest.approx(values), (metric, kind, name)
    plt.close(fig)


def test_calibration_and_reliability(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    onehot = np.eye(5)[y]
    perfect_conf = _result(tmp_path, "grader_bicubic", probs=0.96 * onehot + 0.01, y=y)  # right and confident
    overconf = np.eye(5)[(y + (rng.random(200) < 0.5)) % 5] * 0.95 + 0.0125  # 50% right, 96% sure
    bad = _result(tmp_path, "deepmt_dr", probs=overconf, y=np.where(np.arange(200) < 10, -1, y))
    no_grades = _result(tmp_path, "isr", y=y)
    cal = B.calibration_table({"grader_bicubic": perfect_conf, "deepmt_dr": bad, "isr": no_grades}, n_bins=10,
                              n_boot=100).set_index("method")
    assert list(cal.index) == ["grader_bicubic", "deepmt_dr"]  # no grades: left out
    assert cal.loc["deepmt_dr", "n_graded"] == 190  # grade -1 ignored
    assert cal.loc["grader_bicubic", "ece"] < 0.06 < 0.3 < cal.loc["deepmt_dr", "ece"]
    assert cal.loc["deepmt_dr", "ece_lo"] <= cal.loc["deepmt_dr", "ece"] <= cal.loc["deepmt_dr", "ece_hi"]
    assert cal.loc["deepmt_dr", "overconfidence"] > 0.3
    assert cal.loc["grader_bicubic", "brier"] < cal.loc["deepmt_dr", "brier"]
    rel = B.reliability_table({"grader_bicubic": perfect_conf, "deepmt_dr": bad}, n_bins=10)
    assert len(rel) == 20 and rel.groupby("method")["count"].sum().tolist() == [190, 200]
    fig = B.figure_reliability(rel, cal.reset_index())
    plt.close(fig)
    empty = B.figure_reliability(B.reliability_table({}), B.calibration_table({}))
    plt.close(empty)


def test_training_throughput_from_history(tmp_path):
    t = B.training_throughput(_result(tmp_path))
    assert t["train_seconds"] == pytest.approx(14.0) and t["train_images"] == 112 and t["train_img_s"] == pytest.approx(8.0)


def test_machine_table_names_the_machine():
    m = dict(zip(*B.machine_table("cpu").T.values))
    assert {"cpu_model", "torch_threads", "platform", "device", "autocast"} <= set(m)


def _beyond(tmp_path, load: float = 0.5, smoke: bool = False) -> B.BeyondStudy:
    """A hand-made study: two methods, blur and noise levels, calibration of hand-made predictions, fixed costs."""
    rows = []
    for m, clean, worst, psnr in (("deepmt_dr", 0.8, 0.5, 30.0), ("grader_bicubic", 0.7, 0.6, np.nan)):
        rows.append({"method": m, "label": m, "kind": "clean", "level": "clean", "value": np.nan, "severity": 0, "qwk": clean,
                     "accuracy": clean, "psnr": psnr})
        for k in ("blur", "noise"):
            rows.append({"method": m, "label": m, "kind": k, "level": f"{k} 2", "value": 2.0, "severity": 1, "qwk": worst,
                         "accuracy": worst, "psnr": psnr - 2 if k == "blur" else psnr - 1})
    rob = pd.DataFrame(rows)
    y = np.arange(100) % 5
    results = {"deepmt_dr": _result(tmp_path, probs=np.eye(5)[y] * 0.9 + 0.02, y=y),
               "grader_bicubic": _result(tmp_path, "grader_bicubic", probs=np.eye(5)[(y + 1) % 5] * 0.9 + 0.02, y=y)}
    cost = pd.DataFrame({"label": ["DeepMT-DR", "Grader on bicubic"], "method": ["deepmt_dr", "grader_bicubic"],
                         "params_total": [2.5e6, 1e6], "gflops_forward": [1.5, 0.25], "gflops_train": [4.0, 0.75],
                         "test_qwk": [0.8, 0.7]})
    throughput = pd.DataFrame({"method": ["deepmt_dr", "grader_bicubic"], "label": ["DeepMT-DR", "Grader on bicubic"],
                               "train_img_s": [40.0, 400.0], "infer_img_s": [100.0, 1000.0], "infer_img_s_grade_only": [200.0, 1000.0],
                               "threads": [2, 2], "load_avg_1min": [load, load]})
    machine = pd.DataFrame({"item": ["cpu_model", "usable_cores", "device", "gpu_name", "autocast"],
                            "value": ["Test CPU", "2", "cpu", "None", "bf16"]})
    return B.BeyondStudy(levels=pd.DataFrame({"level": ["clean", "blur 2", "noise 2"]}), robustness=rob,
                         drops=pd.concat([B.robustness_drops(rob, m) for m in ("accuracy", "qwk")], ignore_index=True),
                         calibration=B.calibration_table(results, n_boot=50), reliability=B.reliability_table(results),
                         cost=cost, robustness_seconds=pd.DataFrame(), throughput=throughput, machine=machine,
                         n_test=100, n_graded=90, hr_size=64, smoke=smoke)


def test_beyond_what_we_see_is_written_from_the_numbers(tmp_path):
    study = _beyond(tmp_path)
    text = B.what_we_see(study)
    assert text.startswith("On the 100 test images (90 graded), 2 degraded level(s) besides clean. Robustness: DeepMT-DR goes from "
                           "QWK 0.800 on clean images to 0.500 at blur 2, 0.500 at noise 2 (largest drop: -0.300, blur)")
    assert "Grader on bicubic goes from QWK 0.700 on clean images to 0.600 at blur 2" in text
    assert "DeepMT-DR loses more QWK than the baselines' mean under blur, noise and less or equally under no kind." in text
    assert "DeepMT-DR's SR PSNR: 30.00 dB clean, 28.00 dB at blur 2, 29.00 dB at noise 2." in text
    cal = study.calibration.set_index("method")
    assert (f"Calibration (ECE, 95% CI over images; lower is better): DeepMT-DR {cal.loc['deepmt_dr', 'ece']:.3f} "
            f"[{cal.loc['deepmt_dr', 'ece_lo']:.3f}, {cal.loc['deepmt_dr', 'ece_hi']:.3f}]") in text
    assert "Grader on bicubic" in text and "over-confident by 0.920" in text  # always wrong, 92% sure
    assert ("Cost per image at HR 64px: DeepMT-DR 2.500 M parameters, 1.500 GFLOPs inference (100 img/s here, 200 without the "
            "visualization map), trained at 40 img/s, Grader on bicubic 1.000 M parameters") in text
    assert text.endswith("Timings on Test CPU (2 usable cores, 2 torch threads, device cpu, autocast bf16), 1-min load average "
                         "up to 0.5 while timing.")
    busy = B.what_we_see(_beyond(tmp_path, load=3.5, smoke=True))
    assert "up to 3.5 while timing -- above the core count: the machine was shared" in busy
    assert busy.endswith("(smoke profile: not results; untrained models on a handful of images.)")
    ungraded = _beyond(tmp_path)
    ungraded.drops = ungraded.drops.assign(clean=np.nan)
    assert "Robustness: the test split has no graded images" in B.what_we_see(ungraded)


def test_cost_and_throughput_figures_draw_their_own_columns(tmp_path):
    study = _beyond(tmp_path)
    fig = B.figure_cost(study.cost)
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx([2.5, 1.0])  # parameters in millions
    assert [b.get_height() for b in fig.axes[1].patches] == pytest.approx([1.5, 0.25, 4.0, 0.75])  # GFLOPs
    plt.close(fig)
    fig = B.figure_throughput(study.throughput)
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx([40, 400, 100, 1000, 200, 1000])
    plt.close(fig)


# ----------------------------------------------------------------------------- on real smoke runs
@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    from deepmt.experiment_cache import run_experiment

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPMT_CACHE", str(tmp_path_factory.mktemp("cache")))
        cfg = get_config("smoke", CPU)
        yield cfg, {m: run_experiment(m, cfg) for m in ("deepmt_dr", "grader_bicubic")}


@pytest.mark.slow
def test_robustness_and_cost_on_smoke_runs(smoke_runs):
    from deepmt.data import build_datasets

    cfg, results = smoke_runs
    test = build_datasets(cfg.data, ("test",))["test"]
    levels = B.severity_levels(cfg, noise_stds=[0.1])
    rob = B.robustness(results, test, cfg, levels, verbose=False)
    assert len(rob) == 4 and list(rob["level"].unique()) == ["clean", "noise 0.1"]
    clean = rob[(rob.method == "deepmt_dr") & (rob.kind == "clean")].iloc[0]
    noisy = rob[(rob.method == "deepmt_dr") & (rob.kind == "noise")].iloc[0]
    assert clean["qwk"] == results["deepmt_dr"].metrics["qwk"]  # the clean level is the stored test result
    assert noisy["psnr"] < clean["psnr"]  # noise hurts the SR image
    assert math.isnan(rob[rob.method == "grader_bicubic"]["psnr"].iloc[0])
    # a level with no extra degradation reproduces the stored metrics (same images, same model)
    same = B.robustness({"grader_bicubic": results["grader_bicubic"]}, B.DegradedDataset(test, cfg.data.scale), cfg,
                        levels.iloc[:1].assign(kind="blur", level="none"), verbose=False)
    assert same["qwk"].iloc[0] == pytest.approx(results["grader_bicubic"].metrics["qwk"])
    assert same["accuracy"].iloc[0] == pytest.approx(results["grader_bicubic"].metrics["accuracy"])

    threads = torch.get_num_threads()
    cost = B.cost_table(results, test, cfg, max_images=4, repeats=1, threads=1).set_index("method")
    assert torch.get_num_threads() == threads  # restored
    assert (cost["threads"] == 1).all()
    assert cost.loc["deepmt_dr", "params_total"] > cost.loc["grader_bicubic", "params_total"] > 0
    assert cost.loc["deepmt_dr", "gflops_forward"] > cost.loc["grader_bicubic", "gflops_forward"] > 0
    assert (cost["infer_img_s"] > 0).all() and (cost["train_img_s"] > 0).all()
    assert cost.loc["deepmt_dr", "infer_images"] == 4
    fig = B.figure_cost(cost.reset_index())
    plt.close(fig)


@pytest.mark.slow
def test_beyond_study_reruns_leave_identical_result_tables(smoke_runs, result_tables):
    """Notebook 10 twice on the same cached runs: every timing is measured afresh, every result table is
    byte-identical (the timings are in their own tables)."""
    cfg, results = smoke_runs
    first, second = (B.beyond_study(results, cfg, noise_stds=[0.1], timing_images=4, timing_repeats=1, device="cpu")
                     for _ in range(2))
    timing = ("robustness_seconds", "throughput", "machine")
    a, b = result_tables(first, timing=timing), result_tables(second, timing=timing)
    assert {"robustness", "calibration", "cost"} <= a.keys() and [k for k in a if a[k] != b[k]] == []
    assert len(first.levels) == 2 and first.n_test == len(results["deepmt_dr"].predictions["id"]) and first.smoke
    assert set(first.cost.columns).isdisjoint(B.THROUGHPUT_COLUMNS) and "eval_seconds" not in first.robustness
    assert (first.throughput["infer_img_s"] > 0).all() and list(first.robustness_seconds.level.unique()) == ["clean", "noise 0.1"]
