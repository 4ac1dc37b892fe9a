"""Table 04 (notebook 04): every grading baseline vs DeepMT-DR on LR input, the per-grade recall and the
confusion matrices (what the tables share: :mod:`deepmt.studies.paper_tables`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from deepmt import metrics as M
from deepmt.config import Config
from deepmt.controls import regime_of
from deepmt.reporting import save_figure, save_table
from deepmt.studies.common import (
    GRADING_METRICS,
    SMOKE_NOTE,
    Runs,
    describe_config,
    effects_table,
    label,
    run_methods,
    sentences,
    study_config,
    study_seeds,
    summary_table,
)
from deepmt.studies.paper_tables import INPUTS, ci_table, effect_claims, plot_metric_bars, verdict_list

#: grading baselines of table 04 (all from LR input) and HR references (upper bounds, not competitors)
GRADING_BASELINES = ("grader_lr", "grader_bicubic", "two_stage", "foo_mt", "deepmt_dr_noisr")
GRADING_REFERENCES = ("grader_hr", "foo_mt_hr")


def grading_table(cfg: Config, seeds: Sequence[int], baselines: Sequence[str] = GRADING_BASELINES,
                  references: Sequence[str] = GRADING_REFERENCES, n_boot: int = 1000) -> dict[str, Any]:
    """Table 04: every grading baseline vs DeepMT-DR on LR input, over ``seeds``.

    The best baseline is chosen on the *validation* split (mean validation QWK over seeds), never on test;
    DeepMT-DR is compared with it by a paired bootstrap over test images (claim C4). ``timing``: each
    method's training seconds (mean over seeds), apart from the result tables.
    """
    runs = run_methods([*baselines, "deepmt_dr", *references], cfg, seeds)
    metrics = list(GRADING_METRICS)
    summary = summary_table(runs, metrics)
    summary.insert(2, "input", [INPUTS.get(m, "") for m in summary.method])
    summary["val_qwk_mean"] = [float(np.mean([r.val_metrics.get("qwk", np.nan) for r in runs[m]])) for m in summary.method]
    ci = ci_table(runs, metrics, n_boot)
    val = summary.set_index("method")["val_qwk_mean"]
    best = str(val.loc[list(baselines)].idxmax())
    effects = effects_table(runs, [("deepmt_dr", b) for b in baselines], metrics, n_boot)
    claims = effect_claims("C4", effects, "deepmt_dr", best, ("accuracy", "qwk", "macro_f1"), "04_grading_table",
                     comparison=f"DeepMT-DR vs the best baseline on validation QWK ({label(best)}), LR input", regime=regime_of(cfg))
    table = summary.merge(ci[["method"] + [f"{m} [95% CI]" for m in metrics]], on="method")
    per_grade = pd.DataFrame([
        {"method": m, "label": label(m), "seed": r.config.train.seed,
         **{f"recall_{g}": r.metrics.get(f"recall_{g}", np.nan) for g in range(5)}}
        for m, rs in runs.items() for r in rs
    ]).groupby(["method", "label"], sort=False).mean(numeric_only=True).drop(columns="seed").reset_index()
    return {"runs": runs, "table": table, "ci": ci, "effects": effects, "best_baseline": best, "claims": claims,
            "per_grade_recall": per_grade, "timing": train_seconds(runs), "smoke": cfg.profile == "smoke"}


def train_seconds(runs: Runs) -> pd.DataFrame:
    """One row per method: ``train_s``, its training seconds (optimisation only) averaged over its seeds. A
    timing, not a result: two runs with the same numbers differ here (``results/timing/``)."""
    return pd.DataFrame([{"method": m, "label": label(m), "n_seeds": len(rs),
                          "train_s": float(np.mean([r.train_seconds for r in rs]))} for m, rs in runs.items()],
                        columns=["method", "label", "n_seeds", "train_s"])


def confusion_matrices(results_by_method: dict[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """Row-normalised test confusion matrices summed over seeds, per method."""
    out = {}
    for m, rs in results_by_method.items():
        cm = sum(M.grading_confusion_matrix(r.predictions["grade_true"], r.predictions["grade_probs"]) for r in rs)
        out[m] = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    return out


def plot_confusions(cms: dict[str, np.ndarray]):
    """Row-normalised confusion matrices side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cms), figsize=(3.3 * len(cms), 3.2), squeeze=False)
    for ax, (m, cm) in zip(axes[0], cms.items()):
        ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if cm[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted grade")
        ax.set_ylabel("true grade")
        ax.set_title(label(m), fontsize=9)
    fig.tight_layout()
    return fig


def what_we_see_04(res: dict[str, Any]) -> str:
    """Notebook 04's "what we see", written from :func:`grading_table`'s result: DeepMT-DR against the best
    baseline on validation, the HR references and the C4 verdicts."""
    t = res["table"].set_index("method")
    best = res["best_baseline"]
    return (
        f"DeepMT-DR: accuracy {t.loc['deepmt_dr', 'accuracy']}, QWK {t.loc['deepmt_dr', 'qwk']}, macro-F1 {t.loc['deepmt_dr', 'macro_f1']} "
        f"(mean ± std over {int(t.loc['deepmt_dr', 'n_seeds'])} seed(s)). The best baseline on validation is {label(best)} "
        f"(accuracy {t.loc[best, 'accuracy']}, QWK {t.loc[best, 'qwk']}). "
        + sentences(res["effects"], ("deepmt_dr", best, "accuracy"), ("deepmt_dr", best, "qwk")) + ". "
        f"From HR photos the plain grader reaches accuracy {t.loc['grader_hr', 'accuracy']} and the multi-task net "
        f"{t.loc['foo_mt_hr', 'accuracy']}. "
        + "Verdicts (C4): " + verdict_list(res["claims"]) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


__all__ = [
    "GRADING_BASELINES", "GRADING_REFERENCES", "grading_table", "train_seconds", "confusion_matrices", "plot_confusions",
    "what_we_see_04",
    # what notebook 04 calls besides
    "GRADING_METRICS", "plot_metric_bars", "label", "describe_config", "study_config", "study_seeds", "save_figure",
    "save_table",
]
