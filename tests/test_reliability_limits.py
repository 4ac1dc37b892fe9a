"""Reliability, third pass (issue 29): limits that come from the machine.

* a full disk is one error ``PATH: no space left on the device`` for every writer (checkpoints, metrics, results,
  the synthetic store, ``data synth``, ``predict``), with no temporary or half-written file left behind; the fault
  is injected at the lowest level (every file opened for writing under a folder fails once its bytes pass a
  capacity), as a real full file system fails them;
* model sizes are checked against the machine's memory before anything is built (a fake, small memory here), and
  the U-Net's levels against the input size; settings without meaning (0 epochs, ``--max-problems -1``) are refused;
* small ones: distinguishable names for inputs that share a stem, hints where a checkpoint is missing, a resumed
  cached run says that it resumes, warnings print as one line.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from deepmt.cli import main
from deepmt.errors import DiskFullError, ResourceError, SettingError
from cli_checks import one_error_line
from fixtures_real import fundus_array

pytestmark = pytest.mark.usefixtures("fresh_cache", "one_thread")

SMOKE = ["--profile", "smoke", "--precision", "fp32", "--device", "cpu"]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders (``*.tmp``) anywhere under ``folder``."""
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.suffixes]


# =========================================================================== a full disk
class FullDisk:
    """A file system under ``root`` with room for ``capacity`` bytes, as the kernel fills one: a ``write`` to a file
    opened there writes what still fits and returns that count, and once nothing fits raises ``OSError(ENOSPC)``
    (without a file name, as a failing ``write`` does); ``os.posix_fallocate`` fails the same way."""

    def __init__(self, root: Path, capacity: int):
        self.root, self.capacity, self.used, self.failed = Path(root).resolve(), capacity, 0, 0

    def under(self, file) -> bool:
        try:
            return Path(os.fspath(file)).resolve().is_relative_to(self.root)
        except TypeError:  # a file descriptor
            return False

    def take(self, n: int, partial: bool = False) -> int:
        """Take ``n`` bytes (as many as fit, with ``partial``); ENOSPC when none (or, without ``partial``, not all) fit."""
        room = self.capacity - self.used
        if room <= 0 or (n > room and not partial):
            self.failed += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(n, room)
        self.used += n
        return n

    def install(self, monkeypatch) -> "FullDisk":
        disk, real_open, real_fallocate = self, io.open, os.posix_fallocate

        class FullFileIO(io.FileIO):
            def write(self, b):
                view = memoryview(b).cast("B")
                if not len(view):
                    return super().write(view)
                return super().write(view[: disk.take(len(view), partial=True)])

        def fake_open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None, closefd=True, opener=None):
            if not any(c in mode for c in "wax+") or not disk.under(file):
                return real_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
            raw = FullFileIO(file, mode.replace("b", "").replace("t", ""), closefd=closefd, opener=opener)
            buffered = io.BufferedRandom(raw) if "+" in mode else io.BufferedWriter(raw)
            return buffered if "b" in mode else io.TextIOWrapper(buffered, encoding=encoding or "utf-8", errors=errors,
                                                                 newline=newline)

        def fake_fallocate(fd, offset, length):
            if disk.under(os.readlink(f"/proc/self/fd/{fd}")):
                disk.take(length)
            return real_fallocate(fd, offset, length)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "posix_fallocate", fake_fallocate)
        return self


@pytest.mark.parametrize("records", ["small", "large"])
def test_full_disk_while_training_names_the_checkpoint(records, tmp_path, monkeypatch, capsys):
    """Room for config.json, not for the first checkpoint. Small records: the disk fills while the file's buffer is
    flushed, and closing the file fails too (an OSError). A large record (a big tensor, written past the buffer):
    the disk fills in that write, and torch reports a RuntimeError 'unexpected pos', as on a real full disk. Both
    are the checkpoint's path and no space left."""
    run = tmp_path / "run"
    disk = FullDisk(run, capacity=20_000 if records == "small" else 200_000).install(monkeypatch)
    if records == "large":
        save = torch.save
        monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: save({"big": torch.zeros(1 << 20), **obj}, f, *a, **k))
    assert main(["train", "--method", "grader_lr", *SMOKE, "--run-dir", str(run)]) == 1
    line = one_error_line(capsys, "no space left on the device")
    assert re.search(re.escape(str(run)) + r"/[a-z0-9-]+\.pt: no space left", line), line
    assert disk.failed and not leftovers(run) and (run / "config.json").is_file()
    assert not [p for p in run.iterdir() if p.suffix == ".pt"]  # no checkpoint, whole or half


def test_full_disk_in_the_synthetic_store_names_the_split(tmp_path, monkeypatch, capsys):
    """Training into the cache on a full disk: the synthetic split's memory maps are allocated up front, so the
    store fails with ENOSPC naming the split (writing into the map of a sparse file would be a SIGBUS). Room for
    every small file of the three splits, not for the first split's pixels (written through the maps, which the fake
    disk does not see: only allocating them up front fails here)."""
    cache = tmp_path / "cache"
    disk = FullDisk(cache / "synthetic", capacity=50_000).install(monkeypatch)
    assert main(["train", "--method", "grader_lr", *SMOKE]) == 1
    line = one_error_line(capsys, str(cache / "synthetic"), "no space left on the device")
    assert re.search(r"/train-n16: no space left", line), line
    assert disk.failed and not leftovers(cache)


def test_full_disk_in_data_synth_names_the_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "synth"
    FullDisk(out, capacity=30_000).install(monkeypatch)
    assert main(["data", "synth", str(out), "--profile", "smoke", "--n", "4", "--splits", "train"]) == 1
    one_error_line(capsys, f"error: {out}: no space left on the device")
    assert not out.exists()  # made by the command, removed with its staging folder


def test_full_disk_while_predicting_names_the_output(untrained_checkpoint, photo, tmp_path, monkeypatch, capsys):
    out = tmp_path / "pred"
    FullDisk(out, capacity=0).install(monkeypatch)
    assert main(["predict", str(photo), "--checkpoint", str(untrained_checkpoint), "--out", str(out)]) == 1
    one_error_line(capsys, f"error: {out / 'eye_sr.png'}: no space left on the device")
    assert list(out.iterdir()) == []


def test_torch_write_failure_without_errno_is_disk_full_only_when_the_disk_is(tmp_path, monkeypatch):
    """torch can report a failed write as a bare RuntimeError: it is a full disk when the file system has no room
    left (checked before the partial file is removed), and left as it is otherwise."""
    import deepmt.utils as utils
    from deepmt.engine.checkpoint import save_checkpoint

    def torch_fails(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 431680 vs 431576")

    monkeypatch.setattr(torch, "save", torch_fails)
    monkeypatch.setattr(utils, "free_bytes", lambda path: 0)
    with pytest.raises(DiskFullError) as info:
        save_checkpoint(tmp_path / "last.pt", {"model": {}})
    assert str(info.value) == f"{tmp_path / 'last.pt'}: no space left on the device; free some space or write somewhere else"
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(utils, "free_bytes", lambda path: 10 << 30)
    with pytest.raises(RuntimeError, match="unexpected pos") as info:
        save_checkpoint(tmp_path / "last.pt", {"model": {}})
    assert not isinstance(info.value, DiskFullError) and list(tmp_path.iterdir()) == []


def test_every_writer_goes_through_one_place(tmp_path, monkeypatch):
    """atomic_path (checkpoints, metrics, results, figures, predict outputs) and write_errors (folders, stores)
    give the same error for ENOSPC and EDQUOT, naming the path meant, not the temporary file."""
    from deepmt.utils import atomic_write_text, write_errors

    FullDisk(tmp_path, capacity=0).install(monkeypatch)
    with pytest.raises(DiskFullError, match=re.escape(f"{tmp_path / 'metrics.csv'}: no space left on the device")):
        atomic_write_text(tmp_path / "metrics.csv", "a,b\n")
    with pytest.raises(DiskFullError, match="disk quota exceeded"):
        with write_errors(tmp_path / "store"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    with pytest.raises(PermissionError) as info:  # any other failure keeps its kind, naming the path
        with write_errors(tmp_path / "store"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    assert info.value.filename == str(tmp_path / "store")
    assert list(tmp_path.iterdir()) == []


# =========================================================================== memory and sizes
@pytest.fixture
def small_memory(monkeypatch):
    """The machine has 32 MB available (for the CPU)."""
    import deepmt.engine.resources as resources

    monkeypatch.setattr(resources, "host_available_bytes", lambda: 32 << 20)


def test_a_model_beyond_the_memory_is_refused_before_anything_is_built(small_memory, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "deepmt_dr", *SMOKE, "--run-dir", str(run)]) == 1
    line = one_error_line(capsys, "deepmt_dr (smoke profile) needs about", "to train", "32 MB is available",
                          "activations", "train.batch_size")
    need = re.search(r"needs about (\d+) MB", line)
    assert need and int(need.group(1)) > 32, line
    assert not run.exists() and not (tmp_path / "cache").exists()  # no data made, nothing written
    # a smaller method fits
    assert main(["train", "--method", "grader_lr", *SMOKE, "--run-dir", str(run), "--set", "train.epochs_single=1"]) == 0


def test_predict_and_evaluate_check_the_memory_too(small_memory, untrained_checkpoint, photo, tmp_path, capsys,
                                                   monkeypatch):
    import deepmt.engine.resources as resources

    monkeypatch.setattr(resources, "host_available_bytes", lambda: 1 << 20)
    assert main(["predict", str(photo), "--checkpoint", str(untrained_checkpoint), "--out", str(tmp_path / "p")]) == 1
    one_error_line(capsys, "deepmt_dr (smoke profile) needs about", "to predict", "1 MB is available")
    assert main(["evaluate", "--checkpoint", str(untrained_checkpoint)]) == 1
    one_error_line(capsys, "to evaluate", "train.eval_batch_size")


def test_huge_widths_are_refused_with_the_setting(capsys, tmp_path):
    """No machine has exabytes: refused in about a second, from the meta device, naming the setting."""
    run = tmp_path / "run"
    assert main(["train", *SMOKE, "--run-dir", str(run), "--set", "model.isr.channels=99999999"]) == 1
    one_error_line(capsys, "EB", "set for this run: model.isr.channels=99999999")
    assert main(["train", *SMOKE, "--run-dir", str(run), "--set", "model.isr.channels=1000000000000"]) == 1
    one_error_line(capsys, "too large", "model.isr.channels=1000000000000")
    assert not run.exists()


def test_estimates_grow_with_the_batch_and_the_image():
    from deepmt.config import get_config
    from deepmt.engine.resources import estimate_memory

    cfg = get_config("smoke")
    base = estimate_memory("unet_hr", cfg)
    assert base.n_params > 0 and base.param_bytes == 16 * base.n_params and 0 < base.total < 1 << 30
    assert estimate_memory("unet_hr", cfg.replace({"train.batch_size": 32})).activation_bytes > 3 * base.activation_bytes
    assert estimate_memory("unet_hr", cfg.replace({"data.hr_size": 128})).activation_bytes > 3 * base.activation_bytes
    inference = estimate_memory("unet_hr", cfg, "predict")
    assert inference.batch_size == 1 and inference.total < base.total


def test_check_fits_compares_the_estimate_with_the_memory_available(monkeypatch):
    import deepmt.engine.resources as resources
    from deepmt.config import get_config

    cfg = get_config("smoke")
    need = resources.estimate_memory("unet_hr", cfg).total
    monkeypatch.setattr(resources, "host_available_bytes", lambda: need + 1)
    assert resources.check_fits("unet_hr", cfg, device="cpu").total == need
    monkeypatch.setattr(resources, "host_available_bytes", lambda: need - 1)
    with pytest.raises(ResourceError, match=r"unet_hr \(smoke profile\) needs about .* to train, but .* is available"):
        resources.check_fits("unet_hr", cfg, device="cpu")
    monkeypatch.setattr(resources, "host_available_bytes", lambda: None)  # unknown: not refused
    resources.check_fits("unet_hr", cfg, device="cpu")


def test_available_memory_comes_from_the_machine():
    from deepmt.engine.resources import available_memory, host_available_bytes

    n = host_available_bytes()
    assert n is None or n > 0
    free, where = available_memory("cpu")
    assert free == n or free is None and "MemAvailable" in where


@pytest.mark.parametrize("levels, allowed", [("12", "model.seg.levels from 2 to 7 fit"), ("8", "from 2 to 7 fit")])
def test_unet_levels_beyond_the_input_size_are_refused(levels, allowed, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SMOKE, "--run-dir", str(run), "--set", f"model.seg.levels={levels}"]) == 1
    one_error_line(capsys, f"model.seg.levels={levels}", "data.hr_size gives 64 px", allowed)
    assert not run.exists()


def test_unet_levels_rules():
    from deepmt.config_checks import check_unet_levels, unet_levels_allowed

    assert [unet_levels_allowed(s) for s in (64, 96, 24, 65, 1)] == [7, 6, 4, 1, 1]
    check_unet_levels(7, 64)
    check_unet_levels(3, 24, "data.hr_size / data.scale, the LR side")
    with pytest.raises(SettingError, match=r"model.seg.levels=4: .* 2\*\*3 = 8 px, but the LR side gives 12 px; "
                                           r"model.seg.levels from 2 to 3 fit"):
        check_unet_levels(4, 12, "the LR side")
    with pytest.raises(SettingError, match="odd side"):
        check_unet_levels(2, 65)
    with pytest.raises(SettingError, match=r"model.seg.levels=1: expected an integer >= 2"):
        main_config({"model.seg.levels": 1})


def main_config(overrides):
    from deepmt.config import get_config

    return get_config("smoke", overrides)


def test_sizes_must_fit_together(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SMOKE, "--run-dir", str(run), "--set", "data.hr_size=66"]) == 1
    one_error_line(capsys, "data.hr_size=66", "multiple of data.scale=4")
    assert main(["train", *SMOKE, "--run-dir", str(run), "--set", "data.crop_size=128"]) == 1
    one_error_line(capsys, "data.crop_size=128", "no larger than data.hr_size=64")


def test_epochs_without_meaning_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "grader_lr", *SMOKE, "--run-dir", str(run), "--set", "train.epochs_single=0"]) == 1
    one_error_line(capsys, "train.epochs_single=0", "an integer >= 1")
    zero = ["--set", "train.epochs_stage1a=0", "--set", "train.epochs_stage1b=0", "--set", "train.epochs_stage2=0"]
    assert main(["train", "--method", "deepmt_dr", *SMOKE, "--run-dir", str(run), *zero]) == 1
    one_error_line(capsys, "train.epochs_stage1a=0, train.epochs_stage1b=0, train.epochs_stage2=0",
                   "would train no epoch", "a stage at 0 is skipped")
    assert not run.exists()
    # one stage at 0 is meaningful (that stage is skipped: ablations, warm starts)
    from deepmt.engine.resources import estimate_memory

    assert estimate_memory("deepmt_dr", main_config({"train.epochs_stage2": 0})).total > 0


@pytest.mark.parametrize("value", ["-1", "0"])
def test_max_problems_below_one_is_refused(value, tmp_path, capsys):
    assert main(["data", "check", str(tmp_path), "--format", "aptos", "--max-problems", value]) == 1
    cap = capsys.readouterr()
    assert cap.err == f"error: --max-problems {value}: expected an integer >= 1 (how many problems to print; all are counted)\n"
    assert cap.out == ""  # refused before checking anything


# =========================================================================== small ones
def test_inputs_sharing_a_stem_get_distinguishable_names(untrained_checkpoint, tmp_path, capsys):
    from deepmt.engine.predict import output_stems

    assert output_stems(["a/eye.png", "a/eye.jpg", "b/eye.png", "c.png"]) == ["a_eye_png", "eye_jpg", "b_eye_png", "c"]
    assert output_stems(["eye.png", "eye.png"]) == ["eye_png", "eye_png_2"]
    assert output_stems(["x/eye.png", "y/other.png"]) == ["eye", "other"]

    photos = []
    for i, rel in enumerate(["a/eye.png", "a/eye.jpg", "b/eye.png"]):
        path = tmp_path / rel
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(fundus_array(i, 96, 128)).save(path)
        photos.append(path)
    out = tmp_path / "pred"
    assert main(["predict", *map(str, photos), "--checkpoint", str(untrained_checkpoint), "--out", str(out)]) == 0
    names = {json.loads(p.read_text())["image"]: p.stem for p in out.glob("*.json")}
    assert names == {str(photos[0]): "a_eye_png", str(photos[1]): "eye_jpg", str(photos[2]): "b_eye_png"}


def test_missing_checkpoint_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--checkpoint", "runs/x/final.pt"]) == 1
    one_error_line(capsys, "runs/x/final.pt: checkpoint not found", f"looked for {tmp_path / 'runs/x/final.pt'}",
                   "python -m deepmt train --method deepmt_dr --profile smoke", f"none yet in {tmp_path / 'cache' / 'runs'}")
    assert main(["predict", "photo.png"]) == 2
    assert "--profile smoke trains one in seconds" in capsys.readouterr().err


def test_a_resumed_cached_run_says_it_resumes_in_one_line(tmp_path, capsys):
    argv = ["train", "--method", "grader_lr", *SMOKE]
    assert main(argv) == 0
    run = next((tmp_path / "cache" / "runs").iterdir())
    (run / "result.json").unlink()  # as if killed after its last epoch's checkpoint
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"resuming the interrupted run in {run} from its last.pt" in err
    assert "training again" not in err and "Warning" not in err and (run / "result.json").is_file()


def test_warnings_are_one_clean_line(monkeypatch, capsys):
    import deepmt.commands as commands

    def warns(args):
        warnings.warn("something odd\nover two lines", UserWarning)
        return 0

    monkeypatch.setattr(commands, "run_predict", warns)
    assert main(["predict"]) == 0
    err = capsys.readouterr().err
    assert err == "warning: something odd over two lines\n"


# ----------------------------------------------------------------------------- image size vs memory (item 3)
def test_an_image_too_large_for_the_memory_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    """A small file that decodes to a huge image is refused from its header (no decode), naming the file, its size
    in px and the memory; the same image is read when the memory allows it."""
    from PIL import Image

    from deepmt.data import io as dio
    from deepmt.errors import DataError

    path = tmp_path / "huge.png"
    Image.new("RGB", (400, 300), (10, 20, 30)).save(path)
    need = 400 * 300 * dio._BYTES_PER_PIXEL
    monkeypatch.setattr(dio, "host_available_bytes", lambda: int(need / dio.IMAGE_MEMORY_SHARE) - 1024)
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1) or real_load(self))
    with pytest.raises(DataError, match=r"huge\.png: image of 400 x 300 px .* more than 25% of the"):
        dio.read_image(path)
    assert not decoded  # refused before any decoding
    monkeypatch.setattr(dio, "host_available_bytes", lambda: int(need / dio.IMAGE_MEMORY_SHARE) + 1024)
    assert dio.read_image(path).shape == (300, 400, 3) and decoded
    monkeypatch.setattr(dio, "host_available_bytes", lambda: None)  # unknown memory: not refused
    assert dio.read_image(path).shape == (300, 400, 3)
