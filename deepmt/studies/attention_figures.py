"""Figures of Finding 2 (notebook 02): example visualization maps over the lesion masks, and the energy share
inside the lesions against random placements (the numbers are :mod:`deepmt.studies.attention`'s).

    from deepmt.studies.attention_figures import figure_energy, figure_examples
    figure_examples(study)                        # study = attention.attention_study(...)
    figure_energy(study.per_image, attention.summary_table(study.per_image))
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from deepmt.studies.attention import AttentionStudy


def _overlay_map(ax, image: np.ndarray, vis: np.ndarray | None, masks: np.ndarray, title: str = "", fov: np.ndarray | None = None) -> None:
    ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    if vis is not None:
        shown = np.ma.masked_where(np.asarray(fov) <= 0.5, vis) if fov is not None else vis
        ax.imshow(shown, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
    union = (np.asarray(masks) > 0.5).any(0)
    if union.any():
        ax.contour(union.astype(float), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def figure_examples(study: AttentionStudy):
    """Example test images (one per grade 1-4 where possible): the HR image with its lesion masks
    outlined, then each method's visualization map overlaid (jet; white contours = lesion masks)."""
    import matplotlib.pyplot as plt

    from deepmt.studies.common import label

    exs = study.examples
    ncol = 1 + len(study.methods)
    fig, axes = plt.subplots(max(1, len(exs)), ncol, figsize=(2.3 * ncol, 2.4 * max(1, len(exs))), squeeze=False)
    if not exs:
        axes[0, 0].text(0.5, 0.5, "no test image with lesion masks", ha="center", va="center")
        axes[0, 0].axis("off")
        return fig
    for r, ex in enumerate(exs):
        gname = f"grade {ex['grade']}" if ex["grade"] >= 0 else "no grade"
        _overlay_map(axes[r, 0], ex["hr"], None, ex["masks"], f"{ex['id']} ({gname})\nHR + lesion masks")
        for c, m in enumerate(study.methods, start=1):
            meas = ex["measures"].get(m, {})
            _overlay_map(
                axes[r, c], ex["hr"], ex["maps"][m], ex["masks"],
                f"{label(m)} (pred {ex['grade_pred'][m]})\nenergy {meas.get('energy', math.nan):.2f} "
                f"(random {meas.get('energy_random', math.nan):.2f}), AUC {meas.get('auc', math.nan):.2f}",
                fov=ex["fov"],
            )
    fig.suptitle(f"Visualization maps vs lesion masks (white contours), Grad-CAM target: {study.target} grade", fontsize=8)
    fig.tight_layout()
    return fig


def figure_energy(per_image: pd.DataFrame, summary: pd.DataFrame):
    """(a) per image: energy share inside the real lesion region vs inside random placements, one colour per
    method, diagonal = no agreement; (b) the paired effect (lesions - random) with its 95% CI per method, and
    for methods that segment the same against their own predicted lesion regions; (c) pixel ROC-AUC of each map as a lesion detector by true grade (0.5 = chance)."""
    import matplotlib.pyplot as plt

    from deepmt.studies.common import label

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    if per_image is None or not len(per_image):
        for ax in axes:
            ax.text(0.5, 0.5, "no images with lesion masks", ha="center", va="center")
            ax.axis("off")
        return fig
    methods = list(summary["method"])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax = axes[0]
    top = float(np.nanmax(per_image[["energy", "energy_random"]].to_numpy())) if len(per_image) else 1.0
    for k, m in enumerate(methods):
        df = per_image[per_image.method == m]
        ax.scatter(df["energy_random"], df["energy"], s=10, alpha=0.6, color=colours[k % len(colours)], label=label(m))
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xlabel("energy share in randomly placed masks"), ax.set_ylabel("energy share in lesion masks")
    ax.set_title("(a) per image", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    x = np.arange(len(methods))
    s = summary.set_index("method").loc[methods]
    w = 0.38
    eff, lo, hi = s["effect"].to_numpy(float), s["effect_lo"].to_numpy(float), s["effect_hi"].to_numpy(float)
    ax.bar(x - w / 2, eff, w, yerr=[eff - lo, hi - eff], capsize=3, label="true lesion masks")
    if s["effect_pred"].notna().any():
        ep, pl, ph = s["effect_pred"].to_numpy(float), s["effect_pred_lo"].to_numpy(float), s["effect_pred_hi"].to_numpy(float)
        ax.bar(x + w / 2, ep, w, yerr=[ep - pl, ph - ep], capsize=3, label="its own predicted lesions", hatch="//", alpha=0.7)
    for k, m in enumerate(methods):
        if not np.isfinite(s.loc[m, "lift"]):
            continue
        ax.annotate(f"x{s.loc[m, 'lift']:.2f}", (x[k] - w / 2, max(hi[k], 0) if np.isfinite(hi[k]) else 0),
                    ha="center", va="bottom", fontsize=7)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [label(m) for m in methods], fontsize=7, rotation=10)
    ax.set_ylabel("energy share: lesions - random placements")
    ax.set_title("(b) paired effect, 95% CI (x lift = ratio)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[2]
    grades = sorted(per_image["grade"].unique())
    for k, m in enumerate(methods):
        df = per_image[per_image.method == m].groupby("grade")["auc"].mean().reindex(grades)
        ax.plot(grades, df.to_numpy(), "o-", color=colours[k % len(colours)], label=label(m))
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xticks(grades)
    ax.set_xlabel("true DR grade"), ax.set_ylabel("pixel ROC-AUC of the map")
    ax.set_title("(c) map as a lesion detector", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
