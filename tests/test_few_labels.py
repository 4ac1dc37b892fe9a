"""data.label_fraction in training: each stage iterates over the images it can learn from (all of them for
super-resolution, the labelled ones for everything else), and with every image labelled nothing changes."""

import json

import numpy as np
import pytest
import torch

from dummy_method import DummyMethod, dummy_datasets, tiny_cfg

import deepmt.engine.trainer as trainer
from deepmt.config import get_config
from deepmt.data import NO_GRADE, build_datasets
from deepmt.data.partial_masks import PartialLabels, labelled_indices
from deepmt.models.methods import build_method
from deepmt.utils import seed_everything

CPU = {"train.device": "cpu"}


class _Recorder(torch.utils.data.Dataset):
    """``dataset`` that records, per training stage, every index it is asked for."""

    def __init__(self, dataset, stage: list, seen: dict):
        self.dataset, self.stage, self.seen = dataset, stage, seen

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.seen.setdefault(self.stage[-1], []).append(int(i))
        return self.dataset[i]

    def __getattr__(self, name):
        if name in ("dataset", "stage", "seen"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


@pytest.fixture
def loaders(monkeypatch):
    """``(stage, seen, given)``: the stage whose training loader was built last (training loaders shuffle,
    evaluation loaders do not), the indices read in each stage, and the dataset each training loader got."""
    stage, seen, given = ["?"], {}, []
    real = trainer.make_loader

    def spy(dataset, *a, **k):
        if k.get("shuffle"):
            stage.append(DummyMethod.stages[len(given)] if len(given) < len(DummyMethod.stages) else f"#{len(given)}")
            given.append(dataset)
        return real(dataset, *a, **k)

    monkeypatch.setattr(trainer, "make_loader", spy)
    return stage, seen, given


def test_super_resolution_stage_sees_every_image_the_others_only_labelled_ones(tmp_path, loaders):
    stage, seen, _ = loaders
    data = dummy_datasets(n_train=15)
    keep = labelled_indices(data["train"].grades, 0.5, seed=0)
    data["train"] = PartialLabels(_Recorder(data["train"], stage, seen), keep)
    cfg = tiny_cfg(**{"data.label_fraction": 0.5, "train.batch_size": 3})  # 2 epochs per stage
    seed_everything(0)
    trainer.train(DummyMethod(), cfg, data, tmp_path)
    assert len(keep) == 9  # 15 and 9 images: whole batches of 3, so drop_last leaves none out
    assert sorted(seen["isr_seg"]) == sorted(list(range(15)) * 2)  # every image, once per epoch
    assert sorted(seen["grade"]) == sorted(keep.tolist() * 2)  # the labelled ones only, once per epoch


def test_which_stages_learn_from_unlabelled_images(cfg):
    uses = {m: [build_method(m, cfg).stage_uses_unlabelled(s) for s in build_method(m, cfg).stages]
            for m in ("deepmt_dr", "deepmt_dr_noisr", "isr", "srcnn", "edsr", "two_stage", "foo_mt", "grader_bicubic", "unet_hr")}
    assert uses == {"deepmt_dr": [True, False, False], "deepmt_dr_noisr": [False, False, False], "isr": [True],
                    "srcnn": [True], "edsr": [True], "two_stage": [True, False], "foo_mt": [False],
                    "grader_bicubic": [False], "unet_hr": [False]}


def test_labelled_images_fewer_than_a_batch_are_padded_to_one(cache, tmp_path, monkeypatch):
    """16 smoke images at label fraction 0.1 leave one labelled image per grade (5); the stages that need labels
    train on those 5, padded to one batch of 8 labelled images per epoch, like any split smaller than a batch."""
    made = []
    real = trainer.make_loader

    def spy(dataset, *a, **k):
        loader = real(dataset, *a, **k)
        if k.get("shuffle"):
            made.append((len(dataset), [len(b["grade"]) for b in loader], [int(g) for b in loader for g in b["grade"]]))
        return loader

    monkeypatch.setattr(trainer, "make_loader", spy)
    cfg = get_config("smoke", {**CPU, "data.label_fraction": 0.1})
    data = build_datasets(cfg.data)
    seed_everything(0)
    trainer.train(build_method("foo_mt", cfg), cfg, data, tmp_path / "run")
    assert [(n, sizes) for n, sizes, _ in made] == [(5, [cfg.train.batch_size])]
    assert all(g != NO_GRADE for _, _, grades in made for g in grades)

def test_every_image_labelled_trains_exactly_as_before(cache, tmp_path, loaders):
    """``data.label_fraction`` = 1: every stage's loader gets the training split itself (the same batches), so a
    smoke training gives the same numbers as the default config, whose key it shares."""
    _, _, given = loaders
    results = []
    for i, overrides in enumerate(({}, {"data.label_fraction": 1.0})):
        cfg = get_config("smoke", {**CPU, **overrides})
        data = build_datasets(cfg.data)
        seed_everything(0)
        res = trainer.train(build_method("deepmt_dr", cfg), cfg, data, tmp_path / str(i))
        assert len(given) == 3 * (i + 1) and all(d is data["train"] for d in given[3 * i:])
        results.append(res)
    assert results[0].test_metrics == results[1].test_metrics and results[0].val_metrics == results[1].val_metrics
    np.testing.assert_array_equal(results[0].test_predictions["grade_probs"], results[1].test_predictions["grade_probs"])


def test_a_cached_run_stored_before_label_fraction_existed_is_reused(cache):
    from deepmt.experiment_cache import run_dir_for, run_experiment

    cfg = get_config("smoke", CPU)
    first = run_experiment("bicubic", cfg)  # nothing to train: evaluation only
    path = run_dir_for("bicubic", cfg) / "result.json"
    record = json.loads(path.read_text())
    del record["config"]["data"]["label_fraction"]
    path.write_text(json.dumps(record))
    again = run_experiment("bicubic", cfg)
    assert again.from_cache and again.metrics == first.metrics
    assert not run_experiment("bicubic", cfg.replace({"data.label_fraction": 0.5})).from_cache
