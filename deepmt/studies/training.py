"""Notebook 03: DeepMT-DR's staged training schedule and the convergence of every trained part, read back
from cached runs.

    from deepmt.studies.training import stage_schedule, loss_curves, validation_curves, selected_epochs
    runs = run_methods(["deepmt_dr", "isr", "grader_hr"], cfg, seeds)   # notebook 03: every part the claims use
    res = runs["deepmt_dr"][0]
    method = load_method(res)
    stage_schedule(res, method)            # stage, parts, epochs, peak lr, trained parameters, seconds, images/s
    loss_curves(res.history)               # long table: stage, epoch, term, value (every loss_* column)
    validation_curves(res.history)         # long table: stage, epoch, metric, value (val_qwk, val_psnr, ...)
    selected_epochs(res)                   # the epoch each stage kept (best validation score) and its metrics
    feedback_table(method.feedback_summary())     # stage 2's task-aware feedback: gradient norms and scales
    study = training_study(runs, [load_method(r) for r in runs["deepmt_dr"]]); what_we_see(study)  # all, and the text

The per-run tables are :mod:`deepmt.studies.training_tables`'s, the figures :mod:`deepmt.studies.training_figures`'s;
notebook 03 calls them through this module (it imports no other: ``tests/test_layers.py``).

The convergence of every trained part (whether each validation curve levelled off, whether each kept epoch
kept every lesion channel) is :mod:`deepmt.studies.convergence`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt.data import build_datasets
from deepmt.experiment_cache import ExperimentResult, load_method
from deepmt.losses.task_aware import FEEDBACK_TERMS
from deepmt.reporting import save_figure, save_table
from deepmt.studies.common import describe_config, label, run_methods, study_config, study_seeds
from deepmt.studies.convergence import (
    collapse_sentence,
    convergence_curves,
    convergence_table,
    lesion_channel_summary,
    lesion_channels,
    levelled_sentence,
)
from deepmt.studies.training_figures import figure_convergence, figure_loss_curves, figure_schedule, figure_validation_curves
from deepmt.studies.training_tables import (
    HISTORY_TIMING,
    STAGE_TEXT,
    VAL_METRICS,
    feedback_table,
    final_metrics,
    loss_curves,
    loss_terms,
    run_seconds,
    selected_epochs,
    split_history,
    stage_schedule,
    stage_timing,
    validation_curves,
)

#: notebook 03's other runs: every method besides DeepMT-DR that the claims and tables train (``bicubic`` trains
#: nothing), in the notebook's order
BASELINES = ("deepmt_dr_noisr", "foo_mt_hr", "foo_mt", "grader_lr", "grader_bicubic", "grader_hr", "two_stage",
             "unet_lr", "unet_bicubic", "unet_hr", "isr", "srcnn", "edsr")


# --------------------------------------------------------------------------- the study
@dataclass
class TrainingStudy:
    """Everything notebook 03 shows, read back from cached runs: DeepMT-DR's (first seed) schedule, loss
    curves and selected epochs; its stage-2 feedback calibration per seed; every run's test metrics,
    validation curves, convergence table and lesion channels (:func:`lesion_channels`); and whether the numbers
    are smoke-profile mechanics.

    ``history`` is ``main``'s first run's per-epoch history without its timing columns. ``timing`` holds what
    differs between two runs with the same numbers (``results/timing/``): ``schedule`` (:func:`stage_timing`),
    ``history`` (the per-epoch :data:`HISTORY_TIMING` columns) and ``runs`` (:func:`run_seconds`)."""

    main: str
    schedule: pd.DataFrame
    history: pd.DataFrame
    losses: pd.DataFrame
    selected: pd.DataFrame
    final: pd.DataFrame
    curves: pd.DataFrame
    convergence: pd.DataFrame
    feedback: pd.DataFrame
    lesion_channels: pd.DataFrame = field(default_factory=pd.DataFrame)
    timing: dict[str, pd.DataFrame] = field(default_factory=dict)
    smoke: bool = False


def training_study(runs: Mapping[str, Sequence[ExperimentResult]], methods: Sequence[Any] = (), main: str = "deepmt_dr",
                   smoke: bool = False) -> TrainingStudy:
    """The tables of :class:`TrainingStudy` from ``runs`` (``{name: [result per seed]}``). ``methods`` are
    ``main``'s runs loaded (:func:`deepmt.experiment_cache.load_method`), in the order of ``runs[main]``: the first
    supplies the parameter counts and learning rates of the schedule, each its stage-2 feedback calibration
    (``feedback``: :func:`feedback_table` per seed, with a ``seed`` column). Without them those are empty."""
    res = runs[main][0]
    curves = convergence_curves(runs)
    feedback = [feedback_table(m.feedback_summary()).assign(seed=int(r.config.train.seed))
                for r, m in zip(runs[main], methods) if hasattr(m, "feedback_summary")]
    schedule = stage_schedule(res, methods[0] if len(methods) else None)
    history, history_timing = split_history(res.history)
    return TrainingStudy(
        main=main, schedule=schedule, history=history, losses=loss_curves(res.history),
        selected=selected_epochs(res), final=final_metrics(runs), curves=curves, convergence=convergence_table(curves),
        feedback=pd.concat(feedback, ignore_index=True) if feedback else pd.DataFrame(),
        lesion_channels=lesion_channels(runs),
        timing={"schedule": stage_timing(res, list(schedule["stage"])), "history": history_timing,
                "runs": run_seconds(runs)},
        smoke=smoke,
    )


def _feedback_clause(fb: pd.DataFrame) -> str:
    """The feedback calibration in words: the first seed whose kept model holds a measurement, in detail."""
    if not len(fb):
        return ""
    if str(fb["scaling"].iloc[0]) != "calibrated":
        t = fb.drop_duplicates("term").set_index("term")
        return ("Stage 2's task-aware feedback uses the authors' weights (" +
                ", ".join(f"{k} x{t.loc[k, 'scale']:g}" for k in FEEDBACK_TERMS) + "); no gradient norms were measured. ")
    seeds = list(dict.fromkeys(fb["seed"]))
    measured = [sd for sd in seeds if int(fb.loc[fb["seed"] == sd, "batches"].iloc[0]) > 0]
    if not measured:
        return ("Stage 2's task-aware feedback calibration holds no measured batch in the kept model of any seed (the "
                "weights stage 2 kept were saved before its first batch was measured, as when it keeps the weights it "
                "started from), so no gradient norms can be reported. ")
    t = fb[fb["seed"] == measured[0]].set_index("term")
    which = f"seed {measured[0]}; {len(measured)} of {len(seeds)} seeds' kept models hold a measurement"
    return (f"Stage 2's task-aware feedback was calibrated over {int(t['batches'].iloc[0])} training batch(es) ({which}): "
            f"gradient norms on the ISR before weighting were {t.loc['isr_pixel', 'grad_norm']:.3g} for the pixel term and "
            + ", ".join(f"{t.loc[k, 'grad_norm']:.3g} for {k}" for k in FEEDBACK_TERMS)
            + "; the scales used were " + ", ".join(f"{t.loc[k, 'scale']:.3g}" for k in FEEDBACK_TERMS)
            + ", so each weighted term pulls on the ISR with "
            + ", ".join(f"{t.loc[k, 'ratio_to_pixel']:.2f}" for k in FEEDBACK_TERMS) + " x the pixel term's gradient. ")


def what_we_see(result: TrainingStudy) -> str:
    """Notebook 03's "what we see", written from the numbers of ``result``: the schedule stage by stage, the
    change of the total training loss, the validation QWK / PSNR / AUPR of the kept epochs (and whether stage 2
    kept its start), the feedback calibration, the convergence verdicts, the collapsed lesion channels and the
    test metrics."""
    sel = result.selected.set_index("stage") if len(result.selected) else result.selected
    sch = result.schedule.set_index("stage") if len(result.schedule) else result.schedule
    if len(sch):
        sch = sch.join(result.timing["schedule"].set_index("stage"))
    fin = result.final.merge(result.timing["runs"][["method", "seed", "train_s"]], on=["method", "seed"], how="left")
    fin = fin.groupby("method", sort=False).mean(numeric_only=True)
    losses = result.losses

    def at(stage, col):
        return float(sel.loc[stage, col]) if stage in sel.index and col in sel.columns else math.nan

    parts = []
    for st in sch.index:
        r = sch.loc[st]
        total = float(r["trained_params"] + r["frozen_params"])
        what = (f"{r['parts']} ({r['trained_share']:.0%} of {int(total):,} parameters)" if np.isfinite(total)
                else "its parts")  # without the loaded method: no parameter counts, no learning rate
        lr = f" at peak lr {r['peak_lr']:.2g}" if np.isfinite(r["peak_lr"]) else ""
        parts.append(f"{st} trains {what} for {r['epochs_run']} epoch(s){lr} in {r['seconds']:.1f} s "
                     f"({r['images_per_s']:.0f} training images/s) and keeps epoch {r['selected_epoch']} by validation "
                     f"{r['selection_metric']}")
    text = ("Schedule: " + "; ".join(parts) + ". ") if parts else ""
    changes = {}
    for st in sch.index:
        d = losses[(losses.stage == st) & (losses.term == "total")].sort_values("epoch")
        changes[st] = (d.value.iloc[-1] / d.value.iloc[0] - 1) if len(d) > 1 else math.nan
    if any(np.isfinite(v) for v in changes.values()):
        text += "The total training loss changes by " + ", ".join(
            f"{v:+.0%} over {st}" for st, v in changes.items() if np.isfinite(v)) + " (first to last epoch). "
    if "stage2" in sel.index and at("stage2", "selected_epoch") == 0:
        text += "Stage 2 kept the weights it started from (epoch 0): no stage-2 epoch beat them on validation within the PSNR floor. "
    if "stage1b" in sel.index and "stage2" in sel.index and "val_qwk" in sel:
        text += (f"Validation QWK of the kept epoch: {at('stage1b', 'val_qwk'):.3f} after stage 1b (grader trained on HR, "
                 f"evaluated on the full LR -> SR pipeline) and {at('stage2', 'val_qwk'):.3f} after joint fine-tuning "
                 f"({at('stage2', 'val_qwk') - at('stage1b', 'val_qwk'):+.3f}). ")
    if "val_psnr" in sel and np.isfinite(at("stage1a", "val_psnr")) and np.isfinite(at("stage2", "val_psnr")):
        text += (f"Validation PSNR is {at('stage1a', 'val_psnr'):.2f} dB after stage 1a and {at('stage2', 'val_psnr'):.2f} dB "
                 f"after stage 2 ({at('stage2', 'val_psnr') - at('stage1a', 'val_psnr'):+.2f} dB). ")
    if "val_aupr" in sel and np.isfinite(at("stage1a", "val_aupr")):
        text += f"Validation mean AUPR: {at('stage1a', 'val_aupr'):.3f} after 1a, {at('stage2', 'val_aupr'):.3f} after 2. "
    elif "stage1a" in sel.index:
        text += "No lesion masks in the validation split: stage 1a cannot select on AUPR (its last epoch is kept). "
    text += _feedback_clause(result.feedback)
    text += levelled_sentence(result.convergence)
    text += collapse_sentence(result.lesion_channels)
    if result.main in fin.index:
        f = fin.loc[result.main]
        text += (f"On the test split {label(result.main)} reaches accuracy {f['accuracy']:.3f}, QWK {f['qwk']:.3f}, PSNR "
                 f"{f['psnr']:.2f} dB and mean AUPR {f['aupr']:.3f} after {f['train_s']:.0f} s of optimisation")
    others = [m for m in fin.index if m != result.main]
    if others:
        text += "; the other runs: " + ", ".join(
            f"{label(m)} " + ", ".join(f"{k} {fin.loc[m, k]:.3f}" for k in ("qwk", "psnr", "aupr") if np.isfinite(fin.loc[m, k]))
            + f" in {fin.loc[m, 'train_s']:.0f} s" for m in others)
    n_seeds = int(result.final.groupby("method").size().max()) if len(result.final) else 0
    text += f" (test metrics: mean over {n_seeds} seed(s))." if n_seeds else ""
    if result.smoke:
        text += " (smoke profile: not results; one epoch per stage on a handful of images.)"
    return text.strip()


__all__ = [
    "BASELINES", "TrainingStudy", "training_study", "what_we_see",
    # the per-run tables (deepmt.studies.training_tables) and what notebook 03 calls besides
    "STAGE_TEXT", "VAL_METRICS", "HISTORY_TIMING", "loss_terms", "stage_schedule", "stage_timing", "split_history",
    "loss_curves", "validation_curves", "selected_epochs", "final_metrics", "run_seconds", "feedback_table",
    "figure_convergence", "figure_loss_curves", "figure_schedule", "figure_validation_curves", "lesion_channel_summary",
    "build_datasets", "load_method", "describe_config", "run_methods", "study_config", "study_seeds", "save_figure",
    "save_table",
]
