"""Reading configs stored by earlier versions of deepmt (``config.json`` of a cache entry, a checkpoint) and what
cache keys hash: the defaults a stored config was made with, the fields whose default leaves every earlier key
valid, and the fields that never change a number. :mod:`deepmt.config` re-exports these names; this module knows
the settings only as dotted names and imports nothing of deepmt.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping


#: Defaults of the fields whose default changed when the dataclass defaults became the paper's settings
#: (before, the defaults matched no profile). A stored config (``config.json``, a checkpoint) written
#: without one of these fields was made with this value, so :func:`config_from_dict` fills it in. Also the fields
#: added with a key-neutral default that later changed (``loss.seg_dice_empty``: "include" until 2026-12-06;
#: ``train.module_selection``: "joint" until 2026-12-07).
STORED_DEFAULTS: dict[str, Any] = {
    "profile": "quick",
    "data.hr_size": 128,
    "data.crop_size": None,
    "data.n_train": 1200,
    "data.n_val": 200,
    "data.n_test": 400,
    "data.num_workers": 0,
    "train.batch_size": 32,
    "train.eval_batch_size": 64,
    "train.lr": 2e-3,
    "train.epochs_stage1a": 8,
    "train.epochs_stage1b": 8,
    "train.epochs_stage2": 4,
    "train.epochs_single": 12,
    "loss.seg_dice_empty": "include",
    "train.module_selection": "joint",
}


#: Fields added after runs were cached whose default is exactly the behaviour before they existed. At that value
#: they are left out of :meth:`Config.key` and of the comparison of a stored config with a requested one
#: (:func:`comparable_config`), so every earlier cache key, cache entry and checkpoint stays valid. Any other
#: value is part of the key, as every other field is.
KEY_NEUTRAL_DEFAULTS: dict[str, Any] = {
    "data.label_fraction": 1.0,
    "train.deterministic": True,
    "loss.stage1b_input": "hr",
    "train.epochs_by_method": {},
    "loss.seg_dice_empty": "include",
    "data.nongrading_crop_size": None,
    "train.val_every": 1,
    "train.val_min_points": 0,
    "train.patience": 0,
    "train.lr_scale": 1.0,
    "train.epochs_scale": 1.0,
    "train.grading_batch_size": None,
    "train.grading_learning_rate": None,
    "train.module_selection": "joint",
    "model.grader.spp_pool": "max",
    "model.grader.oracle_maps": False,
    "loss.grading_into_seg": False,
}


#: Fields that change only what a run prints, never its numbers: cache keys hash them, and stored configs are
#: compared, at this fixed value, so ``--set train.progress=false`` loads the run trained with progress bars.
KEY_FIXED_VALUES: dict[str, Any] = {
    "train.progress": True,
}


def comparable_config(d: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the config dict ``d`` (``Config.to_dict()``, or one stored by an older version) without the
    fields of :data:`KEY_NEUTRAL_DEFAULTS` that hold their neutral value, and with those of
    :data:`KEY_FIXED_VALUES` at their fixed value: what cache keys hash and what stored configs are compared by."""
    out = copy.deepcopy(dict(d))
    for dotted, fixed in KEY_FIXED_VALUES.items():
        section, last = _parent_section(out, dotted)
        if last in section:
            section[last] = fixed
    for dotted, neutral in KEY_NEUTRAL_DEFAULTS.items():
        section, last = _parent_section(out, dotted)
        if last in section and section[last] == neutral:
            del section[last]
    return out


def _parent_section(d: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    """(the dict holding ``dotted``'s last part in the nested config dict ``d``, that part); ``{}`` if absent."""
    *parents, last = dotted.split(".")
    section: Any = d
    for part in parents:
        section = section.get(part) if isinstance(section, dict) else None
    return (section if isinstance(section, dict) else {}), last


__all__ = ["STORED_DEFAULTS", "KEY_NEUTRAL_DEFAULTS", "KEY_FIXED_VALUES", "comparable_config"]
