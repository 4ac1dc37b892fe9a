"""``python -m deepmt data synth|check``: write the synthetic benchmark to disk, or validate a real dataset root."""

from __future__ import annotations

import argparse

from deepmt.config import PROFILES

REAL_FORMATS = ("idrid", "idrid-seg", "ddr", "ddr-seg", "messidor1", "messidor2", "aptos", "eyepacs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="{synth,check}", required=True)

    s = sub.add_parser(
        "synth",
        help="generate the synthetic fundus benchmark into a folder (images, LR images, lesion masks, labels.csv)",
        description="Generate the synthetic fundus benchmark (HR image, LR image, 4 lesion masks, DR grade) "
        "into OUT in the layout described in deepmt/data/synthetic/export.py. Deterministic from --seed.",
    )
    s.add_argument("out", help="output folder (created; must be empty or absent)")
    s.add_argument("--profile", choices=PROFILES, default=None, help="config profile for sizes and counts (default: $DEEPMT_PROFILE or quick)")
    s.add_argument("--n", type=int, default=None, help="number of images per split (default: the profile's n_train/n_val/n_test)")
    s.add_argument("--splits", default="train,val,test", help="comma-separated splits to write (default: train,val,test)")
    s.add_argument("--hr-size", type=int, default=None, help="HR side in px, 64..1024 and divisible by --scale (default: the profile's)")
    s.add_argument("--scale", type=int, choices=(2, 4, 8), default=None, help="HR/LR downsampling factor (default: 4)")
    s.add_argument("--seed", type=int, default=None, help="data seed (default: 0)")
    s.add_argument("--class-prior", choices=("balanced", "ddr"), default=None, help="grade distribution (default: balanced)")
    s.add_argument("--background", choices=("procedural", "retina"), default=None, help="procedural fundus, or composited on skimage's real retina photo")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config override, e.g. data.synth.smudge_match=0.5 (repeatable)")
    s.set_defaults(data_run="deepmt.data.synthetic.export:run_synth_command")

    c = sub.add_parser(
        "check",
        help="validate a real dataset root: counts, and every problem found (non-zero exit on problems)",
        description="Check that ROOT holds a dataset in its published layout (see docs/METHOD.md). Prints counts "
        "per split and grade, and every problem found: missing files, unreadable images, bad labels, masks "
        "whose size differs from their image. Exits 1 when any problem is found.",
    )
    c.add_argument("root", help="the dataset's root folder")
    c.add_argument("--format", required=True, choices=REAL_FORMATS, help="which dataset layout ROOT follows")
    c.add_argument("--max-problems", type=int, default=50, help="print at most this many problems, 1 or more (all are counted)")
    c.add_argument("--no-decode", action="store_true", help="only check that files exist; do not decode images (faster)")
    c.set_defaults(data_run="deepmt.data.check:run_check_command")


def run(args: argparse.Namespace) -> int:
    import importlib

    module, func = args.data_run.split(":")
    return int(getattr(importlib.import_module(module), func)(args) or 0)
