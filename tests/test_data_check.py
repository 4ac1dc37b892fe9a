"""``python -m deepmt data check``: exit 0 on good fixtures, 1 on broken ones, printing every problem."""

from __future__ import annotations

import numpy as np
import pytest

from deepmt.cli import main
from deepmt.data.check import check_root
from fixtures_real import WRITERS, write_image, write_mask, write_messidor2_adjudicated


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["data", "check", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("fmt", ["idrid-seg", "idrid", "ddr", "ddr-seg", "messidor1", "messidor2", "aptos", "eyepacs"])
def test_good_fixture_passes(fmt, tmp_path, capsys):
    WRITERS[fmt](tmp_path)
    rc, out, _ = run(capsys, "--format", fmt, str(tmp_path))
    assert rc == 0, out
    assert "OK" in out and "0 error(s)" in out
    assert "total" in out  # the counts table


def test_counts_table_per_split_and_grade(tmp_path):
    WRITERS["ddr"](tmp_path)
    rep = check_root("ddr", tmp_path)
    assert rep.ok and rep.n_images == 9 and rep.n_ungradable == 2
    assert rep.counts.loc["val"].to_dict() == {"0": 1, "1": 0, "2": 1, "3": 0, "4": 0, "total": 2}
    assert rep.counts.loc["total", "total"] == 9


def test_corrupt_image_fails_and_is_named(tmp_path, capsys):
    WRITERS["eyepacs"](tmp_path)
    bad = tmp_path / "train" / "10_left.jpeg"
    bad.write_bytes(bad.read_bytes()[:200])
    rc, out, _ = run(capsys, "--format", "eyepacs", str(tmp_path))
    assert rc == 1
    assert str(bad) in out and "truncated JPEG" in out and "FAILED" in out
    # --no-decode only checks that files exist: the truncated file passes
    rc, out, _ = run(capsys, "--format", "eyepacs", "--no-decode", str(tmp_path))
    assert rc == 0 and "not decoded" in out


def test_mask_size_mismatch_reported(tmp_path, capsys):
    WRITERS["ddr-seg"](tmp_path)
    bad = tmp_path / "lesion_segmentation" / "train" / "label" / "HE" / "007-3000.tif"
    write_mask(bad, np.ones((20, 30), bool))
    rc, out, _ = run(capsys, "--format", "ddr-seg", str(tmp_path))
    assert rc == 1
    assert str(bad) in out and "mask size 30x20 differs from its image 007-3000.jpg (64x48)" in out


def test_missing_labels_file_and_bad_rows_all_listed(tmp_path, capsys):
    WRITERS["idrid"](tmp_path)
    gt = tmp_path / "B. Disease Grading" / "2. Groundtruths"
    (gt / "b. IDRiD_Disease Grading_Testing Labels.csv").unlink()
    train_csv = gt / "a. IDRiD_Disease Grading_Training Labels.csv"
    text = train_csv.read_text().replace("IDRiD_002,1,", "IDRiD_002,9,").replace("IDRiD_003,2,", "IDRiD_999,2,")
    train_csv.write_text(text)
    rc, out, _ = run(capsys, "--format", "idrid", str(tmp_path))
    assert rc == 1
    assert "b. IDRiD_Disease Grading_Testing Labels.csv: file not found" in out
    assert "line 3 (IDRiD_002): grade 9 is outside 0-4" in out
    assert "IDRiD_999: image listed in a. IDRiD_Disease Grading_Training Labels.csv line 4 is missing on disk" in out
    assert "IDRiD_003.jpg: image on disk is not listed" in out  # a warning, listed too
    assert "3 error(s), 1 warning(s)" in out


def test_max_problems_limits_printing_but_counts_all(tmp_path, capsys):
    WRITERS["aptos"](tmp_path)
    for p in sorted((tmp_path / "train_images").iterdir())[:4]:
        p.unlink()
    rc, out, _ = run(capsys, "--format", "aptos", "--max-problems", "2", str(tmp_path))
    assert rc == 1
    assert out.count("missing on disk") == 2 and "... and 2 more" in out and "4 error(s)" in out


def test_unlisted_image_is_a_warning_not_a_failure(tmp_path, capsys):
    WRITERS["messidor2"](tmp_path)
    extra = write_image(tmp_path / "IMAGES" / "extra_unlisted.png")
    rc, out, _ = run(capsys, "--format", "messidor2", str(tmp_path))
    assert rc == 0
    assert f"[warning] {extra}: image on disk is not listed in messidor_data.csv" in out


def test_bad_root_is_an_error_line(tmp_path, capsys):
    rc, out, err = run(capsys, "--format", "ddr", str(tmp_path / "nowhere"))
    assert rc == 1 and "nowhere: dataset root does not exist" in err and "DR_grading" in err
    (tmp_path / "empty").mkdir()
    rc, out, err = run(capsys, "--format", "ddr", str(tmp_path / "empty"))
    assert rc == 1 and "dataset root is empty" in err


# --------------------------------------------------------------------------- full release roots
RELEASES = {  # format -> (the other part's format, a file of that part to break, a mask of it whose size to change)
    "idrid": ("idrid-seg", "A. Segmentation/1. Original Images/a. Training Set/IDRiD_01.jpg",
              "A. Segmentation/2. All Segmentation Groundtruths/b. Testing Set/2. Haemorrhages/IDRiD_05_HE.tif"),
    "ddr": ("ddr-seg", "lesion_segmentation/train/image/007-3000.jpg", "lesion_segmentation/test/label/EX/007-3004.tif"),
    "idrid-seg": ("idrid", "B. Disease Grading/1. Original Images/b. Testing Set/IDRiD_102.jpg", None),
    "ddr-seg": ("ddr", "DR_grading/valid/007-0102-000.jpg", None),
}


@pytest.mark.parametrize("fmt", list(RELEASES))
def test_full_release_root_is_checked_whole(fmt, tmp_path, capsys):
    other, broken, mask = RELEASES[fmt]
    WRITERS[fmt](tmp_path)
    WRITERS[other](tmp_path)
    rc, out, _ = run(capsys, "--format", fmt, str(tmp_path))
    assert rc == 0 and f"== {fmt}: " in out and f"== {other}: " in out, out
    bad = tmp_path / broken
    bad.write_bytes(bad.read_bytes()[:150])
    if mask:
        write_mask(tmp_path / mask, np.ones((20, 30), bool))
    rc, out, _ = run(capsys, "--format", fmt, str(tmp_path))
    assert rc == 1 and str(bad) in out and "truncated JPEG" in out, out
    if mask:
        assert f"{tmp_path / mask}: mask size 30x20 differs" in out
    assert f"FAILED: {2 if mask else 1} error(s)" in out


def test_one_part_root_says_which_part_was_checked(tmp_path, capsys):
    WRITERS["idrid"](tmp_path)
    rc, out, _ = run(capsys, "--format", "idrid", str(tmp_path))
    assert rc == 0
    assert "checked the 'idrid' part (B. Disease Grading) only" in out
    assert f"{tmp_path / 'A. Segmentation'} is not there" in out and "data check --format idrid-seg ROOT" in out


def test_messidor2_adjudicated_grades_file(tmp_path, capsys):
    info = write_messidor2_adjudicated(tmp_path)
    rc, out, _ = run(capsys, "--format", "messidor2", str(tmp_path))
    assert rc == 0, out
    assert f"excluded as ungradable: {info['n_ungradable']}" in out and "0 error(s), 0 warning(s)" in out
    assert "total" in out and f"{len(info['grades'])}" in out
