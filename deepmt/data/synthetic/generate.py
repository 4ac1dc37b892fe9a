"""One sample of the synthetic benchmark, generated from (seed, split, index) alone.

The steps, in the order they draw from the sample's random stream (the order is part of the data: changing it
changes every image, so it changes only with :data:`GENERATOR_VERSION`): the background, the lesion plan and
the haemorrhages' places, soft exudates, hard exudates, haemorrhages, the preretinal haemorrhage,
microaneurysms and smudges, NV and decoy tufts, the other distractors, camera grain. The LR image is
``degrade`` of the quantised HR image, with its own seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepmt import LESIONS
from deepmt.data.degradation import degrade
from deepmt.data.synthetic.background import Scene, draw_background
from deepmt.data.synthetic.distractors import draw_other_distractors, draw_tufts
from deepmt.data.synthetic.lesions import (
    draw_dots,
    draw_haemorrhages,
    draw_hard_exudates,
    draw_preretinal_haemorrhages,
    draw_soft_exudates,
)
from deepmt.data.synthetic.placement import place_haemorrhages
from deepmt.data.synthetic.rules import SPLIT_IDS, grade_for_index, grade_from_lesions, sample_id
from deepmt.errors import DataError

#: Bump when the generator changes its output (invalidates caches).
GENERATOR_VERSION = 3

#: Columns of a sample's ``meta`` (and of the cached ``meta.npy``): lesion counts per type and quadrant, per
#: type, and the distractors.
META_COLUMNS = (
    [f"{les}_{q}" for les in LESIONS for q in ("q0", "q1", "q2", "q3")]
    + [f"n_{les}" for les in LESIONS]
    + ["has_nv", "has_preretinal_he", "n_smudge", "n_nv_decoy", "n_pigment", "n_reflection", "n_he_dot", "n_he_blot", "n_he_flame"]
)


def generate_sample(index: int, data_cfg, split: str = "train") -> dict[str, Any]:
    """Generate sample ``index`` of ``split`` (a pure function of ``data_cfg.seed``, ``split``, ``index``).

    Returns numpy arrays: ``hr`` (H,W,3) uint8, ``lr`` (H/s,W/s,3) uint8 (= ``degrade`` of the HR),
    ``masks`` (4,H,W) uint8 0/1 in MA/HE/EX/SE order, ``fov`` (H,W) uint8 0/1, ``grade`` int, ``id`` str,
    ``meta`` dict (lesion counts per type and quadrant, ``has_nv``, distractor counts) and ``lesions``
    (centres, sigmas and HR contrasts of MA, smudges, NV and decoys, for measurements and figures).
    """
    sc = data_cfg.synth
    n = int(data_cfg.hr_size)
    scale = int(data_cfg.scale)
    if not 64 <= n <= 1024:
        raise DataError(f"data.hr_size={n}: the synthetic benchmark supports 64..1024 px")
    if n % scale:
        raise DataError(f"data.hr_size={n} is not divisible by data.scale={scale}")
    if split not in SPLIT_IDS:
        raise DataError(f"unknown split {split!r}; choose one of {tuple(SPLIT_IDS)}")
    grade = grade_for_index(index, sc.class_prior, data_cfg.seed, split)
    rng = np.random.default_rng([int(data_cfg.seed), SPLIT_IDS[split], int(index), 1])
    blur = float(data_cfg.degradation.blur_sigma)

    scene = draw_background(rng, n, sc)
    layout = place_haemorrhages(rng, scene, grade, sc)
    if layout is None:  # pragma: no cover - only with extreme settings
        raise DataError(f"synthetic sample {split}/{index}: could not place the lesions of grade {grade}")
    draw_soft_exudates(rng, scene, layout)
    draw_hard_exudates(rng, scene, layout)
    he_kinds = draw_haemorrhages(rng, scene, layout)
    draw_preretinal_haemorrhages(rng, scene, layout)
    lesions = draw_dots(rng, scene, layout, sc, scale, blur)
    lesions.update(draw_tufts(rng, scene, layout.plan["nv"], sc, scale, blur))
    n_pig, n_ref = draw_other_distractors(rng, scene, layout)
    hr, fov_bin = _quantise(rng, scene)
    d = data_cfg.degradation
    hr_t = torch.from_numpy(hr).permute(2, 0, 1).float().div_(255.0)
    lr_t = degrade(hr_t, scale, blur_sigma=d.blur_sigma, noise_std=d.noise_std, jpeg_quality=d.jpeg_quality,
                   seed=int(np.random.default_rng([int(data_cfg.seed), SPLIT_IDS[split], int(index), 2]).integers(2**31)))
    lr = (lr_t.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)

    counts = scene.counts
    meta = {f"{les}_q{q}": int(counts[i, q]) for i, les in enumerate(LESIONS) for q in range(4)}
    meta.update({f"n_{les}": int(counts[i].sum()) for i, les in enumerate(LESIONS)})
    meta.update(has_nv=int(bool(layout.plan["nv"])), has_preretinal_he=len(layout.prh), n_smudge=len(lesions["smudge_xy"]),
                n_nv_decoy=len(lesions["decoy_xy"]), n_pigment=n_pig, n_reflection=n_ref,
                n_he_dot=he_kinds["dot"], n_he_blot=he_kinds["blot"], n_he_flame=he_kinds["flame"])
    lesions.update(fov_center=np.asarray(scene.c, np.float32), fov_radius=float(scene.R), disc_xy=np.asarray(scene.disc, np.float32),
                   macula_xy=np.asarray(scene.mac, np.float32))
    assert grade_from_lesions(meta["n_MA"], counts[1], meta["n_EX"], meta["n_SE"], bool(meta["has_nv"]), sc.severe_he_per_quadrant) == grade
    return {
        "id": sample_id(split, index),
        "hr": hr,
        "lr": lr,
        "masks": scene.masks.astype(np.uint8),
        "fov": fov_bin.astype(np.uint8),
        "grade": int(grade),
        "meta": meta,
        "lesions": lesions,
    }


def _quantise(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Camera grain, black outside the field of view, 8 bits: the HR image (uint8) and the binary FOV; the
    lesion masks are cut to the FOV. ``scene.img`` is used up (scaled in place)."""
    n, img, fov = scene.n, scene.img, scene.fov
    grain = rng.standard_normal((n, n), dtype=np.float32)
    grain *= np.float32(0.008 * 255.0)
    img *= np.float32(255.0)
    img += grain[..., None]
    img *= fov[..., None]
    img += np.float32(0.5)
    hr = np.clip(img, 0, 255, out=img).astype(np.uint8)
    fov_bin = fov >= 0.5
    scene.masks &= fov_bin[None]
    return hr, fov_bin
