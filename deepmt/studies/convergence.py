"""The convergence of every trained part (notebook 03), read back from cached runs: did each validation curve
level off, and did the epoch each stage kept keep every lesion channel?

    from deepmt.studies.convergence import convergence_curves, convergence_table, convergence_summary
    curves = convergence_curves(runs)        # every run's validation curve per stage, the kept epoch marked
    conv = convergence_table(curves)         # "levelled off?" per curve (rule below)
    convergence_summary(conv)                # per trained part: "k of n" seeds levelled off (docs/RESULTS.md's table)
    lesion_channel_summary(lesion_channels(runs))  # per segmenting part: did the kept epoch keep every lesion?
    levelled_sentence(conv), collapse_sentence(lesion_channels(runs))  # both in words (notebook 03's text)

**Levelled off?** (:func:`level_check`, threshold fixed before any curve was looked at). A curve is the
validation values of a stage's selection metric (or another metric drawn beside it, :data:`CURVE_EXTRA`)
after each of its ``n`` epochs, preceded, for a stage that evaluates the weights it starts from (DeepMT-DR's
stage 2), by that value as epoch 0. Its *running best* after each point is the best value so far (what
model selection could keep); the *total gain* is the running best at the end minus the first point, the
*last-third gain* what the running best gained over the last ``ceil(n / 3)`` epochs. The curve has
**levelled off** when the last-third gain is at most :data:`LEVEL_SHARE` (10 %) of the total gain (a curve
that never beat its first point has levelled off); it is **not judged** (``"n/a"``) with fewer than
:data:`MIN_EPOCHS` (3) epochs. All metrics drawn are higher-is-better.

**Lesion channels** (:func:`lesion_channels`, added after the problem was seen, so not pre-registered). The
selection metric of a segmenting stage is the mean AUPR over the lesions, which can rise while the channel of
one rare lesion dies; a channel has *collapsed* when the kept epoch's validation AUPR for that lesion is below
:data:`COLLAPSE_SHARE` of the best it reached in the stage.

The epoch a stage kept comes from the run's ``result.json`` (:func:`deepmt.studies.common.best_info`); the curves from its per-epoch
history (:mod:`deepmt.engine.trainer`). No training happens here.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt import LESIONS
from deepmt.experiment_cache import ExperimentResult
from deepmt.metrics.curves import LEVEL_SHARE, MIN_EPOCHS, level_check  # noqa: F401 - the rule, re-exported
from deepmt.studies.common import best_info, label, stage_order
from deepmt.studies.stages import stage_curve

#: validation metrics drawn beside a stage's selection metric (where the run recorded them): DeepMT-DR's
#: stage 1a selects on mean AUPR and trains the ISR too; stage 2 selects on grading and must keep the SR
CURVE_EXTRA: dict[str, tuple[str, ...]] = {"stage1a": ("psnr",), "stage2": ("psnr",)}


#: a lesion channel has **collapsed** when the epoch its stage kept scores below this share of the best validation
#: AUPR the lesion reached in the same stage (:func:`lesion_channels`). Added on 2026-11-30, after U-Net on HR's SE
#: channel was seen to fall from 0.5-0.7 to 0.01-0.02 validation AUPR at epoch 5 on three seeds while the mean AUPR
#: that selects its epoch kept rising (the levelled-off rule reads the mean only, so it could not see this)
COLLAPSE_SHARE = 0.5


# --------------------------------------------------------------------------- convergence
def curve_metrics(stage: str, selection_metric: str) -> list[str]:
    """The validation metrics drawn for ``stage``: its selection metric, then :data:`CURVE_EXTRA`'s."""
    return list(dict.fromkeys([selection_metric, *CURVE_EXTRA.get(stage, ())]))


def convergence_curves(runs: Mapping[str, Sequence[ExperimentResult]]) -> pd.DataFrame:
    """Long table of every run's validation curves: one row per (method, seed, stage, metric, epoch) with the
    value after that epoch, the epoch's mean training loss (``loss``, the weighted total), ``selects`` (the
    metric selects the stage's epoch), ``kept`` (the epoch the stage kept, :func:`best_info`) and ``start``
    (epoch 0: the weights the stage started from, evaluated where the stage competes with them -- DeepMT-DR's
    stage 2; its ``loss`` is nan). Metrics :func:`curve_metrics` names that a stage did not record, or recorded
    as nan throughout, are left out."""
    cols = ["method", "seed", "stage", "metric", "selects", "epoch", "value", "loss", "kept", "start"]
    rows = []
    for name, results in runs.items():
        for res in results:
            h, best = res.history, best_info(res)
            seed = int(res.config.train.seed)
            for stage in stage_order(h):
                hs = h[h["stage"] == stage]
                b = best.get(stage, {})
                selection = str(b.get("metric") or hs["selection_metric"].iloc[0])
                kept = b.get("epoch", math.nan)
                for m in curve_metrics(stage, selection):
                    if f"val_{m}" not in hs or not hs[f"val_{m}"].notna().any():
                        continue
                    common = {"method": name, "seed": seed, "stage": stage, "metric": m, "selects": m == selection}
                    for r in stage_curve(res, stage, m, best).itertuples(index=False):
                        rows.append({**common, "epoch": int(r.epoch), "value": float(r.value), "loss": float(r.loss),
                                     "kept": kept == int(r.epoch), "start": bool(r.start)})
    return pd.DataFrame(rows, columns=cols)


def convergence_table(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per curve of :func:`convergence_curves` (method, seed, stage, metric): ``selects``, ``epochs``
    trained, ``best_epoch`` (the epoch the stage kept: best on validation; 0 = the weights it started from),
    and :func:`level_check`'s ``first``, ``best``, ``total_gain``, ``last_third_gain``, ``share``,
    ``levelled``; the rule in :data:`LEVEL_SHARE` / :data:`MIN_EPOCHS` terms in ``rule``."""
    cols = ["method", "label", "seed", "stage", "metric", "selects", "epochs", "best_epoch", "first", "best", "total_gain",
            "last_third_gain", "share", "levelled", "rule"]
    rule = f"last-third gain <= {LEVEL_SHARE:g} x total gain of the running best; n/a below {MIN_EPOCHS} epochs"
    rows = []
    for (method, seed, stage, metric), d in curves.groupby(["method", "seed", "stage", "metric"], sort=False):
        d = d.sort_values("epoch")
        n = int((~d["start"].astype(bool)).sum())
        kept = d.loc[d["kept"].astype(bool), "epoch"]
        rows.append({"method": method, "label": label(method), "seed": int(seed), "stage": stage, "metric": metric,
                     "selects": bool(d["selects"].iloc[0]), "epochs": n,
                     "best_epoch": int(kept.iloc[0]) if len(kept) else math.nan,
                     **level_check(d["value"].to_numpy(float), n), "rule": rule})
    return pd.DataFrame(rows, columns=cols)


def convergence_summary(conv: pd.DataFrame) -> pd.DataFrame:
    """:func:`convergence_table` (``results/03_convergence.csv``) per trained part: one row per method, stage and
    selection metric (the curve that chose the kept epoch), with ``epochs``, ``levelled`` ("k of n" judged seeds)
    and ``still_rising``: the seeds whose curve had not levelled off, each with the share of its total gain made
    in the last third (the rule's number; the threshold is :data:`LEVEL_SHARE`). docs/RESULTS.md's convergence table."""
    cols = ["method", "label", "stage", "metric", "epochs", "levelled", "still_rising"]
    sel = conv[conv["selects"].astype(bool)] if len(conv) else conv
    rows = []
    for (method, stage, metric), d in sel.groupby(["method", "stage", "metric"], sort=False):
        judged = d[d["levelled"] != "n/a"]
        rising = judged[judged["levelled"] == "no"]
        epochs = sorted({int(e) for e in d["epochs"]})
        rows.append({"method": method, "label": label(method), "stage": stage, "metric": metric,
                     "epochs": "/".join(str(e) for e in epochs),
                     "levelled": f"{int((judged['levelled'] == 'yes').sum())} of {len(judged)}" if len(judged) else "n/a",
                     "still_rising": ", ".join(f"seed {int(r.seed)} ({float(r.share):.0%})" for r in rising.itertuples())})
    return pd.DataFrame(rows, columns=cols)


def lesion_channels(runs: Mapping[str, Sequence[ExperimentResult]]) -> pd.DataFrame:
    """Did the epoch a stage kept keep every lesion? One row per (method, seed, stage, lesion) of every stage
    that recorded per-lesion validation AUPR (``val_aupr_<lesion>``): ``peak`` (its best value) and
    ``peak_epoch``, ``kept_epoch`` (:func:`best_info`; 0 = the weights the stage started from) and ``kept``
    (the value there; nan where the stage kept its start and recorded no per-lesion value for it), ``share``
    (kept / peak) and ``collapsed``: "yes" when ``kept`` < :data:`COLLAPSE_SHARE` x ``peak``, "no", or "n/a"
    (no kept value, or a peak of 0). A mean AUPR that selects the epoch can rise while one rare lesion's channel
    dies; this table shows it."""
    cols = ["method", "label", "seed", "stage", "lesion", "epochs", "peak", "peak_epoch", "kept_epoch", "kept", "share",
            "collapsed"]
    rows = []
    for name, results in runs.items():
        for res in results:
            h, best = res.history, best_info(res)
            for stage in stage_order(h):
                hs = h[h["stage"] == stage]
                b = best.get(stage, {})
                kept_epoch = b.get("epoch", math.nan)
                start_val = b.get("start_val") or {}
                for lesion in LESIONS:
                    col = f"val_aupr_{lesion}"
                    if col not in hs or not hs[col].notna().any():
                        continue
                    values = hs[col].to_numpy(float)
                    epochs = hs["epoch"].astype(int).to_numpy()
                    i = int(np.nanargmax(values))
                    peak, peak_epoch = float(values[i]), int(epochs[i])
                    if kept_epoch == 0:
                        kept = float(start_val.get(f"aupr_{lesion}", math.nan))
                    else:
                        at = values[epochs == kept_epoch]
                        kept = float(at[0]) if len(at) else math.nan
                    judged = math.isfinite(kept) and peak > 0
                    rows.append({"method": name, "label": label(name), "seed": int(res.config.train.seed),
                                 "stage": stage, "lesion": lesion, "epochs": len(hs), "peak": peak,
                                 "peak_epoch": peak_epoch,
                                 "kept_epoch": int(kept_epoch) if math.isfinite(kept_epoch) else math.nan,
                                 "kept": kept, "share": kept / peak if judged else math.nan,
                                 "collapsed": ("yes" if kept < COLLAPSE_SHARE * peak else "no") if judged else "n/a"})
    return pd.DataFrame(rows, columns=cols)


def lesion_channel_summary(channels: pd.DataFrame) -> pd.DataFrame:
    """:func:`lesion_channels` (``results/03_lesion_channels.csv``) per trained part (method and stage):
    ``kept_all`` ("k of n" judged seeds whose kept epoch kept every lesion) and ``collapsed``: each collapsed
    channel as "seed S LESION kept / peak". docs/RESULTS.md's lesion-channel table."""
    cols = ["method", "label", "stage", "kept_all", "collapsed"]
    rows = []
    for (method, stage), d in channels.groupby(["method", "stage"], sort=False):
        judged = d[d["collapsed"] != "n/a"]
        seeds = sorted({int(x) for x in judged["seed"]})
        bad = judged[judged["collapsed"] == "yes"]
        ok = [sd for sd in seeds if sd not in set(bad["seed"].astype(int))]
        rows.append({"method": method, "label": label(method), "stage": stage,
                     "kept_all": f"{len(ok)} of {len(seeds)}" if seeds else "n/a",
                     "collapsed": ", ".join(f"seed {int(r.seed)} {r.lesion} {float(r.kept):.2f} / {float(r.peak):.2f}"
                                            for r in bad.itertuples())})
    return pd.DataFrame(rows, columns=cols)


def levelled_sentence(conv: pd.DataFrame) -> str:
    judged = conv[conv["levelled"] != "n/a"]
    out = (f"Convergence (rule: the running best of the validation metric gains at most {LEVEL_SHARE:.0%} of its total "
           f"gain over the last third of the epochs; judged from {MIN_EPOCHS} epochs on): ")
    if not len(judged):
        return out + f"no curve has {MIN_EPOCHS} epochs or more, so none is judged. "
    sel = judged[judged["selects"].astype(bool)]
    out += (f"{int((judged['levelled'] == 'yes').sum())} of {len(judged)} curves levelled off "
            f"({int((sel['levelled'] == 'yes').sum())} of {len(sel)} selection-metric curves)")
    bad = judged[judged["levelled"] == "no"]
    if len(bad):
        items = []
        for (m, st, met), d in bad.groupby(["method", "stage", "metric"], sort=False):
            items.append(f"{label(m)} {st} {met} (seed{'s' * (len(d) > 1)} {', '.join(str(x) for x in d['seed'])}: "
                         f"{', '.join(f'{g:+.3g}' for g in d['last_third_gain'])} in the last third of "
                         f"{', '.join(f'{g:+.3g}' for g in d['total_gain'])})")
        out += "; still rising: " + "; ".join(items)
    n_skip = int((conv["levelled"] == "n/a").sum())
    if n_skip:
        out += f"; {n_skip} curve(s) with fewer than {MIN_EPOCHS} epochs not judged"
    return out + ". "


def collapse_sentence(channels: pd.DataFrame) -> str:
    """The lesion channels in words: how many kept epochs kept every lesion, and which channels collapsed."""
    judged = channels[channels["collapsed"] != "n/a"] if len(channels) else channels
    if not len(judged):
        return ""
    out = (f"Lesion channels (collapsed: the kept epoch scores below {COLLAPSE_SHARE:.0%} of the best validation AUPR the "
           f"lesion reached in its stage): {int((judged['collapsed'] == 'no').sum())} of {len(judged)} channels kept")
    bad = judged[judged["collapsed"] == "yes"]
    if len(bad):
        out += "; collapsed: " + "; ".join(
            f"{label(m)} {st} {les} (seed{'s' * (len(d) > 1)} {', '.join(str(x) for x in d['seed'])}: "
            + ", ".join(f"{k:.2f} of {p:.2f}" for k, p in zip(d["kept"], d["peak"])) + ")"
            for (m, st, les), d in bad.groupby(["method", "stage", "lesion"], sort=False))
    return out + ". "


__all__ = [
    "CURVE_EXTRA", "LEVEL_SHARE", "MIN_EPOCHS", "COLLAPSE_SHARE", "curve_metrics",
    "convergence_curves", "level_check", "convergence_table", "convergence_summary", "lesion_channels",
    "lesion_channel_summary", "levelled_sentence", "collapse_sentence",
]
