"""Network parts: shapes, clear errors, visualization map properties, feature selection."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.resnet import ResNet

from deepmt.config import get_config
from deepmt.models import GradingNet, ISRNet, LesionUNet, VisualizationMap
from deepmt.models.segmentation import background_prob, lesion_union
from deepmt.models.visualization import select_lesion_features


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("size", [(8, 8), (6, 10)])
@pytest.mark.parametrize("upsampler", ["transposed", "pixelshuffle"])
def test_isr_shapes(scale, size, upsampler):
    net = ISRNet(scale, channels=4, n_resblocks=1, upsampler=upsampler)
    sr = net(torch.rand(2, 3, *size))
    assert sr.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert sr.min() >= 0 and sr.max() <= 1


def test_isr_starts_at_bicubic_and_errors():
    lr = torch.rand(1, 3, 8, 8) * 0.9 + 0.05
    sr = ISRNet(4, 4, 1, global_skip=True)(lr)
    bic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(sr, bic, atol=1e-5)
    with pytest.raises(ValueError, match="scale"):
        ISRNet(3)
    with pytest.raises(ValueError):
        ISRNet(4, 4, 1)(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("size", [(64, 64), (32, 48)])
def test_unet_shapes_and_sides(size):
    cfg = get_config("smoke").model.seg
    net = LesionUNet.from_config(cfg)
    logits, sides = net(torch.rand(2, 3, *size), return_sides=True)
    assert logits.shape == (2, 4, *size)
    assert len(sides) == cfg.levels - 1 and all(s.shape == (2, 4, *size) for s in sides)
    plain = LesionUNet(3, 4, 3, deep_supervision=False)
    out, sides = plain(torch.rand(1, 3, *size), return_sides=True)
    assert out.shape == (1, 4, *size) and sides == []


def test_unet_size_error_and_background():
    net = LesionUNet(3, 4, levels=3)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*\\(levels-1\\) = 4"):
        net(torch.rand(1, 3, 30, 32))
    p = torch.tensor([0.5, 0.5, 0.0, 0.0]).view(1, 4, 1, 1)
    assert lesion_union(p).item() == pytest.approx(0.75) and background_prob(p).item() == pytest.approx(0.25)


def test_grader_shapes_and_features():
    g = GradingNet(width=8, fc_hidden=16)
    out = g(torch.rand(2, 7, 64, 64), return_features=True)
    assert out.logits.shape == (2, 5)
    assert {k: tuple(v.shape) for k, v in out.features.items()} == {1: (2, 8, 16, 16), 2: (2, 16, 8, 8), 3: (2, 32, 4, 4), 4: (2, 64, 2, 2)}
    g3 = GradingNet(width=8, fc_hidden=16, use_lesion_maps=False)
    assert g3(torch.rand(1, 3, 40, 40)).shape == (1, 5)
    with pytest.raises(ValueError, match="expects"):
        g3(torch.rand(1, 7, 40, 40))
    with pytest.raises(ValueError, match="lesion maps"):
        g.make_input(torch.rand(1, 3, 8, 8), None)
    full = GradingNet(width=64)
    assert isinstance(full.trunk, ResNet) and full.trunk.conv1.in_channels == 7


def _vis_case(create_graph=True, selection=True):
    torch.manual_seed(0)
    g = GradingNet(width=8, fc_hidden=16)
    vis = VisualizationMap((2, 3, 4), feature_selection=selection)
    probs = torch.zeros(2, 4, 64, 64)
    probs[:, 1, 10:30, 20:40] = 0.9
    x = torch.cat([torch.rand(2, 3, 64, 64), probs], 1)
    out = g(x, return_features=True)
    score = out.clean_logits[:, 0]
    return g, vis, vis(score, out.features, (64, 64), lesion_union(probs), create_graph=create_graph)


@pytest.mark.parametrize("h, w", [(8, 8), (6, 6), (3, 5), (7, 4), (1, 1)])
def test_spp_by_slices_matches_adaptive_max_pool_forward_and_backward(h, w):
    """The deterministic SPP used on CUDA (deepmt.models.grading.adaptive_max_pool2d_by_slices) pools the same bins
    as F.adaptive_max_pool2d, overlapping ones included (H, W not divisible by the level), with the same gradient
    (random input: no tied maxima)."""
    from deepmt.models.grading import adaptive_max_pool2d_by_slices, spatial_pyramid_pool

    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * 10 + w))
    for level in (1, 2, 4):
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ref, got = F.adaptive_max_pool2d(a, level), adaptive_max_pool2d_by_slices(b, level)
        assert got.shape == ref.shape == (2, 3, level, level) and torch.equal(got, ref)
        g = torch.randn_like(ref)
        ref.backward(g)
        got.backward(g)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-12, atol=1e-12)  # overlapping bins: summed in another order
    flat = spatial_pyramid_pool(x, (1, 2, 4))
    assert flat.shape == (2, 3 * 21) and torch.equal(flat[:, :3], x.amax(dim=(-2, -1)))


def test_visualization_map_properties_and_gradient():
    g, vis, m = _vis_case()
    assert m.shape == (2, 1, 64, 64)
    assert torch.isfinite(m).all() and m.min() >= 0
    peaks = m.amax(dim=(1, 2, 3))
    assert all(p == pytest.approx(1.0, abs=1e-4) or p == 0 for p in peaks.tolist())
    assert (peaks > 0).any()
    m.mean().backward()  # differentiable: fusion weights and the grader receive gradients
    assert vis.fusion_raw.grad is not None and vis.fusion_raw.grad.abs().sum() > 0
    assert g.fc2.weight.grad is not None and g.fc2.weight.grad.abs().sum() > 0


def test_feature_selection_constructed_case():
    acts = torch.zeros(1, 4, 4, 4)
    acts[0, 0, 0:2, 0:2] = 1.0  # exactly on the lesion -> IoU 1
    acts[0, 1, 2:4, 2:4] = 1.0  # disjoint -> IoU 0
    acts[0, 2, 0:2, 0:4] = 1.0  # half overlap -> IoU 0.5
    acts[0, 3, 0, 0] = 1.0  # one of 4 lesion cells -> IoU 0.25
    lesion = torch.zeros(1, 1, 16, 16)
    lesion[0, 0, 1, 1] = 1.0  # max-pooling to 4x4 keeps these single pixels
    lesion[0, 0, 2, 6] = 1.0
    lesion[0, 0, 5, 2] = 1.0
    lesion[0, 0, 7, 7] = 1.0  # lesion cells at 4x4: (0,0),(0,1),(1,0),(1,1)
    keep = select_lesion_features(acts, lesion, 0.5, 0.3)
    assert keep.tolist() == [[True, False, True, False]]
    assert select_lesion_features(acts, lesion, 0.5, 0.2).tolist() == [[True, False, True, True]]
    # no lesion: nothing to select against -> keep all; all below threshold -> keep all
    assert select_lesion_features(acts, torch.zeros(1, 1, 16, 16)).all()
    assert select_lesion_features(acts[:, 1:2], lesion, 0.5, 0.3).all()


def test_feature_selection_changes_the_map_exactly_where_it_drops_features(monkeypatch):
    """Selection only zeroes the Grad-CAM weights of dropped feature maps: an image whose maps are all kept gets
    the plain Grad-CAM map bit for bit, an image with a dropped map gets a different one."""
    import deepmt.models.visualization as V

    keeps, select = [], V.select_lesion_features
    monkeypatch.setattr(V, "select_lesion_features", lambda *a, **k: keeps.append(select(*a, **k)) or keeps[-1])
    _, _, with_sel = _vis_case(create_graph=False, selection=True)
    _, _, without = _vis_case(create_graph=False, selection=False)
    assert len(keeps) == 3  # one selection per stage
    dropped = [bool((~torch.cat([k[i] for k in keeps])).any()) for i in range(len(with_sel))]
    assert any(dropped), "the case must drop a feature map, or it tests nothing"
    for i, d in enumerate(dropped):
        assert torch.equal(with_sel[i], without[i]) != d, i
        if d:
            assert not torch.allclose(with_sel[i], without[i], atol=1e-3)
    monkeypatch.setattr(V, "select_lesion_features", lambda a, *_, **__: torch.ones(a.shape[:2], dtype=torch.bool))
    _, _, keep_all = _vis_case(create_graph=False, selection=True)
    assert torch.equal(keep_all, without)  # keeping every map is plain Grad-CAM


@pytest.mark.parametrize("c_out", [4, 8, 16])
def test_fused_multiscale_conv_is_the_two_branch_layer(c_out):
    """A narrow multi-scale layer runs as one 5x5 convolution over the zero-padded 3x3 weights: same outputs, same
    gradients for the 3x3 and 5x5 weights (the padding never learns), same parameters as the two-branch layer."""
    from deepmt.models.segmentation import FUSE_MAX_CHANNELS, MultiScaleConv

    torch.manual_seed(0)
    fused = MultiScaleConv(3, c_out).double()
    plain = MultiScaleConv(3, c_out).double()
    plain.load_state_dict(fused.state_dict())
    plain.fused = False
    assert fused.fused and c_out <= FUSE_MAX_CHANNELS
    assert not MultiScaleConv(3, FUSE_MAX_CHANNELS * 2).fused
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    out_f, out_p = fused(x), plain(x)
    torch.testing.assert_close(out_f, out_p)
    w = torch.randn_like(out_p)
    (out_f * w).sum().backward()
    (out_p * w).sum().backward()
    for name in ("conv3.weight", "conv5.weight", "bn.weight", "bn.bias"):
        g_f = dict(fused.named_parameters())[name].grad
        g_p = dict(plain.named_parameters())[name].grad
        torch.testing.assert_close(g_f, g_p, msg=name)
    assert fused.conv3.weight.shape[-1] == 3  # the 3x3 weights stay 3x3 in the state dict

