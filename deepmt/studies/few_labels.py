"""Few labels, many unlabelled HR images: the regime in which a learned ISR has data a bicubic-input network
cannot use (notebook 01, last section).

DeepMT-DR pre-trains its ISR in stage 1a from HR images alone (the LR input is made from the HR image), so the
ISR needs no grade and no mask. ``data.label_fraction`` < 1 keeps grade and masks on a grade-stratified share
of the training split and leaves the rest as unlabelled HR images (:mod:`deepmt.data.partial_masks`). Every
stage that needs labels trains on the labelled images only; the stages that need none (DeepMT-DR's stage 1a,
the SR baselines) on all of them (:meth:`deepmt.models.base.Method.stage_uses_unlabelled`). The bicubic-input
networks (``foo_mt``, ``deepmt_dr_noisr``) then learn from the labelled images alone, while DeepMT-DR's ISR
also learns from the others: if super-resolution has a real advantage anywhere, it is here.

:func:`few_labels_study` runs the dial sweep's four methods (:data:`deepmt.studies.dial.DIAL_METHODS`) at the
label fraction and with all labels (the default setting's runs, cached by the rest of notebook 01) and reports
per setting what the dial sweep reports (:func:`deepmt.studies.dial.gap_and_gain`: the gap HR - bicubic,
DeepMT-DR's gain over the same network without ISR in accuracy and MA AUPR, the share of the gap recovered),
and how much each changes from all labels to few (a paired bootstrap over the test images, which both settings
share: :func:`deepmt.studies.common.effect_change`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from deepmt import metrics as M
from deepmt.config import Config
from deepmt.controls import controls_table, regime_of
from deepmt.errors import SettingError
from deepmt.studies.common import SMOKE_NOTE, effect_change, effects_table, run_methods
from deepmt.studies.dial import DIAL_METHODS, gap_and_gain, plot_gap_and_gain
from deepmt.studies.paper_tables import effect_claims, grading_controls
from deepmt.studies.pathway import pathway_name, pathway_runs

#: the notebook whose claims and controls the few-labels regime adds to
EVIDENCE = "01_finding1_isr_helps"
#: claim C4's baseline in the few-labels regime: the one baseline trained there (the lesion-supervised multi-task net
#: on bicubic input, also the best baseline on validation with all labels)
FEW_LABELS_C4_BASELINE = "foo_mt"

#: what :func:`few_labels_study` compares between the two settings: (name, A, B, metric) of the effect A - B
QUANTITIES = (
    ("gap", "foo_mt_hr", "foo_mt", "accuracy"),
    ("gain", "deepmt_dr", "deepmt_dr_noisr", "accuracy"),
    ("ma_aupr_gain", "deepmt_dr", "deepmt_dr_noisr", "aupr_MA"),
)


#: the share of the training images that keep grade and masks in notebook 01's few-labels section
LABEL_FRACTION = 0.1


def few_labels_study(cfg: Config, seeds: Sequence[int], label_fraction: float = LABEL_FRACTION,
                     n_boot: int = 1000) -> dict[str, Any]:
    """:data:`DIAL_METHODS` over ``seeds`` with grade and masks on ``label_fraction`` of the training images
    (``data.label_fraction``) and with all of them (``cfg`` itself, whose label fraction must be 1).

    Returns ``table`` (one row per setting, all labels first: ``label_fraction``, ``regime``, ``n_seeds`` and the
    numbers of :func:`gap_and_gain`), ``change`` (one row per quantity of :data:`QUANTITIES`: its value with few
    and with all labels, the change few - all with a paired 95% CI over the test images and its p-value), ``runs``
    (``{label fraction: runs}``), ``label_fraction`` and ``smoke``.
    """
    f = float(label_fraction)
    if not 0.0 < f < 1.0:
        raise SettingError(f"few_labels_study: label_fraction={label_fraction}: expected a number in (0, 1)")
    if float(cfg.data.label_fraction) != 1.0:
        raise SettingError(f"few_labels_study: data.label_fraction={cfg.data.label_fraction:g}: the study's config must label "
                           "every image (it is the all-labels setting)")
    seeds = [int(s) for s in seeds]
    runs, rows = {}, []
    for fraction in (1.0, f):
        c = cfg.replace({"data.label_fraction": fraction})
        runs[fraction] = run_methods(DIAL_METHODS, c, seeds)
        numbers, _ = gap_and_gain(runs[fraction], n_boot)
        rows.append({"label_fraction": fraction, "regime": regime_of(c), "n_seeds": len(seeds), **numbers})
    few, full = runs[f], runs[1.0]
    change = []
    for name, a, b, metric in QUANTITIES:
        e = effect_change(few[a], few[b], full[a], full[b], metric, n_boot=n_boot)
        change.append({"quantity": name, "a": a, "b": b, "metric": metric, "few_labels": e["a"], "all_labels": e["b"],
                       "change": e["diff"], "change_lo": e["lo"], "change_hi": e["hi"], "p_value": e["p_value"],
                       "change [95% CI]": M.format_ci(e["diff"], e["lo"], e["hi"], signed=True), "n_seeds": e["n_seeds"]})
    claims, controls = few_labels_claims(cfg.replace({"data.label_fraction": f}), few, n_boot)
    return {"table": pd.DataFrame(rows), "change": pd.DataFrame(change), "runs": runs, "label_fraction": f,
            "claims": claims, "controls": controls, "smoke": cfg.profile == "smoke"}


def few_labels_claims(cfg: Config, runs: dict, n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claims C1 and C4 in the few-labels regime (issue 27, item 5: the setting in which a learned ISR has a real
    advantage), with their own controls measured in that regime. ``cfg`` is the few-labels config (its
    ``regime_of`` names the rows), ``runs`` its :data:`DIAL_METHODS` runs. C1: DeepMT-DR vs its no-ISR twin; C4:
    DeepMT-DR vs :data:`FEW_LABELS_C4_BASELINE`. Controls: learnable and gap on the lesion-supervised multi-task
    net, gap on DeepMT-DR's grading pathway (HR vs bicubic on its own weights, no training); the negative
    control is not bound to a regime (``deepmt.controls``) and comes from the dial sweep."""
    regime = regime_of(cfg)
    hr, bicubic = pathway_name("deepmt_dr", "hr"), pathway_name("deepmt_dr", "bicubic")
    all_runs = {**runs, **pathway_runs(runs["deepmt_dr"], cfg)}
    metrics = ("accuracy", "qwk", "macro_f1")
    eff = effects_table(all_runs, [("deepmt_dr", "deepmt_dr_noisr"), ("deepmt_dr", FEW_LABELS_C4_BASELINE),
                                   ("foo_mt_hr", "foo_mt"), (hr, bicubic)], list(metrics), n_boot)
    claims = pd.concat([
        effect_claims("C1", eff, "deepmt_dr", "deepmt_dr_noisr", metrics, EVIDENCE, regime=regime),
        effect_claims("C4", eff, "deepmt_dr", FEW_LABELS_C4_BASELINE, metrics, EVIDENCE, regime=regime,
                      comparison="DeepMT-DR vs the lesion-supervised multi-task net on bicubic input (the baseline "
                                 "trained with few labels), LR input"),
    ], ignore_index=True)
    return claims, controls_table(grading_controls(runs, eff, hr, bicubic, EVIDENCE, regime, n_boot))


def plot_few_labels(table: pd.DataFrame):
    """The gap and DeepMT-DR's gain (accuracy, MA AUPR) with few and with all labels, with 95% CIs."""
    return plot_gap_and_gain(table, "label_fraction", "label_fraction (share of training images with grade and masks)",
                             x_ticks=True)


def _share(x: float) -> str:
    return "n/a (no positive gap)" if not math.isfinite(x) else f"{100 * x:.0f}%"


def _direction(row: pd.Series, more: str, less: str) -> str:
    if row["change_lo"] > 0:
        return more
    if row["change_hi"] < 0:
        return less
    return "no change the test images can resolve"


def what_we_see_few_labels(res: dict[str, Any]) -> str:
    """The few-labels section's "what we see", written from :func:`few_labels_study`'s result: the gap, the gain
    and the share recovered with few and with all labels, and whether the gain changes (its paired CI)."""
    f = res["label_fraction"]
    t = res["table"].set_index("label_fraction")
    few, full = t.loc[f], t.loc[1.0]
    ch = res["change"].set_index("quantity")
    gain, ma = ch.loc["gain"], ch.loc["ma_aupr_gain"]
    return (
        f"With grade and masks on {100 * f:g}% of the training images (the others unlabelled HR images, which only the "
        f"ISR learns from; {int(few['n_seeds'])} seed(s)), the lesion-supervised net loses {few['gap [95% CI]']} accuracy "
        f"on bicubic input against HR (all labels: {full['gap [95% CI]']}). DeepMT-DR's gain over the same network "
        f"without ISR is {few['gain [95% CI]']} in accuracy and {few['ma_aupr_gain [95% CI]']} in MA AUPR (all labels: "
        f"{full['gain [95% CI]']} and {full['ma_aupr_gain [95% CI]']}), {_share(few['share_recovered'])} of the gap "
        f"recovered (all labels: {_share(full['share_recovered'])}). From all labels to few, the gain changes by "
        f"{gain['change [95% CI]']} in accuracy (p = {gain['p_value']:.3f}) and {ma['change [95% CI]']} in MA AUPR "
        f"(p = {ma['p_value']:.3f}): "
        + _direction(gain, "the ISR's advantage grows when labels are few", "the ISR's advantage shrinks when labels are few")
        + " in accuracy; "
        + _direction(ma, "more microaneurysm detail recovered with few labels", "less microaneurysm detail recovered with few labels")
        + " in MA AUPR."
        + (SMOKE_NOTE if res["smoke"] else "")
    )
