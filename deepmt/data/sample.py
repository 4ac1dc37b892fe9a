"""The one sample structure every dataset returns, so training code never knows which dataset it has.

A sample is a ``dict`` with these keys (tensors are ``torch.float32`` unless noted):

=============== ================== ==========================================================
key             shape              meaning
=============== ================== ==========================================================
``hr``          (3, H, W)          high-resolution RGB image in [0, 1]
``lr``          (3, H/s, W/s)      low-resolution image = ``degrade(hr)`` in [0, 1]
``masks``       (4, H, W)          binary lesion masks in :data:`deepmt.LESIONS` order
``mask_present``(4,) bool          True where that lesion's mask is *annotated* (a False
                                   channel is unknown, not "absent": losses skip it)
``fov``         (1, H, W)          field-of-view mask (1 inside the fundus disc)
``grade``       () int64           DR grade 0-4, or -1 when the image has no grade
``id``          str                image identifier (file stem for real data)
=============== ================== ==========================================================

Images without any lesion annotation have ``mask_present`` all False and zero masks.
``torch.utils.data.default_collate`` batches samples (``id`` becomes a list of str).
"""

from __future__ import annotations

from typing import TypedDict

import torch

from deepmt import LESIONS

NO_GRADE = -1
SAMPLE_KEYS = ("hr", "lr", "masks", "mask_present", "fov", "grade", "id")


class Sample(TypedDict):
    hr: torch.Tensor
    lr: torch.Tensor
    masks: torch.Tensor
    mask_present: torch.Tensor
    fov: torch.Tensor
    grade: torch.Tensor
    id: str


def validate_sample(s: dict, scale: int | None = None) -> None:
    """Raise ``ValueError`` naming the problem if ``s`` is not a well-formed :class:`Sample`."""
    missing = [k for k in SAMPLE_KEYS if k not in s]
    if missing:
        raise ValueError(f"sample {s.get('id', '?')!r} lacks keys {missing}")
    hr, lr, masks = s["hr"], s["lr"], s["masks"]
    if hr.ndim != 3 or hr.shape[0] != 3:
        raise ValueError(f"sample {s['id']!r}: hr must be (3, H, W), got {tuple(hr.shape)}")
    if masks.shape != (len(LESIONS), *hr.shape[1:]):
        raise ValueError(f"sample {s['id']!r}: masks {tuple(masks.shape)} do not match hr {tuple(hr.shape)}")
    if s["fov"].shape != (1, *hr.shape[1:]):
        raise ValueError(f"sample {s['id']!r}: fov {tuple(s['fov'].shape)} does not match hr")
    if s["mask_present"].shape != (len(LESIONS),) or s["mask_present"].dtype != torch.bool:
        raise ValueError(f"sample {s['id']!r}: mask_present must be a bool tensor of shape (4,)")
    if scale is not None and tuple(lr.shape[1:]) != (hr.shape[1] // scale, hr.shape[2] // scale):
        raise ValueError(f"sample {s['id']!r}: lr {tuple(lr.shape)} is not hr {tuple(hr.shape)} / {scale}")
    g = int(s["grade"])
    if not (g == NO_GRADE or 0 <= g <= 4):
        raise ValueError(f"sample {s['id']!r}: grade {g} is outside 0-4")


def random_batch(hr_size: int, scale: int, batch_size: int, device: torch.device | str = "cpu", seed: int = 0) -> dict:
    """A collated Sample batch with random content: uniform images, sparse lesion masks (2% of pixels),
    every mask annotated, a full field of view and grades 0-4 in turn. For timing and FLOP counting,
    where only shapes matter; on the ``meta`` device nothing is drawn (``seed`` is ignored there)."""
    lr_size = hr_size // scale
    meta = torch.device(device).type == "meta"
    g = None if meta else torch.Generator(device="cpu").manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, device=device) if meta else torch.rand(*shape, generator=g).to(device)

    return {
        "hr": rand(batch_size, 3, hr_size, hr_size),
        "lr": rand(batch_size, 3, lr_size, lr_size),
        "masks": (rand(batch_size, len(LESIONS), hr_size, hr_size) > 0.98).float(),
        "mask_present": torch.ones(batch_size, len(LESIONS), dtype=torch.bool, device=device),
        "fov": torch.ones(batch_size, 1, hr_size, hr_size, device=device),
        "grade": torch.arange(batch_size, device=device) % 5,
        "id": [f"bench_{i}" for i in range(batch_size)],
    }
