"""What ``python -m deepmt plan`` measures on this machine: seconds per training image of each distinct (method,
stage, training size, config that changes the work), per evaluated image, per epoch checkpoint, and per generated
and loaded synthetic image.

* **Training**: real optimisation steps (:func:`deepmt.bench.steps.make_train_step`: the engine's fast path,
  bf16 autocast + channels_last where the CPU has bf16, AdamW, clipping) at ``train.batch_size`` with
  ``torch.set_num_threads(train.threads)``, on a random batch at the stage's training size (labelled / annotated
  shares as the config's fractions make them): ``warmup`` steps, then the median of the steps timed in about
  ``seconds`` (at least ``repeats``; :func:`deepmt.bench.measure.time_repeated`). :meth:`Meter.second_round` times
  every step once more and keeps the faster median: on a shared machine a burst of other work slows one window,
  rarely both. Plus the loading of a training image (:meth:`Meter.loading`: the engine's DataLoader over a small
  synthetic split in a temporary cache, augmentation and collation included), which the trainer's epoch seconds
  include. Back to back in one process, the trainer's epochs and these numbers agree within a few percent.
* **Evaluation**: :func:`deepmt.engine.evaluate.evaluate` (forward and every metric) over one evaluation batch of
  random whole images, after a warm-up at the same shapes. **Checkpoints**: one epoch's ``last.pt`` (weights,
  AdamW state, the best epoch's weights) written to a temporary folder.
* **Generation**: a small split written by :func:`deepmt.data.synthetic.build_synthetic_splits` to a temporary
  cache, per image (the user's cache is never written).

Every measurement is cached by its key (:func:`work_key`, :func:`eval_key`) for the run: the quick grid takes
about 120 measurements, two minutes on a 2-core CPU. Workers: the plan's runs train ``W`` at a time, one thread
each. By default the steps are timed alone, on the assumption that with ``W x threads`` <= the usable cores each
worker runs at the speed of one thread alone (beyond that, every time is scaled by ``W x threads / cores``).
``busy=True`` instead times them while ``W - 1`` other processes train (a DeepMT-DR stage-1a step in a loop, one
thread each), which measures the contention (memory bandwidth, shared caches) rather than assuming none: on the
2-core VM of docs/PERFORMANCE.md it was +2%.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Iterator

import torch

from deepmt.config import Config
from deepmt.grid_log import flat_fields

#: images of the split generated to time the synthetic generator
GEN_IMAGES = 48
#: timed calls per measurement at most (cheap steps repeat until the measurement's seconds are spent)
MAX_REPEATS = 40
#: config fields that change neither the work of a training step nor that of an evaluated image
IGNORED_PREFIXES = ("data.synth.", "data.degradation.")
IGNORED = frozenset({
    "data.seed", "data.root", "data.n_train", "data.n_val", "data.n_test", "data.val_fraction", "data.label_fraction",
    "data.num_workers", "data.nongrading_crop_size", "data.crop_size",
    "train.seed", "train.lr", "train.lr_stage2_factor", "train.weight_decay", "train.selection_metric", "train.log_every",
    "train.progress", "train.stage2_max_psnr_drop", "train.val_every", "train.patience", "train.epochs_by_method", "train.epochs_stage1a",
    "train.epochs_stage1b", "train.epochs_stage2", "train.epochs_single",
    "model.vis.iou_threshold", "model.vis.binarize_threshold",
    "loss.focal_alpha", "loss.focal_gamma", "loss.feedback_ratio", "loss.feedback_scaling", "loss.calibration_batches",
    "loss.class_weights",
})
#: loss weights: only whether a term is on changes the work (a weight of 0 skips the term)
WEIGHTS = frozenset({"loss.tv", "loss.seg_dice", "loss.seg_focal", "loss.seg_aware", "loss.cls_aware",
                     "loss.grading_feedback", "loss.vis_consistency", "loss.unsupervised", "loss.seg_weight_in_joint",
                     "loss.seg_deep", "train.grad_clip"})


def work_key(cfg: Config, *parts: Any) -> str:
    """A key of the config fields that change the work per image (the rest ignored, loss weights as on/off;
    ``data.mask_fraction`` only where the unsupervised term uses it), with ``parts`` (method, stage, size)."""
    flat = {k: v for k, v in flat_fields(cfg).items() if k not in IGNORED and not k.startswith(IGNORED_PREFIXES)}
    for k in WEIGHTS & set(flat):
        flat[k] = bool(flat[k])
    if not flat.get("loss.unsupervised"):
        flat.pop("data.mask_fraction", None)
    return json.dumps([list(map(str, parts)), flat], sort_keys=True, default=str)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block (``n`` <= 0: unchanged), restored afterwards."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def temporary_cache() -> Iterator[str]:
    """``$DEEPMT_CACHE`` pointed at a temporary folder inside the block (the user's cache is never written)."""
    before = os.environ.get("DEEPMT_CACHE")
    with tempfile.TemporaryDirectory(prefix="deepmt-plan-") as tmp:
        os.environ["DEEPMT_CACHE"] = tmp
        try:
            yield tmp
        finally:
            if before is None:
                os.environ.pop("DEEPMT_CACHE", None)
            else:
                os.environ["DEEPMT_CACHE"] = before


def _median_time(fn: Callable[[], Any], warmup: int, repeats: int, seconds: float) -> float:
    """Median seconds of ``fn`` after ``warmup`` calls: timed until ``seconds`` (warm-up included) are spent, at
    least ``repeats`` and at most :data:`MAX_REPEATS` times (:func:`deepmt.bench.measure.time_repeated`)."""
    from deepmt.bench.measure import time_repeated

    times = time_repeated(fn, torch.device("cpu"), seconds, warmup=warmup, min_repeats=max(1, repeats),
                          max_repeats=max(MAX_REPEATS, repeats))
    return statistics.median(times)


def eval_key(cfg: Config, method_name: str) -> str:
    """What an evaluated image's work depends on: the method, its model, the image sizes and the evaluation batch
    (not the losses, the epochs or the training data)."""
    flat = flat_fields(cfg)
    keep = {k: v for k, v in flat.items() if k.startswith("model.") or k in (
        "data.hr_size", "data.scale", "data.dataset", "train.eval_batch_size", "train.precision", "train.channels_last",
        "train.threads", "train.device", "train.deterministic")}
    return json.dumps(["eval", method_name, keep], sort_keys=True, default=str)


def training_batch(cfg: Config, size: int, batch_size: int, uses_unlabelled: bool) -> dict:
    """A random training batch at HR ``size``: the unannotated share (``data.mask_fraction``) has no masks and, for
    a stage that learns from unlabelled images, the unlabelled share (``data.label_fraction``) no grade either."""
    from deepmt.data.sample import random_batch

    b = random_batch(size, cfg.data.scale, batch_size, "cpu", seed=cfg.train.seed)
    masked = round(batch_size * float(cfg.data.mask_fraction))
    labelled = round(batch_size * float(cfg.data.label_fraction)) if uses_unlabelled else batch_size
    for i in range(batch_size):
        if i >= min(masked, labelled):
            b["mask_present"][i] = False
            b["masks"][i] = 0
        if i >= labelled:
            b["grade"][i] = -1
    return b


def _samples(cfg: Config, n: int) -> list[dict]:
    from deepmt.data.sample import random_batch

    b = random_batch(int(cfg.data.hr_size), cfg.data.scale, n, "cpu", seed=cfg.train.seed)
    return [{k: v[i] for k, v in b.items()} for i in range(n)]


def _burn(cfg_dict: dict, threads: int, started) -> None:  # pragma: no cover - runs in a spawned process
    """A busy worker: DeepMT-DR stage-1a steps in a loop (until terminated)."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    from deepmt.bench.steps import make_train_step
    from deepmt.config import config_from_dict

    cfg = config_from_dict(cfg_dict)
    torch.set_num_threads(max(1, threads))
    step, _ = make_train_step(cfg, "stage1a", "fast", torch.device("cpu"), int(cfg.train.batch_size), int(cfg.data.hr_size))
    step()
    started.set()
    while True:
        step()


class Meter:
    """Measures and caches seconds per image and per checkpoint (see the module doc); ``log`` prints a progress line."""

    def __init__(self, warmup: int = 2, repeats: int = 3, seconds: float = 1.0, log: Callable[[str], None] = print) -> None:
        self.warmup, self.repeats, self.seconds, self.log = int(warmup), int(repeats), float(seconds), log
        self.rows: list[dict[str, Any]] = []  # one per measurement: kind, method, stage, size, seconds per image
        self._cache: dict[str, float] = {}
        self._again: dict[str, tuple[dict[str, Any], Callable[[], float]]] = {}  # training: measured once more
        self.device = torch.device("cpu")

    def _cached(self, key: str, row: dict[str, Any], measure: Callable[[], float], again: bool = False) -> float:
        if key not in self._cache:
            self._cache[key] = self._measure(row, measure)
            if again:
                self._again[key] = (row, measure)
        return self._cache[key]

    def _measure(self, row: dict[str, Any], measure: Callable[[], float], note: str = "") -> float:
        t0 = time.perf_counter()
        value = float(measure())
        self.rows.append({**row, "s_per_image": value, "measure_s": round(time.perf_counter() - t0, 2), "round": 2 if note else 1})
        what = " ".join(str(row[k]) for k in ("kind", "method", "stage", "size") if row.get(k) not in (None, ""))
        self.log(f"  measured [{len(self.rows)}] {what}: {value * 1e3:.2f} ms/image{note}")
        return value

    def second_round(self) -> int:
        """Time every training step once more and keep the faster of the two medians (a burst of other work on a shared
        machine slows one window, rarely both). Returns how many were measured again."""
        for i, (key, (row, measure)) in enumerate(self._again.items(), 1):
            self._cache[key] = min(self._cache[key], self._measure(row, measure, f" (again, {i}/{len(self._again)})"))
        return len(self._again)

    # ------------------------------------------------------------------ the measurements
    def train(self, method_name: str, cfg: Config, stage: str, size: int, uses_unlabelled: bool,
              batch_size: int = 0) -> float:
        """Seconds per training image of ``stage`` at HR ``size`` and its training batch (``batch_size``; 0 =
        ``train.batch_size``): the step only; add :meth:`loading`."""
        from deepmt.bench.steps import make_train_step, mode_backends

        bs = int(batch_size or cfg.train.batch_size)

        def measure() -> float:
            with torch_threads(int(cfg.train.threads)), mode_backends("fast", self.device):
                batch = training_batch(cfg, size, bs, uses_unlabelled)
                step, _ = make_train_step(cfg, stage, "fast", self.device, bs, size, method_name=method_name, batch=batch)
                return _median_time(step, self.warmup, self.repeats, self.seconds) / bs

        row = {"kind": "train", "method": method_name, "stage": stage, "size": size}
        return self._cached(work_key(cfg, "train", method_name, stage, size, uses_unlabelled, *([bs] if bs != int(cfg.train.batch_size) else [])),
                            row, measure, again=True)

    def evaluate(self, method_name: str, cfg: Config) -> float:
        """Seconds per evaluated image (whole images: forward and metrics)."""
        from deepmt.bench.steps import build_bench_method, mode_backends, precision_for
        from deepmt.engine.device import place_model
        from deepmt.engine.evaluate import evaluate

        def measure() -> float:
            n = max(1, int(cfg.train.eval_batch_size))
            with torch_threads(int(cfg.train.threads)), mode_backends("fast", self.device):
                method = place_model(build_bench_method(cfg, "cpu", method_name), precision_for("fast", cfg, self.device))
                samples = _samples(cfg, n)
                # warm-up at the timed batch's shapes (a new shape makes oneDNN build its kernels again)
                return _median_time(lambda: evaluate(method, samples, cfg, progress=False), 1, 1, self.seconds) / n

        row = {"kind": "eval", "method": method_name, "stage": "", "size": int(cfg.data.hr_size)}
        return self._cached(eval_key(cfg, method_name), row, measure)

    def generation(self, data_cfg) -> float:
        """Seconds to generate one synthetic image and store it (a small split written to a temporary cache, as
        :mod:`deepmt.data.synthetic.store` writes every split); 0 for a real dataset: nothing is generated."""
        if data_cfg.dataset != "synthetic":
            return 0.0
        import dataclasses

        from deepmt.data.synthetic import build_synthetic_splits, generate_sample

        def measure() -> float:
            generate_sample(0, data_cfg, "train")  # first-call costs (imports) are not the generator's rate
            dcfg = dataclasses.replace(data_cfg, n_train=GEN_IMAGES)
            with temporary_cache():
                t0 = time.perf_counter()
                build_synthetic_splits(dcfg, ("train",), progress=False)
                return (time.perf_counter() - t0) / GEN_IMAGES

        key = json.dumps(["gen", data_cfg.hr_size, data_cfg.scale], default=str)
        row = {"kind": "generate", "method": "", "stage": f"x{data_cfg.scale}", "size": int(data_cfg.hr_size)}
        return self._cached(key, row, measure)

    def loading(self, cfg: Config) -> float:
        """Seconds to load one training image (the engine's DataLoader: decoding, augmentation, collation)."""
        if cfg.data.dataset != "synthetic":
            return 0.0
        import dataclasses

        from deepmt.bench.steps import precision_for
        from deepmt.data import build_datasets
        from deepmt.engine.device import make_loader, to_device

        def measure() -> float:
            bs = int(cfg.train.batch_size)
            with temporary_cache(), torch_threads(int(cfg.train.threads)):
                dcfg = dataclasses.replace(cfg.data, n_train=2 * bs, n_val=1, n_test=1, label_fraction=1.0, mask_fraction=1.0)
                train = build_datasets(dcfg, ("train",))["train"]
                prec = precision_for("fast", cfg, self.device)

                def epoch() -> None:
                    for b in make_loader(train, bs, prec=prec, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0)):
                        to_device(b, prec)

                return _median_time(epoch, 1, self.repeats, self.seconds) / (2 * bs)

        key = json.dumps(["load", cfg.data.hr_size, cfg.data.scale, cfg.data.crop_size, cfg.data.augment,
                          cfg.data.nongrading_crop_size, cfg.train.batch_size], default=str)
        row = {"kind": "load", "method": "", "stage": "", "size": int(cfg.data.hr_size)}
        return self._cached(key, row, measure)

    def checkpoint(self, method_name: str, cfg: Config) -> float:
        """Seconds to write one epoch's checkpoint (``last.pt``: weights, AdamW state of every parameter and the best
        epoch's weights, to a temporary folder), which the trainer writes after every epoch."""
        from deepmt.bench.steps import build_bench_method
        from deepmt.engine.checkpoint import save_checkpoint

        def measure() -> float:
            method = build_bench_method(cfg, "cpu", method_name)
            params = list(method.parameters())
            if not params:
                return 0.0
            opt = torch.optim.AdamW(params, lr=1e-3)
            for p in params:
                p.grad = torch.zeros_like(p)
            opt.step()
            state = {"model": method.state_dict(), "optimizer": opt.state_dict(),
                     "best_model": {k: v.clone() for k, v in method.state_dict().items()}}
            with tempfile.TemporaryDirectory(prefix="deepmt-plan-") as tmp:
                return _median_time(lambda: save_checkpoint(os.path.join(tmp, "last.pt"), state), 1, 2, 0.0)

        row = {"kind": "checkpoint", "method": method_name, "stage": "", "size": 0}
        return self._cached(eval_key(cfg, method_name).replace('"eval"', '"checkpoint"', 1), row, measure)

    # ------------------------------------------------------------------ contention
    @contextlib.contextmanager
    def busy(self, n: int, cfg: Config) -> Iterator[None]:
        """``n`` other processes train (one thread each) while the block measures; stopped afterwards."""
        procs = []
        if n > 0:
            ctx = multiprocessing.get_context("spawn")
            started = [ctx.Event() for _ in range(n)]
            procs = [ctx.Process(target=_burn, args=(cfg.to_dict(), max(1, int(cfg.train.threads)), e), daemon=True)
                     for e in started]
            for p in procs:
                p.start()
            for e in started:
                e.wait(timeout=120)
            self.log(f"  {n} busy worker process(es) training while measuring")
        try:
            yield
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.join(timeout=10)


__all__ = ["GEN_IMAGES", "IGNORED", "MAX_REPEATS", "Meter", "WEIGHTS", "eval_key", "temporary_cache", "torch_threads",
           "training_batch", "work_key"]
