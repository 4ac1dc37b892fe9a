"""CLI: --help of every engine command, train -> evaluate -> predict end to end (smoke profile)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from deepmt.cli import build_parser, main


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help"
            assert action.option_strings[-1] in text


def test_predict_without_checkpoint_exits_2_with_train_command(capsys):
    assert main(["predict", "photo.png"]) == 2
    err = capsys.readouterr().err
    assert "python -m deepmt train --method deepmt_dr" in err and "--checkpoint" in err


def test_bad_input_is_one_line_error(capsys, tmp_path):
    assert main(["train", "--method", "nope", "--profile", "smoke", "--run-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "deepmt_dr" in err and "Traceback" not in err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["train", "--profile", "smoke", "--set", "train.nope=1", "--run-dir", str(tmp_path)]) == 1
    assert "train.nope" in capsys.readouterr().err


def test_seg_grade_mt_trains_and_finds_the_foo_mt_cache_entry(tmp_path, monkeypatch, capsys):
    """``train --method seg_grade_mt`` (smoke, cache mode) trains the entry of ``foo_mt``, the name it stands for;
    every other way of naming a method (run_experiment, cached_result, run_dir_for, Job, run_methods, train
    again) finds that one entry under either name."""
    from deepmt.config import get_config
    from deepmt.experiment_cache import cached_result, run_dir_for, run_experiment
    from deepmt.studies.common import run_methods
    from deepmt.worker_pool import Job

    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    cfg = get_config("smoke", {"train.device": "cpu"})  # what --profile smoke --device cpu gives
    assert main(["train", "--method", "seg_grade_mt", "--profile", "smoke", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"trained: foo_mt (smoke, key {cfg.key()})" in out
    entries = sorted(p.name for p in (tmp_path / "cache" / "runs").iterdir())
    assert entries == [f"foo_mt-{cfg.key()}"]
    assert run_dir_for("seg_grade_mt", cfg) == run_dir_for("foo_mt", cfg) == tmp_path / "cache" / "runs" / entries[0]
    assert Job("seg_grade_mt", cfg).method == "foo_mt" and Job("seg_grade_mt", cfg).entry() == Job("foo_mt", cfg).entry()
    for name in ("foo_mt", "seg_grade_mt"):
        res = run_experiment(name, cfg)
        assert res.from_cache and res.method == "foo_mt" and res.run_dir.name == entries[0]
        assert cached_result(name, cfg).run_dir == res.run_dir
    runs = run_methods(["seg_grade_mt"], cfg, seeds=(0,))
    assert list(runs) == ["seg_grade_mt"] and runs["seg_grade_mt"][0].method == "foo_mt"
    assert runs["seg_grade_mt"][0].from_cache and runs["seg_grade_mt"][0].run_dir.name == entries[0]
    capsys.readouterr()
    assert main(["train", "--method", "seg_grade_mt", "--profile", "smoke", "--device", "cpu"]) == 0
    assert "loaded from cache: foo_mt" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cache" / "runs").iterdir()) == entries


def test_train_evaluate_predict_end_to_end(tmp_path, monkeypatch, capsys):
    from PIL import Image
    from skimage import data as skdata

    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "--method", "deepmt_dr", "--profile", "smoke", "--run-dir", str(run), "--precision", "fp32"]) == 0
    assert (run / "final.pt").exists() and (run / "metrics.csv").exists()
    assert "test:" in capsys.readouterr().out
    # a second train into the same folder must be explicit
    assert main(["train", "--profile", "smoke", "--run-dir", str(run), "--precision", "fp32"]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--profile", "smoke", "--run-dir", str(run), "--precision", "fp32", "--resume"]) == 0
    # resuming with another config is refused, naming the key
    assert main(["train", "--profile", "smoke", "--run-dir", str(run), "--resume", "--set", "train.lr=0.5"]) == 1
    assert "train.lr" in capsys.readouterr().err

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(run / "final.pt"), "--split", "test", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    summary = json.loads((run / "summary.json").read_text())
    assert m["qwk"] == pytest.approx(summary["test"]["qwk"]) and m["psnr"] == pytest.approx(summary["test"]["psnr"])

    photo = tmp_path / "retina.png"
    Image.fromarray(skdata.retina()).save(photo)
    pred = tmp_path / "pred"
    assert main(["predict", str(photo), "--checkpoint", str(run / "final.pt"), "--out", str(pred)]) == 0
    res = json.loads((pred / "retina.json").read_text())
    assert set(res["lesion_area_px"]) == {"MA", "HE", "EX", "SE"} and 0 <= res["predicted_grade"] <= 4
    assert sum(res["grade_probs"].values()) == pytest.approx(1, abs=1e-4)
    sr = np.asarray(Image.open(pred / "retina_sr.png"))
    assert sr.shape == (64, 64, 3) and Image.open(pred / "retina_lesions.png").size == (64, 64)
    assert main(["predict", str(photo), "--checkpoint", str(run / "final.pt"), "--out", str(pred / "lr"), "--input-is-lr"]) == 0
    # a checkpoint without weights is named, with the file to pass instead
    assert main(["predict", str(photo), "--checkpoint", str(run / "stage-end-stage1a.pt"), "--out", str(pred)]) == 1
    err = capsys.readouterr().err
    assert "stage-end-stage1a.pt: a 'stage_end' checkpoint" in err and str(run / "best-stage1a.pt") in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["predict", str(bad), "--checkpoint", str(run / "final.pt"), "--out", str(pred)]) == 1
    assert "bad.png" in capsys.readouterr().err


def test_module_entry_point_help_runs():
    r = subprocess.run([sys.executable, "-m", "deepmt", "evaluate", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--checkpoint" in r.stdout
