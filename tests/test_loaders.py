"""Real dataset loaders read tiny fixtures in every published layout with the right counts, splits, grades, masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmt import LESIONS
from deepmt.config import DataConfig
from deepmt.data import build_datasets, validate_sample
from deepmt.data.real import (
    FORMATS,
    FundusRecord,
    RealFundusDataset,
    assign_splits,
    build_real_splits,
    index_dataset,
    stratified_split,
)
from deepmt.data.transforms import AugmentedDataset
from deepmt.errors import DataError
from fixtures_real import (
    DDR_GRADES,
    EYEPACS,
    IDRID_TEST,
    IDRID_TRAIN,
    MESSIDOR1,
    WRITERS,
    lesion_block,
    write_aptos,
    write_messidor2_adjudicated,
)


pytestmark = pytest.mark.usefixtures("fresh_cache")


def cfg_for(fmt: str, root: Path, **kw) -> DataConfig:
    base = dict(dataset=fmt, root=str(root), hr_size=32, scale=4, augment=False, crop_size=None, val_fraction=0.2, seed=0)
    base.update(kw)
    return DataConfig(**base)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_builds_valid_samples(fmt, tmp_path):
    root = tmp_path / fmt
    WRITERS[fmt](root)
    splits = build_real_splits(cfg_for(fmt, root))
    assert set(splits) == {"train", "val", "test"}
    ids = [r.id for ds in splits.values() for r in ds.records]
    assert len(ids) == len(set(ids)), "a record appears in two splits"
    for name, ds in splits.items():
        assert len(ds) > 0
        s = ds[0]
        validate_sample(s, scale=4)
        assert s["hr"].shape == (3, 32, 32) and s["lr"].shape == (3, 8, 8)
        assert s["hr"].dtype == torch.float32 and 0.0 <= s["hr"].min() and s["hr"].max() <= 1.0
        assert 0.5 < s["fov"].mean() < 0.95  # the fixture's disc fills most of the square
        assert s["id"] == ds.records[0].id
        seg = fmt.endswith("-seg")
        assert bool(s["mask_present"].all()) == seg and bool(s["mask_present"].any()) == seg
        assert (int(s["grade"]) == -1) == seg
        if not seg:
            assert s["masks"].sum() == 0


def test_idrid_seg_splits_masks_and_absent_lesion(tmp_path):
    info = WRITERS["idrid-seg"](tmp_path)
    rep = index_dataset("idrid-seg", tmp_path)
    assert not rep.problems
    assert {k: [r.id for r in v] for k, v in rep.splits.items()} == info["splits"]
    rec = {r.id: r for r in rep.records}
    se = LESIONS.index("SE")
    assert rec["IDRiD_02"].masks[se] is None  # missing file = lesion absent
    assert all(m is not None for m in rec["IDRiD_01"].masks)
    assert all("OD" not in str(m) for r in rep.records for m in r.masks if m is not None)  # optic disc ignored
    ds = RealFundusDataset(rep.splits["train"], cfg_for("idrid-seg", tmp_path, hr_size=64), "idrid-seg", "train", tmp_path)
    s = ds[[r.id for r in ds.records].index("IDRiD_02")]
    assert s["mask_present"].tolist() == [True] * 4
    assert s["masks"][se].sum() == 0 and s["masks"][:se].sum(dim=(1, 2)).min() > 0
    # lesion blocks lie inside the disc: masks within the FOV
    assert float((s["masks"].amax(0) * (1 - s["fov"][0])).sum()) == 0


def test_idrid_seg_mask_geometry_follows_the_crop(tmp_path):
    """A 6x6 lesion block lands where the FOV crop + pad + resize puts it."""
    WRITERS["idrid-seg"](tmp_path)
    rep = index_dataset("idrid-seg", tmp_path)
    rec = rep.splits["train"][0]  # IDRiD_01, k=0: MA block = lesion_block(0)
    ds = RealFundusDataset([rec], cfg_for("idrid-seg", tmp_path, hr_size=64), "idrid-seg", "train", tmp_path)
    s = ds[0]
    block = lesion_block(0)  # in the 48x64 original; FOV bbox ~ rows 1..47, cols 9..55 (disc radius 23)
    ys, xs = np.nonzero(block)
    ys_hr, xs_hr = np.nonzero(s["masks"][0].numpy())
    hr = s["hr"].numpy()
    # the block centre in the original, relative to the disc centre, scales by 64/46 into the HR square
    cy, cx = (ys.mean() - 23.5) * 64 / 46 + 32, (xs.mean() - 31.5) * 64 / 46 + 32
    assert abs(ys_hr.mean() - cy) < 2.5 and abs(xs_hr.mean() - cx) < 2.5
    assert hr[:, 0, 0].max() < 0.05  # square corners are black (outside the disc)


def test_idrid_grading_grades_and_official_test(tmp_path):
    WRITERS["idrid"](tmp_path)
    rep = index_dataset("idrid", tmp_path)
    assert not rep.problems
    assert {r.id: r.grade for r in rep.splits["train"]} == IDRID_TRAIN
    assert {r.id: r.grade for r in rep.splits["test"]} == IDRID_TEST
    s = assign_splits(rep, 0.2, seed=0)
    assert [r.id for r in s["test"]] == sorted(IDRID_TEST)  # official test untouched
    assert len(s["val"]) == 1 and len(s["train"]) == 5
    assert {r.id for r in s["train"] + s["val"]} == set(IDRID_TRAIN)


def test_ddr_excludes_ungradable_and_uses_official_valid(tmp_path):
    info = WRITERS["ddr"](tmp_path)
    splits = build_real_splits(cfg_for("ddr", tmp_path), ("train", "val", "test"))
    assert info["n_ungradable"] == 2
    for name, sdir in (("train", "train"), ("val", "valid"), ("test", "test")):
        want = {k: g for k, g in DDR_GRADES[sdir].items() if g != 5}
        assert {r.id: r.grade for r in splits[name].records} == want
        assert splits[name].excluded_ungradable == 2
        assert splits[name].report.n_ungradable == 2
        assert splits[name].report.n_unlisted == 0  # excluded rows are still "listed"


def test_ddr_seg_valid_folder_name_and_01_masks(tmp_path):
    info = WRITERS["ddr-seg"](tmp_path)
    rep = index_dataset("ddr-seg", tmp_path)
    assert not [p for p in rep.problems if p.severity != "warning"]
    assert [r.id for r in rep.splits["val"]] == info["ids"]["valid"]
    rec = rep.splits["val"][0]
    assert "segmentation label" in str(rec.masks[0])
    ds = RealFundusDataset([rec], cfg_for("ddr-seg", tmp_path), "ddr-seg", "val", tmp_path)
    s = ds[0]
    assert s["masks"][:3].sum(dim=(1, 2)).min() > 0  # 0/1 TIFF masks are read as lesion
    assert s["masks"][3].sum() == 0 and bool(s["mask_present"][3])  # 007-3002 has no SE file


def test_messidor1_xls_with_trailing_space_header(tmp_path):
    info = WRITERS["messidor1"](tmp_path)
    rep = index_dataset("messidor1", tmp_path)
    assert not rep.problems
    assert {r.id: r.grade for r in rep.records} == info["grades"]
    assert {r.image.parent.name for r in rep.records} == set(MESSIDOR1)
    assert max(r.grade for r in rep.records) == 3


def test_messidor2_excludes_ungradable(tmp_path):
    info = WRITERS["messidor2"](tmp_path)
    rep = index_dataset("messidor2", tmp_path)
    assert rep.n_ungradable == info["n_ungradable"] == 1
    assert {r.id: r.grade for r in rep.records} == info["grades"]
    assert not rep.problems


def test_messidor2_adjudicated_grades_file(tmp_path):
    """The adjudicated grades (image_id, adjudicated_dr_grade, adjudicated_dme, adjudicated_gradable): ungradable
    rows excluded and counted, ids matched to files whatever the case of their extension."""
    info = write_messidor2_adjudicated(tmp_path)
    rep = index_dataset("messidor2", tmp_path)
    assert not rep.problems
    assert rep.n_ungradable == info["n_ungradable"] == 2
    assert {r.id: r.grade for r in rep.records} == info["grades"]
    splits = build_real_splits(cfg_for("messidor2", tmp_path))
    assert sum(len(ds) for ds in splits.values()) == len(info["grades"])
    (tmp_path / "messidor_data.csv").write_text("image,grade\nIM000001.jpg,2\n")
    (problem,) = index_dataset("messidor2", tmp_path).problems
    assert problem.severity == "fatal"
    assert "expected columns ['image_id', 'adjudicated_dr_grade'] or ['id_code', 'diagnosis']" in problem.message


def test_eyepacs_and_aptos_grades(tmp_path):
    WRITERS["eyepacs"](tmp_path / "e")
    rep = index_dataset("eyepacs", tmp_path / "e")
    assert {r.id: r.grade for r in rep.records} == EYEPACS
    info = write_aptos(tmp_path / "a")
    rep = index_dataset("aptos", tmp_path / "a")
    assert {r.id: r.grade for r in rep.records} == info["grades"]


def test_test_and_val_carved_when_no_official_split(tmp_path):
    info = write_aptos(tmp_path, {f"img{i:03d}": i % 5 for i in range(40)})
    a = build_real_splits(cfg_for("aptos", tmp_path, val_fraction=0.25))
    b = build_real_splits(cfg_for("aptos", tmp_path, val_fraction=0.25))
    ids = {k: [r.id for r in v.records] for k, v in a.items()}
    assert ids == {k: [r.id for r in v.records] for k, v in b.items()}  # deterministic
    assert len(ids["test"]) == 8 and len(ids["val"]) == 8 and len(ids["train"]) == 24
    assert sorted(sum(ids.values(), [])) == sorted(info["grades"])
    for split in ("test", "val"):
        counts = np.bincount(a[split].grades, minlength=5)  # 8 images of 5 equally common grades
        assert sorted(counts.tolist()) == [1, 1, 2, 2, 2], f"{split} split is not stratified: {counts}"
    c = build_real_splits(cfg_for("aptos", tmp_path, val_fraction=0.25, seed=1))
    assert [r.id for r in c["test"].records] != ids["test"]  # the seed matters


def test_stratified_split_keeps_grade_proportions():
    grades = [0] * 50 + [1] * 10 + [2] * 20 + [3] * 10 + [4] * 10
    recs = [FundusRecord(id=f"r{i:03d}", image=Path(f"r{i}.png"), grade=g) for i, g in enumerate(grades)]
    keep, held = stratified_split(recs, 0.2, seed=3)
    assert len(held) == 20 and len(keep) == 80
    assert np.bincount([r.grade for r in held], minlength=5).tolist() == [10, 2, 4, 2, 2]
    keep2, held2 = stratified_split(list(reversed(recs)), 0.2, seed=3)
    assert [r.id for r in held2] == [r.id for r in held]  # order of input does not matter
    _, held3 = stratified_split(recs, 0.2, seed=4)
    assert [r.id for r in held3] != [r.id for r in held]


def test_cache_is_used_and_corrupt_entry_recomputed(tmp_path, monkeypatch):
    WRITERS["aptos"](tmp_path / "a")
    ds = build_real_splits(cfg_for("aptos", tmp_path / "a"), ("test",))["test"]
    first = ds[0]
    entries = list(ds.cache.glob("*.npz"))
    assert len(entries) == 1
    import deepmt.data.real.dataset as real_dataset

    def boom(path):
        raise AssertionError("image decoded although cached")

    monkeypatch.setattr(real_dataset, "read_image", boom)
    assert torch.equal(ds[0]["hr"], first["hr"])
    monkeypatch.undo()
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))
    entries[0].write_bytes(b"PK\x03\x04 corrupt")
    again = ds[0]
    assert torch.equal(again["hr"], first["hr"]) and torch.equal(again["lr"], first["lr"])
    assert np.load(entries[0])["hr"].shape == (32, 32, 3)  # rewritten


def test_build_datasets_dispatch_and_augmented_train(tmp_path):
    WRITERS["eyepacs"](tmp_path)
    cfg = cfg_for("eyepacs", tmp_path, augment=True, crop_size=16)
    splits = build_datasets(cfg)
    train = splits["train"]
    assert isinstance(train, AugmentedDataset) and not isinstance(splits["val"], AugmentedDataset)
    s = train[0]
    validate_sample(s, scale=4)
    assert s["hr"].shape == (3, 16, 16) and s["lr"].shape == (3, 4, 4)
    assert train.class_counts().sum() == len(train)  # attributes forwarded to the real dataset
    batch = torch.utils.data.default_collate([train[0], train[1]])
    assert batch["hr"].shape == (2, 3, 16, 16) and len(batch["id"]) == 2


def test_unknown_format_lists_known_ones(tmp_path):
    with pytest.raises(DataError, match="known formats: idrid-seg, idrid, ddr"):
        build_real_splits(cfg_for("kaggle", tmp_path))
    with pytest.raises(DataError, match="data.root is not set"):
        build_real_splits(DataConfig(dataset="ddr", root=None))
