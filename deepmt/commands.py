"""``python -m deepmt train | evaluate | predict``: command-line front ends of the engine and the experiment runner.

The command line sits on top, beside the studies: these commands use the experiment cache
(:mod:`deepmt.experiment_cache`) and the engine below it, which never import them.

* ``train``: train DeepMT-DR or a baseline under a profile. Without ``--run-dir`` the run goes to the
  shared experiment cache (``deepmt.experiment_cache``; notebooks then reuse it, and an interrupted run
  continues where it stopped); with ``--run-dir`` it trains there (``--resume`` continues it).
  Works under ``torchrun --nproc_per_node N -m deepmt train ...`` (data parallel).
* ``evaluate``: metrics of a checkpoint on a dataset split (optionally written to a JSON file).
* ``predict``: super-resolve, segment and grade fundus photos with a checkpoint; a bad photo is reported
  and skipped, and the command exits 1 when any photo failed.

Every user-facing problem is a :class:`deepmt.errors.DeepMTError` (printed as one line by the CLI). Output
folders are checked before any work starts, and settings are checked by :mod:`deepmt.config`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepmt.config import DATASETS, PROFILES
from deepmt.config_checks import parse_set_items
from deepmt.errors import ConfigMismatchError, DeepMTError
from deepmt.utils import cache_root, check_writable_dir

DEFAULT_METHOD = "deepmt_dr"
_SHOWN = ("n_images", "accuracy", "qwk", "macro_f1", "auc_ovr", "psnr", "ssim", "psnr_lesion", "dice", "aupr", "auc")


def _build_config(args: argparse.Namespace):
    from deepmt.config import get_config

    overrides: dict[str, object] = {}
    if getattr(args, "dataset", None):
        overrides["data.dataset"] = args.dataset
    if getattr(args, "data_root", None):
        overrides["data.root"] = str(args.data_root)
    if getattr(args, "seed", None) is not None:
        overrides["train.seed"] = args.seed
    if getattr(args, "device", None):
        overrides["train.device"] = args.device
    if getattr(args, "precision", None):
        overrides["train.precision"] = args.precision
    overrides.update(parse_set_items(getattr(args, "set", []) or []))
    return get_config(args.profile, overrides)  # SettingError naming a bad key or value


def _check_method(name: str) -> str:
    """The registered name of ``--method`` (an alias such as ``seg_grade_mt`` gives ``foo_mt``), or a one-line error."""
    from deepmt.models.methods import METHOD_ALIASES, METHODS, canonical_method

    method = canonical_method(name)
    if method not in METHODS:
        aliases = ", ".join(f"{a} (= {m})" for a, m in sorted(METHOD_ALIASES.items()))
        raise ConfigMismatchError(f"--method {name!r} is not a method; choose one of: {', '.join(sorted(METHODS))}; "
                                  f"also accepted: {aliases}")
    return method


def _print_metrics(title: str, metrics: dict | None) -> None:
    if not metrics:
        return
    shown = {k: metrics[k] for k in _SHOWN if k in metrics}
    print(f"{title}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))


def _train_command(method: str, profile: str, run_dir: str) -> str:
    return f"python -m deepmt train --method {method} --profile {profile} --run-dir {run_dir}"


# =========================================================================== train
def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train DeepMT-DR (stages 1a ISR+segmentation, 1b grading, 2 joint task-aware fine-tuning) or a baseline. "
        "Without --run-dir the run is stored in the experiment cache ($DEEPMT_CACHE/runs/<method>-<config key>), "
        "shared with the notebooks; an interrupted cached run continues where it stopped. "
        "Data parallel: torchrun --nproc_per_node N -m deepmt train ..."
    )
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help="method to train: deepmt_dr (default), deepmt_dr_noisr, or a baseline such as grader_lr, "
                   "grader_hr, grader_bicubic, unet_lr, unet_hr, isr, srcnn, edsr, two_stage, foo_mt (also accepted as "
                   "seg_grade_mt; an unknown name lists them all)")
    p.add_argument("--profile", choices=PROFILES, default=None,
                   help="config profile: smoke (seconds, CI), quick (2-core CPU, minutes), paper (GPU, the authors' sizes); "
                   "default $DEEPMT_PROFILE or quick")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="dataset (default: the profile's, synthetic)")
    p.add_argument("--data-root", default=None, help="root folder of a real dataset in its published layout")
    p.add_argument("--seed", type=int, default=None, help="training seed (train.seed; default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config override, e.g. --set train.lr=1e-3 --set loss.cls_aware=0 (repeatable)")
    p.add_argument("--run-dir", default=None,
                   help="train into this folder (config.json, metrics.csv, last.pt, best-<stage>.pt, final.pt) "
                   "instead of the experiment cache")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its last.pt (model, optimiser, scheduler, RNG, position); "
                   "refused if the config differs")
    p.add_argument("--force", action="store_true", help="cache mode: discard a cached run and train again from scratch")
    p.add_argument("--device", default=None, help="auto (CUDA if present, else CPU; default), cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None,
                   help="auto (default: bf16 autocast where supported, fp16+GradScaler on older GPUs), or force one")


def run_train(args: argparse.Namespace) -> int:
    from deepmt.engine import ddp

    args.method = _check_method(args.method)  # an alias trains (and is cached as) the method it stands for
    from deepmt.experiment_cache import resolve_config

    cfg = resolve_config(args.method, _build_config(args))  # the method's own epochs (train.epochs_by_method)
    check_fits(args.method, cfg, "train")  # sizes that fit together and this machine's memory, before any data is made
    if args.run_dir is None:
        check_writable_dir(cache_root(), "the experiment cache (DEEPMT_CACHE)")
    else:
        check_writable_dir(args.run_dir, "--run-dir")
    try:
        if args.run_dir is None:
            from deepmt.experiment_cache import run_experiment

            res = run_experiment(args.method, cfg, force=args.force)
            if ddp.current().is_main:
                print(f"{'loaded from cache' if res.from_cache else 'trained'}: {args.method} ({cfg.profile}, key {cfg.key()})")
                print(f"run folder: {res.run_dir}")
                _print_metrics("validation", res.val_metrics)
                _print_metrics("test", res.metrics)
                print(f"checkpoint: {res.checkpoint}")
            return 0
        return _train_into(args, cfg)
    finally:
        ddp.cleanup(ddp.current())


def check_fits(method: str, cfg, purpose: str) -> None:
    """:func:`deepmt.engine.resources.check_fits`: the sizes fit together and the method fits this machine's memory
    (a one-line SettingError / ResourceError otherwise)."""
    from deepmt.engine.resources import check_fits as fits

    fits(method, cfg, purpose)


def _train_into(args: argparse.Namespace, cfg) -> int:
    """Train into ``--run-dir``; ``cfg`` is already resolved for ``args.method`` by :func:`run_train`
    (:func:`deepmt.experiment_cache.resolve_config`, the resolution the cache uses)."""
    from deepmt.data import build_datasets
    from deepmt.engine import ddp
    from deepmt.engine.trainer import grade_counts, train
    from deepmt.models.methods import build_method
    from deepmt.utils import atomic_write_text, seed_everything

    run_dir = Path(args.run_dir)
    if (run_dir / "last.pt").exists() and not args.resume:
        raise DeepMTError(
            f"{run_dir} already holds a run (last.pt); pass --resume to continue it, or choose another --run-dir"
        )
    if args.resume and not (run_dir / "last.pt").exists():
        raise DeepMTError(f"--resume: {run_dir / 'last.pt'} does not exist; start the run without --resume")
    datasets = build_datasets(cfg.data)
    counts = grade_counts(datasets["train"])
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    method = build_method(args.method, cfg, class_counts=counts)
    res = train(method, cfg, datasets, run_dir, resume=args.resume, class_counts=counts)
    if ddp.current().is_main:
        summary = {"method": args.method, "val": res.val_metrics, "test": res.test_metrics, "best": res.best,
                   "train_seconds": res.train_seconds}
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=float))
        _print_metrics("validation", res.val_metrics)
        _print_metrics("test", res.test_metrics)
        print(f"checkpoint: {res.checkpoint}")
    return 0


# =========================================================================== evaluate
def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Evaluate a checkpoint (final.pt or best-<stage>.pt) on a dataset split: grading (accuracy, QWK, ...), "
        "ISR (PSNR/SSIM) and lesion segmentation (AUPR/AUC/Dice) for the tasks the method has."
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint file written by train (e.g. RUN_DIR/final.pt)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="split to evaluate (default test)")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="evaluate on another dataset than the one trained on (default: the checkpoint's)")
    p.add_argument("--data-root", default=None, help="root folder of that real dataset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="data.* overrides for the evaluation data, e.g. --set data.degradation.noise_std=0.02")
    p.add_argument("--out", default=None, help="write the metrics to this JSON file")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")


def run_evaluate(args: argparse.Namespace) -> int:
    from deepmt.data import build_datasets
    from deepmt.engine.checkpoint import checkpoint_config, load_weights_checkpoint
    from deepmt.engine.evaluate import evaluate
    from deepmt.experiment_cache import load_method
    from deepmt.utils import atomic_write_text

    if args.out:
        check_writable_dir(Path(args.out).parent, "--out")
    path, ckpt = load_weights_checkpoint(args.checkpoint)
    cfg = checkpoint_config(ckpt)
    overrides: dict[str, object] = {}
    if args.dataset:
        overrides["data.dataset"] = args.dataset
    if args.data_root:
        overrides["data.root"] = str(args.data_root)
    if args.device:
        overrides["train.device"] = args.device
    sets = parse_set_items(args.set)
    bad = [k for k in sets if not k.startswith("data.")]
    if bad:
        raise ConfigMismatchError(f"evaluate --set only changes data.* settings (the model is fixed), not {bad}")
    overrides.update(sets)
    cfg = cfg.replace(overrides)
    check_fits(ckpt["method"], cfg, "evaluate")
    method = load_method(path, device=cfg.train.device)
    data = build_datasets(cfg.data, (args.split,))[args.split]
    metrics, _ = evaluate(method, data, cfg, desc=f"evaluate {args.split}")
    _print_metrics(f"{ckpt['method']} on {cfg.data.dataset}/{args.split}", metrics)
    if args.out:
        record = {"checkpoint": str(args.checkpoint), "method": ckpt["method"], "dataset": cfg.data.dataset,
                  "split": args.split, "metrics": metrics}
        atomic_write_text(args.out, json.dumps(record, indent=2, default=float))
        print(f"metrics written to {args.out}")
    return 0


# =========================================================================== predict
def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Super-resolve, segment lesions and grade DR on any RGB fundus photos with a trained checkpoint. "
        "Each photo is prepared like the training data (FOV crop, square pad, resize to the checkpoint's HR size) and "
        "degraded to LR with the checkpoint's degradation, unless --input-is-lr. Writes, per image, <stem>_sr.png, "
        "<stem>_lesions.png (lesions with probability >= --threshold outlined: MA magenta, HE blue, EX green, SE cyan) "
        "and <stem>.json (grade probabilities, predicted grade, lesion areas in px and % of FOV at that threshold); <stem> is "
        "the file name without its extension, which photos sharing a stem keep (eye.png, eye.jpg -> eye_png, eye_jpg). "
        "A photo that cannot be used is reported and skipped; the command ends with a summary and exits 1 if any failed. "
        "Grayscale photos and photos whose field of view is far below the model's input size are refused unless --force."
    )
    p.add_argument("images", nargs="*", metavar="IMAGE", help="fundus photos (JPEG, PNG, TIFF)")
    p.add_argument("--checkpoint", default=None, help="checkpoint written by train (RUN_DIR/final.pt); required")
    p.add_argument("--out", default="predictions", help="output folder (default ./predictions)")
    p.add_argument("--input-is-lr", action="store_true",
                   help="the photos already are low-resolution inputs: resize them to the LR size instead of degrading them")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="lesion probability in [0, 1] from which a pixel counts as lesion: it is outlined in <stem>_lesions.png "
                   "and counted in the JSON's lesion areas (default 0.5; lower finds more, and more false, lesion)")
    p.add_argument("--force", action="store_true",
                   help="predict grayscale photos and photos far below the model's input size too (refused by default: "
                   "the model saw only colour photos of its size), with a warning in their JSON")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")


def run_predict(args: argparse.Namespace) -> int:
    if not args.checkpoint:
        run_dir = "runs/deepmt_dr"
        print(
            "predict needs a trained checkpoint (--checkpoint CKPT). Train one with:\n"
            f"    {_train_command(DEFAULT_METHOD, 'quick', run_dir)}\n"
            "(minutes on a CPU; --profile smoke trains one in seconds, to try the command: its predictions mean nothing)\n"
            "then run:\n"
            f"    python -m deepmt predict {' '.join(args.images) or 'IMAGE...'} --checkpoint {run_dir}/final.pt --out {args.out}",
            file=sys.stderr,
        )
        return 2
    if not args.images:
        print("predict: give at least one IMAGE (a fundus photo file)", file=sys.stderr)
        return 2
    if not 0.0 <= args.threshold <= 1.0:
        raise ConfigMismatchError(f"--threshold {args.threshold}: must be a probability in [0, 1]")
    from deepmt.engine.checkpoint import checkpoint_config, load_weights_checkpoint
    from deepmt.engine.predict import predict_images
    from deepmt.experiment_cache import load_method

    check_writable_dir(args.out, "--out")
    path, ckpt = load_weights_checkpoint(args.checkpoint)
    cfg = checkpoint_config(ckpt)
    if args.device:
        cfg = cfg.replace({"train.device": args.device})
    check_fits(ckpt["method"], cfg, "predict")
    method = load_method(path, device=cfg.train.device)
    report = predict_images(method, cfg, args.images, args.out, input_is_lr=args.input_is_lr,
                            threshold=args.threshold, checkpoint=path, force=args.force)
    for s in report.predictions:
        grade = f"grade {s['predicted_grade']} ({s['predicted_grade_name']}, p={s['grade_probs'][str(s['predicted_grade'])]:.2f})" \
            if "predicted_grade" in s else "no grade"
        areas = ", ".join(f"{k} {v:.2f}%" for k, v in s.get("lesion_area_pct_fov", {}).items())
        print(f"{s['image']}: {grade}" + (f"; lesions (% of FOV): {areas}" if areas else "") + f" -> {s['outputs']['json']}")
        for note in s["warnings"]:
            print(f"  warning: {note}")
    n_ok, n_failed = len(report.predictions), len(report.failed)
    print(f"predict: {n_ok} ok, {n_failed} failed" + (f" (outputs in {args.out})" if n_ok else ""),
          file=sys.stderr if n_failed else sys.stdout)
    for image, reason in report.failed:
        print(f"  failed: {reason}" if image in reason else f"  failed: {image}: {reason}", file=sys.stderr)
    return 1 if n_failed else 0
