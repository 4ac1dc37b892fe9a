"""Finding 2 (notebook 02): do the regions that drive the grading decision fall on the lesions? The tables, claim C3
and the "what we see" of an :class:`~deepmt.studies.attention.AttentionStudy` (what the maps measure:
:mod:`deepmt.studies.attention`), and its figures: example visualization maps over the lesion masks, and the energy
share inside the lesions against random placements.

    from deepmt.studies import finding2 as F2
    study = F2.attention_study({"grader_hr": runs_hr, "deepmt_dr": runs_mt}, cfg, n_images=200)  # a run or a list per seed
    F2.summary_table(study.per_image)          # energy share observed vs random, effect with CI, ROC-AUC
    F2.claims_rows(F2.summary_table(...), regime=regime_of(cfg))   # claim C3 rows for the claims table
    f2 = F2.finding2(study, regime_of(cfg), runs=runs)   # all the tables at once; F2.what_we_see(f2) writes the text
    F2.figure_examples(study); F2.figure_energy(study.per_image, f2.summary)

**Which row judges C3** (issue 27). Only the plain HR grader's map, a grader trained on grades only, never on a
lesion mask (:attr:`deepmt.claims.PaperClaim.primary_comparison`), with the minimum lift of
:data:`deepmt.claims.MIN_EFFECTS` (``energy_in_lesions``). DeepMT-DR's row is reported beside it without a verdict:
its visualization-consistency loss and lesion-oriented feature selection pull its map onto its lesion maps, so
agreement with the lesions is trained in and is no evidence for Finding 2. The control C3 needs,
``learnable:grader_hr`` (that grader learns the grades), is measured here from the same runs (:func:`finding2`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt import GRADES, LESIONS
from deepmt import metrics as M
from deepmt.claims import PAPER_CLAIMS, PLAIN_GRADER_MAP, Claim, claims_table, is_primary, min_effect
from deepmt.controls import CONTROLS, control_row, controls_table, regime_of
from deepmt.experiment_cache import ExperimentResult
from deepmt.reporting import save_figure, save_table
from deepmt.metrics.uncertainty import hierarchical_paired_bootstrap
from deepmt.studies.attention import EVIDENCE, AttentionStudy, attention_study, test_split
from deepmt.studies.common import describe_config, method_ci, run_methods, study_config, study_seeds

# --------------------------------------------------------------------------- tables
def _mean_ci(x: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).any():
        return math.nan, math.nan, math.nan
    return M.bootstrap_ci(M.nanmean, x, n_boot=n_boot, seed=seed)


def _paired(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p_value": math.nan, "n": 0}
    out = M.paired_bootstrap_test(np.mean, None, a[ok], b[ok], n_boot=n_boot, seed=seed)
    return {"diff": out["diff"], "lo": out["lo"], "hi": out["hi"], "p_value": out["p_value"], "n": int(ok.sum())}


def _over_seeds(runs: pd.DataFrame, a: str, b: str, n_boot: int, seed: int) -> dict[str, Any] | None:
    """mean(``a``) - mean(``b``) over the images of one method's ``per_image`` rows with an interval over its training
    seeds and the test images (:func:`deepmt.metrics.uncertainty.hierarchical_paired_bootstrap`, each seed's own
    per-image values, images paired across seeds by id), as every other effect of the tables (issue 27); None with
    fewer than 2 seeds, or seeds not measured on the same images (then :func:`_paired` on the seed means)."""
    if "seed" not in runs or runs["seed"].nunique() < 2:
        return None
    by_seed = [df.set_index("id") for _, df in runs.groupby("seed", sort=True)]
    ids = by_seed[0].index
    if any(len(d.index) != len(ids) or not d.index.isin(ids).all() for d in by_seed):
        return None
    xa = [(d.loc[ids, a].to_numpy(np.float64),) for d in by_seed]
    xb = [(d.loc[ids, b].to_numpy(np.float64),) for d in by_seed]
    if not all(np.isfinite(x[0]).any() for x in xa + xb):
        return None
    e = hierarchical_paired_bootstrap(M.nanmean, xa, M.nanmean, xb, n_boot=n_boot, seed=seed)
    return {"diff": e["diff"], "lo": e["lo"], "hi": e["hi"], "p_value": e["p_value"], "interval": e["interval"]}


#: columns of ``per_image`` that describe a run's image rather than measure it (not averaged over seeds)
_KEYS = ("method", "seed", "id", "grade", "grade_pred")


def seed_means(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per method and image: each measure averaged over the training seeds (nan skipped), with
    ``n_seeds`` the number of seeds that measured the image; ``grade_pred`` (per seed) is dropped.
    A table without a ``seed`` column is one seed: returned with ``n_seeds`` = 1. Row order: first appearance."""
    if per_image is None or not len(per_image):
        return per_image
    if "seed" not in per_image:
        return per_image.assign(n_seeds=1)
    measures = [c for c in per_image.columns if c not in _KEYS]
    g = per_image.groupby(["method", "id"], sort=False)
    out = g[measures].mean()
    out.insert(0, "grade", g["grade"].first())
    out["n_seeds"] = g["seed"].nunique()
    return out.reset_index()


def summary_table(per_image: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per method: energy share inside the lesion region (mean, 95% CI), the random-placement
    baseline, their paired difference (CI, p), the lift (ratio of means), the uniform-map area share,
    pixel ROC-AUC (mean, CI) and its random-placement value, and -- for methods that segment -- the energy
    share inside their own predicted lesion regions vs random placements of those. Each image's measures
    are first averaged over the training seeds (:func:`seed_means`; ``n_seeds`` the most seeds behind an
    image); the intervals of the levels resample images, that of ``effect`` (the claim's number) seeds and images
    where there are 2 seeds or more (``interval``: ``"hierarchical"`` or ``"seed t"``; ``"images"`` otherwise)."""
    cols = ["method", "n_seeds", "n_images", "energy", "energy_lo", "energy_hi", "energy_random", "effect", "effect_lo",
            "effect_hi", "p_value", "interval", "lift", "area_share", "auc", "auc_lo", "auc_hi", "auc_random", "energy_pred",
            "energy_pred_random", "effect_pred", "effect_pred_lo", "effect_pred_hi", "n_pred"]
    rows = []
    if per_image is None or not len(per_image):
        return pd.DataFrame(columns=cols)
    for method, df in seed_means(per_image).groupby("method", sort=False):
        e, lo, hi = _mean_ci(df["energy"].to_numpy(), n_boot, seed)
        eff = (_over_seeds(per_image[per_image["method"] == method], "energy", "energy_random", n_boot, seed)
               or {**_paired(df["energy"].to_numpy(), df["energy_random"].to_numpy(), n_boot, seed), "interval": "images"})
        a, alo, ahi = _mean_ci(df["auc"].to_numpy(), n_boot, seed)
        pred = _paired(df["energy_pred"].to_numpy(), df["energy_pred_random"].to_numpy(), n_boot, seed)
        er = float(np.nanmean(df["energy_random"])) if df["energy_random"].notna().any() else math.nan
        rows.append({
            "method": method, "n_seeds": int(df["n_seeds"].max()), "n_images": int(len(df)), "energy": e, "energy_lo": lo, "energy_hi": hi, "energy_random": er,
            "effect": eff["diff"], "effect_lo": eff["lo"], "effect_hi": eff["hi"], "p_value": eff["p_value"],
            "interval": eff["interval"],
            "lift": e / er if er and np.isfinite(er) and er > 0 else math.nan,
            "area_share": float(df["area_share"].mean()),
            "auc": a, "auc_lo": alo, "auc_hi": ahi,
            "auc_random": float(np.nanmean(df["auc_random"])) if df["auc_random"].notna().any() else math.nan,
            "energy_pred": float(np.nanmean(df["energy_pred"])) if df["energy_pred"].notna().any() else math.nan,
            "energy_pred_random": float(np.nanmean(df["energy_pred_random"])) if df["energy_pred_random"].notna().any() else math.nan,
            "effect_pred": pred["diff"], "effect_pred_lo": pred["lo"], "effect_pred_hi": pred["hi"], "n_pred": pred["n"],
        })
    return pd.DataFrame(rows, columns=cols)


def by_grade_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean energy share (observed, random), their difference and pixel AUC per method and true grade
    (each image's measures averaged over seeds first)."""
    if per_image is None or not len(per_image):
        return pd.DataFrame(columns=["method", "grade", "grade_name", "n_images", "energy", "energy_random", "effect", "auc"])
    per_image = seed_means(per_image)
    df = per_image.assign(diff=per_image["energy"] - per_image["energy_random"])
    g = df.groupby(["method", "grade"], sort=False).agg(
        n_images=("id", "size"), energy=("energy", "mean"), energy_random=("energy_random", "mean"),
        effect=("diff", "mean"), auc=("auc", "mean"),
    ).reset_index()
    g.insert(2, "grade_name", [GRADES[x] if 0 <= x < len(GRADES) else "no grade" for x in g["grade"]])
    order = {m: i for i, m in enumerate(per_image["method"].unique())}
    g = g.assign(_o=g["method"].map(order)).sort_values(["_o", "grade"], kind="stable").drop(columns="_o")
    return g.reset_index(drop=True)


def by_lesion_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean pixel ROC-AUC of each method's map per lesion type, over the images that contain that lesion
    (each image's AUC averaged over seeds first)."""
    rows = []
    if per_image is not None and len(per_image):
        for method, df in seed_means(per_image).groupby("method", sort=False):
            for name in LESIONS:
                v = df[f"auc_{name}"].to_numpy(dtype=np.float64)
                ok = np.isfinite(v)
                rows.append({"method": method, "lesion": name, "n_images": int(ok.sum()), "auc": float(v[ok].mean()) if ok.any() else math.nan})
    return pd.DataFrame(rows, columns=["method", "lesion", "n_images", "auc"])


#: the grader whose map C3 judges (never trained on masks), and whose control ``learnable:grader_hr`` is measured here
PLAIN_GRADER = "grader_hr"
#: what each method's C3 row compares (the part before the colon names it: in the claims figure, and for the
#: judged row, :data:`deepmt.claims.PLAIN_GRADER_MAP`)
COMPARISONS: dict[str, str] = {
    PLAIN_GRADER: f"{PLAIN_GRADER_MAP}: a grader trained on HR grades only (never on masks), multi-stage Grad-CAM of "
                  "its predicted grade",
    "deepmt_dr": "DeepMT-DR's map, trained toward the lesions: not evidence for Finding 2 (its visualization-"
                 "consistency loss and lesion-oriented feature selection pull its map onto its lesion maps); LR input",
}


def comparison(method: str) -> str:
    """The ``comparison`` of ``method``'s C3 row: which map (:data:`COMPARISONS`, else the method's label),
    then the measure."""
    from deepmt.studies.common import label

    return f"{COMPARISONS.get(method, f'{label(method)} map')}; {PAPER_CLAIMS['C3'].comparison}"


def claims_rows(summary: pd.DataFrame, regime: str = "", evidence: str = EVIDENCE, methods: Sequence[str] | None = None):
    """Claim C3 rows (one per method, in ``methods`` order, each with its own :func:`comparison`): effect =
    mean energy share inside the real lesion regions minus inside randomly placed ones, with its interval over
    seeds and images (:func:`summary_table`) and p-value; ``n_seeds`` from the summary; ``regime`` the
    benchmark setting (:func:`deepmt.controls.regime_of`); ``min_effect`` the minimum lift of
    :data:`deepmt.claims.MIN_EFFECTS`, so that the row's own verdict already reads it. A missing method gives a
    "not measured" row."""
    methods = list(methods) if methods is not None else list(summary["method"]) if len(summary) else ["grader_hr"]
    claims = []
    for m in methods:
        row = summary[summary["method"] == m]
        r = row.iloc[0] if len(row) else None
        claims.append(Claim.from_paper(
            "C3", metric="energy_in_lesions",
            effect=float(r["effect"]) if r is not None else math.nan,
            lo=float(r["effect_lo"]) if r is not None else math.nan,
            hi=float(r["effect_hi"]) if r is not None else math.nan,
            n_seeds=int(r["n_seeds"]) if r is not None else 0, evidence=evidence, comparison=comparison(m), regime=regime,
            p_value=float(r.get("p_value", math.nan)) if r is not None else math.nan,
            min_effect=min_effect("energy_in_lesions"), interval=str(r.get("interval", "images")) if r is not None else "",
        ))
    return claims


# --------------------------------------------------------------------------- the finding
@dataclass
class Finding2:
    """Everything notebook 02 shows, from one :class:`AttentionStudy`: the tables, the claim C3 rows
    (a claims table), the regime they were measured in, whether the numbers are smoke-profile mechanics, and the
    control C3 needs (a controls table; empty when the plain grader's runs were not given)."""

    study: AttentionStudy
    summary: pd.DataFrame
    by_grade: pd.DataFrame
    by_lesion: pd.DataFrame
    claims: pd.DataFrame
    regime: str = ""
    smoke: bool = False
    controls: pd.DataFrame = field(default_factory=lambda: controls_table([]))


def finding2(study: AttentionStudy, regime: str, methods: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
             smoke: bool = False, runs: Mapping[str, Sequence[ExperimentResult]] | None = None) -> Finding2:
    """The tables and claim rows of ``study`` (:func:`summary_table`, :func:`by_grade_table`,
    :func:`by_lesion_table`, :func:`claims_rows` in ``regime`` for ``methods``, default the study's) and, from
    ``runs`` (the trained runs per method, the study's), the control ``learnable:grader_hr``: the test accuracy of
    :data:`PLAIN_GRADER`, mean over its seeds, with a bootstrap interval over test images."""
    summary = summary_table(study.per_image, n_boot=n_boot, seed=seed)
    claims = claims_table(claims_rows(summary, regime=regime, methods=list(methods or study.methods)))
    rows = []
    if runs and runs.get(PLAIN_GRADER):
        acc, lo, hi = method_ci(runs[PLAIN_GRADER], "accuracy", n_boot=n_boot, seed=seed)
        rows.append(control_row("learnable:grader_hr", value=acc, lo=lo, hi=hi, n_seeds=len(runs[PLAIN_GRADER]),
                                evidence=EVIDENCE, regime=regime))
    return Finding2(study, summary, by_grade_table(study.per_image), by_lesion_table(study.per_image), claims, regime, smoke,
                    controls_table(rows))


def _relation(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "cannot be compared with"
    return "above" if lo > 0 else "below" if hi < 0 else "not distinguishable from"


def what_we_see(result: Finding2) -> str:
    """Notebook 02's "what we see", written from the numbers of ``result``: per method the energy share
    inside the lesion regions against random placements (effect, CI, lift, p), the map as a pixel-level
    lesion detector, the grades with the largest and smallest excess, the lesion type it detects best,
    the agreement with its own predicted lesions, then the control C3 needs and each C3 row's verdict and regime
    (a row outside C3's primary comparison, DeepMT-DR's map: reported without a verdict)."""
    from deepmt.studies.common import label

    summary, by_grade, by_lesion = result.summary, result.by_grade, result.by_lesion
    parts = []
    if not len(summary):
        parts.append("Nothing was measured: " + " ".join(result.study.notes))
    for _, r in summary.iterrows():
        m = r["method"]
        n_seeds = int(r["n_seeds"])
        parts.append(
            f"{label(m)} ({r['n_images']} images, each averaged over {n_seeds} training seed{'s' * (n_seeds != 1)}): "
            f"{r['energy']:.1%} of the map's energy lies inside the lesion regions "
            f"(which cover {r['area_share']:.1%} of the field of view) against {r['energy_random']:.1%} for the same regions "
            f"placed at random, a difference of {M.format_ci(r['effect'], r['effect_lo'], r['effect_hi'], signed=True)} "
            f"(x{r['lift']:.2f}; {_relation(r['effect_lo'], r['effect_hi'])} the random baseline, p = {r['p_value']:.3f}). "
            f"As a pixel-level lesion detector its map reaches ROC-AUC {M.format_ci(r['auc'], r['auc_lo'], r['auc_hi'])} "
            f"(random placements: {r['auc_random']:.3f}; chance 0.5)."
        )
        g = by_grade[(by_grade.method == m) & (by_grade.grade >= 0)]
        if len(g) > 1:
            best, worst = g.loc[g["effect"].idxmax()], g.loc[g["effect"].idxmin()]
            parts.append(f"By grade, the excess energy is largest in grade {int(best['grade'])} ({best['effect']:+.1%}) "
                         f"and smallest in grade {int(worst['grade'])} ({worst['effect']:+.1%}).")
        les = by_lesion[(by_lesion.method == m) & (by_lesion.n_images > 0)]
        if len(les):
            top = les.loc[les["auc"].idxmax()]
            parts.append(f"Its map detects {top['lesion']} best (AUC {top['auc']:.3f} over {top['n_images']} images).")
        if np.isfinite(r["effect_pred"]):
            parts.append(
                f"Against its own predicted lesion regions ({r['n_pred']} images with any), the excess is "
                f"{M.format_ci(r['effect_pred'], r['effect_pred_lo'], r['effect_pred_hi'], signed=True)} -- partly by "
                f"construction, since its training pulls the map towards its lesion maps."
            )
    for _, c in result.controls.iterrows():
        parts.append(f"Control {c['id']} ({c['object']}): test accuracy {c['value']:.3f}, required "
                     f"{CONTROLS[c['id']].requirement()}: {c['status']}.")
    for _, c in result.claims.iterrows():
        regime = f" (regime: {c['regime']})" if c["regime"] else ""
        judged = c["verdict"] if is_primary(c["id"], c["metric"], c["comparison"]) else "reported without a verdict"
        parts.append(f"Claim C3, {c['comparison'].split(':')[0]}: {judged}{regime}.")
    if result.smoke:
        parts.append("(smoke profile: a few images and barely trained models -- these numbers check the mechanics; "
                     "they are not results.)")
    return " ".join(parts)


# --------------------------------------------------------------------------- figures
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


__all__ = [
    "seed_means", "summary_table", "by_grade_table", "by_lesion_table", "PLAIN_GRADER", "COMPARISONS", "comparison",
    "claims_rows",
    "Finding2", "finding2", "what_we_see", "figure_examples", "figure_energy",
    # what notebook 02 calls besides: the study itself (deepmt.studies.attention), the regime, the config and runs
    "AttentionStudy", "attention_study", "test_split", "regime_of", "describe_config", "run_methods", "study_config",
    "study_seeds", "save_figure", "save_table",
]
