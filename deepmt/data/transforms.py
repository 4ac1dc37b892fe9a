"""Joint training augmentation of a :class:`deepmt.data.sample.Sample` (torchvision.transforms.v2 + tv_tensors).

The paper's code uses random crops (HR 256, LR 64) as its only augmentation; we add the usual fundus
flips and 90-degree rotations (``cfg.data.augment``). Every geometric change is applied identically to
``hr``, ``lr``, ``masks`` and ``fov`` (hr/lr as ``tv_tensors.Image``, masks/fov as ``tv_tensors.Mask``), so
lesion masks stay on their lesions and the LR image stays the degraded version of the HR image:

* random crop of ``cfg.data.crop_size`` HR px whose top/left corner is a multiple of ``cfg.data.scale``;
  the LR image is cropped at ``(top/scale, left/scale)`` with side ``crop_size/scale``: exactly the same region;
* horizontal flip, vertical flip (p = 1/2 each), rotation by k x 90 degrees (k uniform in 0..3; only
  0/180 for non-square crops so batch shapes stay fixed).

Random numbers come from a private ``torch.Generator`` when ``seed`` is given (reproducible sequence), else
from torch's global RNG (deterministic after :func:`deepmt.utils.seed_everything`, and seeded per worker by
``DataLoader``). The same number of draws is made whatever the outcome, so sequences never drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from deepmt.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from deepmt.config import DataConfig

_SPATIAL_KEYS = ("hr", "lr", "masks", "fov")


class TrainAugment:
    """Callable ``Sample -> Sample``: aligned random crop, flips and rot90 (see the module docstring)."""

    def __init__(
        self,
        data_cfg: "DataConfig",
        seed: int | None = None,
        *,
        flips: bool | None = None,
        crop_size: int | None | str = "cfg",
    ) -> None:
        self.scale = int(data_cfg.scale)
        self.flips = bool(data_cfg.augment) if flips is None else bool(flips)
        self.crop_size = data_cfg.crop_size if crop_size == "cfg" else crop_size
        if self.crop_size is not None:
            self.crop_size = int(self.crop_size)
            if self.crop_size <= 0 or self.crop_size % self.scale:
                raise DataError(f"data.crop_size={self.crop_size} must be a positive multiple of data.scale={self.scale}")
        self.generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    @property
    def enabled(self) -> bool:
        return self.flips or self.crop_size is not None

    def _randint(self, high: int) -> int:
        return int(torch.randint(0, max(1, high), (1,), generator=self.generator).item())

    def __call__(self, sample: dict) -> dict:
        out = dict(sample)
        hr = tv_tensors.Image(sample["hr"])
        lr = tv_tensors.Image(sample["lr"])
        masks = tv_tensors.Mask(sample["masks"])
        fov = tv_tensors.Mask(sample["fov"])
        s = self.scale
        h, w = hr.shape[-2:]
        if tuple(lr.shape[-2:]) != (h // s, w // s):
            raise DataError(f"sample {sample.get('id')!r}: lr {tuple(lr.shape)} is not hr {tuple(hr.shape)} / {s}")

        if self.crop_size is not None:
            c = self.crop_size
            if c > h or c > w:
                raise DataError(f"data.crop_size={c} is larger than the image ({h}x{w}) of sample {sample.get('id')!r}")
            top = self._randint((h - c) // s + 1) * s
            left = self._randint((w - c) // s + 1) * s
            hr, masks, fov = (F.crop(x, top, left, c, c) for x in (hr, masks, fov))
            lr = F.crop(lr, top // s, left // s, c // s, c // s)

        if self.flips:
            hflip, vflip = (torch.rand(2, generator=self.generator) < 0.5).tolist()
            k = self._randint(4)
            if hr.shape[-2] != hr.shape[-1]:
                k = (k % 2) * 2  # only 0 or 180 degrees keep a non-square shape
            items = [hr, lr, masks, fov]
            if hflip:
                items = [F.horizontal_flip(x) for x in items]
            if vflip:
                items = [F.vertical_flip(x) for x in items]
            if k:
                items = [F.rotate(x, 90.0 * k, expand=True) for x in items]
            hr, lr, masks, fov = items

        for key, val in zip(_SPATIAL_KEYS, (hr, lr, masks, fov)):
            out[key] = val.as_subclass(torch.Tensor).contiguous()
        return out


class AugmentedDataset(Dataset):
    """``dataset`` with ``transform`` applied to every sample; other attributes are forwarded to ``dataset``."""

    def __init__(self, dataset: Dataset, transform: Callable[[dict], dict]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        return self.transform(self.dataset[index])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("dataset", "transform"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


__all__ = ["TrainAugment", "AugmentedDataset"]
