"""Loss terms against hand-computed values on tiny tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from deepmt.config import get_config
from deepmt.losses import (
    class_weights,
    cut,
    dice_loss,
    feedback_terms,
    focal_loss,
    isr_loss,
    lesion_pairs,
    seg_aware_loss,
    segmentation_loss,
    tv_loss,
    unsupervised_seg_loss,
    weighted_cross_entropy,
)
from deepmt.losses.segmentation import dice_focal_per_channel, dice_per_channel, focal_per_channel, masked_mean


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def test_dice_hand_computed():
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    present = torch.tensor([[True]])
    # inter = 0.5, sum p = 2, sum g = 1, smooth 1: 1 - (1 + 1) / (3 + 1) = 0.5
    assert dice_loss(logits, target, present).item() == pytest.approx(0.5)


def test_focal_hand_computed():
    x = torch.tensor([[[[2.0, -1.0]]]])
    t = torch.tensor([[[[1.0, 0.0]]]])
    a, g = 0.25, 2.0
    p1, p2 = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))
    pos = a * (1 - p1) ** g * -math.log(p1)
    neg = (1 - a) * p2**g * -math.log(1 - p2)
    assert focal_loss(x, t, torch.tensor([[True]]), a, g).item() == pytest.approx((pos + neg) / 2, rel=1e-5)


def test_masked_channels_are_excluded_not_zeroed():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8)
    masks = (torch.rand(2, 4, 8, 8) > 0.7).float()
    present = torch.tensor([[True, False, True, True], [False, False, False, False]])
    full = dice_loss(logits, masks, present)
    # the same as averaging only over the 3 present (image, channel) pairs
    ref = torch.stack([dice_loss(logits[:1, c : c + 1], masks[:1, c : c + 1], torch.tensor([[True]])) for c in (0, 2, 3)]).mean()
    assert full.item() == pytest.approx(ref.item(), rel=1e-6)
    garbage = logits.clone()
    garbage[0, 1] = 50.0
    garbage[1] = -50.0
    assert dice_loss(garbage, masks, present).item() == pytest.approx(full.item(), rel=1e-6)
    # nothing annotated: zero loss that still backpropagates
    lg = logits.clone().requires_grad_(True)
    z = focal_loss(lg, masks, torch.zeros(2, 4, dtype=torch.bool))
    z.backward()
    assert z.item() == 0.0 and lg.grad is not None


def test_tv_and_pixel_hand_computed():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical diffs 2, 3 -> mean 6.5; horizontal 1, 2 -> mean 2.5
    assert tv_loss(x).item() == pytest.approx(9.0)
    cfg = get_config("smoke").loss
    hr = torch.zeros_like(x)
    terms = isr_loss(x, hr, cfg)
    assert terms["isr_pixel"].item() == pytest.approx((0 + 1 + 4 + 16) / 4)
    assert terms["isr_tv"].item() == pytest.approx(cfg.tv * 9.0)
    l1 = isr_loss(x, hr, get_config("smoke", {"loss.isr_pixel": "l1", "loss.tv": 0.0}).loss)
    assert set(l1) == {"isr_pixel"} and l1["isr_pixel"].item() == pytest.approx(7 / 4)


def test_weighted_ce_matches_torch_and_ignores_ungraded():
    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    grade = torch.tensor([0, 1, 4, -1, 2, 1])
    w = torch.tensor([1.0, 10.0, 1.44, 25.0, 8.0])
    ref = F.cross_entropy(logits, grade, weight=w, ignore_index=-1)
    assert weighted_cross_entropy(logits, grade, w).item() == pytest.approx(ref.item(), rel=1e-6)
    assert weighted_cross_entropy(logits, grade).item() == pytest.approx(F.cross_entropy(logits, grade, ignore_index=-1).item(), rel=1e-6)
    lg = logits.clone().requires_grad_(True)
    z = weighted_cross_entropy(lg, torch.full((6,), -1), w)
    z.backward()
    assert z.item() == 0.0 and torch.isfinite(lg.grad).all()


def test_class_weights():
    w = class_weights("auto", [10, 10, 20, 0, 5])
    inv = torch.tensor([0.1, 0.1, 0.05, 0.2])
    expected = inv / inv.mean()
    assert torch.allclose(w[[0, 1, 2, 4]], expected) and w[3] == 1.0
    assert w[[0, 1, 2, 4]].mean().item() == pytest.approx(1.0)
    assert class_weights("none", [1, 2, 3, 4, 5]) is None
    assert class_weights("auto", None) is None
    assert torch.equal(class_weights((1, 10, 1.44, 25, 8)), torch.tensor([1, 10, 1.44, 25, 8]))
    with pytest.raises(ValueError):
        class_weights("bogus")
    with pytest.raises(ValueError):
        class_weights((1, 2, 3))


def test_segmentation_loss_terms_and_zero_weights():
    torch.manual_seed(0)
    logits, sides = torch.randn(2, 4, 8, 8), [torch.randn(2, 4, 8, 8) for _ in range(2)]
    masks = (torch.rand(2, 4, 8, 8) > 0.8).float()
    present = torch.ones(2, 4, dtype=torch.bool)
    L = get_config("smoke").loss
    t = segmentation_loss(logits, masks, present, L, sides)
    assert set(t) == {"seg_dice", "seg_focal", "seg_deep"}
    side_ref = torch.stack([dice_loss(s, masks, present) + focal_loss(s, masks, present) for s in sides]).mean()
    assert t["seg_deep"].item() == pytest.approx(side_ref.item(), rel=1e-6)
    t0 = segmentation_loss(logits, masks, present, get_config("smoke", {"loss.seg_focal": 0.0, "loss.seg_deep": 0.0}).loss, sides)
    assert set(t0) == {"seg_dice"}


def test_dice_on_empty_masks_include_or_skip():
    """An annotated empty mask: "include" averages its Dice (near 1 for any non-zero map) with the rest, "skip" leaves
    it to the focal loss; un-annotated pairs stay out either way; focal is the same under both."""
    torch.manual_seed(0)
    logits, sides = torch.randn(2, 3, 8, 8), [torch.randn(2, 3, 8, 8)]
    masks = torch.zeros(2, 3, 8, 8)
    masks[0, 0, 2:4, 2:4] = 1  # image 0: lesion 0 present; lesion 1 annotated and empty; lesion 2 not annotated
    masks[1, 1, 5, 5] = 1  # image 1: lesion 1 present; lesions 0 and 2 annotated and empty
    present = torch.tensor([[True, True, False], [True, True, True]])
    assert lesion_pairs(masks, present).tolist() == [[True, False, False], [False, True, False]]
    incl = segmentation_loss(logits, masks, present, get_config("smoke", {"loss.seg_dice_empty": "include"}).loss, sides)
    skip = segmentation_loss(logits, masks, present, get_config("smoke", {"loss.seg_dice_empty": "skip"}).loss, sides)
    lesion = torch.tensor([[True, False, False], [False, True, False]])
    assert skip["seg_dice"].item() == pytest.approx(dice_loss(logits, masks, lesion).item(), rel=1e-6)
    assert incl["seg_dice"].item() == pytest.approx(dice_loss(logits, masks, present).item(), rel=1e-6)
    assert skip["seg_focal"].item() == pytest.approx(incl["seg_focal"].item(), rel=1e-6)
    side_ref = dice_loss(sides[0], masks, lesion) + focal_loss(sides[0], masks, present)
    assert skip["seg_deep"].item() == pytest.approx(side_ref.item(), rel=1e-6)
    # an all-zero map on the empty pairs costs nothing under either; a non-zero one costs only under "include"
    quiet = logits.clone()
    quiet[0, 1] = quiet[1, 0] = quiet[1, 2] = -30.0
    loud = quiet.clone()
    loud[0, 1] = loud[1, 0] = loud[1, 2] = 3.0
    L_skip = get_config("smoke", {"loss.seg_dice_empty": "skip", "loss.seg_focal": 0.0, "loss.seg_deep": 0.0}).loss
    L_incl = get_config("smoke", {"loss.seg_dice_empty": "include", "loss.seg_focal": 0.0, "loss.seg_deep": 0.0}).loss
    assert segmentation_loss(loud, masks, present, L_skip)["seg_dice"].item() == pytest.approx(
        segmentation_loss(quiet, masks, present, L_skip)["seg_dice"].item(), rel=1e-6)
    assert (segmentation_loss(loud, masks, present, L_incl)["seg_dice"]
            - segmentation_loss(quiet, masks, present, L_incl)["seg_dice"]).item() > 0.5
    # no lesion pixel anywhere: Dice is 0 under "skip" (still in the graph), focal still trains
    lg = logits.clone().requires_grad_(True)
    t = segmentation_loss(lg, torch.zeros_like(masks), present, get_config("smoke", {"loss.seg_dice_empty": "skip"}).loss)
    assert t["seg_dice"].item() == 0.0 and t["seg_focal"].item() > 0
    sum(t.values()).backward()
    assert lg.grad is not None and lg.grad.abs().sum() > 0


# --------------------------------------------------------------------------- fused Dice + focal against the library
def _maps(shape, soft, layout, seed=0):
    """Random logits (fp32, fp32 channels-last or bf16 channels-last, as the engine trains) and binary or soft
    targets of the same layout."""
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(shape, generator=g)
    target = torch.rand(shape, generator=g) if soft else (torch.rand(shape, generator=g) > 0.8).float()
    if layout != "contiguous":
        logits, target = (t.contiguous(memory_format=torch.channels_last) for t in (logits, target))
    if layout == "bf16":
        logits = logits.bfloat16().contiguous(memory_format=torch.channels_last)
    return logits, target


def _grads(fn, logits, up_dice, up_focal, fp32_leaf=False):
    """(dice, focal, d/dlogits of sum(up_dice * dice + up_focal * focal)) for ``fn(logits) -> (dice, focal)``.
    ``fp32_leaf``: differentiate at the fp32 copy of bf16 logits and round that gradient to bf16 once, as the fused
    function does (the library's two branches each round their own gradient to bf16 and then add the two in bf16)."""
    x = logits.detach().clone()
    leaf = (x.float() if fp32_leaf else x).requires_grad_(True)
    dice, focal = fn(leaf)
    ((dice * up_dice).sum() + (focal * up_focal).sum()).backward()
    return dice.detach(), focal.detach(), leaf.grad.to(logits.dtype)


def _assert_grad_close(new, ref):
    """Gradients to within fp32 rounding of the largest entry and, for bf16 logits, one bf16 step."""
    assert new.dtype == ref.dtype and new.shape == ref.shape and torch.isfinite(new).all()
    rtol = 2**-7 if new.dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(new.float(), ref.float(), rtol=rtol, atol=1e-6 * ref.float().abs().max().item())


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "bf16"])
@pytest.mark.parametrize("gamma", [2.0, 0.0, 1.5, 0.5])
@pytest.mark.parametrize("alpha", [0.25, -1.0])
@pytest.mark.parametrize("soft", [False, True])
def test_fused_dice_focal_matches_reference(soft, alpha, gamma, layout):
    """dice_focal_per_channel = dice_per_channel and torchvision's sigmoid focal loss, value and gradient."""
    logits, target = _maps((2, 3, 6, 10), soft, layout)  # H != W: the channels-last helpers must not mix them up
    up_dice, up_focal = torch.randn(2, 3), torch.randn(2, 3)
    d, f, g = _grads(lambda x: dice_focal_per_channel(x, target, alpha, gamma, 1.0), logits, up_dice, up_focal)
    ref = _grads(lambda x: (dice_per_channel(x, target), focal_per_channel(x, target, alpha, gamma)),
                 logits, up_dice, up_focal, fp32_leaf=True)
    assert d.dtype == f.dtype == torch.float32 and d.shape == f.shape == (2, 3)
    torch.testing.assert_close(d, ref[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f, ref[1], rtol=1e-6, atol=1e-6)
    _assert_grad_close(g, ref[2])


@pytest.mark.parametrize("gamma", [2.0, 1.5])
def test_fused_dice_focal_saturated_logits(gamma):
    """Logits far past where the sigmoid rounds to 0 or 1 (and past exp's fp32 range): values and gradients stay
    finite and equal the library's."""
    logits, target = _maps((2, 4, 8, 8), False, "channels_last", seed=1)
    logits = logits * 40  # |x| up to ~400
    up = torch.rand(2, 4), torch.rand(2, 4)
    d, f, g = _grads(lambda x: dice_focal_per_channel(x, target, 0.25, gamma), logits, *up)
    ref = _grads(lambda x: (dice_per_channel(x, target), focal_per_channel(x, target, 0.25, gamma)), logits, *up)
    assert torch.isfinite(f).all() and torch.isfinite(g).all()
    torch.testing.assert_close(d, ref[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f, ref[1], rtol=1e-5, atol=1e-5)
    _assert_grad_close(g, ref[2])


def test_fused_dice_focal_under_autocast():
    """The engine computes its losses inside bf16 autocast: the fused function still works in fp32 there."""
    logits, target = _maps((2, 4, 16, 16), True, "bf16")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d, f = dice_focal_per_channel(logits, target)
    assert d.dtype == f.dtype == torch.float32
    torch.testing.assert_close(d, dice_per_channel(logits, target), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f, focal_per_channel(logits, target), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("alpha, gamma, layout", [(0.25, 2.0, "contiguous"), (0.25, 2.0, "channels_last"),
                                                  (-1.0, 1.5, "contiguous"), (0.7, 0.0, "channels_last"),
                                                  (1.0, 1.0, "contiguous"), (0.0, 3.0, "channels_last")])
def test_fused_dice_focal_gradcheck(alpha, gamma, layout):
    """The hand-written backward against finite differences, in float64."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g)
    t = torch.rand(2, 3, 4, 5, dtype=torch.float64, generator=g)
    t[0, 0] = (t[0, 0] > 0.5).double()  # binary and soft targets
    if layout == "channels_last":
        x, t = x.contiguous(memory_format=torch.channels_last), t.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    for wanted in [(True, True), (False, True), (True, False)]:
        def terms(x):
            return tuple(v for v in dice_focal_per_channel(x, t, alpha, gamma, 1.0, *wanted) if v is not None)
        assert torch.autograd.gradcheck(terms, (x,))


def test_fused_dice_focal_one_term_or_one_gradient():
    """A term not asked for is None; a term asked for but not used in the loss sends no gradient; the target
    may be bool; invalid alpha / gamma are refused as torchvision refuses them."""
    logits, target = _maps((2, 3, 5, 5), False, "channels_last")
    d, f = dice_focal_per_channel(logits, target, want_focal=False)
    assert f is None and torch.allclose(d, dice_per_channel(logits, target))
    d, f = dice_focal_per_channel(logits, target.bool(), want_dice=False)
    assert d is None and torch.allclose(f, focal_per_channel(logits, target))
    assert dice_focal_per_channel(logits, target, want_dice=False, want_focal=False) == (None, None)
    for only in (0, 1):  # only the Dice / only the focal output enters the loss
        x, xr = (logits.detach().clone().requires_grad_(True) for _ in range(2))
        dice_focal_per_channel(x, target)[only].sum().backward()
        (dice_per_channel(xr, target) if only == 0 else focal_per_channel(xr, target)).sum().backward()
        _assert_grad_close(x.grad, xr.grad)
    with pytest.raises(ValueError):
        dice_focal_per_channel(logits, target, alpha=1.5)
    with pytest.raises(ValueError):
        dice_focal_per_channel(logits, target, gamma=-1.0)


def _segmentation_loss_reference(logits, masks, present, L, sides=None, prefix="seg"):
    """segmentation_loss as it was written before the fused function, through dice_loss and focal_loss."""
    dice_pairs = lesion_pairs(masks, present) if L.seg_dice_empty == "skip" else present

    def both(lg):
        out = {}
        if L.seg_dice:
            out["dice"] = L.seg_dice * dice_loss(lg, masks, dice_pairs)
        if L.seg_focal:
            out["focal"] = L.seg_focal * focal_loss(lg, masks, present, L.focal_alpha, L.focal_gamma)
        return out

    terms = {f"{prefix}_{k}": v for k, v in both(logits).items()}
    if sides and L.seg_deep and (L.seg_dice or L.seg_focal):
        terms[f"{prefix}_deep"] = L.seg_deep * torch.stack([sum(both(s).values()) for s in sides]).mean()
    return terms


@pytest.mark.parametrize("with_sides", [True, False])
@pytest.mark.parametrize("overrides", [{}, {"loss.seg_dice_empty": "skip"}, {"loss.seg_focal": 0.0},
                                       {"loss.seg_dice": 0.0, "loss.seg_dice_empty": "skip"},
                                       {"loss.seg_dice": 0.5, "loss.seg_focal": 2.0, "loss.seg_deep": 0.3,
                                        "loss.focal_gamma": 0.0},
                                       {"loss.seg_dice": 0.0, "loss.seg_focal": 0.0}])
@pytest.mark.parametrize("layout", ["contiguous", "bf16"])
def test_segmentation_loss_matches_reference(with_sides, overrides, layout):
    """The same terms and the same gradient (final maps and side outputs) as through dice_loss / focal_loss."""
    L = get_config("smoke", overrides).loss
    logits, masks = _maps((3, 4, 8, 6), False, layout, seed=3)
    masks[0, 1] = 0  # an annotated empty mask: in Dice under "include" only
    masks[2] = 0
    present = torch.tensor([[True, True, False, True], [True, True, True, True], [False, False, False, False]])
    sides = [_maps((3, 4, 8, 6), False, layout, seed=4 + i)[0] for i in range(2)] if with_sides else None

    def run(fn, fp32_leaf=False):  # fp32_leaf: as in _grads
        maps = [logits, *(sides or [])]
        leaves = [(t.detach().float() if fp32_leaf else t.detach().clone()).requires_grad_(True) for t in maps]
        terms = fn(leaves[0], masks, present, L, leaves[1:] or None)
        if terms:
            sum(terms.values()).backward()
        return terms, [None if leaf.grad is None else leaf.grad.to(logits.dtype) for leaf in leaves]

    terms, grads = run(segmentation_loss)
    ref_terms, ref_grads = run(_segmentation_loss_reference, fp32_leaf=True)
    assert set(terms) == set(ref_terms)
    for k in terms:
        assert terms[k].shape == () and terms[k].item() == pytest.approx(ref_terms[k].item(), rel=1e-6, abs=1e-7)
    for g, r in zip(grads, ref_grads):
        if r is None:
            assert g is None
        else:
            _assert_grad_close(g, r)


def test_masked_mean_of_fused_terms_ignores_unannotated_garbage():
    """Like test_masked_channels_are_excluded_not_zeroed, through segmentation_loss: an un-annotated channel's
    logits move neither the terms nor the other channels' gradients."""
    logits, masks = _maps((2, 3, 6, 6), False, "channels_last", seed=5)
    present = torch.tensor([[True, False, True], [True, True, False]])
    L = get_config("smoke").loss
    base = segmentation_loss(logits, masks, present, L)
    garbage = logits.clone()
    garbage[0, 1], garbage[1, 2] = 80.0, -80.0
    moved = segmentation_loss(garbage, masks, present, L)
    for k in base:
        assert moved[k].item() == pytest.approx(base[k].item(), rel=1e-6)
    assert masked_mean(torch.ones(2, 3), present).item() == 1.0


def test_seg_aware_and_unsupervised():
    a, b = torch.full((1, 4, 2, 2), 0.5), torch.zeros(1, 4, 2, 2)
    assert seg_aware_loss(a, b).item() == pytest.approx(0.25)
    probs = torch.zeros(2, 4, 4, 4)
    probs[:, 0, :2] = 0.9
    pseudo = torch.zeros(2, 1, 4, 4)
    pseudo[:, :, :2] = 1
    # only image 1 is selected; image 0's content must not matter
    l1 = unsupervised_seg_loss(probs, pseudo, torch.tensor([False, True]))
    probs2 = probs.clone()
    probs2[0] = 0.3
    assert unsupervised_seg_loss(probs2, pseudo, torch.tensor([False, True])).item() == pytest.approx(l1.item())
    dice = 1 - (2 * 0.9 * 8 + 1) / (0.9 * 8 + 8 + 1)
    bce = -(8 * math.log(0.9) + 8 * math.log(1 - 1e-6)) / 16
    assert l1.item() == pytest.approx(dice + bce, rel=1e-4)
    assert unsupervised_seg_loss(probs, pseudo, torch.tensor([False, False])).item() == 0.0


def test_feedback_terms_route_gradient_to_source_only():
    w = torch.tensor(2.0, requires_grad=True)  # "ISR" parameter
    v = torch.tensor(3.0, requires_grad=True)  # "later subnet" parameter
    source = w * torch.ones(3)
    x = cut(source)
    loss = ((v * x) ** 2).sum()  # = 3 * (v w)^2
    out = feedback_terms({"fb": loss}, x, source)
    assert out["fb"].item() == pytest.approx(loss.item())
    out["fb"].backward()
    assert w.grad.item() == pytest.approx(3 * 2 * v.item() ** 2 * w.item())  # d/dw
    assert v.grad is None


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-6), (torch.float64, 1e-14)])
def test_softplus_from_sigmoid_is_torchs_softplus(dtype, atol):
    """The fused loss's softplus, from the sigmoid it already has, is log(1 + e^x) over saturated and moderate
    logits (torch's own fp32 softplus is 5e-7 from it here, and returns x above 20), and is never negative."""
    from deepmt.losses.segmentation import _softplus_from_sigmoid

    x = torch.cat([torch.linspace(-120, 120, 4001), torch.randn(10_000) * 4]).to(dtype)
    got = _softplus_from_sigmoid(x, torch.sigmoid(x))
    x64 = x.double()
    exact = torch.relu(x64) + torch.log1p(torch.exp(-x64.abs()))
    torch.testing.assert_close(got, exact.to(dtype), rtol=0, atol=atol)
    torch.testing.assert_close(got, F.softplus(x), rtol=0, atol=1e-6 if dtype == torch.float32 else 3e-9)
    assert (got >= 0).all()
