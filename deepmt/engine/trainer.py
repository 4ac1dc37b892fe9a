"""The one training engine, for DeepMT-DR's staged schedule and every baseline.

For each stage of ``method.stages`` (DeepMT-DR: ``stage1a`` ISR + segmentation, ``stage1b``
grading + fusion with segmentation frozen, ``stage2`` joint fine-tuning with the task-aware
loss; baselines: e.g. ``("single",)``):

1. freeze every parameter, unfreeze ``method.stage_parameters(stage)`` (BatchNorm layers whose
   parameters are all frozen run in eval mode, so frozen parts keep their statistics);
2. AdamW (``lr = method.stage_lr(stage)``, ``cfg.train.weight_decay``; batches of ``method.stage_batch_size(stage)``) with a OneCycle schedule
   (cosine annealing after a short warm-up) over ``method.stage_epochs(stage)`` epochs;
3. every step: ``total, terms = method.training_loss(batch, stage)`` under autocast, backward
   (with a GradScaler for fp16), gradient clipping at ``cfg.train.grad_clip``;
4. after every epoch (every ``cfg.train.validation_interval(n_epochs)``-th, i.e. ``train.val_every`` or more often in a
   short stage under ``train.val_min_points``, and the stage's last): validation on the ``val`` split
   (``cfg.train.patience`` > 0: the stage stops once that many epochs have passed since its best validated one), model selection on
   ``method.selection_metric(stage)`` (higher is better; validation only), ``last.pt``, and
   ``best-<stage>.pt`` when the score improved; at the end of the stage the best epoch's
   weights are restored. The score is ``method.selection_score(stage, val, start_val)`` (by default
   the selection metric). Where ``method.keeps_start_candidate(stage)`` (DeepMT-DR's stage 2), the
   weights the stage starts from are evaluated first and compete as "epoch 0": the stage never keeps
   a model worse on validation than the one it started from, and says so when it keeps that one.
   Under ``train.module_selection="per_module"`` a subnet named by ``method.selection_groups(stage)`` is
   kept at the best epoch of its own validation metric instead (DeepMT-DR's stage 1a: the ISR at its best
   PSNR, the segmentation at its best AUPR); ``best_info[stage]["groups"]`` records those epochs.

At the end of every stage the RNG states (all ranks) are also written to ``stage-end-<stage>.pt``
(no weights: those are in ``best-<stage>.pt``), so that a warm-started run (below) can continue from
exactly where the stage ended.

**Warm start** (``train(..., init={...})``, used by :func:`deepmt.experiment_cache.run_experiment` with
``warm_start=``): when no ``last.pt`` is resumed, ``init = {"model": state_dict, "stage_index": k,
"history": [rows of the earlier stages], "best_info": {...}, "rng": [per-rank states] or None,
"from": label}`` loads the weights and starts at stage index ``k``. The earlier stages' history rows
are kept, each marked with ``warm_start_from = init["from"]`` (rows trained by this call leave that
column empty); ``train_seconds`` counts only the stages trained here. Without ``init["rng"]`` the
RNGs are seeded from ``cfg.train.seed`` as for a fresh run.

Each stage iterates over the training images it can learn from (:func:`stage_train_set`): all of them where
``method.stage_uses_unlabelled(stage)`` (super-resolution: HR images alone), else only the labelled ones, so
that under ``data.label_fraction`` < 1 a batch is never mostly unlabelled and an epoch is one pass over what the
stage learns from (with every image labelled, the default, both are the whole split: the same batches).

A training split smaller than ``train.batch_size`` is padded to one full batch per epoch (see
:func:`deepmt.engine.device.make_loader`); under DDP a rank's share smaller than the batch is one
smaller batch. ``train.batch_size=1`` on a method whose BatchNorm then sees a single value per
channel stops with a :class:`deepmt.errors.ConfigMismatchError` naming the setting.

The test split is evaluated once, after the last stage. ``train(..., resume=True)`` continues
from ``run_dir/last.pt`` (model, optimiser, scheduler, scaler, RNG states, position) and ends
with the same numbers as an uninterrupted run. Files in ``run_dir``: ``config.json``,
``metrics.csv`` (one row per epoch: loss terms, ``val_*`` metrics, lr,
seconds, images/s), ``last.pt``, ``best-<stage>.pt``, ``final.pt``.

No host synchronisation happens inside the step loop: loss terms are summed on the device and
read (``.item()``) only every ``cfg.train.log_every`` steps and at the end of the epoch, where a
non-finite loss raises :class:`deepmt.errors.TrainingError` naming stage, epoch, step and term.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from deepmt.data.partial_masks import labelled_subset
from deepmt.data.transforms import AugmentedDataset, TrainAugment
from deepmt.engine import ddp
from deepmt.engine.checkpoint import (
    check_config,
    config_json,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from deepmt.engine.device import (
    make_loader,
    place_model,
    resolve_device,
    resolve_precision,
    setup_backends,
    to_device,
)
from deepmt.engine.evaluate import evaluate
from deepmt.errors import ConfigMismatchError, DataError, TrainingError
from deepmt.models.base import freeze_for_stage, set_train_mode
from deepmt.utils import atomic_write_text, seed_everything

_NONE = 2**62  # "no non-finite step seen" marker of the on-device NaN tracker


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank; predictions only on rank 0)."""

    run_dir: Path
    checkpoint: Path  # final.pt: the trained method
    history: pd.DataFrame  # one row per epoch
    best: dict[str, dict[str, float]]  # stage -> {"score", "epoch", "metric"}
    val_metrics: dict[str, float]
    test_metrics: dict[str, float] | None = None
    test_predictions: dict[str, np.ndarray] | None = None
    train_seconds: float = 0.0
    resumed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
def grade_counts(dataset) -> list[int]:
    """Training grade counts (for class-weighted CE): ``dataset.grades`` if present, else read every sample."""
    grades = getattr(dataset, "grades", None)
    if grades is None:
        grades = [int(dataset[i]["grade"]) for i in range(len(dataset))]
    g = np.asarray(list(grades), dtype=np.int64)
    return [int((g == k).sum()) for k in range(5)]


def stage_train_set(method, stage: str, train_set, cfg):
    """The training images ``stage`` learns from: the whole split where ``method.stage_uses_unlabelled(stage)``
    (super-resolution needs only HR images), else its labelled images (:func:`labelled_subset`; the split itself
    unless ``data.label_fraction`` < 1). Labelled images fewer than a batch are padded to one batch per epoch,
    like any small split (:func:`deepmt.engine.device.make_loader`). A stage that does not grade
    (``method.stage_grades``) trains on random HR crops of ``data.nongrading_crop_size`` px (and the aligned LR
    crops) when that is set; a stage that grades always sees whole images."""
    stage_set = train_set if method.stage_uses_unlabelled(stage) else labelled_subset(train_set)
    crop = getattr(cfg.data, "nongrading_crop_size", None)
    if crop is not None and not method.stage_grades(stage):
        stage_set = AugmentedDataset(stage_set, TrainAugment(cfg.data, flips=False, crop_size=int(crop)))
    return stage_set


def _state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _write_history(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite metrics.csv, the run's one per-epoch log, from the full history (atomic: a crash never leaves
    half a row). Resuming reads the history from ``last.pt``, not from this file."""
    atomic_write_text(run_dir / "metrics.csv", pd.DataFrame(rows).to_csv(index=False))


def _finite_or_neg_inf(x: Any) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return -math.inf
    return x if math.isfinite(x) else -math.inf


# --------------------------------------------------------------------------- the engine
@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (``cfg.train.threads``), restored afterwards.

    A run's CPU numbers depend on its thread count (how reductions are split), so the count is part of
    the config; 0 leaves torch's setting (all cores: the numbers then depend on the machine)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise TrainingError(f"train.threads={threads!r}: expected a whole number >= 0 (0 = torch's default)")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(
    method: nn.Module,
    cfg,
    datasets: Mapping[str, Any],
    run_dir: str | Path,
    resume: bool = False,
    *,
    class_counts: list[int] | None = None,
    evaluate_test: bool = True,
    init: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``method`` stage by stage on ``datasets["train"]``, selecting on ``datasets["val"]``.

    ``resume=True`` continues from ``run_dir/last.pt`` when it exists (a checkpoint made with a
    different config raises :class:`deepmt.errors.ConfigMismatchError`); otherwise training starts
    afresh. ``class_counts`` is only recorded in the checkpoints (so ``load_method`` can rebuild
    the method exactly). ``init`` warm-starts a run at a later stage (see the module docstring); a
    ``last.pt`` to resume takes precedence over it. Under ``torchrun`` this runs data-parallel (see
    :mod:`deepmt.engine.ddp`). Runs with ``cfg.train.threads`` torch CPU threads (:func:`cpu_threads`).
    """
    with cpu_threads(cfg.train.threads):
        return _train(method, cfg, datasets, run_dir, resume, class_counts=class_counts,
                      evaluate_test=evaluate_test, init=init)


def _train(method, cfg, datasets, run_dir, resume, *, class_counts, evaluate_test, init) -> TrainResult:
    ctx = ddp.init_from_env(cfg.train.device)
    device = resolve_device(cfg.train.device, ctx.local_rank)
    prec = resolve_precision(device, cfg.train.precision, cfg.train.channels_last)
    setup_backends(device)
    run_dir = Path(run_dir)
    if "train" not in datasets:
        raise DataError("train(): datasets has no 'train' split")
    stages = tuple(method.stages)
    train_set = datasets["train"]
    stage_sets = {stage: stage_train_set(method, stage, train_set, cfg) for stage in stages
                  if int(method.stage_epochs(stage, cfg.train)) > 0}
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path = run_dir / "last.pt"

    place_model(method, prec)  # device, memory format, CPU oneDNN guards

    generator = torch.Generator()
    generator.manual_seed(cfg.train.seed + ctx.rank)
    history: list[dict[str, Any]] = []
    best_info: dict[str, dict[str, float]] = {}
    start_stage, start_epoch, elapsed = 0, 0, 0.0
    ckpt: dict[str, Any] | None = None
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path, map_location="cpu")
        check_config(ckpt, cfg, last_path, method=method.name)
        method.load_state_dict(ckpt["model"])
        start_stage, start_epoch = int(ckpt["stage_index"]), int(ckpt["epoch"])
        history = json.loads(ckpt["history"])
        best_info = json.loads(ckpt.get("best_info", "{}"))
        elapsed = float(ckpt.get("elapsed", 0.0))
        rng = ckpt["rng"]
        if len(rng) == ctx.world_size:
            set_rng_state(rng[ctx.rank], generator)
        else:  # resumed with another world size: exact replay is impossible, stay deterministic
            seed_everything(cfg.train.seed + ctx.rank + 1000 * (len(history) + 1), cfg.train.deterministic)
    elif init is not None:
        start_stage = int(init["stage_index"])
        if not 0 <= start_stage <= len(stages):
            raise TrainingError(f"init: stage_index {start_stage} is outside the stages {stages}")
        method.load_state_dict(init["model"])
        label = str(init.get("from", "init"))
        history = [{**dict(r), "warm_start_from": label} for r in init.get("history", [])]
        best_info = {k: dict(v) for k, v in dict(init.get("best_info", {})).items()}
        seed_everything(cfg.train.seed + ctx.rank, cfg.train.deterministic)
        rng = init.get("rng")
        if rng is not None and len(rng) == ctx.world_size:
            set_rng_state(rng[ctx.rank], generator)
        elif rng is not None:  # another world size: stay deterministic
            seed_everything(cfg.train.seed + ctx.rank + 1000 * (len(history) + 1), cfg.train.deterministic)
    else:
        seed_everything(cfg.train.seed + ctx.rank, cfg.train.deterministic)
    resumed = ckpt is not None

    meta = {"method": method.name, "config": config_json(cfg), "class_counts": class_counts}
    if ctx.is_main:
        atomic_write_text(run_dir / "config.json", json.dumps({"method": method.name, **cfg.to_dict()}, indent=2, default=str))
        if not resumed:
            (run_dir / "metrics.csv").unlink(missing_ok=True)

    def save_last(stage_index: int, epoch: int, opt=None, sched=None, scaler=None, best=None) -> None:
        rng = ddp.gather_objects(get_rng_state(generator), ctx)
        if not ctx.is_main:
            return
        state = {
            **meta,
            "kind": "last",
            "model": method.state_dict(),
            "stage_index": stage_index,
            "stage": stages[stage_index] if stage_index < len(stages) else "done",
            "epoch": epoch,
            "rng": rng,
            "history": json.dumps(history, default=float),
            "best_info": json.dumps(best_info),
            "elapsed": elapsed,
        }
        if opt is not None:
            state.update(optimizer=opt.state_dict(), scheduler=sched.state_dict(), scaler=scaler.state_dict())
        if best is not None and best.get("model") is not None:
            state.update(best_model=best["model"], best_score=best["score"], best_epoch=best["epoch"])
        save_checkpoint(last_path, state)

    def save_stage_end(stage_index: int) -> None:
        """RNG states where stage ``stage_index`` ended (its weights are ``best-<stage>.pt``)."""
        rng = ddp.gather_objects(get_rng_state(generator), ctx)
        if ctx.is_main:
            save_checkpoint(run_dir / f"stage-end-{stages[stage_index]}.pt", {
                **meta, "kind": "stage_end", "stage_index": stage_index + 1, "stage": stages[stage_index],
                "epoch": 0, "rng": rng, "best_info": json.dumps(best_info),
            })

    val_set = datasets.get("val")
    for si in range(start_stage, len(stages)):
        stage = stages[si]
        n_epochs = int(method.stage_epochs(stage, cfg.train))
        val_every = cfg.train.validation_interval(n_epochs)
        patience = int(cfg.train.patience) if val_set is not None else 0
        params = [p for p in method.stage_parameters(stage)]
        if n_epochs <= 0 or not params:
            continue
        stage_set = stage_sets[stage]
        freeze_for_stage(method, params)
        model = ddp.wrap(method, ctx, device)
        metric_name = method.selection_metric(stage)
        lr = float(method.stage_lr(stage, cfg.train))
        bs = int(method.stage_batch_size(stage, cfg.train))
        sampler = None
        if ctx.enabled:
            sampler = torch.utils.data.DistributedSampler(
                stage_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.train.seed, drop_last=True
            )
        per_rank = len(stage_set) // ctx.world_size
        loader = make_loader(  # a split smaller than the batch is padded to one full batch (see make_loader)
            stage_set, bs, prec=prec, num_workers=cfg.data.num_workers, shuffle=True,
            drop_last=per_rank > bs, generator=generator, sampler=sampler, pad_to_batch=True,
        )
        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:
            raise DataError(f"stage {stage!r}: the training split is empty")
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.train.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=max(2, n_epochs * steps_per_epoch), pct_start=0.15, anneal_strategy="cos"
        )
        scaler = prec.grad_scaler()
        best: dict[str, Any] = {"score": -math.inf, "epoch": 0, "model": None}
        # subnets kept at their own best epoch (train.module_selection): their keys in best["model"] come from
        # group_best's epoch, the rest from best["epoch"]; resumed from best_info like every other record
        groups_of = getattr(method, "selection_groups", None)  # optional in the Method contract
        groups = dict(groups_of(stage)) if groups_of is not None and cfg.train.module_selection == "per_module" else {}
        group_best = {g: {"score": -math.inf, "epoch": 0, "metric": metric} for g, (_, metric) in groups.items()}
        first_epoch = 0
        if ckpt is not None and si == start_stage and start_epoch > 0:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            if "best_model" in ckpt:
                best = {"score": float(ckpt["best_score"]), "epoch": int(ckpt["best_epoch"]), "model": ckpt["best_model"]}
            for g, rec in dict(best_info.get(stage, {}).get("groups") or {}).items():
                if g in group_best:
                    group_best[g] = {"score": float(rec["score"]), "epoch": int(rec["epoch"]), "metric": rec["metric"]}
            first_epoch = start_epoch
        # the weights the stage starts from compete for selection (e.g. stage 2 vs the stage-1 weights)
        start_val = dict(best_info.get(stage, {}).get("start_val") or {}) or None
        if val_set is not None and first_epoch == 0 and method.keeps_start_candidate(stage):
            if ctx.is_main:
                start_val, _ = evaluate(method, val_set, cfg, progress=False, desc=f"val {stage} start")
            start_val = ddp.broadcast_object(start_val, ctx)
            s0 = _finite_or_neg_inf(method.selection_score(stage, start_val, start_val))
            best = {"score": s0, "epoch": 0, "model": _state_copy(method)}
            best_info[stage] = {"score": s0, "epoch": 0, "metric": metric_name, "start_val": start_val}
            if ctx.is_main:
                save_checkpoint(run_dir / f"best-{stage}.pt", {
                    **meta, "kind": "best", "model": best["model"], "stage_index": si, "stage": stage, "epoch": 0, "score": s0,
                })

        bar = tqdm(
            range(first_epoch, n_epochs), desc=f"{method.name}:{stage}", initial=first_epoch, total=n_epochs,
            disable=not (cfg.train.progress and ctx.is_main),
        )
        for epoch in bar:
            # early stopping (train.patience), checked before each epoch from the restored best: a resumed stage
            # stops exactly where the uninterrupted one did
            last_gain = max([best["epoch"], *(r["epoch"] for r in group_best.values())])
            if (patience and epoch > 0 and epoch % val_every == 0 and best["model"] is not None
                    and epoch - last_gain >= patience):
                best_info[stage]["stopped_after"] = epoch
                if ctx.is_main:
                    print(f"{method.name}:{stage}: stopped after epoch {epoch} of {n_epochs}: no better validation "
                          f"{metric_name} for {epoch - last_gain} epochs (train.patience={patience}); kept epoch "
                          f"{best['epoch']}", flush=True)
                break
            if sampler is not None:
                sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            terms_mean, n_images = _run_epoch(model, method, loader, opt, sched, scaler, params, prec, cfg, ctx, stage, epoch, bar)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            val = {}
            validated = val_set is not None and ((epoch + 1) % val_every == 0 or epoch + 1 == n_epochs)
            if validated:
                if ctx.is_main:
                    val, _ = evaluate(method, val_set, cfg, progress=False, desc=f"val {stage}")
                val = ddp.broadcast_object(val, ctx)
                for name in [metric_name, *(r["metric"] for r in group_best.values())]:
                    if name not in val:
                        raise TrainingError(
                            f"stage {stage!r}: selection metric {name!r} is not among the validation metrics "
                            f"{sorted(val)}"
                        )
            if val_set is None:  # no val split: the last epoch wins
                score = float(epoch)
                improved = best["model"] is None or score > best["score"]
            elif validated:
                score = _finite_or_neg_inf(method.selection_score(stage, val, start_val))
                improved = best["model"] is None or score > best["score"]
            else:  # not validated after this epoch (train.val_every): it cannot be selected
                score, improved = math.nan, False
            if improved:
                new_best = _state_copy(method)
                for g, (prefixes, _) in groups.items():  # a group keeps its own best epoch's weights
                    if group_best[g]["epoch"] > 0 and best["model"] is not None:
                        new_best.update({k: v for k, v in best["model"].items() if k.startswith(prefixes)})
                best = {"score": score, "epoch": epoch + 1, "model": new_best}
            group_improved = []
            if validated and best["model"] is not None:
                for g, (prefixes, metric) in groups.items():
                    g_score = _finite_or_neg_inf(float(val[metric]))
                    if group_best[g]["epoch"] == 0 or g_score > group_best[g]["score"]:
                        group_best[g] = {"score": g_score, "epoch": epoch + 1, "metric": metric}
                        best["model"].update({k: v for k, v in _state_copy(method).items() if k.startswith(prefixes)})
                        group_improved.append(g)
            row = {
                "stage": stage, "epoch": epoch + 1, "global_epoch": len(history) + 1,
                **{f"loss_{k}": v for k, v in terms_mean.items()},
                **{f"val_{k}": v for k, v in val.items()},
                "selection_metric": metric_name, "selection_score": score, "best": bool(improved),
                **{f"best_{g}": g in group_improved for g in groups},
                "lr": float(sched.get_last_lr()[0]), "seconds": seconds, "images_per_s": n_images / max(seconds, 1e-9),
            }
            history.append(row)
            best_info[stage] = {"score": best["score"], "epoch": best["epoch"], "metric": metric_name,
                                **({"start_val": start_val} if start_val else {}),
                                **({"groups": {g: dict(r) for g, r in group_best.items()}} if groups else {})}
            if (improved or group_improved) and ctx.is_main:
                save_checkpoint(run_dir / f"best-{stage}.pt", {
                    **meta, "kind": "best", "model": best["model"], "stage_index": si, "stage": stage,
                    "epoch": best["epoch"], "score": best["score"],
                })
            save_last(si, epoch + 1, opt, sched, scaler, best)
            if ctx.is_main:
                _write_history(run_dir, history)
                bar.set_postfix(loss=f"{terms_mean.get('total', float('nan')):.4g}", **{metric_name: f"{score:.4g}"})
        bar.close()
        if best["model"] is not None:
            # state that records how the stage ran (not weights) survives the restore of the best epoch
            kept = tuple(method.kept_across_selection())
            keep = {k: v.clone() for k, v in method.state_dict().items() if kept and k.startswith(kept)}
            method.load_state_dict(best["model"])
            if keep:
                method.load_state_dict(keep, strict=False)
            if best["epoch"] == 0 and n_epochs > 0 and ctx.is_main:
                print(f"{method.name}:{stage}: no epoch beat the weights the stage started from on validation "
                      f"({metric_name}{', within the PSNR floor' if start_val and 'psnr' in start_val else ''}); kept those",
                      flush=True)
        del model, opt, sched
        save_stage_end(si)  # before last.pt moves on: a crash in between redoes both
        save_last(si + 1, 0)
        ddp.barrier(ctx)

    for p in method.parameters():
        p.requires_grad_(False)
    final_path = run_dir / "final.pt"
    val_metrics: dict[str, float] = {}
    test_metrics = test_pred = None
    if ctx.is_main:
        save_checkpoint(final_path, {
            **meta, "kind": "final", "model": method.state_dict(), "stage_index": len(stages), "stage": "done",
            "epoch": 0, "best_info": json.dumps(best_info), "elapsed": elapsed,
        })
        if val_set is not None:
            val_metrics, _ = evaluate(method, val_set, cfg, desc="val")
        if evaluate_test and datasets.get("test") is not None:
            test_metrics, test_pred = evaluate(method, datasets["test"], cfg, desc="test")
    val_metrics, test_metrics = ddp.broadcast_object((val_metrics, test_metrics), ctx)
    ddp.barrier(ctx)
    return TrainResult(
        run_dir=run_dir, checkpoint=final_path, history=pd.DataFrame(history), best=best_info,
        val_metrics=val_metrics, test_metrics=test_metrics, test_predictions=test_pred,
        train_seconds=elapsed, resumed=resumed,
    )


def _run_epoch(model, method, loader, opt, sched, scaler, params, prec, cfg, ctx, stage, epoch, bar):
    """One epoch of optimisation; returns (mean loss terms incl. ``total``, images seen on this rank)."""
    set_train_mode(method)
    device = prec.device
    names: list[str] | None = None
    sums = first_bad = None
    step_t = torch.zeros((), dtype=torch.int64, device=device)
    n_images = 0
    log_every = max(1, int(cfg.train.log_every))
    n_steps = len(loader)
    for step, batch in enumerate(loader):
        n_images += int(batch["hr"].shape[0]) if "hr" in batch else 0
        b = to_device(batch, prec)
        try:
            with prec.autocast():
                total, terms = model(b, stage)
        except ValueError as exc:  # BatchNorm in training mode cannot normalise a single value
            if "more than 1 value per channel" not in str(exc):
                raise
            bs = method.stage_batch_size(stage, cfg.train)
            setting = "train.batch_size" if bs == cfg.train.batch_size else "train.grading_batch_size"
            raise ConfigMismatchError(
                f"{setting}={bs}: a BatchNorm layer of {method.name!r} (stage "
                f"{stage!r}) sees one value per channel at this batch and image size, which it cannot normalise; use "
                f"{setting} >= 2"
            ) from exc
        if names is None:
            names = ["total", *terms.keys()]
            sums = torch.zeros(len(names), dtype=torch.float32, device=device)
            first_bad = torch.full((len(names),), _NONE, dtype=torch.int64, device=device)
        elif list(terms.keys()) != names[1:]:
            raise TrainingError(
                f"stage {stage!r}, epoch {epoch + 1}, step {step + 1}: training_loss returned terms "
                f"{list(terms)} but {names[1:]} before"
            )
        scaler.scale(total).backward()
        if cfg.train.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
        vec = torch.stack([total.detach().float(), *(t.detach().float().reshape(()) for t in terms.values())])
        bad = ~torch.isfinite(vec)
        first_bad = torch.where(bad, torch.minimum(first_bad, step_t), first_bad)
        sums += torch.where(bad, torch.zeros_like(vec), vec)
        step_t += 1
        if (step + 1) % log_every == 0 or step + 1 == n_steps:  # the only host syncs of the loop
            _raise_if_not_finite(first_bad, names, ctx, stage, epoch)
            if bar is not None and not bar.disable:
                bar.set_postfix(step=f"{step + 1}/{n_steps}", loss=f"{(sums[0] / (step + 1)).item():.4g}")
    if names is None:
        return {}, 0
    means = ddp.all_reduce_mean(sums / max(1, n_steps), ctx).tolist()
    return dict(zip(names, means)), n_images


def _raise_if_not_finite(first_bad: torch.Tensor, names: list[str], ctx, stage: str, epoch: int) -> None:
    fb = ddp.all_reduce_min(first_bad, ctx).tolist()
    worst = min(fb)
    if worst >= _NONE:
        return
    culprits = [n for n, s in zip(names, fb) if s == worst and n != "total"] or ["total"]
    raise TrainingError(
        f"non-finite loss in stage {stage!r}, epoch {epoch + 1}, step {worst + 1}: term(s) {', '.join(culprits)} "
        "became NaN/Inf; the run stopped and the last good checkpoint (last.pt) was kept"
    )
