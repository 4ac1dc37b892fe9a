"""Joint augmentation keeps hr, lr, masks and fov aligned; aligned crops; determinism; identity when off."""

from __future__ import annotations

import pytest
import torch

from deepmt.config import DataConfig
from deepmt.data.sample import validate_sample
from deepmt.data.transforms import AugmentedDataset, TrainAugment
from deepmt.errors import DataError

S = 4  # scale


def marker_sample(h: int = 32, w: int = 32, top: int = 8, left: int = 12) -> dict:
    """A sample whose hr/lr/masks/fov carry the same off-centre, asymmetric marker (an L of scale-sized cells)."""
    cells = [(0, 0), (1, 0), (2, 0), (2, 1)]  # an 'L': not symmetric under any flip/rotation
    lr = torch.zeros(3, h // S, w // S)
    hr = torch.zeros(3, h, w)
    masks = torch.zeros(4, h, w)
    for dy, dx in cells:
        y, x = top // S + dy, left // S + dx
        lr[:, y, x] = 1.0
        hr[:, y * S : (y + 1) * S, x * S : (x + 1) * S] = 1.0
        masks[1, y * S : (y + 1) * S, x * S : (x + 1) * S] = 1.0
    return {
        "hr": hr,
        "lr": lr,
        "masks": masks,
        "mask_present": torch.ones(4, dtype=torch.bool),
        "fov": masks[1:2].clone(),
        "grade": torch.tensor(2),
        "id": "marker",
    }


def check_aligned(s: dict) -> None:
    hr_cells = s["hr"][0].unfold(0, S, S).unfold(1, S, S).mean(dim=(-1, -2))  # HR averaged to LR cells
    assert torch.equal(hr_cells, s["lr"][0]), "hr and lr markers moved differently"
    assert torch.equal(s["masks"][1], s["hr"][0]), "mask marker moved differently from hr"
    assert torch.equal(s["fov"][0], s["hr"][0]), "fov marker moved differently from hr"


def cfg(augment=True, crop_size=None) -> DataConfig:
    return DataConfig(scale=S, hr_size=32, augment=augment, crop_size=crop_size)


def test_identity_when_disabled():
    s = marker_sample()
    t = TrainAugment(cfg(augment=False, crop_size=None), seed=0)
    assert not t.enabled
    out = t(s)
    for k in ("hr", "lr", "masks", "fov"):
        assert torch.equal(out[k], s[k]) and type(out[k]) is torch.Tensor
    assert out["id"] == "marker" and int(out["grade"]) == 2


def test_flips_and_rotations_keep_everything_aligned_and_visit_all_8_poses():
    s = marker_sample()
    t = TrainAugment(cfg(), seed=1)
    poses = set()
    for _ in range(64):
        out = t(s)
        check_aligned(out)
        validate_sample(out, scale=S)
        poses.add(out["hr"][0].numpy().tobytes())
    assert len(poses) == 8  # the dihedral group of the square


def test_aligned_crop_sizes_and_region():
    s = marker_sample(h=32, w=48)
    t = TrainAugment(cfg(augment=False, crop_size=16), seed=2)
    tops = set()
    for _ in range(40):
        out = t(s)
        assert out["hr"].shape == (3, 16, 16) and out["lr"].shape == (3, 4, 4)
        assert out["masks"].shape == (4, 16, 16) and out["fov"].shape == (1, 16, 16)
        check_aligned(out)
        tops.add(out["hr"][0].numpy().tobytes())
    assert len(tops) > 5  # crops move


def test_crop_plus_flips_nonsquare_image():
    s = marker_sample(h=32, w=48)
    t = TrainAugment(cfg(augment=True, crop_size=None), seed=3)
    for _ in range(20):
        out = t(s)
        assert out["hr"].shape == (3, 32, 48)  # only 0/180 degree turns for a non-square image
        check_aligned(out)


def test_deterministic_given_seed_or_global_rng():
    s = marker_sample()
    a = [TrainAugment(cfg(crop_size=16), seed=7)(s)["hr"] for _ in range(1)]
    t1, t2 = TrainAugment(cfg(crop_size=16), seed=7), TrainAugment(cfg(crop_size=16), seed=7)
    seq1 = [t1(s)["hr"] for _ in range(10)]
    seq2 = [t2(s)["hr"] for _ in range(10)]
    assert all(torch.equal(x, y) for x, y in zip(seq1, seq2))
    assert torch.equal(a[0], seq1[0])
    g = TrainAugment(cfg(crop_size=16))  # global RNG
    torch.manual_seed(11)
    r1 = [g(s)["hr"] for _ in range(10)]
    torch.manual_seed(11)
    r2 = [g(s)["hr"] for _ in range(10)]
    assert all(torch.equal(x, y) for x, y in zip(r1, r2))
    assert len({x.numpy().tobytes() for x in r1}) > 1


def test_bad_crop_size_is_a_clear_error():
    with pytest.raises(DataError, match="data.crop_size=18 must be a positive multiple of data.scale=4"):
        TrainAugment(cfg(crop_size=18))
    with pytest.raises(DataError, match="larger than the image"):
        TrainAugment(cfg(crop_size=64), seed=0)(marker_sample())


def test_augmented_dataset_wraps_and_forwards():
    class Tiny(torch.utils.data.Dataset):
        marker = "forwarded"

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return marker_sample()

    ds = AugmentedDataset(Tiny(), TrainAugment(cfg(crop_size=16), seed=0))
    assert len(ds) == 3 and ds.marker == "forwarded"
    check_aligned(ds[1])
