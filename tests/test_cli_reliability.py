"""The CLI's error boundary and batch prediction: every expected failure of ``python -m deepmt`` is one line
``error: ...`` and exit 1 (bad settings before anything runs, unwritable or missing output folders, the wrong
kind of checkpoint, a full disk); ``predict`` survives bad files; written files respect the umask; ``data synth``
fills an existing empty folder without replacing it (a mount point cannot be removed)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmt.cli import main
from cli_checks import one_error_line
from fixtures_real import fundus_array


pytestmark = pytest.mark.usefixtures("fresh_cache")


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("setting, allowed", [
    ("train.lr=abc", "a number > 0"), ("train.lr=-1", "a number > 0"),
    ("train.batch_size=abc", "an integer >= 1"), ("train.batch_size=2.5", "an integer >= 1"),
])
def test_bad_setting_stops_before_anything_runs(setting, allowed, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--profile", "smoke", "--run-dir", str(run), "--set", setting]) == 1
    one_error_line(capsys, setting, allowed)
    assert not run.exists() and not (tmp_path / "cache").exists()  # nothing built, nothing written


def test_bad_evaluate_setting_and_profile_env(untrained_checkpoint, monkeypatch, capsys):
    assert main(["evaluate", "--checkpoint", str(untrained_checkpoint), "--set", "data.scale=3"]) == 1
    one_error_line(capsys, "data.scale=3", "one of 2, 4, 8")
    monkeypatch.setenv("DEEPMT_PROFILE", "fast")
    assert main(["train", "--run-dir", "unused"]) == 1
    one_error_line(capsys, "DEEPMT_PROFILE='fast'")


# --------------------------------------------------------------------------- output folders
def _commands(out: Path, ckpt: Path, photo: Path) -> dict[str, list[str]]:
    return {
        "data synth": ["data", "synth", str(out / "synth"), "--profile", "smoke", "--n", "2", "--splits", "train"],
        "train --run-dir": ["train", "--method", "grader_lr", "--profile", "smoke", "--run-dir", str(out / "run")],
        "train (cache)": ["train", "--method", "grader_lr", "--profile", "smoke"],
        "evaluate --out": ["evaluate", "--checkpoint", str(ckpt), "--out", str(out / "metrics.json")],
        "predict --out": ["predict", str(photo), "--checkpoint", str(ckpt), "--out", str(out / "pred")],
        "bench --out": ["bench", "--profiles", "smoke", "--budget-seconds", "1", "--out", str(out / "bench")],
    }


@pytest.mark.parametrize("command", list(_commands(Path("."), Path("."), Path("."))))
@pytest.mark.parametrize("where", ["read-only folder", "under a regular file"])
def test_unwritable_output_is_one_error_line(command, where, readonly_dir, untrained_checkpoint, photo, tmp_path,
                                             monkeypatch, capsys):
    if where == "read-only folder":
        out = readonly_dir
    else:
        (tmp_path / "a_file").write_text("not a folder")
        out = tmp_path / "a_file"
    argv = _commands(out, untrained_checkpoint, photo)[command]
    if command == "train (cache)":
        monkeypatch.setenv("DEEPMT_CACHE", str(out / "cache"))
    assert main(argv) == 1
    one_error_line(capsys, str(out))


def test_disk_full_while_predicting_is_one_error_line(untrained_checkpoint, photo, tmp_path, monkeypatch, capsys):
    def full(self, fp, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failing write() raises it: no file name

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "pred"
    assert main(["predict", str(photo), "--checkpoint", str(untrained_checkpoint), "--out", str(out)]) == 1
    one_error_line(capsys, str(out / "eye_sr.png"), "no space left")
    assert list(out.iterdir()) == []  # no temporary or half-written file


def test_disk_full_while_training_is_one_error_line(tmp_path, monkeypatch, capsys):
    import torch

    def full(obj, f, *a, **k):
        f.write(b"PK")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    run = tmp_path / "run"
    argv = ["train", "--method", "grader_lr", "--profile", "smoke", "--run-dir", str(run), "--precision", "fp32"]
    assert main(argv) == 1
    one_error_line(capsys, str(run / "best-single.pt"), "no space left")
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp") or p.suffix == ".pt"]


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_of_the_wrong_kind_names_what_to_pass(untrained_checkpoint, photo, tmp_path, capsys):
    from deepmt.engine.checkpoint import load_checkpoint, save_checkpoint

    run = untrained_checkpoint.parent
    ckpt = load_checkpoint(untrained_checkpoint)
    stage_end = run / "stage-end-stage1a.pt"  # what train writes at the end of a stage: RNG states, no weights
    save_checkpoint(stage_end, {k: ckpt[k] for k in ("method", "config", "class_counts")}
                    | {"kind": "stage_end", "stage_index": 1, "stage": "stage1a", "epoch": 0})
    for argv in (["predict", str(photo), "--out", str(tmp_path / "p")], ["evaluate"]):
        assert main([*argv, "--checkpoint", str(stage_end)]) == 1
        one_error_line(capsys, str(stage_end), "'stage_end' checkpoint", "no model weights", str(run / "final.pt"))
    image = tmp_path / "photo.png"
    Image.fromarray(fundus_array()).save(image)
    assert main(["predict", str(image), "--checkpoint", str(image), "--out", str(tmp_path / "p")]) == 1
    one_error_line(capsys, str(image), "unreadable checkpoint")
    assert main(["evaluate", "--checkpoint", str(tmp_path)]) == 1  # a folder without final.pt
    one_error_line(capsys, str(tmp_path), "without final.pt")
    # a run folder stands for its final.pt
    assert main(["predict", str(photo), "--checkpoint", str(run), "--out", str(tmp_path / "p")]) == 0


# --------------------------------------------------------------------------- predict on many files
def test_predict_goes_past_bad_files_and_summarises(untrained_checkpoint, photo, tmp_path, capsys):
    bad = tmp_path / "photos" / "bad.jpg"
    bad.write_bytes(b"not a JPEG")
    tiny = tmp_path / "photos" / "tiny.png"
    Image.fromarray(np.full((1, 1, 3), (200, 90, 40), np.uint8)).save(tiny)
    gray = tmp_path / "photos" / "gray.png"
    Image.fromarray(fundus_array(1, 96, 128)).convert("L").save(gray)
    good2 = tmp_path / "photos" / "eye2.jpg"
    Image.fromarray(fundus_array(2, 96, 128)).save(good2)
    out = tmp_path / "pred"
    argv = ["predict", str(photo), str(bad), str(tiny), str(gray), str(good2), "--checkpoint", str(untrained_checkpoint),
            "--out", str(out)]
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    assert "predict: 2 ok, 3 failed" in cap.err
    failed = [line for line in cap.err.splitlines() if line.startswith("  failed: ")]
    assert len(failed) == 3
    assert str(bad) in failed[0] and "JPEG" in failed[0]
    assert str(tiny) in failed[1] and "far below the model's input of 64 px" in failed[1] and "--force" in failed[1]
    assert str(gray) in failed[2] and "grayscale" in failed[2]
    assert sorted(p.name for p in out.glob("*.json")) == ["eye.json", "eye2.json"]  # the good ones were written
    assert json.loads((out / "eye.json").read_text())["warnings"] == []

    # --force predicts the tiny and the grayscale photo too, saying why they are doubtful
    assert main([*argv, "--force"]) == 1
    cap = capsys.readouterr()
    assert "predict: 4 ok, 1 failed" in cap.err and cap.out.count("  warning: ") == 2
    assert "grayscale" in json.loads((out / "gray.json").read_text())["warnings"][0]
    assert "far below" in json.loads((out / "tiny.json").read_text())["warnings"][0]

    assert main(["predict", str(photo), str(good2), "--checkpoint", str(untrained_checkpoint), "--out", str(out)]) == 0
    assert "predict: 2 ok, 0 failed" in capsys.readouterr().out


def test_predict_help_documents_threshold_beside_the_overlay(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--threshold" in text and "outlined in <stem>_lesions.png" in text and "--force" in text


# --------------------------------------------------------------------------- files and folders
def test_written_files_respect_the_umask(tmp_path):
    from deepmt.engine.checkpoint import save_checkpoint
    from deepmt.utils import atomic_path, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "metrics.csv", "a,b\n")
        save_checkpoint(tmp_path / "final.pt", {"model": {}})
        with atomic_path(tmp_path / "fig.png") as tmp:
            Image.new("RGB", (4, 4)).save(tmp, format="PNG")
        for name in ("metrics.csv", "final.pt", "fig.png"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
        os.umask(0o027)
        atomic_write_text(tmp_path / "report.html", "<html></html>")
        assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_data_synth_fills_an_empty_mount_point_in_place(tmp_path, monkeypatch, capsys):
    """A mount point cannot be removed or renamed onto (EBUSY): the folder must be filled, never replaced."""
    out = tmp_path / "mnt"
    out.mkdir()
    inode = out.stat().st_ino
    real_rmdir, real_replace = os.rmdir, os.replace

    def rmdir(path, *a, **k):
        if Path(path) == out:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        return real_rmdir(path, *a, **k)

    def replace(src, dst, *a, **k):
        if Path(dst) == out:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(src), str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "rmdir", rmdir)
    monkeypatch.setattr(os, "replace", replace)
    old = os.umask(0o022)
    try:
        assert main(["data", "synth", str(out), "--profile", "smoke", "--n", "2", "--splits", "train,val"]) == 0
        # a new folder gets the umask's mode too, not a temporary folder's private 0700
        assert main(["data", "synth", str(tmp_path / "new"), "--profile", "smoke", "--n", "1", "--splits", "val"]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_ino == inode
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "train", "val"]  # no staging folder left
    assert len(list((out / "train" / "hr").glob("*.png"))) == 2
    assert stat.S_IMODE((out / "train").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o755
