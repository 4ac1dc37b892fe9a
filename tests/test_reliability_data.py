"""Reliability: bad input files and roots give a clear DataError that names the file, or are converted safely."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from deepmt.config import DataConfig
from deepmt.data import io as dio
from deepmt.data.io import read_image, read_mask
from deepmt.data.preprocess import preprocess_fundus
from deepmt.data.real import RealFundusDataset, build_real_splits, index_dataset
from deepmt.errors import DataError
from fixtures_real import WRITERS, fundus_array, write_image, write_mask


pytestmark = pytest.mark.usefixtures("fresh_cache")


def cfg_for(fmt, root, **kw):
    return DataConfig(dataset=fmt, root=str(root), hr_size=32, scale=4, augment=False, crop_size=None, **kw)


def assert_names(exc_info, path, *words):
    msg = str(exc_info.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg


# --------------------------------------------------------------------------- corrupt files
def test_corrupt_jpeg(tmp_path):
    p = write_image(tmp_path / "a.jpg")
    data = bytearray(p.read_bytes())
    data[200:600] = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()  # scramble tables/data
    p.write_bytes(bytes(data[:-300]))
    with pytest.raises(DataError) as e:
        read_image(p)
    assert_names(e, p, "JPEG")


def test_truncated_png(tmp_path):
    p = write_image(tmp_path / "a.png")
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(DataError) as e:
        read_image(p)
    assert_names(e, p, "truncated PNG")


def test_corrupt_tiff_image_and_mask(tmp_path):
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, np.ones((48, 64), np.uint8) * 255)
    p.write_bytes(p.read_bytes()[:12] + b"\x00" * 40)
    with pytest.raises(DataError) as e:
        read_mask(p)
    assert_names(e, p, "TIFF")
    with pytest.raises(DataError) as e:
        read_image(p)
    assert_names(e, p)


def test_empty_and_missing_file_and_folder(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as e:
        read_image(empty)
    assert_names(e, empty, "empty file")
    with pytest.raises(DataError) as e:
        read_image(tmp_path / "gone.png")
    assert_names(e, tmp_path / "gone.png", "file not found")
    with pytest.raises(DataError) as e:
        read_mask(tmp_path)
    assert_names(e, tmp_path, "is not a file")


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is a text file")
    with pytest.raises(DataError) as e:
        read_image(p)
    assert_names(e, p, "not a readable image")


def test_no_read_permission(tmp_path, monkeypatch):
    """We run as root, where chmod 000 does not stop reading: simulate both permission paths."""
    p = write_image(tmp_path / "locked.png")
    monkeypatch.setattr(dio.os, "access", lambda path, mode: False)
    with pytest.raises(DataError) as e:
        read_image(p)
    assert_names(e, p, "no read permission")
    monkeypatch.undo()

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(dio.Image, "open", denied)
    with pytest.raises(DataError) as e:
        read_mask(p)
    assert_names(e, p, "no read permission")


# --------------------------------------------------------------------------- safe conversions
def test_grayscale_rgba_palette_cmyk_converted(tmp_path):
    rgb = fundus_array(1)
    gray = tmp_path / "g.png"
    Image.fromarray(rgb[..., 0]).save(gray)
    out = read_image(gray)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], rgb[..., 0]) and np.array_equal(out[..., 1], out[..., 2])

    rgba = np.dstack([rgb, np.full((48, 64), 255, np.uint8)])
    rgba[:, :32, 3] = 0  # left half fully transparent -> black
    p = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(p)
    out = read_image(p)
    assert out[:, :32].max() == 0 and np.array_equal(out[:, 32:], rgb[:, 32:])

    pal = Image.fromarray(rgb).quantize(colors=16)
    p = tmp_path / "p.png"
    pal.save(p)
    out = read_image(p)
    assert out.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - np.asarray(pal.convert("RGB")).astype(int)).max() == 0

    p = tmp_path / "c.jpg"
    Image.fromarray(rgb).convert("CMYK").save(p, quality=95)
    out = read_image(p)
    assert out.shape == (48, 64, 3) and np.abs(out.astype(int) - rgb.astype(int)).mean() < 12


def test_16bit_scaled_by_actual_bit_depth(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (48, 1))  # 12-bit data in 16-bit words
    p = tmp_path / "twelve.tif"
    tifffile.imwrite(p, np.dstack([ramp] * 3))
    out = read_image(p)
    assert out.dtype == np.uint8 and out.max() == 255 and out[0, 0, 0] == 0
    assert abs(int(out[0, 32, 0]) - round(int(ramp[0, 32]) * 255 / 4095)) <= 1
    p16 = tmp_path / "sixteen.png"
    Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))).save(p16)  # mode I;16
    out = read_image(p16)
    assert out.max() == 255 and out[0, 0, 0] == 0 and out.shape == (48, 64, 3)


def test_mask_thresholds_for_every_encoding(tmp_path):
    block = np.zeros((48, 64), bool)
    block[10:20, 10:30] = True
    for style in ("gray01", "gray255", "rgb255"):
        assert np.array_equal(read_mask(write_mask(tmp_path / f"{style}.tif", block, style)), block)
    aa = block.astype(np.uint8) * 255
    aa[9, 10:30] = 100  # anti-aliased rim below half: not lesion
    aa[20, 10:30] = 200  # above half: lesion
    Image.fromarray(aa).save(tmp_path / "aa.png")
    want = block.copy()
    want[20, 10:30] = True
    assert np.array_equal(read_mask(tmp_path / "aa.png"), want)
    Image.fromarray(block).save(tmp_path / "one_bit.png")  # mode "1"
    assert np.array_equal(read_mask(tmp_path / "one_bit.png"), block)


# --------------------------------------------------------------------------- dataset-level problems
def test_mask_size_differs_from_image(tmp_path):
    WRITERS["idrid-seg"](tmp_path)
    bad = tmp_path / "A. Segmentation/2. All Segmentation Groundtruths/a. Training Set/3. Hard Exudates/IDRiD_01_EX.tif"
    write_mask(bad, np.ones((24, 32), bool), "rgb255")
    rep = index_dataset("idrid-seg", tmp_path)
    ds = RealFundusDataset(rep.splits["train"], cfg_for("idrid-seg", tmp_path), "idrid-seg", "train", tmp_path)
    with pytest.raises(DataError) as e:
        ds[0]
    assert_names(e, bad, "mask size 32x24 differs from its image")


def test_idrid_missing_mask_is_absent_lesion_not_error(tmp_path):
    WRITERS["idrid-seg"](tmp_path)
    for p in (tmp_path / "A. Segmentation/2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms").glob("IDRiD_03_*"):
        p.unlink()
    rep = index_dataset("idrid-seg", tmp_path)
    assert not [p for p in rep.problems if p.severity != "warning"]
    ds = RealFundusDataset(rep.splits["train"], cfg_for("idrid-seg", tmp_path), "idrid-seg", "train", tmp_path)
    s = ds[2]
    assert s["id"] == "IDRiD_03" and s["mask_present"].all() and s["masks"][0].sum() == 0 and s["masks"][1].sum() > 0


def test_grade_outside_range_names_file_and_line(tmp_path):
    WRITERS["eyepacs"](tmp_path)
    labels = tmp_path / "trainLabels.csv"
    lines = labels.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",7"
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("eyepacs", tmp_path))
    assert_names(e, labels, "line 4", "grade 7 is outside 0-4")


def test_messidor1_grade_4_is_out_of_range(tmp_path):
    from fixtures_real import write_messidor1

    write_messidor1(tmp_path, {"Base11": {"a.tif": 0, "b.tif": 4, "c.tif": 1}})
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("messidor1", tmp_path))
    assert_names(e, tmp_path / "Annotation_Base11.xls", "line 3", "grade 4 is outside 0-3")


def test_labels_with_missing_or_renamed_columns(tmp_path):
    WRITERS["aptos"](tmp_path)
    labels = tmp_path / "train.csv"
    labels.write_text(labels.read_text().replace("id_code,diagnosis", "id_code,grade"))
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("aptos", tmp_path))
    assert_names(e, labels, "missing column(s) ['diagnosis']", "expected columns ['id_code', 'diagnosis']", "found ['id_code', 'grade']")


def test_idrid_renamed_column(tmp_path):
    from fixtures_real import write_idrid

    write_idrid(tmp_path, columns=["Image", "Retinopathy grade", "Risk of macular edema "])
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("idrid", tmp_path))
    assert_names(e, "a. IDRiD_Disease Grading_Training Labels.csv", "missing column(s) ['Image name']")


def test_image_listed_but_missing_on_disk_error_or_skipped(tmp_path):
    WRITERS["ddr"](tmp_path)
    gone = tmp_path / "DR_grading" / "train" / "007-0002-000.jpg"
    gone.unlink()
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("ddr", tmp_path))
    assert_names(e, gone, "missing on disk", "train.txt line 2")
    splits = build_real_splits(cfg_for("ddr", tmp_path), skip_bad=True)
    assert "007-0002-000" not in [r.id for r in splits["train"].records]
    assert len(splits["train"]) == 4 and splits["train"].report.n_skipped == 1


def test_image_on_disk_but_unlisted_is_reported(tmp_path):
    WRITERS["aptos"](tmp_path)
    extra = write_image(tmp_path / "train_images" / "ffffffffffff.png")
    rep = index_dataset("aptos", tmp_path)
    assert rep.n_unlisted == 1
    assert [p.severity for p in rep.problems] == ["warning"] and str(extra) in rep.problems[0].message
    splits = build_real_splits(cfg_for("aptos", tmp_path))  # a warning does not stop loading
    assert sum(len(d) for d in splits.values()) == 10


def test_malformed_ddr_line(tmp_path):
    WRITERS["ddr"](tmp_path)
    txt = tmp_path / "DR_grading" / "test.txt"
    txt.write_text(txt.read_text() + "lonely_token\n")
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("ddr", tmp_path))
    assert_names(e, txt, "line 4", "expected '<file> <grade>'")


def test_empty_root(tmp_path):
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("idrid", tmp_path))
    assert_names(e, tmp_path, "dataset root is empty", "B. Disease Grading")


def test_nonexistent_root(tmp_path):
    root = tmp_path / "no" / "such"
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("messidor2", root))
    assert_names(e, root, "does not exist", "messidor_data.csv")


def test_root_with_wrong_layout(tmp_path):
    WRITERS["aptos"](tmp_path)  # an APTOS root given as DDR
    with pytest.raises(DataError) as e:
        build_real_splits(cfg_for("ddr", tmp_path))
    assert_names(e, tmp_path / "DR_grading", "folder not found")


def test_non_fundus_black_image(tmp_path):
    with pytest.raises(DataError) as e:
        preprocess_fundus(np.zeros((48, 64, 3), np.uint8), 32, name="black.png")
    assert_names(e, "black.png", "no field of view found")
    WRITERS["aptos"](tmp_path)  # and through a dataset: the message names the image file
    p = sorted((tmp_path / "train_images").iterdir())[0]
    write_image(p, np.zeros((48, 64, 3), np.uint8))
    ds = build_real_splits(cfg_for("aptos", tmp_path), ("train", "val", "test"))
    with pytest.raises(DataError) as e:
        for d in ds.values():
            for i in range(len(d)):
                d[i]
    assert_names(e, p, "no field of view found")


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    WRITERS["eyepacs"](tmp_path)
    ds = build_real_splits(cfg_for("eyepacs", tmp_path), ("val",))["val"]
    ref = ds[0]["hr"].clone()
    (entry,) = ds.cache.glob("*.npz")
    buf = io.BytesIO()
    np.savez(buf, hr=np.zeros((5, 5, 3), np.uint8), fov=np.zeros((5, 5), bool))  # wrong shape
    entry.write_bytes(buf.getvalue())
    assert (ds[0]["hr"] == ref).all()
    entry.write_bytes(b"")  # empty/truncated
    assert (ds[0]["hr"] == ref).all()
