"""data.mask_fraction: a fixed, grade-stratified share of the training images keeps its lesion masks."""

import numpy as np
import pytest
import torch

from deepmt.config import get_config
from deepmt.data import build_datasets
from deepmt.data.partial_masks import annotated_indices
from deepmt.errors import ConfigMismatchError


def test_annotated_indices_are_stratified_deterministic_and_seeded():
    grades = np.repeat(np.arange(5), 20)
    a = annotated_indices(grades, 0.25, seed=0)
    assert np.array_equal(a, annotated_indices(grades, 0.25, seed=0))
    assert not np.array_equal(a, annotated_indices(grades, 0.25, seed=1))
    assert np.bincount(grades[a], minlength=5).tolist() == [5] * 5
    assert len(annotated_indices(grades, 1.0, 0)) == 100 and len(annotated_indices(grades, 0.0, 0)) == 0
    assert np.bincount(grades[annotated_indices(grades, 0.01, 0)], minlength=5).tolist() == [1] * 5  # >= 1 per grade
    with pytest.raises(ConfigMismatchError, match="mask_fraction"):
        annotated_indices(grades, 1.5, 0)


def test_train_split_loses_masks_outside_the_subset_val_and_test_keep_them(cache):
    cfg = get_config("smoke", {"data.mask_fraction": 0.25, "data.n_train": 20, "data.augment": False})
    ds = build_datasets(cfg.data)
    present = torch.stack([ds["train"][i]["mask_present"] for i in range(len(ds["train"]))])
    annotated = present.any(dim=1)
    assert present.all(dim=1).eq(annotated).all()  # an image keeps all four masks or none
    assert int(annotated.sum()) == len(annotated_indices(ds["train"].grades, 0.25, cfg.data.seed))
    for i in np.flatnonzero(~annotated.numpy()):
        assert ds["train"][int(i)]["masks"].sum() == 0
    full = build_datasets(get_config("smoke", {"data.n_train": 20, "data.augment": False}).data)["train"]
    i = int(np.flatnonzero(annotated.numpy())[0])
    assert torch.equal(ds["train"][i]["masks"], full[i]["masks"]) and torch.equal(ds["train"][i]["hr"], full[i]["hr"])
    assert all(ds[s][j]["mask_present"].all() for s in ("val", "test") for j in range(len(ds[s])))
    assert ds["train"].grades is not None  # attributes still reach the wrapped dataset


# --------------------------------------------------------------------------- data.label_fraction
def test_labelled_indices_are_stratified_seeded_and_not_the_mask_draw():
    from deepmt.data.partial_masks import labelled_indices

    grades = np.repeat(np.arange(5), 20)
    a = labelled_indices(grades, 0.25, seed=0)
    assert np.array_equal(a, labelled_indices(grades, 0.25, seed=0))
    assert not np.array_equal(a, labelled_indices(grades, 0.25, seed=1))
    assert not np.array_equal(a, annotated_indices(grades, 0.25, seed=0))  # a stream of its own
    assert np.bincount(grades[a], minlength=5).tolist() == [5] * 5
    assert np.bincount(grades[labelled_indices(grades, 0.01, 0)], minlength=5).tolist() == [1] * 5  # >= 1 per grade
    assert len(labelled_indices(grades, 1.0, 0)) == 100
    for bad in (0.0, 1.5):  # no labelled image at all is not a training set
        with pytest.raises(ConfigMismatchError, match=r"data.label_fraction=.*\(0, 1\]"):
            labelled_indices(grades, bad, 0)


def test_unlabelled_training_images_lose_grade_and_masks_val_and_test_keep_them(cache):
    from deepmt.data import NO_GRADE
    from deepmt.data.partial_masks import labelled_indices, labelled_subset
    from deepmt.engine.trainer import grade_counts

    base = {"data.n_train": 20, "data.augment": False}
    full = build_datasets(get_config("smoke", base).data)["train"]
    ds = build_datasets(get_config("smoke", {**base, "data.label_fraction": 0.25}).data)
    train = ds["train"]
    keep = labelled_indices(full.grades, 0.25, 0)
    assert np.array_equal(train.labelled_indices, keep)
    unlabelled = sorted(set(range(20)) - set(keep.tolist()))
    assert len(unlabelled) == 20 - len(keep) and len(keep) >= 5
    for i in unlabelled:
        s = train[i]
        assert int(s["grade"]) == NO_GRADE and s["masks"].sum() == 0 and not s["mask_present"].any()
        assert torch.equal(s["hr"], full[i]["hr"]) and torch.equal(s["lr"], full[i]["lr"])  # the HR image stays
    for i in keep:
        s, f = train[int(i)], full[int(i)]
        assert int(s["grade"]) == int(f["grade"]) and torch.equal(s["masks"], f["masks"]) and s["mask_present"].all()
    assert [g for g in train.grades] == [int(g) if i in set(keep.tolist()) else NO_GRADE for i, g in enumerate(full.grades)]
    assert grade_counts(train) == np.bincount(np.asarray(full.grades)[keep], minlength=5).tolist()  # class weights: labelled only
    sub = labelled_subset(train)
    assert len(sub) == len(keep) and all(int(sub[j]["grade"]) >= 0 for j in range(len(sub)))
    assert all(int(ds[s][j]["grade"]) >= 0 and ds[s][j]["mask_present"].all() for s in ("val", "test") for j in range(len(ds[s])))


def test_label_and_mask_fractions_compose_and_augmentation_keeps_the_labelled_indices(cache):
    from deepmt.data.partial_masks import labelled_indices, labelled_subset

    cfg = get_config("smoke", {"data.n_train": 20, "data.label_fraction": 0.5, "data.mask_fraction": 0.5})
    train = build_datasets(cfg.data)["train"]  # augmented: the wrapper forwards the labelled indices
    grades = build_datasets(get_config("smoke", {"data.n_train": 20}).data, ("train",))["train"].grades
    keep = labelled_indices(grades, 0.5, 0)  # drawn from the true grades, not from the mask-less copy
    assert np.array_equal(train.labelled_indices, keep) and len(labelled_subset(train)) == len(keep)
    masked = set(annotated_indices(grades, 0.5, 0).tolist())
    present = [bool(train[i]["mask_present"].any()) for i in range(20)]
    assert present == [i in masked and i in set(keep.tolist()) for i in range(20)]


def test_label_fraction_one_changes_nothing(cache):
    from deepmt.data.partial_masks import labelled_subset

    a = build_datasets(get_config("smoke").data)["train"]
    b = build_datasets(get_config("smoke", {"data.label_fraction": 1.0}).data)["train"]
    assert type(a.dataset) is type(b.dataset) and not hasattr(b, "labelled_indices")
    assert labelled_subset(b) is b
    assert get_config("smoke", {"data.label_fraction": 1.0}).key() == get_config("smoke").key()
    assert get_config("smoke", {"data.label_fraction": 0.5}).key() != get_config("smoke").key()
