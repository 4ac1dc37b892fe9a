"""Image helpers shared by figures and ``predict``'s report: lesion-mask outlines and crops around a point.

They sit below the engine and the studies (numpy and scipy only) because both use them: ``predict`` writes
the lesion outlines, the studies' figures outline and crop lesions.
"""

from __future__ import annotations

import numpy as np

#: Legend of :func:`overlay_masks`' colours, for figure titles.
MASK_LEGEND = "outlines: MA magenta, HE blue, EX green, SE cyan"


def overlay_masks(hr: np.ndarray, masks: np.ndarray, alpha: float = 0.8) -> np.ndarray:
    """HR image with lesion masks outlined in colour (MA magenta, HE blue, EX green, SE cyan)."""
    from scipy.ndimage import binary_dilation

    colours = np.array([[1.0, 0.0, 1.0], [0.1, 0.3, 1.0], [0.1, 1.0, 0.1], [0.0, 1.0, 1.0]], dtype=np.float32)
    out = hr.astype(np.float32) / 255.0
    for k in range(4):
        m = masks[k].astype(bool)
        if not m.any():
            continue
        ring = binary_dilation(m, iterations=1 + hr.shape[0] // 256)
        out[ring] = (1 - alpha) * out[ring] + alpha * colours[k]
    return out


def crop(image: np.ndarray, x: float, y: float, half: int, factor: int = 1) -> np.ndarray:
    """Square crop of side 2*half/factor around HR point (x, y) of an image at 1/factor resolution (zero padded)."""
    hh = max(1, half // factor)
    cx = int(round((x - (factor - 1) / 2) / factor))
    cy = int(round((y - (factor - 1) / 2) / factor))
    pad = [(hh, hh), (hh, hh)] + [(0, 0)] * (image.ndim - 2)
    p = np.pad(image, pad)
    return p[cy : cy + 2 * hh, cx : cx + 2 * hh]


__all__ = ["MASK_LEGEND", "crop", "overlay_masks"]
