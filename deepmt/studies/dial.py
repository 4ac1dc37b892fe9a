"""The LR-information dial of the synthetic benchmark (notebook 01, and the few-labels regime of
:mod:`deepmt.studies.few_labels`): the gap between HR and bicubic input, and what DeepMT-DR's ISR recovers of it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from deepmt.config import Config
from deepmt.controls import controls_table, regime_of
from deepmt.studies.common import Runs, effects_table, run_methods
from deepmt.studies.paper_tables import effect_control, effect_row

#: the LR-information dial: MA-vs-smudge LR contrast from "easy" (no smudges) to "nothing left" (LR peaks matched)
DIAL_SETTINGS = (0.0, 0.5, 0.8, 1.0)
#: the dial setting at which LR carries no MA information (the negative controls' regime)
NOTHING_LEFT = 1.0
#: methods of the dial sweep: the gap (HR vs bicubic, same lesion-supervised net) and what DeepMT-DR recovers
DIAL_METHODS = ("foo_mt_hr", "foo_mt", "deepmt_dr", "deepmt_dr_noisr")


def dial_sweep(cfg: Config, settings: Sequence[float] = DIAL_SETTINGS, seeds: Sequence[int] = (0,),
               default_seeds: Sequence[int] = (0, 1, 2), n_boot: int = 1000,
               control_seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Where can super-resolution help? The LR-information dial (``data.synth.smudge_match``) from "easy"
    (0: no MA-like smudges) to "nothing left" (1: MA and smudges look alike at LR).

    Per setting: the gap = accuracy of the lesion-supervised multi-task net on HR minus the same net on
    bicubic LR (``foo_mt_hr`` - ``foo_mt``), DeepMT-DR's gain over the same network without ISR
    (``deepmt_dr`` - ``deepmt_dr_noisr``), the share of the gap that gain recovers, and the MA AUPR gain.
    The setting of ``cfg`` itself uses ``default_seeds`` (it is the main claims' regime, shared with the
    rest of notebook 01); the others ``seeds``. The grading negative control (``negative:grading``: DeepMT-DR's
    accuracy gain over its no-ISR twin, C1's comparison) is read at :data:`NOTHING_LEFT`, trained with
    ``control_seeds`` (default: ``default_seeds``): with ``negative:identity`` from the same runs
    (:func:`deepmt.studies.lesion_identity.identity_control`) it decides whether claims C1 and C2 can be judged,
    so it is measured with as many seeds as they are (the bootstrap interval covers the test images, not
    training noise). ``controls`` holds it; ``runs`` the runs per setting.
    """
    default = float(cfg.data.synth.smudge_match)
    rows, controls = [], []
    runs_by_setting = {}
    for sm in settings:
        c = cfg.replace({"data.synth.smudge_match": float(sm)})
        if float(sm) == default:
            use = list(default_seeds)
        elif float(sm) == NOTHING_LEFT:
            use = list(default_seeds if control_seeds is None else control_seeds)
        else:
            use = list(seeds)
        runs = run_methods(DIAL_METHODS, c, use)
        runs_by_setting[float(sm)] = runs
        numbers, e = gap_and_gain(runs, n_boot)
        rows.append({"smudge_match": float(sm), "regime": regime_of(c), "n_seeds": len(use), **numbers})
        if float(sm) == NOTHING_LEFT:
            controls.append(effect_control("negative:grading", e, "deepmt_dr", "deepmt_dr_noisr", "accuracy",
                                           "01_finding1_isr_helps", regime_of(c)))
    return {"table": pd.DataFrame(rows), "controls": controls_table(controls), "runs": runs_by_setting}


def gap_and_gain(runs: Runs, n_boot: int = 1000) -> tuple[dict[str, Any], pd.DataFrame]:
    """The numbers of one benchmark setting from runs of :data:`DIAL_METHODS` (same seeds): each method's mean
    test accuracy (``accuracy_<method>``); the gap = ``foo_mt_hr`` - ``foo_mt`` accuracy, DeepMT-DR's ``gain`` over
    the same network without ISR in accuracy and its ``ma_aupr_gain`` in MA AUPR, each as ``<name>``,
    ``<name>_lo``, ``<name>_hi`` (paired 95% CI) and ``<name> [95% CI]``; ``share_recovered`` = gain / gap (NaN
    unless the gap is positive). Returns (those numbers in that order, the effects table they come from)."""
    e = effects_table(runs, [("foo_mt_hr", "foo_mt"), ("deepmt_dr", "deepmt_dr_noisr")], ["accuracy", "aupr_MA"], n_boot)
    gap, gain, ma = (effect_row(e, "foo_mt_hr", "foo_mt", "accuracy"), effect_row(e, "deepmt_dr", "deepmt_dr_noisr", "accuracy"),
                     effect_row(e, "deepmt_dr", "deepmt_dr_noisr", "aupr_MA"))
    row: dict[str, Any] = {}
    for m in DIAL_METHODS:
        row[f"accuracy_{m}"] = float(np.mean([r.metrics["accuracy"] for r in runs[m]]))
    for name, r in (("gap", gap), ("gain", gain), ("ma_aupr_gain", ma)):
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = float(r["diff"]), float(r["lo"]), float(r["hi"])
        row[f"{name} [95% CI]"] = r["effect"]
    row["share_recovered"] = row["gain"] / row["gap"] if row["gap"] > 0 else np.nan
    return row, e


def plot_dial(table: pd.DataFrame):
    """The gap (HR vs bicubic) and DeepMT-DR's gain against the dial, with 95% CIs."""
    return plot_gap_and_gain(table, "smudge_match", "smudge_match (0 easy → 1 nothing left at LR)")


def plot_gap_and_gain(table: pd.DataFrame, x_column: str, x_label: str, x_ticks: bool = False):
    """The gap (HR vs bicubic) and DeepMT-DR's gain in accuracy (left) and MA AUPR (right), with 95% CIs, against
    the setting in ``x_column`` of a table of :func:`gap_and_gain` rows (``x_ticks``: a tick at each setting)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    x = table[x_column].to_numpy()
    for name, lab_, col in (("gap", "gap: MT net on HR − on bicubic", "#34495e"), ("gain", "DeepMT-DR − same net without ISR", "#c0392b")):
        y = table[name].to_numpy()
        axes[0].errorbar(x, y, yerr=[y - table[f"{name}_lo"], table[f"{name}_hi"] - y], marker="o", capsize=3, label=lab_, color=col)
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xlabel(x_label)
    axes[0].set_ylabel("accuracy difference")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Accuracy lost at LR, and regained by ISR")
    y = table["ma_aupr_gain"].to_numpy()
    axes[1].errorbar(x, y, yerr=[y - table["ma_aupr_gain_lo"], table["ma_aupr_gain_hi"] - y], marker="o", capsize=3, color="#c0392b")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_xlabel(x_column)
    axes[1].set_ylabel("MA AUPR: DeepMT-DR − without ISR")
    axes[1].set_title("Microaneurysms recovered by ISR")
    if x_ticks:
        for ax in axes:
            ax.set_xticks(x)
    fig.tight_layout()
    return fig


__all__ = ["DIAL_SETTINGS", "NOTHING_LEFT", "DIAL_METHODS", "dial_sweep", "gap_and_gain", "plot_dial", "plot_gap_and_gain"]
