"""LR peak matching: how dark a blob stays after :func:`deepmt.data.degradation.degrade`.

Distractors get the LR peak of the lesion they imitate (times a dial): a smudge that of a microaneurysm
(``smudge_match``), a decoy tuft that of a real neovascular tuft (``nv_match``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from deepmt.data.synthetic.draw import erf_profile_1d


@lru_cache(maxsize=32)
def lr_peak_table(scale: int, blur_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """LR peak of a unit pixel-integrated Gaussian blob after :func:`deepmt.data.degradation.degrade`.

    Returns ``(sigmas_hr_px, peaks)``, averaged over 9 sub-pixel phases of the blob w.r.t. the LR grid.
    Used to give smudge distractors the same LR peak as a microaneurysm (docs/BENCHMARK.md).
    """
    from deepmt.data.degradation import degrade

    sigmas = np.geomspace(0.08, 12.0, 40)
    size = int(scale * math.ceil(max(96, 10 * scale) / scale))
    phases = [(a, b) for a in (0.0, 1 / 3, 2 / 3) for b in (0.0, 1 / 3, 2 / 3)]
    coords = np.arange(size, dtype=np.float64)
    patches = []
    for s in sigmas:
        for a, b in phases:
            c0 = size / 2 + a * scale
            c1 = size / 2 + b * scale
            patches.append(np.outer(erf_profile_1d(coords, c1, s), erf_profile_1d(coords, c0, s)))
    x = torch.from_numpy(np.asarray(patches, dtype=np.float32))[:, None].expand(-1, 3, -1, -1)
    lr = degrade(x.contiguous(), scale, blur_sigma=blur_sigma)
    peaks = lr[:, 1].flatten(1).max(dim=1).values.numpy().reshape(len(sigmas), len(phases)).mean(axis=1)
    return sigmas, peaks


def lr_peak(sigma_hr: np.ndarray | float, scale: int, blur_sigma: float = 0.0) -> np.ndarray:
    """Interpolated :func:`lr_peak_table` at ``sigma_hr`` (HR px)."""
    s, p = lr_peak_table(int(scale), float(blur_sigma))
    return np.interp(np.log(np.asarray(sigma_hr, dtype=np.float64)), np.log(s), p)


def hr_peak(sigma_hr: np.ndarray | float) -> np.ndarray:
    """HR peak of a unit pixel-integrated Gaussian centred on a pixel."""
    return erf_profile_1d(np.zeros(1), 0.0, float(sigma_hr))[0] ** 2 if np.isscalar(sigma_hr) else np.array([hr_peak(float(v)) for v in np.ravel(sigma_hr)])


def lr_peak_of_patch(prof: np.ndarray, scale: int, blur_sigma: float = 0.0) -> float:
    """LR peak (after degrade) of a patch that is aligned to the LR grid (its side is padded to a multiple of ``scale``)."""
    from deepmt.data.degradation import degrade

    h, w = prof.shape
    pad = 2 * scale
    H = int(math.ceil((h + 2 * pad) / scale) * scale)
    W = int(math.ceil((w + 2 * pad) / scale) * scale)
    big = np.zeros((H, W), dtype=np.float32)
    big[pad : pad + h, pad : pad + w] = prof
    t = torch.from_numpy(big)[None].expand(3, -1, -1).contiguous()
    return float(degrade(t, scale, blur_sigma=blur_sigma)[1].max())
