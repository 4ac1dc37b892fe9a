"""Finding 1 (notebook 01): does super-resolving the LR input improve grading and segmentation? With the
LR-information dial (:mod:`deepmt.studies.dial`), the few-labels regime (:mod:`deepmt.studies.few_labels`), the
MA-vs-smudge identity of the MA maps (:mod:`deepmt.studies.lesion_identity`) and DeepMT-DR's grading pathway on HR
and bicubic images (:mod:`deepmt.studies.pathway`), whose functions notebook 01 calls through this module (it
imports no other: ``tests/test_layers.py``).

    res = finding1(cfg, seeds, dial=DIAL_SETTINGS)    # tables, effects, claims C1/C2, controls, the dial sweep
    what_we_see_01(res)                                # the notebook's "what we see"

The controls it measures, each on its object (:mod:`deepmt.controls`): ``learnable`` and ``gap`` on the
lesion-supervised multi-task net (the benchmark), ``gap:deepmt_dr`` on DeepMT-DR's grading pathway (the grader C1
judges), ``lesion_resolution`` on the U-Nets and, with the dial at "nothing left", ``negative:grading`` and
``negative:identity`` on DeepMT-DR against its no-ISR twin (C1's and C2's comparisons).
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from deepmt.config import Config
from deepmt.controls import controls_table, regime_of
from deepmt.reporting import save_figure, save_table
from deepmt.studies.common import (
    GRADING_METRICS,
    SMOKE_NOTE,
    describe_config,
    effects_table,
    run_methods,
    sentence,
    sentences,
    study_config,
    study_seeds,
    summary_table,
)
from deepmt.studies.dial import DIAL_SETTINGS, NOTHING_LEFT, dial_sweep, plot_dial
from deepmt.studies.few_labels import few_labels_study, plot_few_labels, what_we_see_few_labels
from deepmt.studies.lesion_identity import identity_control, identity_table
from deepmt.studies.lesion_identity import what_we_see as what_we_see_lesion_identity
from deepmt.studies.paper_tables import ci_table, effect_claims, effect_control, grading_controls, plot_metric_bars, verdict_list
from deepmt.studies.pathway import pathway_name, pathway_runs

#: Finding 1, grading: the same task from each kind of input (LR, bicubic, SR, HR).
FINDING1_GRADING = ("grader_lr", "grader_bicubic", "foo_mt", "deepmt_dr_noisr", "deepmt_dr", "grader_hr", "foo_mt_hr")
#: Finding 1, segmentation.
FINDING1_SEG = ("unet_lr", "unet_bicubic", "deepmt_dr_noisr", "deepmt_dr", "unet_hr")
#: DeepMT-DR's grading pathway (its cached weights) on the HR image and on the bicubic image: control gap:deepmt_dr
PATHWAY_HR, PATHWAY_BICUBIC = pathway_name("deepmt_dr", "hr"), pathway_name("deepmt_dr", "bicubic")


def finding1(cfg: Config, seeds: Sequence[int], seg_seeds: Sequence[int] = (0,), n_boot: int = 1000,
             dial: Sequence[float] = (), dial_seeds: Sequence[int] = (0,),
             control_seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Finding 1: does super-resolving the LR input improve grading and segmentation?

    Grading from LR, bicubic, DeepMT-DR's SR and HR (``FINDING1_GRADING``, ``seeds``), and DeepMT-DR's grading
    pathway with its cached weights fed the HR and the bicubic image (:data:`PATHWAY_HR`, :data:`PATHWAY_BICUBIC`,
    :func:`pathway_runs`: no training); segmentation likewise (``FINDING1_SEG``, ``seg_seeds``). The controlled
    comparison for claims C1/C2 is DeepMT-DR vs the same network without its ISR subnet (bicubic input,
    ``deepmt_dr_noisr``): same segmentation and grading subnets and losses, only the input differs.

    With ``dial`` settings, on the synthetic benchmark, the LR-information dial is swept as well
    (:func:`dial_sweep` with ``dial_seeds``; the config's own setting uses ``seeds``, the negative controls'
    ``control_seeds``, by default ``seeds`` too): ``dial`` is its table (None without a sweep) and ``controls``
    holds, after the four of finding 1, the sweep's ``negative:grading`` and, from the same runs at
    :data:`NOTHING_LEFT`, ``negative:identity`` (:func:`identity_control`).
    """
    grading = run_methods(FINDING1_GRADING, cfg, seeds)
    grading.update(pathway_runs(grading["deepmt_dr"], cfg))
    seg_only = [m for m in FINDING1_SEG if m not in grading]
    seg_runs = run_methods(seg_only, cfg, seg_seeds)
    seg = {m: (grading[m] if m in grading else seg_runs[m]) for m in FINDING1_SEG}
    g_metrics = list(GRADING_METRICS)
    s_metrics = ["aupr", "dice", "aupr_MA", "dice_MA"]
    g_effects = effects_table(grading, [("deepmt_dr", "deepmt_dr_noisr"), ("deepmt_dr_noisr", "grader_bicubic"),
                                        ("grader_bicubic", "grader_lr"), ("grader_hr", "grader_bicubic"),
                                        ("foo_mt_hr", "foo_mt"), ("foo_mt_hr", "deepmt_dr_noisr"),
                                        (PATHWAY_HR, PATHWAY_BICUBIC)], g_metrics, n_boot)
    s_effects = effects_table(seg, [("deepmt_dr", "deepmt_dr_noisr"), ("unet_bicubic", "unet_lr"), ("unet_hr", "unet_bicubic")],
                              s_metrics, n_boot)
    regime, ev = regime_of(cfg), "01_finding1_isr_helps"
    claims = pd.concat([
        effect_claims("C1", g_effects, "deepmt_dr", "deepmt_dr_noisr", ("accuracy", "qwk", "macro_f1"), ev, regime=regime),
        effect_claims("C2", s_effects, "deepmt_dr", "deepmt_dr_noisr", ("aupr", "dice", "aupr_MA"), ev,
                comparison="DeepMT-DR segmentation of its SR image vs the same network on the bicubic image", regime=regime),
    ], ignore_index=True)
    controls = controls_table([
        *grading_controls(grading, g_effects, PATHWAY_HR, PATHWAY_BICUBIC, ev, regime, n_boot),
        effect_control("lesion_resolution", s_effects, "unet_hr", "unet_bicubic", "aupr_MA", ev, regime),
    ])
    sweep = (dial_sweep(cfg, dial, dial_seeds, default_seeds=seeds, n_boot=n_boot, control_seeds=control_seeds)
             if len(dial) and cfg.data.dataset == "synthetic" else None)
    if sweep is not None:
        parts = [controls, sweep["controls"]]
        if NOTHING_LEFT in sweep["runs"]:
            parts.append(controls_table([identity_control(sweep["runs"][NOTHING_LEFT],
                                                          cfg.replace({"data.synth.smudge_match": NOTHING_LEFT}),
                                                          n_boot=n_boot, evidence=ev)]))
        controls = pd.concat(parts, ignore_index=True)
    return {
        "grading_runs": grading, "seg_runs": seg,
        "grading": ci_table(grading, g_metrics, n_boot).merge(summary_table(grading, g_metrics)[["method"] + [f"{m}_std" for m in g_metrics]], on="method"),
        "segmentation": ci_table(seg, s_metrics + ["auc"], n_boot),
        "effects": pd.concat([g_effects.assign(task="grading"), s_effects.assign(task="segmentation")], ignore_index=True),
        "claims": claims,
        "controls": controls,
        "dial": None if sweep is None else sweep["table"],
        "dial_runs": None if sweep is None else sweep["runs"],
        "smoke": cfg.profile == "smoke",
    }


def what_we_see_01(res: dict[str, Any]) -> str:
    """Notebook 01's "what we see", written from :func:`finding1`'s result: grading accuracy from each input, the
    controlled effects of ISR on grading and segmentation, the controls, the dial sweep (when run) and the verdicts."""
    g = res["grading"].set_index("method")
    s = res["segmentation"].set_index("method")
    effects, dial = res["effects"], res["dial"]
    n_seeds = int(g.loc["deepmt_dr", "n_seeds"])
    return (
        f"Grading accuracy from LR {g.loc['grader_lr', 'accuracy']:.3f}, bicubic {g.loc['grader_bicubic', 'accuracy']:.3f}, "
        f"DeepMT-DR without ISR {g.loc['deepmt_dr_noisr', 'accuracy']:.3f}, DeepMT-DR {g.loc['deepmt_dr', 'accuracy']:.3f}, "
        f"HR {g.loc['grader_hr', 'accuracy']:.3f}; a segmentation + grading multi-task net on HR {g.loc['foo_mt_hr', 'accuracy']:.3f} "
        f"(mean of {n_seeds} seed(s)). "
        + sentence(effects, "foo_mt_hr", "deepmt_dr_noisr", "accuracy") + " (the information lost at LR, for the lesion-supervised family). "
        + sentence(effects, PATHWAY_HR, PATHWAY_BICUBIC, "accuracy") + " (what a perfect super-resolution could buy "
        "DeepMT-DR's own grader). "
        + sentences(effects, ("deepmt_dr", "deepmt_dr_noisr", "accuracy"), ("deepmt_dr", "deepmt_dr_noisr", "qwk")) + ". "
        f"Segmentation AUPR (mean over lesions): LR U-Net {s.loc['unet_lr', 'aupr']:.3f}, bicubic U-Net {s.loc['unet_bicubic', 'aupr']:.3f}, "
        f"DeepMT-DR {s.loc['deepmt_dr', 'aupr']:.3f}, HR U-Net {s.loc['unet_hr', 'aupr']:.3f}; microaneurysm AUPR "
        f"{s.loc['unet_bicubic', 'aupr_MA']:.3f} (bicubic) vs {s.loc['deepmt_dr', 'aupr_MA']:.3f} (DeepMT-DR) vs {s.loc['unet_hr', 'aupr_MA']:.3f} (HR). "
        + sentence(effects[effects.task == "segmentation"], "deepmt_dr", "deepmt_dr_noisr", "aupr") + ". "
        + "Controls: " + "; ".join(f"{r.id} on {r.object} {r.value:.3f} ({r.status})" for r in res["controls"].itertuples()) + ". "
        + ("" if dial is None else "Dial sweep (gap HR - bicubic / DeepMT-DR gain, accuracy): " + "; ".join(
            f"smudge_match {r.smudge_match:g}: {r.gap:+.3f} / {r.gain:+.3f}" for r in dial.itertuples()) + ". ")
        + "Effects (verdicts before controls; notebook 11 applies them): " + verdict_list(res["claims"], with_id=True) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


__all__ = [
    "FINDING1_GRADING", "FINDING1_SEG", "PATHWAY_HR", "PATHWAY_BICUBIC", "finding1", "what_we_see_01",
    # what notebook 01 calls besides: the dial, the few-labels regime, the lesion-identity diagnostic, the figures
    "DIAL_SETTINGS", "GRADING_METRICS", "plot_dial", "plot_metric_bars", "few_labels_study", "plot_few_labels",
    "what_we_see_few_labels", "identity_table", "what_we_see_lesion_identity", "describe_config", "study_config",
    "study_seeds", "save_figure", "save_table",
]
