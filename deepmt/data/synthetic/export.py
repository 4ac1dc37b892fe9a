"""``python -m deepmt data synth OUT``: the benchmark written as files a person can open::

    OUT/README.txt                       layout, grade rules, the config used
    OUT/{split}/labels.csv               id, grade, has_nv, lesion counts (per type and quadrant), distractors
    OUT/{split}/hr/<id>.png              HR image
    OUT/{split}/lr/<id>.png              LR image (antialiased bicubic / scale, as used for training)
    OUT/{split}/fov/<id>.png             field of view (255 inside)
    OUT/{split}/masks/{MA,HE,EX,SE}/<id>.png   lesion masks (255 = lesion)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from deepmt import LESIONS
from deepmt.data.synthetic.generate import generate_sample
from deepmt.data.synthetic.rules import grade_rules_text
from deepmt.data.synthetic.store import split_size
from deepmt.errors import DataError


def run_synth_command(args: argparse.Namespace) -> int:
    """``python -m deepmt data synth OUT``: write the benchmark as PNGs + labels.csv + README.txt."""
    import pandas as pd
    from PIL import Image
    from tqdm.auto import tqdm

    from deepmt.config import get_config
    from deepmt.utils import staged_dir, write_errors

    overrides: dict[str, Any] = {}
    for item in args.set or []:
        if "=" not in item:
            raise DataError(f"--set {item!r}: expected KEY=VALUE, e.g. data.synth.smudge_match=0.5")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v.strip()
    for attr, key in (("hr_size", "data.hr_size"), ("scale", "data.scale"), ("seed", "data.seed"),
                      ("class_prior", "data.synth.class_prior"), ("background", "data.synth.background")):
        if getattr(args, attr, None) is not None:
            overrides[key] = getattr(args, attr)
    if getattr(args, "n", None) is not None:
        overrides.update({"data.n_train": args.n, "data.n_val": args.n, "data.n_test": args.n})
    try:
        cfg = get_config(args.profile, overrides)
    except (KeyError, ValueError) as exc:
        raise DataError(f"bad setting: {exc}") from None
    data = cfg.data
    if not 64 <= data.hr_size <= 1024 or data.hr_size % data.scale:
        raise DataError(f"--hr-size {data.hr_size}: must be in 64..1024 and divisible by --scale {data.scale}")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    for s in splits:
        split_size(data, s)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output folder exists and is not empty; choose a new or empty folder")
    t0 = time.time()
    # inside OUT, moved into it at the end: OUT may be an empty mount point; a full disk is an error naming OUT
    with staged_dir(out) as tmp, write_errors(out):
        for split in splits:
            rows = []
            for sub in ["hr", "lr", "fov"] + [f"masks/{les}" for les in LESIONS]:
                (tmp / split / sub).mkdir(parents=True)
            for i in tqdm(range(split_size(data, split)), desc=f"synth {split}", mininterval=1.0):
                smp = generate_sample(i, data, split)
                sid = smp["id"]
                Image.fromarray(smp["hr"]).save(tmp / split / "hr" / f"{sid}.png", compress_level=1)
                Image.fromarray(smp["lr"]).save(tmp / split / "lr" / f"{sid}.png", compress_level=1)
                Image.fromarray(smp["fov"] * 255).save(tmp / split / "fov" / f"{sid}.png", compress_level=1)
                for k, les in enumerate(LESIONS):
                    Image.fromarray(smp["masks"][k] * 255).save(tmp / split / "masks" / les / f"{sid}.png", compress_level=1)
                rows.append({"id": sid, "grade": smp["grade"], **smp["meta"]})
            pd.DataFrame(rows).to_csv(tmp / split / "labels.csv", index=False)
        readme = _readme_text(cfg, splits)
        (tmp / "README.txt").write_text(readme)
    n_total = sum(split_size(data, s) for s in splits)
    print(f"wrote {n_total} synthetic images ({', '.join(splits)}) to {out} in {time.time() - t0:.1f}s; see {out / 'README.txt'}")
    return 0


def _readme_text(cfg, splits) -> str:
    d = cfg.data
    return "\n".join(
        [
            "deepmt synthetic fundus benchmark",
            "=================================",
            "",
            f"HR {d.hr_size} x {d.hr_size} px, LR {d.lr_size} x {d.lr_size} px (antialiased bicubic x{d.scale}), seed {d.seed},",
            f"class prior {d.synth.class_prior!r}, background {d.synth.background!r}. Splits: {', '.join(splits)}.",
            "",
            "Layout",
            "------",
            "  README.txt                          this file",
            "  {split}/labels.csv                  one row per image: id, grade (0-4), lesion counts per type and quadrant",
            "                                      (MA_q0..SE_q3; q0 upper-left, q1 upper-right, q2 lower-left, q3 lower-right),",
            "                                      n_MA/n_HE/n_EX/n_SE, has_nv (neovascularisation, not masked), distractor counts",
            "  {split}/hr/<id>.png                 HR RGB image",
            "  {split}/lr/<id>.png                 LR RGB image = degrade(HR) (what the models see)",
            "  {split}/fov/<id>.png                field of view, 255 inside",
            "  {split}/masks/{MA,HE,EX,SE}/<id>.png  lesion masks, 255 = lesion (MA microaneurysms, HE haemorrhages,",
            "                                      EX hard exudates, SE soft exudates)",
            "",
            "Grade rules",
            "-----------",
            grade_rules_text(d.synth.severe_he_per_quadrant),
            "",
            "Regenerate with the same seed to get identical bytes. Config used (deepmt.config, data section):",
            json.dumps(dataclasses.asdict(d), indent=1, default=str),
            "",
        ]
    )
