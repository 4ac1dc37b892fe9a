"""``python -m deepmt plan``: what a grid of trainings costs, before any of it trains.

From the grid inventory (:mod:`deepmt.grid_log`; :mod:`deepmt.bench.plan_inventory` records it) each recorded
job is mapped onto the planned profile and ``--set`` settings (:func:`deepmt.grid_log.entry_config`) and the
entries are deduplicated (the first notebook that needs an entry trains it; later ones load it). Per entry, per
stage it trains (``method.stages``; a warm-started entry only from its start stage on; none with 0 epochs or no
parameters), as the trainer (:mod:`deepmt.engine.trainer`) runs it:

* **epochs**: ``method.stage_epochs(stage, cfg.train)`` of the config resolved for the method (``train.epochs_by_method``);
* **images per epoch**: the stage's training set (:func:`deepmt.engine.trainer.stage_train_set`): the whole split
  where the stage learns from unlabelled images, else its labelled share (``data.label_fraction``, the same
  grade-stratified draw as :func:`deepmt.data.partial_masks.labelled_indices`); batches of ``train.batch_size``,
  the last partial one dropped, a split smaller than a batch padded to one batch;
* **training size**: whole images (``data.crop_size`` or ``data.hr_size``), or ``data.nongrading_crop_size`` for a
  stage that does not grade (``method.stage_grades``), where it is set;
* **epochs**: all of a stage's epochs, also under ``train.patience`` (early stopping cannot be foreseen: the plan is
  then an upper bound);
* **validation passes** over ``data.n_val`` images: after epoch ``e`` when ``e`` is a multiple of the stage's
  ``train.validation_interval(epochs)`` (``train.val_every``, or less under ``train.val_min_points``) or ``e`` is the
  stage's last, plus the start-of-stage evaluation where
  ``method.keeps_start_candidate(stage)``; then the final validation and test evaluation of the entry.

:func:`price` turns that work into seconds with a meter's seconds per image (:class:`deepmt.bench.plan_measure.Meter`,
or any object with its methods); :mod:`deepmt.bench.plan_schedule` schedules the entries on the workers.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from deepmt.config import Config
from deepmt.grid_log import mapped_entry

#: seconds a trained stage costs beyond its epochs, validation and checkpoints (its optimiser and loader, its best and
#: stage-end files, the restore of its best epoch): an estimate, about 1% of the quick grid
STAGE_OVERHEAD_S = 2.0

@dataclass
class StageWork:
    """One stage of one entry: what it trains on, how often it validates, and (after :func:`price`) its seconds."""

    stage: str
    epochs: int
    images_per_epoch: int
    size: int
    grades: bool
    uses_unlabelled: bool
    val_passes: int
    start_eval: bool = False
    batch_size: int = 0  # the stage's training batch (method.stage_batch_size); 0 = train.batch_size
    train_s: float = 0.0  # optimisation + loading (the trainer's epoch seconds)
    val_s: float = 0.0  # validation passes (start evaluation included)
    overhead_s: float = 0.0  # a checkpoint per epoch, and the stage's own start and end (STAGE_OVERHEAD_S)

    @property
    def images(self) -> int:
        return self.epochs * self.images_per_epoch


@dataclass
class PlanEntry:
    """One cache entry of the grid."""

    entry: str
    method: str
    cfg: Config
    notebook: str  # the first notebook that needs it (it trains there)
    batch: str | None
    base: str | None = None  # the entry it is warm-started from
    start_stage: str | None = None
    stages: list[StageWork] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)  # every notebook that needs it
    eval_images: int = 0  # final validation + test
    eval_s: float = 0.0

    @property
    def train_s(self) -> float:
        return sum(s.train_s for s in self.stages)

    @property
    def total_s(self) -> float:
        return self.train_s + sum(s.val_s + s.overhead_s for s in self.stages) + self.eval_s


# --------------------------------------------------------------------------- counting
def images_per_epoch(n: int, batch_size: int) -> int:
    """Training images drawn per epoch from a set of ``n``: whole batches (the last partial one dropped); a set
    smaller than a batch (or exactly one) gives one padded batch; an empty set none."""
    bs = int(batch_size)
    if n <= 0:
        return 0
    return bs if n <= bs else (n // bs) * bs


def val_passes(epochs: int, val_every: int = 1) -> int:
    """Validation passes of a stage of ``epochs`` epochs: after every ``val_every``-th epoch and after the last."""
    v = max(1, int(val_every))
    return int(epochs) // v + (1 if int(epochs) % v else 0)


def train_size(cfg: Config, grades: bool) -> int:
    """HR side of a training image (:func:`deepmt.engine.trainer.stage_train_set`): whole (``data.crop_size`` or
    ``data.hr_size``), or for a stage that does not grade ``data.nongrading_crop_size`` when it is set and smaller."""
    whole = int(cfg.data.crop_size or cfg.data.hr_size)
    crop = cfg.data.nongrading_crop_size
    return whole if grades or not crop else min(int(crop), whole)


def labelled_count(data_cfg) -> int:
    """Training images that keep their labels under ``data.label_fraction`` (all of them at 1)."""
    n, f = int(data_cfg.n_train), float(data_cfg.label_fraction)
    if f >= 1.0:
        return n
    if data_cfg.dataset != "synthetic":
        return max(1, round(f * n))
    from deepmt.data.partial_masks import labelled_indices
    from deepmt.data.synthetic.rules import grade_for_index

    grades = [grade_for_index(i, data_cfg.synth.class_prior, data_cfg.seed, "train") for i in range(n)]
    return len(labelled_indices(grades, f, data_cfg.seed))


def stage_plan(method, cfg: Config, start_stage: str | None = None) -> list[StageWork]:
    """The stages ``method`` (built for ``cfg``; the meta device will do) trains under ``cfg``, from ``start_stage`` on."""
    stages = list(method.stages)
    if start_stage is not None:
        stages = stages[stages.index(start_stage):]
    out = []
    for stage in stages:
        bs = int(method.stage_batch_size(stage, cfg.train))
        epochs = int(method.stage_epochs(stage, cfg.train))
        if epochs <= 0 or not list(method.stage_parameters(stage)):
            continue
        unl = bool(method.stage_uses_unlabelled(stage))
        n = int(cfg.data.n_train) if unl else labelled_count(cfg.data)
        grades = bool(method.stage_grades(stage))
        out.append(StageWork(stage=stage, epochs=epochs, images_per_epoch=images_per_epoch(n, bs),
                             size=train_size(cfg, grades), grades=grades, uses_unlabelled=unl,
                             val_passes=val_passes(epochs, cfg.train.validation_interval(epochs)), start_eval=bool(method.keeps_start_candidate(stage)),
                             batch_size=bs))
    return out


def _method(name: str, cfg: Config, memo: dict):
    """``name`` built for ``cfg`` on the meta device, once per (method, config without its seed)."""
    key = (name, cfg.replace({"train.seed": 0}).key())
    if key not in memo:
        import torch

        from deepmt.models.methods import build_method

        with torch.device("meta"):
            memo[key] = build_method(name, cfg)
    return memo[key]


# --------------------------------------------------------------------------- the grid
def notebook_order(name: str) -> tuple[int, str]:
    """Notebooks in run order (``NN_...`` by number; an unnamed one last)."""
    return (int(name[:2]), name) if name[:2].isdigit() else (10**6, name)


def build_entries(records: Sequence[Mapping[str, Any]], profile: str, settings: Mapping[str, Any] | None = None,
                  log: Callable[[str], None] | None = None) -> list[PlanEntry]:
    """The grid's unique entries under ``profile`` with ``settings``, in the order the notebooks need them."""
    records = sorted(enumerate(records), key=lambda ir: (notebook_order(ir[1].get("notebook", "")), ir[0]))
    entries: dict[str, PlanEntry] = {}
    memo: dict = {}
    for _, rec in records:
        method = rec["method"]
        cfg, name, base_name, start = mapped_entry(rec, profile, settings)
        nb = rec.get("notebook", "")
        if name in entries:
            if nb not in entries[name].notebooks:
                entries[name].notebooks.append(nb)
            continue
        m = _method(method, cfg, memo)
        e = PlanEntry(entry=name, method=method, cfg=cfg, notebook=nb, batch=rec.get("batch"), base=base_name,
                      start_stage=start, stages=stage_plan(m, cfg, start), notebooks=[nb],
                      eval_images=int(cfg.data.n_val) + int(cfg.data.n_test))
        entries[name] = e
        if log is not None and len(entries) % 25 == 0:
            log(f"  {len(entries)} entries mapped")
    return list(entries.values())


def price(entries: Sequence[PlanEntry], meter, log: Callable[[str], None] | None = None) -> None:
    """Fill in each stage's seconds and each entry's final-evaluation seconds from ``meter``'s seconds per image
    (training step + loading per training image; evaluation per validation / test image) and per checkpoint (one per
    epoch, where the meter measures them), plus :data:`STAGE_OVERHEAD_S` per stage."""
    for i, e in enumerate(entries, 1):
        if log is not None:
            log(f"[{i}/{len(entries)}] {e.entry}")
        per_eval = meter.evaluate(e.method, e.cfg)
        load = meter.loading(e.cfg) if e.stages else 0.0
        save = meter.checkpoint(e.method, e.cfg) if e.stages and hasattr(meter, "checkpoint") else 0.0
        for s in e.stages:
            step = meter.train(e.method, e.cfg, s.stage, s.size, s.uses_unlabelled, s.batch_size)
            s.train_s = s.images * (step + load)
            s.val_s = (s.val_passes + int(s.start_eval)) * int(e.cfg.data.n_val) * per_eval
            s.overhead_s = s.epochs * save + STAGE_OVERHEAD_S
        e.eval_s = e.eval_images * per_eval


def data_sets(entries: Sequence[PlanEntry]) -> list[dict[str, Any]]:
    """Each synthetic split the grid generates once (datasets are cached by content and size), with the first
    entry that needs it: ``[{"key", "split", "images", "entry", "data"}]``."""
    from deepmt.data.synthetic.store import cache_key

    seen: dict[tuple, dict[str, Any]] = {}
    for e in entries:
        if e.cfg.data.dataset != "synthetic":
            continue
        k = cache_key(e.cfg.data)
        for split, n in (("train", e.cfg.data.n_train), ("val", e.cfg.data.n_val), ("test", e.cfg.data.n_test)):
            seen.setdefault((k, split, int(n)), {"key": k, "split": split, "images": int(n), "entry": e.entry, "data": e.cfg.data})
    return list(seen.values())


def summary_rows(entries: Sequence[PlanEntry]) -> list[dict[str, Any]]:
    """One row per (entry, stage trained), plus one ``eval`` row per entry (final validation + test)."""
    rows = []
    for e in entries:
        for s in e.stages:
            rows.append({"notebook": e.notebook, "batch": e.batch, "entry": e.entry, "method": e.method, "stage": s.stage,
                         "epochs": s.epochs, "images_per_epoch": s.images_per_epoch, "images": s.images, "size": s.size,
                         "grades": s.grades, "val_passes": s.val_passes + int(s.start_eval),
                         "train_s": round(s.train_s, 2), "val_s": round(s.val_s, 2), "overhead_s": round(s.overhead_s, 2),
                         "warm_from": e.base or ""})
        rows.append({"notebook": e.notebook, "batch": e.batch, "entry": e.entry, "method": e.method, "stage": "eval",
                     "epochs": 0, "images_per_epoch": 0, "images": e.eval_images, "size": int(e.cfg.data.hr_size),
                     "grades": False, "val_passes": 0, "train_s": 0.0, "val_s": round(e.eval_s, 2), "overhead_s": 0.0,
                     "warm_from": e.base or ""})
    return rows



def entry_seconds(csv_path: str | os.PathLike) -> dict[str, float]:
    """Each entry's planned seconds (training, validation and overhead of every stage, plus its evaluation) from a
    plan's CSV (:func:`summary_rows`, written beside ``results/timing/plan.json``). Raises ``OSError`` when the file
    cannot be read and ``ValueError`` (or ``KeyError``) when it is not a plan's CSV."""
    out: dict[str, float] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            out[row["entry"]] = out.get(row["entry"], 0.0) + sum(float(row.get(k) or 0.0)
                                                                   for k in ("train_s", "val_s", "overhead_s"))
    return out

__all__ = ["STAGE_OVERHEAD_S", "PlanEntry", "StageWork", "build_entries", "data_sets", "entry_seconds", "images_per_epoch",
           "labelled_count", "notebook_order", "price", "stage_plan", "summary_rows", "train_size",
           "val_passes"]
