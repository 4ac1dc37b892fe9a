"""Every method: builds, runs forward/training_loss on a collated smoke batch, routes gradients as
documented, and can overfit 4 images (loss at least halved in <= 60 Adam steps on CPU)."""

import pytest
import torch

from deepmt.config import get_config
from deepmt.data.degradation import degrade
from deepmt.models import METHODS, MethodOutput, build_method
from deepmt.models.cost import cost_table

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


OUTPUT_OF_TASK = {"isr": ("sr",), "seg": ("lesion_logits", "lesion_probs"), "grade": ("grade_logits",)}


def make_batch(n=4, hr=64, scale=4, seed=0, present=None):
    """A collated Sample-layout batch: smooth images with coloured disk lesions (no synthetic generator)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, hr), torch.linspace(-1, 1, hr), indexing="ij")
    f = torch.rand(n, 1, 1, 1, generator=g) * 3 + 1
    img = 0.5 + 0.2 * torch.sin(3 * f * xx + 6 * torch.rand(n, 1, 1, 1, generator=g)) * torch.cos(2 * f * yy)
    img = img * torch.tensor([1.0, 0.6, 0.4]).view(1, 3, 1, 1)
    masks = torch.zeros(n, 4, hr, hr)
    ar = torch.arange(hr)
    for b in range(n):
        for c in range(4):
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
                cy, cx = torch.randint(8, hr - 8, (2,), generator=g).tolist()
                r = float(torch.rand(1, generator=g)) * 4 + 3
                disk = (((ar[:, None] - cy) ** 2 + (ar[None] - cx) ** 2) < r * r).float()
                masks[b, c] = torch.maximum(masks[b, c], disk)
    colour = torch.tensor([[-0.4, -0.3, -0.2], [-0.3, -0.4, -0.3], [0.4, 0.3, -0.1], [0.3, 0.3, 0.3]])
    for c in range(4):
        img = img + masks[:, c : c + 1] * colour[c].view(1, 3, 1, 1)
    hr_img = img.clamp(0, 1)
    if present is None:
        present = torch.ones(n, 4, dtype=torch.bool)
    masks = masks * present[:, :, None, None]
    return {
        "hr": hr_img,
        "lr": degrade(hr_img, scale),
        "masks": masks,
        "mask_present": present,
        "fov": torch.ones(n, 1, hr, hr),
        "grade": torch.arange(n) % 5,
        "id": [f"img{i}" for i in range(n)],
    }


@pytest.fixture(scope="module")
def cfg():
    return get_config("smoke")


@pytest.mark.parametrize("name", list(METHODS))
def test_method_builds_runs_and_keeps_its_promises(name, cfg):
    torch.manual_seed(0)
    present = torch.tensor([[True, True, False, True], [False] * 4])
    batch = make_batch(2, present=present)
    batch["grade"] = torch.tensor([3, -1])
    m = build_method(name, cfg, class_counts=[5, 1, 2, 0, 3])
    assert m.name == name and m.tasks <= {"isr", "seg", "grade"} and m.tasks
    m.eval()
    with torch.no_grad():
        out = m(batch)
    assert isinstance(out, MethodOutput)
    for task in m.tasks:
        for field in OUTPUT_OF_TASK[task]:
            assert getattr(out, field) is not None, (name, field)
    if out.sr is not None:
        assert out.sr.shape == (2, 3, 64, 64)
    if out.lesion_probs is not None:
        assert out.lesion_logits.shape == out.lesion_probs.shape == (2, 4, 64, 64)
        assert 0 <= out.lesion_probs.min() and out.lesion_probs.max() <= 1
    if out.grade_logits is not None:
        assert out.grade_logits.shape == (2, 5) and not out.grade_logits.requires_grad
    if out.vis_map is not None:
        assert out.vis_map.shape == (2, 1, 64, 64)
    m.train()
    for stage in m.stages:
        params = m.stage_parameters(stage)
        assert params and m.stage_epochs(stage, cfg.train) >= 1 and m.stage_lr(stage, cfg.train) > 0
        assert isinstance(m.selection_metric(stage), str)
        total, terms = m.training_loss(batch, stage)
        assert torch.isfinite(total) and terms
        assert total.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-5)
        total.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        m.zero_grad(set_to_none=True)
    with pytest.raises(ValueError):
        m.training_loss(batch, "nope")


def test_registry_and_stage_settings(cfg):
    with pytest.raises(ValueError, match="unknown method"):
        build_method("nope", cfg)
    m = build_method("deepmt_dr", cfg, class_counts=[10, 10, 20, 0, 5])
    assert m.stages == ("stage1a", "stage1b", "stage2") and m.tasks == {"isr", "seg", "grade"}
    assert m.stage_lr("stage2", cfg.train) == pytest.approx(cfg.train.lr * cfg.train.lr_stage2_factor)
    assert m.stage_epochs("stage1b", cfg.train) == cfg.train.epochs_stage1b
    assert m.class_weight[[0, 1, 2, 4]].mean().item() == pytest.approx(1.0)
    assert build_method("bicubic", cfg).stages == ()
    assert build_method("two_stage", cfg).stages == ("isr", "grade")
    ids = {id(p) for p in m.stage_parameters("stage1b")}
    assert ids == {id(p) for p in list(m.grader.parameters()) + list(m.vis.parameters())}


def test_seg_grade_mt_is_an_alias_of_foo_mt(cfg):
    """``seg_grade_mt`` builds (and names the class of) ``foo_mt``, the registered name, which stays the only one
    in the registry; ``train.epochs_by_method``, read below the registry, asks for the registered name."""
    from deepmt.config import get_config
    from deepmt.errors import SettingError
    from deepmt.models.baselines import FooMT
    from deepmt.models.methods import METHOD_ALIASES, METHOD_CLASSES, canonical_method, method_class

    assert METHOD_ALIASES == {"seg_grade_mt": "foo_mt"} and canonical_method("seg_grade_mt") == "foo_mt"
    assert all(target in METHODS and alias not in METHODS and alias not in METHOD_CLASSES
               for alias, target in METHOD_ALIASES.items())
    assert canonical_method("foo_mt") == "foo_mt" and canonical_method("my_custom") == "my_custom"
    assert method_class("seg_grade_mt") is method_class("foo_mt") is FooMT
    torch.manual_seed(0)
    alias = build_method("seg_grade_mt", cfg, class_counts=[4, 2, 2, 1, 1])
    torch.manual_seed(0)
    real = build_method("foo_mt", cfg, class_counts=[4, 2, 2, 1, 1])
    assert type(alias) is FooMT and alias.name == real.name == "foo_mt" and alias.stages == real.stages
    for (k, a), (_, b) in zip(alias.state_dict().items(), real.state_dict().items()):
        assert torch.equal(a, b), k
    from deepmt.experiment_cache import resolve_config

    with pytest.raises(SettingError, match="'seg_grade_mt' is another name of 'foo_mt'; write 'foo_mt' here"):
        resolve_config("foo_mt", get_config("smoke", {"train.epochs_by_method": {"seg_grade_mt": 2}}))


def _isr_grads(m, scalar):
    params = list(m.isr.parameters())
    grads = torch.autograd.grad(scalar, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


@pytest.mark.parametrize(
    "weights,reaches",
    [
        ({"loss.seg_aware": 1.0, "loss.cls_aware": 0.0, "loss.grading_feedback": 0.0}, True),
        ({"loss.seg_aware": 0.0, "loss.cls_aware": 10.0, "loss.grading_feedback": 0.0}, True),
        ({"loss.seg_aware": 0.0, "loss.cls_aware": 0.0, "loss.grading_feedback": 1.0}, True),
        ({"loss.seg_aware": 0.0, "loss.cls_aware": 0.0, "loss.grading_feedback": 0.0}, False),
    ],
)
def test_task_aware_gradients_reach_isr_only_when_switched_on(weights, reaches):
    torch.manual_seed(0)
    cfg = get_config("smoke", weights)
    m = build_method("deepmt_dr", cfg)
    m.train()
    batch = make_batch(2)
    total, terms = m.training_loss(batch, "stage2")
    pix = terms["isr_pixel"] + terms["isr_tv"]
    extra = _isr_grads(m, total) - _isr_grads(m, pix)
    if reaches:
        assert extra.abs().max() > 0
    else:
        assert extra.abs().max() == 0
        assert not {"seg_aware", "cls_aware", "grading_feedback"} & set(terms)
    # feedback terms never train the later subnets
    fb = [terms[k] for k in ("seg_aware", "cls_aware", "grading_feedback") if k in terms]
    if fb:
        later = list(m.seg.parameters()) + list(m.grader.parameters())
        grads = torch.autograd.grad(sum(fb), later, retain_graph=True, allow_unused=True)
        assert all(g is None or g.abs().max() == 0 for g in grads)


def test_unsupervised_term_only_with_weight(cfg):
    torch.manual_seed(0)
    present = torch.tensor([[True] * 4, [False] * 4])
    batch = make_batch(2, present=present)
    m = build_method("deepmt_dr", cfg.replace({"loss.unsupervised": 0.5}))
    m.train()
    _, terms = m.training_loss(batch, "stage2")
    assert "unsupervised" in terms and torch.isfinite(terms["unsupervised"])
    _, terms = build_method("deepmt_dr", cfg).train().training_loss(batch, "stage2")
    assert "unsupervised" not in terms


@pytest.mark.parametrize("source", ["hr", "sr"])
def test_stage1b_grades_the_configured_input(cfg, source):
    """``loss.stage1b_input``: stage 1b's grader learns from [HR, Seg(HR)] (the paper) or from [SR, Seg(SR)] (the
    ablation); either way the ISR and segmentation subnets get no gradient from it."""
    from deepmt.losses.grading import weighted_cross_entropy
    from deepmt.losses.task_aware import vis_consistency_loss

    torch.manual_seed(0)
    batch = make_batch(2)
    m = build_method("deepmt_dr", cfg.replace({"loss.stage1b_input": source})).eval()  # eval: no dropout noise
    total, terms = m.training_loss(batch, "stage1b")
    with torch.no_grad():
        image = m.super_resolve(batch["lr"]) if source == "sr" else batch["hr"]
        probs = torch.sigmoid(m.seg(image).float())
    out, vis = m.grade_and_visualize(image, probs, batch["grade"], need_vis=True, create_graph=True)
    assert torch.allclose(terms["grade_ce"], weighted_cross_entropy(out.logits, batch["grade"], m.class_weight))
    assert torch.allclose(terms["vis_consistency"], cfg.loss.vis_consistency * vis_consistency_loss(vis, probs))
    other = m.super_resolve(batch["lr"]) if source == "hr" else batch["hr"]
    with torch.no_grad():
        other_logits, _ = m.grade_and_visualize(other, torch.sigmoid(m.seg(other).float()), None, need_vis=False,
                                                create_graph=False)
    assert not torch.allclose(out.logits, other_logits.logits)  # the two inputs are told apart
    frozen = list(m.isr.parameters()) + list(m.seg.parameters())
    assert all(g is None for g in torch.autograd.grad(total, frozen, allow_unused=True))


# ---------------------------------------------------------------------------- overfitting
STEP_LR = {"stage1a": 1e-2, "single": 5e-3, "stage1b": 2e-3, "stage2": 1e-3, "isr": 5e-3, "grade": 2e-3}
SEG_LR = 1e-2
GRADE_LR = 2e-3


def _overfit(name, steps=60):
    # global_skip=False: an ISR with the bicubic skip starts AT the bicubic image, and on 4 images
    # 60 steps cannot halve that already small error; from a grey start the test checks learning.
    cfg = get_config("smoke", {"model.isr.global_skip": False})
    torch.manual_seed(0)
    batch = make_batch(4)
    m = build_method(name, cfg)
    m.train()
    ratios = {}
    for stage in m.stages:
        lr = STEP_LR[stage]
        if stage == "single":
            lr = SEG_LR if "seg" in m.tasks else (GRADE_LR if m.tasks == {"grade"} else lr)
        opt = torch.optim.Adam(m.stage_parameters(stage), lr=lr)
        first = None
        for _ in range(steps):
            total, _ = m.training_loss(batch, stage)
            first = total.item() if first is None else first
            if total.item() <= 0.4 * first:  # clearly halved: stop early (keeps the suite fast)
                break
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
        final = total
        ratios[stage] = final.item() / first
    return ratios


FAST = [n for n in METHODS if n not in ("deepmt_dr", "deepmt_dr_noisr", "bicubic")]


@pytest.mark.parametrize("name", FAST)
def test_baselines_overfit_four_images(name):
    ratios = _overfit(name)
    assert all(r <= 0.5 for r in ratios.values()), ratios


@pytest.mark.parametrize("name", ["deepmt_dr", "deepmt_dr_noisr"])
def test_deepmt_dr_overfits_every_stage(name):
    ratios = _overfit(name)
    assert set(ratios) == {"stage1a", "stage1b", "stage2"}
    assert all(r <= 0.5 for r in ratios.values()), ratios


def test_cost_table_smoke():
    df = cost_table(("smoke",), ("bicubic", "isr", "deepmt_dr"))
    assert list(df["method"]) == ["bicubic", "isr", "deepmt_dr"]
    row = df.set_index("method").loc["deepmt_dr"]
    assert row.params_total == row.params_isr + row.params_seg + row.params_grader + row.params_other
    assert row.params_isr > 0 and row.gflops_train > row.gflops_forward > 0
    assert df.set_index("method").loc["bicubic"].params_total == 0


def test_training_flops_count_each_stage_as_the_trainer_runs_it():
    """A stage's count does not depend on which stage was counted before it (each is set up as the trainer sets
    it up: only its parameters require grad, its frozen BatchNorm layers in eval)."""
    from deepmt.data.sample import random_batch
    from deepmt.models.cost import train_gflops

    cfg = get_config("smoke")
    with torch.device("meta"):
        method = build_method("deepmt_dr", cfg)
    batch = random_batch(cfg.data.hr_size, cfg.data.scale, 2, "meta")
    stages = list(method.stages)
    forward = {s: train_gflops(method, batch, s) for s in stages}
    backward = {s: train_gflops(method, batch, s) for s in reversed(stages)}
    assert forward == backward and forward["stage2"] > forward["stage1b"] > 0
    for stage in stages:  # counted with exactly the stage's parameters trainable
        train_gflops(method, batch, stage)
        trainable = {id(p) for p in method.parameters() if p.requires_grad}
        assert trainable == {id(p) for p in method.stage_parameters(stage)}, stage


def test_stage_freezing_trains_only_the_stage_and_keeps_frozen_batchnorm_statistics():
    """One freezing mechanism (models.base) for the trainer, the benchmark and ``training_loss``: the stage's
    parameters alone require grad; frozen BatchNorm layers and the children a stage does not train stay in eval."""
    from deepmt.models.base import eval_frozen, freeze_for_stage, set_train_mode

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Sequential(torch.nn.BatchNorm2d(4)))
    trained = [net[0], net[2]]
    freeze_for_stage(net, [p for m in trained for p in m.parameters()])
    assert [p.requires_grad for p in net.parameters()] == [True, True, False, False, True, True]
    set_train_mode(net)
    assert (net.training, net[0].training, net[1].training, net[2][0].training) == (True, True, False, True)
    freeze_for_stage(net, list(net.parameters()))
    net.train()
    eval_frozen(net, [net[1]])  # children outside the stage's modules go to eval, whatever their grads
    assert (net[0].training, net[1].training, net[2].training) == (False, True, False)
