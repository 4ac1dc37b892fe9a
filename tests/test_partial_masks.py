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
