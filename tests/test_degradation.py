import numpy as np
import pytest
import torch
from PIL import Image

from deepmt.config import get_config
from deepmt.data.degradation import bicubic_upsample, degrade, degrade_config


def _smooth_image(h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0].clamp(0, 1)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_shapes_single_and_batch(scale):
    hr = _smooth_image(64, 48)
    lr = degrade(hr, scale)
    assert lr.shape == (3, 64 // scale, 48 // scale) and lr.dtype == hr.dtype
    batch = torch.stack([hr, hr.flip(-1)])
    lrb = degrade(batch, scale)
    assert lrb.shape == (2, 3, 64 // scale, 48 // scale)
    assert torch.allclose(lrb[0], lr)
    up = bicubic_upsample(lr, scale)
    assert up.shape == hr.shape and up.min() >= 0 and up.max() <= 1


def test_matches_pil_bicubic():
    hr = _smooth_image(128, 128, seed=1)
    lr = degrade(hr, 4)
    arr = (hr.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    pil = np.asarray(Image.fromarray(arr).resize((32, 32), Image.BICUBIC)).astype(np.float32) / 255
    ours = lr.permute(1, 2, 0).numpy()
    # uint8 rounding of the PIL path costs up to ~1/255 per side
    assert np.abs(ours - pil).max() < 3 / 255
    assert np.abs(ours - pil).mean() < 1 / 255


def test_noise_is_seeded_and_clamped():
    hr = _smooth_image()
    a = degrade(hr, 4, noise_std=0.05, seed=3)
    b = degrade(hr, 4, noise_std=0.05, seed=3)
    c = degrade(hr, 4, noise_std=0.05, seed=4)
    clean = degrade(hr, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.02 < (a - clean).std() < 0.08
    assert a.min() >= 0 and a.max() <= 1


def test_blur_and_jpeg_paths():
    hr = _smooth_image(64, 64, seed=2)
    hr[:, 30:34, 30:34] = 1.0  # a sharp detail
    clean = degrade(hr, 2)
    blurred = degrade(hr, 2, blur_sigma=2.0)
    assert blurred[:, 15:17, 15:17].mean() < clean[:, 15:17, 15:17].mean()
    jpg = degrade(hr, 2, jpeg_quality=10)
    assert jpg.shape == clean.shape and not torch.equal(jpg, clean)
    assert (jpg - clean).abs().mean() < 0.1  # still the same picture
    with pytest.raises(ValueError, match="jpeg_quality"):
        degrade(hr, 2, jpeg_quality=0)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="not divisible by scale 4"):
        degrade(torch.rand(3, 66, 64), 4)
    with pytest.raises(ValueError, match="scale"):
        degrade(torch.rand(3, 64, 64), 3)
    with pytest.raises(ValueError, match="float"):
        degrade(torch.zeros(3, 64, 64, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="3 \\(RGB\\)"):
        degrade(torch.rand(1, 64, 64), 4)


def test_degrade_config_uses_cfg():
    cfg = get_config("smoke", {"data.scale": 2, "data.degradation.noise_std": 0.02})
    hr = _smooth_image()
    out = degrade_config(hr, cfg.data, seed=0)
    assert out.shape == (3, 32, 32)
    assert torch.equal(out, degrade(hr, 2, noise_std=0.02, seed=0))
