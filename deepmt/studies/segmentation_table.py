"""Table 06 (notebook 06): per-lesion AUPR / ROC-AUC / Dice per input, and the loss check of the Dice on empty
masks (what the tables share: :mod:`deepmt.studies.paper_tables`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from deepmt import LESIONS
from deepmt import metrics as M
from deepmt.config import Config
from deepmt.reporting import save_figure, save_table
from deepmt.studies.common import (
    SMOKE_NOTE,
    describe_config,
    effects_table,
    label,
    method_ci,
    run_methods,
    sentences,
    study_config,
    study_seeds,
)
from deepmt.studies.convergence import lesion_channel_summary, lesion_channels
from deepmt.studies.paper_tables import INPUTS

SEG_METHODS = ("unet_lr", "unet_bicubic", "deepmt_dr_noisr", "deepmt_dr", "unet_hr")
#: notebook 06's loss check: the parts whose lesion channel the literal Dice killed (notebook 03), each trained again
#: with the other ``loss.seg_dice_empty`` setting (:func:`dice_empty_check`)
DICE_EMPTY_METHODS = ("unet_hr", "unet_lr", "foo_mt_hr")


def lesion_cis(results: Sequence[Any], metric: str, n_boot: int = 1000) -> dict[str, Any]:
    """A segmentation ``metric`` (``aupr``, ``auc``, ``dice``) of ``results`` per lesion and its mean over the lesions:
    ``{"MA": value, "MA [95% CI]": text, ..., "mean": value, "mean [95% CI]": text}`` (:func:`method_ci`)."""
    row: dict[str, Any] = {}
    for lesion in (*LESIONS, None):
        v, lo, hi = method_ci(results, f"{metric}_{lesion}" if lesion else metric, n_boot=n_boot)
        row[lesion or "mean"] = v
        row[f"{lesion or 'mean'} [95% CI]"] = M.format_ci(v, lo, hi)
    return row


def segmentation_table(cfg: Config, seeds: Sequence[int], methods: Sequence[str] = SEG_METHODS, n_boot: int = 1000) -> dict[str, Any]:
    """Table 06: per-lesion AUPR / ROC-AUC / Dice (averaged over the test images containing the lesion,
    the paper's protocol) for U-Nets on LR / bicubic / HR, DeepMT-DR without and with ISR."""
    runs = run_methods(methods, cfg, seeds)
    rows = []
    for m, rs in runs.items():
        for metric in ("aupr", "auc", "dice"):
            rows.append({"method": m, "label": label(m), "input": INPUTS.get(m, ""), "metric": metric,
                         **lesion_cis(rs, metric, n_boot)})
    table = pd.DataFrame(rows)
    effects = effects_table(runs, [("deepmt_dr", m) for m in methods if m != "deepmt_dr"],
                            ["aupr", "aupr_MA", "aupr_HE", "dice", "dice_MA"], n_boot)
    return {"runs": runs, "table": table, "effects": effects, "smoke": cfg.profile == "smoke"}


def dice_empty_check(cfg: Config, seeds: Sequence[int], methods: Sequence[str] = DICE_EMPTY_METHODS,
                     n_boot: int = 1000) -> dict[str, Any]:
    """Notebook 06's loss check: the per-image soft Dice averaged over every annotated (image, lesion) pair, an empty
    mask included (``loss.seg_dice_empty = "include"``), or only over pairs with a lesion pixel (``"skip"``). Each of
    ``methods`` is trained under ``cfg``'s setting and again, as ``METHOD_dice_SETTING``, under the other one.
    Returns ``table`` (per run: its setting, read from the run's config; test AUPR per lesion and mean with 95% CIs;
    test accuracy for a method that grades; ``kept_all``: the seeds whose kept epoch kept every lesion channel,
    :func:`deepmt.studies.convergence.lesion_channels`), ``channels`` (that check per seed and lesion), ``effects``
    (skip - include, paired over test images: AUPR, Dice, and accuracy / QWK where the method grades) and ``pairs``
    (method, its skip run, its include run)."""
    other = "include" if cfg.loss.seg_dice_empty == "skip" else "skip"
    check = {f"{m}_dice_{other}": m for m in dict.fromkeys(methods)}
    runs = run_methods([*check.values(), *check], cfg, seeds, overrides={n: {"loss.seg_dice_empty": other} for n in check},
                       names=check)
    pairs = [(m, n, m) if other == "skip" else (m, m, n) for n, m in check.items()]
    channels = lesion_channels(runs)
    kept = lesion_channel_summary(channels).set_index("method")["kept_all"]
    grades = {name: all("accuracy" in r.metrics for r in rs) for name, rs in runs.items()}
    rows = []
    for name, rs in runs.items():
        row = {"method": name, "label": label(name), "seg_dice_empty": rs[0].config.loss.seg_dice_empty,
               "kept_all": kept.get(name, "n/a"), **lesion_cis(rs, "aupr", n_boot)}
        v, lo, hi = method_ci(rs, "accuracy", n_boot=n_boot) if grades[name] else (np.nan, np.nan, np.nan)
        row["accuracy"], row["accuracy [95% CI]"] = v, (M.format_ci(v, lo, hi) if grades[name] else "")
        rows.append(row)
    seg = ["aupr", *(f"aupr_{l}" for l in LESIONS), "dice"]
    effects = pd.concat([effects_table(runs, [(s, i)], seg + (["accuracy", "qwk"] if grades[s] and grades[i] else []), n_boot)
                         for _, s, i in pairs], ignore_index=True)
    return {"runs": runs, "table": pd.DataFrame(rows), "channels": channels, "effects": effects, "pairs": pairs,
            "smoke": cfg.profile == "smoke"}


def what_we_see_dice_empty(res: dict[str, Any]) -> str:
    """The loss check in words, from :func:`dice_empty_check`'s result: per method, the mean and SE AUPR under both
    settings, the seeds that kept every lesion channel, and the paired effects (accuracy too where measured)."""
    t, e = res["table"].set_index("method"), res["effects"]
    parts = []
    for method, s, i in res["pairs"]:
        comparisons = [(s, i, m) for m in ("aupr", "aupr_SE", "aupr_MA", "accuracy") if ((e.a == s) & (e.metric == m)).any()]
        parts.append(
            f"{label(method)}: mean AUPR {t.loc[i, 'mean']:.3f} with Dice on every annotated mask, {t.loc[s, 'mean']:.3f} "
            f"when Dice skips empty masks (SE {t.loc[i, 'SE']:.3f} vs {t.loc[s, 'SE']:.3f}); every lesion channel kept "
            f"on {t.loc[i, 'kept_all']} vs {t.loc[s, 'kept_all']} seeds; " + sentences(e, *comparisons))
    return ". ".join(parts) + "." + (SMOKE_NOTE if res["smoke"] else "")


def plot_seg_heatmap(table: pd.DataFrame, metric: str = "aupr"):
    """Methods x lesions heatmap of a segmentation metric (``segmentation_table(...)["table"]``)."""
    import matplotlib.pyplot as plt

    t = table[table.metric == metric].set_index("method")[[*LESIONS, "mean"]]
    fig, ax = plt.subplots(figsize=(6, 0.55 * len(t) + 1.2))
    im = ax.imshow(t.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            v = t.iloc[i, j]
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if (np.isfinite(v) and v < 0.6) else "black")
    ax.set_xticks(range(t.shape[1]), t.columns)
    ax.set_yticks(range(t.shape[0]), [label(m) for m in t.index], fontsize=8)
    ax.set_title(f"segmentation {metric} per lesion (test split)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def what_we_see_06(res: dict[str, Any]) -> str:
    """Notebook 06's "what we see", written from :func:`segmentation_table`'s result: microaneurysm and
    haemorrhage AUPR per input, and DeepMT-DR's MA AUPR against the bicubic U-Net and itself without ISR."""
    a = res["table"][res["table"].metric == "aupr"].set_index("method")
    return (
        f"Microaneurysm AUPR: U-Net on LR {a.loc['unet_lr', 'MA']:.3f}, on bicubic {a.loc['unet_bicubic', 'MA']:.3f}, "
        f"DeepMT-DR without ISR {a.loc['deepmt_dr_noisr', 'MA']:.3f}, DeepMT-DR {a.loc['deepmt_dr', 'MA']:.3f}, on HR {a.loc['unet_hr', 'MA']:.3f}. "
        f"Haemorrhage AUPR {a.loc['unet_bicubic', 'HE']:.3f} (bicubic U-Net) vs {a.loc['deepmt_dr', 'HE']:.3f} (DeepMT-DR). "
        + sentences(res["effects"], ("deepmt_dr", "unet_bicubic", "aupr_MA"), ("deepmt_dr", "deepmt_dr_noisr", "aupr_MA")) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


__all__ = [
    "SEG_METHODS", "DICE_EMPTY_METHODS", "lesion_cis", "segmentation_table", "dice_empty_check",
    "what_we_see_dice_empty", "plot_seg_heatmap", "what_we_see_06",
    # what notebook 06 calls besides
    "LESIONS", "describe_config", "study_config", "study_seeds", "save_figure", "save_table",
]
