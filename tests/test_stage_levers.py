"""The quick profile's speed levers in the trainer: random crops for the stages that do not grade
(``data.nongrading_crop_size``: a stage that grades always sees whole images), validation every k-th epoch
(``train.val_every``: the last epoch always validated, only validated epochs can be selected) and early stopping
(``train.patience``: a stage ends that many epochs after its best validated one, which it keeps), and a batch and
learning rate of their own for the stages that train a grader alone (``train.grading_batch_size``, ``train.grading_learning_rate``)."""

import math

import pytest
import torch

from dummy_method import DummyMethod, dummy_datasets, tiny_cfg

from deepmt.config import get_config
from deepmt.engine import trainer as T
from deepmt.engine.trainer import stage_train_set, train
from deepmt.models.methods import build_method
from deepmt.utils import seed_everything


class ShapeSpy(DummyMethod):
    """Records the HR / LR sizes of every training batch, per stage."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = {}

    def training_loss(self, batch, stage):
        self.seen.setdefault(stage, set()).add((tuple(batch["hr"].shape[-2:]), tuple(batch["lr"].shape[-2:])))
        return super().training_loss(batch, stage)


def test_stages_that_do_not_grade_train_on_aligned_crops_and_grading_stages_on_whole_images(tmp_path):
    seed_everything(0)
    m = ShapeSpy()
    train(m, tiny_cfg(**{"data.nongrading_crop_size": 8}), dummy_datasets(), tmp_path)
    assert m.seen["isr_seg"] == {((8, 8), (2, 2))}  # crops of 8 HR px, the aligned 2 LR px
    assert m.seen["grade"] == {((16, 16), (4, 4))}  # the grading stage: whole 16-px images


def test_without_the_setting_every_stage_sees_whole_images(tmp_path):
    seed_everything(0)
    m = ShapeSpy()
    train(m, tiny_cfg(), dummy_datasets(), tmp_path)
    assert m.seen["isr_seg"] == m.seen["grade"] == {((16, 16), (4, 4))}


def test_crop_keeps_masks_on_their_lesions():
    """A cropped sample is the same region of HR, LR, masks and FOV (the crop is aligned to the LR grid)."""
    data = dummy_datasets()["val"]  # not augmented: the same sample on every read
    cfg = tiny_cfg(**{"data.nongrading_crop_size": 8})
    seed_everything(3)
    cropped = stage_train_set(DummyMethod(), "isr_seg", data, cfg)
    s = cropped[0]
    full = data[0]
    hr = full["hr"]
    # find the crop inside the full image: exactly one aligned position matches HR, and masks match there
    hits = [(t, l) for t in range(0, 9, 4) for l in range(0, 9, 4) if torch.equal(hr[:, t:t + 8, l:l + 8], s["hr"])]
    assert len(hits) == 1
    t, l = hits[0]
    assert torch.equal(full["masks"][:, t:t + 8, l:l + 8], s["masks"])
    assert torch.equal(full["lr"][:, t // 4:t // 4 + 2, l // 4:l // 4 + 2], s["lr"])


@pytest.mark.parametrize("name, expected", [
    ("deepmt_dr", {"stage1a": False, "stage1b": True, "stage2": True}),
    ("two_stage", {"isr": False, "grade": True}),
    ("unet_hr", {"single": False}),
    ("isr", {"single": False}),
    ("foo_mt", {"single": True}),
    ("grader_bicubic", {"single": True}),
])
def test_which_stages_grade(name, expected):
    m = build_method(name, get_config("smoke"))
    assert {s: m.stage_grades(s) for s in m.stages} == expected


@pytest.mark.parametrize("name, expected", [
    ("deepmt_dr", {"stage1a": False, "stage1b": True, "stage2": False}),
    ("deepmt_dr_noisr", {"stage1a": False, "stage1b": True, "stage2": False}),
    ("two_stage", {"isr": False, "grade": True}),
    ("grader_hr", {"single": True}),
    ("grader_bicubic", {"single": True}),
    ("foo_mt", {"single": False}),
    ("unet_hr", {"single": False}),
    ("isr", {"single": False}),
])
def test_which_stages_train_a_grader_alone(name, expected):
    m = build_method(name, get_config("smoke"))
    assert {s: m.stage_trains_grader_only(s) for s in m.stages} == expected


def test_grader_batch_and_lr_reach_only_the_stages_that_train_a_grader_alone():
    cfg = get_config("quick", {"train.grading_batch_size": 32, "train.grading_learning_rate": 4e-3})
    m = build_method("deepmt_dr", cfg)
    t = cfg.train
    assert [m.stage_batch_size(s, t) for s in m.stages] == [t.batch_size, 32, t.batch_size]
    assert [m.stage_lr(s, t) for s in m.stages] == pytest.approx([t.lr, 4e-3, t.lr * t.lr_stage2_factor])
    unset = get_config("quick", {"train.grading_batch_size": None, "train.grading_learning_rate": None}).train
    # not set: every stage at train.batch_size and train.lr
    assert [m.stage_batch_size(s, unset) for s in m.stages] == [unset.batch_size] * 3
    assert m.stage_lr("stage1b", unset) == unset.lr
    g = build_method("grader_hr", cfg)
    assert (g.stage_batch_size("single", t), g.stage_lr("single", t)) == (32, pytest.approx(4e-3))
    f = build_method("foo_mt", cfg)
    assert (f.stage_batch_size("single", t), f.stage_lr("single", t)) == (t.batch_size, t.lr)
    # with few labels (60 graded images at 0.1) a batch of 32 would be one step per epoch: the grader keeps batch 8
    few = build_method("deepmt_dr", cfg.replace({"data.label_fraction": 0.1}))
    assert [few.stage_batch_size(s, t) for s in few.stages] == [t.batch_size] * 3
    assert few.stage_lr("stage1b", t) == t.lr


class BatchSpy(DummyMethod):
    """Records the batch sizes and learning rates of every training step, per stage."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.batches = {}

    def training_loss(self, batch, stage):
        self.batches.setdefault(stage, set()).add(int(batch["hr"].shape[0]))
        return super().training_loss(batch, stage)


def test_the_trainer_gives_the_grading_stage_its_own_batch_and_learning_rate(tmp_path):
    lrs = {}
    for grading_lr in (None, 3e-2):
        seed_everything(0)
        m = BatchSpy()
        cfg = tiny_cfg(**{"train.grading_batch_size": 8, "train.grading_learning_rate": grading_lr})
        h = train(m, cfg, dummy_datasets(), tmp_path / str(grading_lr)).history
        assert m.batches == {"isr_seg": {4}, "grade": {8}}  # 16 training images: batches of 4, and of 8 for the grader
        lrs[grading_lr] = {s: h.loc[h["stage"] == s, "lr"].to_numpy() for s in ("isr_seg", "grade")}
    # the same OneCycle schedule, peaking at train.grading_learning_rate (3e-2) instead of train.lr (1e-2) in the grade stage only
    assert lrs[3e-2]["isr_seg"] == pytest.approx(lrs[None]["isr_seg"])
    assert lrs[3e-2]["grade"] == pytest.approx(3 * lrs[None]["grade"])


def test_grader_batch_and_lr_unset_leave_keys_unchanged():
    from deepmt.config import comparable_config

    base = get_config("quick", {"train.grading_batch_size": None, "train.grading_learning_rate": None})
    hashed = comparable_config(base.to_dict())["train"]  # unset, they are not hashed: every earlier key stays
    assert "grading_batch_size" not in hashed and "grading_learning_rate" not in hashed
    assert base.replace({"train.grading_batch_size": 32}).key() != base.key()
    assert base.replace({"train.grading_learning_rate": 4e-3}).key() != base.key()


def test_the_plan_counts_a_grading_stage_at_its_own_batch():
    from deepmt.bench.plan import stage_plan

    cfg = get_config("quick", {"train.grading_batch_size": 32, "train.batch_size": 8})
    with torch.device("meta"):
        m = build_method("deepmt_dr", cfg)
    work = {w.stage: w for w in stage_plan(m, cfg)}
    assert (work["stage1a"].batch_size, work["stage1b"].batch_size, work["stage2"].batch_size) == (8, 32, 8)
    assert work["stage1b"].images_per_epoch % 32 == 0 and work["stage2"].images_per_epoch % 8 == 0


def test_deepmt_dr_stage1a_crops_and_stage1b_does_not(tmp_path):
    cfg = get_config("smoke", {"data.nongrading_crop_size": 32})
    m = build_method("deepmt_dr", cfg)
    data = dummy_datasets(hr=64)["train"]
    a = stage_train_set(m, "stage1a", data, cfg)[0]
    b = stage_train_set(m, "stage1b", data, cfg)[0]
    assert a["hr"].shape[-1] == 32 and a["lr"].shape[-1] == 8
    assert b["hr"].shape[-1] == 64


def test_val_every_validates_every_kth_and_the_last_epoch_and_selects_only_validated_epochs(tmp_path, monkeypatch):
    calls = []
    real = T.evaluate

    def counting(method, dataset, cfg, **kw):
        calls.append(kw.get("desc"))
        return real(method, dataset, cfg, **kw)

    monkeypatch.setattr(T, "evaluate", counting)
    seed_everything(0)
    res = train(DummyMethod(), tiny_cfg(**{"train.epochs_stage1a": 5, "train.epochs_stage1b": 3, "train.val_every": 2}),
                dummy_datasets(), tmp_path)
    h = res.history
    validated = h["val_psnr"].notna().tolist()
    # stage isr_seg: epochs 2, 4 and the last (5); stage grade: epoch 2 and the last (3)
    assert validated == [False, True, False, True, True, False, True, True]
    assert sum(c.startswith("val isr_seg") or c.startswith("val grade") for c in calls) == 5
    for stage in ("isr_seg", "grade"):
        kept = res.best[stage]["epoch"]
        row = h[(h["stage"] == stage) & (h["epoch"] == kept)].iloc[0]
        assert not math.isnan(row["selection_score"])
    assert not h.loc[~h["val_psnr"].notna(), "best"].any()


def test_val_every_1_and_no_crop_leave_keys_unchanged():
    from deepmt.config import comparable_config

    base = get_config("quick", {"train.val_every": 1, "data.nongrading_crop_size": None, "train.patience": 0})
    hashed = comparable_config(base.to_dict())  # at their neutral values they are not hashed: earlier keys stay
    assert "val_every" not in hashed["train"] and "nongrading_crop_size" not in hashed["data"]
    assert base.replace({"train.val_every": 2}).key() != base.key()
    assert base.replace({"data.nongrading_crop_size": 48}).key() != base.key()
    assert base.replace({"train.patience": 0}).key() == base.key() != base.replace({"train.patience": 5}).key()


class ScriptedScores(DummyMethod):
    """Validation scores of the grade stage follow a script (epoch e gets script[e-1]); the isr_seg stage's as usual."""

    def __init__(self, script, **kw):
        super().__init__(**kw)
        self.script, self.scored = list(script), 0

    def selection_score(self, stage, val, start_val=None):
        if stage != "grade":
            return super().selection_score(stage, val, start_val)
        self.scored += 1
        return self.script[self.scored - 1]


def test_early_stopping_stops_at_the_patience_and_keeps_the_best_epoch(tmp_path, capsys):
    script = [0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.95, 0.99]  # best at epoch 2, never beaten within 3 epochs
    seed_everything(0)
    m = ScriptedScores(script)
    res = train(m, tiny_cfg(**{"train.epochs_stage1b": 8, "train.patience": 3}), dummy_datasets(), tmp_path)
    g = res.history[res.history["stage"] == "grade"]
    assert list(g["epoch"]) == [1, 2, 3, 4, 5]  # epochs 3, 4, 5 did not beat epoch 2: stop before epoch 6
    assert res.best["grade"]["epoch"] == 2 and res.best["grade"]["stopped_after"] == 5
    assert "stopped after epoch 5 of 8" in capsys.readouterr().out
    seed_everything(0)
    full = train(ScriptedScores(script), tiny_cfg(**{"train.epochs_stage1b": 8}), dummy_datasets(), tmp_path / "off")
    assert full.best["grade"]["epoch"] == 8 and len(full.history[full.history["stage"] == "grade"]) == 8


def test_early_stopping_counts_epochs_between_validations(tmp_path):
    """With val_every=2 the check runs after validated epochs only: best at 2, no gain at 4, stop after 4 (patience 2)."""
    seed_everything(0)
    res = train(ScriptedScores([0.5, 0.4, 0.9, 0.9]),
                tiny_cfg(**{"train.epochs_stage1b": 8, "train.patience": 2, "train.val_every": 2}), dummy_datasets(), tmp_path)
    g = res.history[res.history["stage"] == "grade"]
    assert list(g["epoch"]) == [1, 2, 3, 4] and res.best["grade"]["epoch"] == 2


def test_an_interrupted_stage_resumes_to_the_same_early_stop(tmp_path):
    """Killed in the epoch after the stop would have happened... before it: the resumed run stops where the
    uninterrupted one did, with the same history (the check reads the best epoch restored from last.pt)."""
    from deepmt.errors import TrainingError

    script = [0.1, 0.5, 0.4, 0.45, 0.3, 0.9]
    cfg = tiny_cfg(**{"train.epochs_stage1b": 6, "train.patience": 2})
    seed_everything(0)
    ref = train(ScriptedScores(script), cfg, dummy_datasets(), tmp_path / "ref")
    # 2 isr_seg epochs + 3 grade epochs of 4 steps each, then a NaN in the 4th grade epoch
    seed_everything(0)
    with pytest.raises(TrainingError):
        train(ScriptedScores(script, nan_at_call=4 * 5 + 2, nan_term="ce"), cfg, dummy_datasets(), tmp_path / "cut")
    m = ScriptedScores(script[3:])  # the scores of epochs 1-3 were seen before the cut
    res = train(m, cfg, dummy_datasets(), tmp_path / "cut", resume=True)
    assert list(res.history["epoch"]) == list(ref.history["epoch"]) == [1, 2, 1, 2, 3, 4]
    assert res.best["grade"] == ref.best["grade"]


# --------------------------------------------------------------------------- a minimum of validation points per stage
def test_a_short_stage_validates_more_often_under_val_min_points():
    from deepmt.config import TrainConfig

    t = TrainConfig(val_every=3, val_min_points=6)
    # 6 epochs: every epoch; 15: every 2nd (7 points and the last); 36 and 72: every 3rd, as val_every says
    assert [t.validation_interval(n) for n in (3, 6, 15, 36, 72)] == [1, 1, 2, 3, 3]
    assert [TrainConfig(val_every=3).validation_interval(n) for n in (3, 6, 15)] == [3, 3, 3]  # 0 = no minimum
    assert TrainConfig(val_every=1, val_min_points=6).validation_interval(72) == 1  # never less often than val_every


def test_the_trainer_and_the_plan_validate_a_short_stage_at_its_own_interval(tmp_path):
    from deepmt.bench.plan import stage_plan

    seed_everything(0)
    over = {"train.epochs_stage1a": 5, "train.epochs_stage1b": 3, "train.val_every": 3}
    base = train(DummyMethod(), tiny_cfg(**over), dummy_datasets(), tmp_path / "base").history
    seed_everything(0)
    more = train(DummyMethod(), tiny_cfg(**over, **{"train.val_min_points": 3}), dummy_datasets(), tmp_path / "more").history
    # val_every 3 alone: epochs 3 and 5 of the 5-epoch stage, epoch 3 of the 3-epoch one; with at least 3 points
    # (5 // 3 = 1 and 3 // 3 = 1): every epoch of both
    assert base["val_psnr"].notna().tolist() == [False, False, True, False, True, False, False, True]
    assert more["val_psnr"].notna().all()
    cfg = get_config("quick", {"train.val_every": 3, "train.val_min_points": 6, "train.epochs_stage2": 6})
    with torch.device("meta"):
        m = build_method("deepmt_dr", cfg)
    work = {w.stage: w for w in stage_plan(m, cfg)}
    assert work["stage2"].val_passes == 6 and work["stage1b"].val_passes == cfg.train.epochs_stage1b // 3


def test_val_min_points_0_leaves_keys_unchanged():
    from deepmt.config import comparable_config

    base = get_config("quick", {"train.val_min_points": 0})
    assert "val_min_points" not in comparable_config(base.to_dict())["train"]
    assert base.replace({"train.val_min_points": 6}).key() != base.key()


# --------------------------------------------------------------------------- selection per module
class TwoMetrics(DummyMethod):
    """The isr_seg stage is selected on AUPR, its ISR on PSNR (as DeepMT-DR's stage 1a)."""

    def selection_metric(self, stage):
        return "aupr" if stage == "isr_seg" else "qwk"

    def selection_groups(self, stage):
        return {"isr": (("isr.",), "psnr")} if stage == "isr_seg" else {}


def _scripted_validation(monkeypatch, psnr, aupr, start=0):
    """Stage isr_seg's validation reads the scripts (from index ``start``) and snapshots the weights it saw."""
    real, seen = T.evaluate, []

    def fake(method, ds, cfg, progress=True, desc=""):
        if desc != "val isr_seg":
            return real(method, ds, cfg, progress=progress, desc=desc)
        i = start + len(seen)
        seen.append({k: v.detach().clone() for k, v in method.state_dict().items()})
        return {"psnr": psnr[i], "aupr": aupr[i], "qwk": 0.0}, None

    monkeypatch.setattr(T, "evaluate", fake)
    return seen


PSNR = [30.0, 32.0, 31.0, 33.0, 32.5]  # the ISR is best at epoch 4
AUPR = [0.2, 0.5, 0.4, 0.3, 0.1]  # the segmentation (the stage's metric) at epoch 2


def _same(state, ref, prefix):
    keys = [k for k in state if k.startswith(prefix)]
    return bool(keys) and all(torch.equal(state[k], ref[k]) for k in keys)


@pytest.mark.parametrize("mode", ["per_module", "joint"])
def test_stage_1a_keeps_each_module_at_its_own_best_epoch(tmp_path, monkeypatch, mode):
    seen = _scripted_validation(monkeypatch, PSNR, AUPR)
    seed_everything(0)
    m = TwoMetrics()
    cfg = tiny_cfg(**{"train.epochs_stage1a": 5, "train.epochs_stage1b": 1, "train.module_selection": mode})
    res = train(m, cfg, dummy_datasets(), tmp_path)
    assert len(seen) == 5 and res.best["isr_seg"]["epoch"] == 2
    final = torch.load(res.checkpoint, weights_only=False)["model"]
    assert _same(final, seen[1], "seg.")  # the segmentation of the AUPR-best epoch
    if mode == "per_module":
        assert _same(final, seen[3], "isr.") and not _same(final, seen[1], "isr.")  # the ISR of the PSNR-best epoch
        assert res.best["isr_seg"]["groups"] == {"isr": {"score": 33.0, "epoch": 4, "metric": "psnr"}}
        h = res.history[res.history["stage"] == "isr_seg"]
        assert h["best_isr"].tolist() == [True, True, False, True, False] and h["best"].tolist() == [True, True, False, False, False]
    else:  # the whole stage at the AUPR-best epoch: the ISR rolled back with it
        assert _same(final, seen[1], "isr.") and "groups" not in res.best["isr_seg"]


def test_selection_per_module_resumes_exactly(tmp_path, monkeypatch):
    """Cut in the 4th epoch (the ISR's best is still to come) and resumed: the same kept weights and records."""
    from deepmt.errors import TrainingError

    cfg = tiny_cfg(**{"train.epochs_stage1a": 5, "train.epochs_stage1b": 1})
    _scripted_validation(monkeypatch, PSNR, AUPR)
    seed_everything(0)
    ref = train(TwoMetrics(), cfg, dummy_datasets(), tmp_path / "ref")
    _scripted_validation(monkeypatch, PSNR, AUPR)
    seed_everything(0)
    with pytest.raises(TrainingError):  # 4 steps per epoch: a NaN in the 2nd step of epoch 4
        train(TwoMetrics(nan_at_call=4 * 3 + 2, nan_term="pixel"), cfg, dummy_datasets(), tmp_path / "cut")
    _scripted_validation(monkeypatch, PSNR, AUPR, start=3)
    res = train(TwoMetrics(), cfg, dummy_datasets(), tmp_path / "cut", resume=True)
    assert res.best == ref.best and res.best["isr_seg"]["groups"]["isr"]["epoch"] == 4
    a = torch.load(res.checkpoint, weights_only=False)["model"]
    b = torch.load(ref.checkpoint, weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deepmt_dr_names_its_isr_group_in_stage_1a_only():
    cfg = get_config("smoke")
    m = build_method("deepmt_dr", cfg)
    assert m.selection_groups("stage1a") == {"isr": (("isr.",), "psnr")}
    assert m.selection_groups("stage1b") == m.selection_groups("stage2") == {}
    assert build_method("deepmt_dr", cfg.replace({"train.module_selection": "joint"})).selection_groups("stage1a") == {}
    assert build_method("deepmt_dr_noisr", cfg).selection_groups("stage1a") == {}  # no ISR: one module, one metric
    assert all(k.startswith("isr.") for k in m.state_dict() if "isr" in k.split(".")[0])
