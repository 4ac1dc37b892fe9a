"""Notebook 11 and docs/RESULTS.md: the claims figure with the controls beside it, and what the numbers say.

Both read the tables :func:`deepmt.claims.collect_claims` and :func:`deepmt.controls.collect_controls`
return; nothing here computes an effect or a verdict::

    from deepmt.claims import collect_claims
    from deepmt.controls import collect_controls
    from deepmt.studies.verdicts import claims_figure, what_we_see, regime_sentence

    controls = collect_controls()
    claims = collect_claims(controls=controls)
    fig = claims_figure(claims, controls)       # one panel per metric unit, the controls table beside them
    print(what_we_see(claims, controls))        # the notebook's "what we see", written from the numbers
    print(regime_sentence(claims))              # which benchmark setting the claims come from
    print(controls_needed_markdown())           # the registry: each control's object, threshold, reason, claims

Effects of different units never share an axis: accuracy/QWK/F1 differences, dB, SSIM, AUPR/Dice and
map-energy fractions each get a panel (:func:`metric_panel`). Each row is labelled with its claim id,
metric, a short form of its comparison and its regime, drawn over the band of effects too small to matter
(± its minimum effect, :data:`deepmt.claims.MIN_EFFECTS`), and coloured by verdict ("not testable" in its own
colour, with a hollow marker). A secondary row (not the claim's primary metric) carries no verdict: it is drawn
in grey, hollow and small, and the text lists it apart from the verdicts.
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepmt.claims import (
    INCONCLUSIVE,
    NEGLIGIBLE,
    NOT_MEASURED,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    PAPER_CLAIMS,
    SECONDARY,
    claims_markdown,
    collect_claims,
)
from deepmt.controls import CONTROLS, FAIL, PASS, collect_controls, controls_markdown
from deepmt.controls import NOT_MEASURED as CONTROL_NOT_MEASURED
from deepmt.metrics import format_ci
from deepmt.reporting import results_dir, save_figure, save_table
from deepmt.results_io import text_or, to_markdown
from deepmt.studies.common import study_config

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

GRADING_PANEL = "grading effect (accuracy / QWK / F1)"
PSNR_PANEL = "PSNR effect (dB)"
SSIM_PANEL = "SSIM effect"
SEG_PANEL = "segmentation effect (AUPR / Dice)"
ENERGY_PANEL = "map-energy fraction inside lesions"
#: the panels of the claims figure, in order
PANELS = (GRADING_PANEL, PSNR_PANEL, SSIM_PANEL, SEG_PANEL, ENERGY_PANEL)

#: verdict colours of the claims figure (any "not testable (...)" verdict takes NOT_TESTABLE's)
VERDICT_COLOURS = {REPRODUCED: "#27ae60", NEGLIGIBLE: "#2e86c1", NOT_REPRODUCED: "#c0392b", INCONCLUSIVE: "#7f8c8d",
                   NOT_TESTABLE: "#8e44ad"}
#: the colour of a secondary row (no verdict) in the claims figure
SECONDARY_COLOUR = "#b3b6b7"
#: the colour of the band ± a row's minimum effect behind it
BAND_COLOUR = "#e8f1f8"
#: colours of the result cells of the controls table
STATUS_COLOURS = {PASS: "#d5f5e3", FAIL: "#fadbd8", CONTROL_NOT_MEASURED: "#eaeded"}
#: the verdict classes in the order the text lists them
VERDICT_ORDER = (REPRODUCED, NEGLIGIBLE, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE, NOT_MEASURED)


def metric_panel(metric: str) -> str:
    """The panel (one per unit) that shows effects in ``metric``; an unknown metric gets its own panel."""
    m = metric.lower()
    if m in ("accuracy", "qwk", "macro_f1", "auc_ovr", "kappa"):
        return GRADING_PANEL
    if m.startswith("psnr"):
        return PSNR_PANEL
    if m.startswith("ssim"):
        return SSIM_PANEL
    if m.startswith(("aupr", "dice", "auc")):
        return SEG_PANEL
    if m.startswith("energy"):
        return ENERGY_PANEL
    return f"{metric} effect"


def verdict_class(v: str) -> str:
    """``v`` with any "not testable (...)" reason dropped: one of :data:`VERDICT_ORDER`, or
    :data:`~deepmt.claims.SECONDARY` for a row that carries no verdict."""
    return NOT_TESTABLE if v.startswith(NOT_TESTABLE) else v


def short_comparison(comparison: str, width: int = 44) -> str:
    """A short form of a comparison for a figure label: the part before a colon (``"Grader on HR: ..."``
    -> ``"Grader on HR"``), else the first clause (up to ``;`` or ``, ``), shortened to ``width`` characters."""
    text = text_or(comparison).strip()
    head, colon, _ = text.partition(":")
    text = head if colon and len(head) <= width else re.split(r";|, ", text)[0]
    return textwrap.shorten(text, width=width, placeholder="…")


def row_label(row: Any) -> str:
    """``"C1 accuracy · DeepMT-DR SR input vs bicubic…"`` and, on a second line, the regime."""
    label = f"{row.id} {row.metric} · {short_comparison(row.comparison)}"
    regime = text_or(row.regime)
    return f"{label}\n{regime}" if regime else label


def regimes(claims: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """The regimes of the measured claim rows, with the claim ids from each, the regime of most rows first."""
    measured = claims[np.isfinite(claims["effect"].to_numpy(dtype=float))]
    out = []
    for regime, df in measured.groupby(measured["regime"].map(text_or), sort=False):
        out.append((regime, list(dict.fromkeys(df["id"]))))
    return sorted(out, key=lambda t: -int((measured["regime"].map(text_or) == t[0]).sum()))


def regime_sentence(claims: pd.DataFrame) -> str:
    """Which benchmark setting the measured claims come from, e.g. ``"The claims come from regime `x` (C1, C2)."``;
    with several, the regime of most rows is named as the main one."""
    found = regimes(claims)
    if not found:
        return "No claim has been measured yet."
    parts = [f"regime `{r}` ({', '.join(ids)})" if r else f"an unnamed regime ({', '.join(ids)})" for r, ids in found]
    if len(parts) == 1:
        return f"The claims come from {parts[0]}."
    return f"The main claims come from {parts[0]}; the others from " + "; ".join(parts[1:]) + "."


def _control_measure(r: Any) -> str:
    return format_ci(r.value, r.lo, r.hi)


def controls_needed_markdown() -> str:
    """The controls as registered (:data:`deepmt.controls.CONTROLS`), one row each: the control, the object it
    measures, its requirement, why that threshold, and the claims it gates (:attr:`deepmt.claims.PaperClaim.controls`:
    the claims that need it on that object)."""
    gates = {cid: [pc.id for pc in PAPER_CLAIMS.values() if any(cid in need.ids() for need in pc.controls)]
             for cid in CONTROLS}
    return to_markdown(pd.DataFrame(
        [(f"**{cid}**", c.object, c.requirement(), c.reason, ", ".join(gates[cid]) or "none") for cid, c in CONTROLS.items()],
        columns=["control", "object", "required", "why this threshold", "gates"]))


def what_we_see(claims: pd.DataFrame, controls: pd.DataFrame, smoke: bool = False) -> str:
    """The "what we see" paragraph of notebook 11, written from the two tables: which controls pass or fail
    (with value and requirement), which claims fall in each verdict class (the decided ones with their
    effect and CI), which rows are secondary (no verdict), how the p-values were adjusted, and why the
    not-testable ones cannot be judged."""
    lines = []
    status = controls["status"].tolist()
    failed = [f"{r.id} on {r.object} {_control_measure(r)} (required {CONTROLS[r.id].requirement()}"
              + (f", regime {r.regime}" if text_or(r.regime) else "") + ")"
              for r in controls.itertuples() if r.status == FAIL]
    unmeasured = [r.id for r in controls.itertuples() if r.status == CONTROL_NOT_MEASURED]
    lines.append(f"Controls: {status.count(PASS)} of {len(status)} pass"
                 + (f"; failed: {'; '.join(failed)}" if failed else "")
                 + (f"; not measured: {', '.join(unmeasured)}" if unmeasured else "") + ".")
    classes = claims["verdict"].map(verdict_class)
    measured = int(np.isfinite(claims["effect"].to_numpy(dtype=float)).sum())
    parts = []
    for v in VERDICT_ORDER:
        rows = claims[classes == v]
        if v in (REPRODUCED, NEGLIGIBLE, NOT_REPRODUCED):
            items = [f"{r.id} {r.metric} ({short_comparison(r.comparison)}) {format_ci(r.effect, r.lo, r.hi, signed=True)}"
                     for r in rows.itertuples()]
        elif v == NOT_TESTABLE:
            items = []
            for cid, df in rows.groupby("id", sort=False):
                reasons = list(dict.fromkeys(re.sub(r"^not testable \((.*)\)$", r"\1", x) for x in df["verdict"]))
                items.append(f"{cid} ({len(df)} row{'s' * (len(df) > 1)}: {' / '.join(reasons)})")
        else:
            items = [f"{cid} ({n} row{'s' * (n > 1)})" if v != NOT_MEASURED else str(cid)
                     for cid, n in rows.groupby("id", sort=False).size().items()]
        parts.append(f"{v}: {', '.join(items) if items else 'none'}")
    lines.append(f"Claims: {measured} of {len(claims)} rows measured. " + regime_sentence(claims) + " " + "; ".join(parts) + ".")
    secondary = claims[classes == SECONDARY]
    if len(secondary):
        lines.append("Secondary metrics, reported without a verdict: " + "; ".join(
            f"{cid} {', '.join(df['metric'])}" for cid, df in secondary.groupby("id", sort=False)) + ".")
    lines.append(_multiplicity_sentence(claims, classes))
    if (classes == NOT_TESTABLE).any():
        lines.append("A 'not testable' claim is one this benchmark cannot judge until its controls pass: it is evidence "
                     "neither for nor against the paper.")
    if smoke:
        lines.append("(smoke profile: mechanics only, these numbers are not results.)")
    return "\n".join(lines)


def _multiplicity_sentence(claims: pd.DataFrame, classes: pd.Series) -> str:
    """How the measured primary rows' p-values were adjusted (Holm, :func:`deepmt.claims.holm_adjusted`): how many
    rows the family holds and how many of them have a p-value (none: nothing was adjusted)."""
    judged = claims[np.isfinite(claims["effect"].to_numpy(dtype=float)) & (classes != SECONDARY)]
    with_p = int(judged["p_value"].notna().sum())
    if len(judged) == 0:
        return "Multiplicity: no primary row measured yet, nothing to adjust."
    if with_p == 0:
        return (f"Multiplicity: Holm over the {len(judged)} measured primary rows, but none has a p-value: not adjusted, "
                "the intervals alone decide.")
    return (f"Multiplicity: Holm over the {len(judged)} measured primary rows ({with_p} with a p-value; "
            f"{len(judged) - with_p} without one, not adjusted); \"reproduced\" needs an adjusted p below 0.05.")


# --------------------------------------------------------------------------- figure
def _draw_panel(ax, rows: pd.DataFrame, title: str) -> None:
    for i, r in enumerate(rows.itertuples()):
        if r.min_effect > 0:
            ax.fill_betweenx([i - 0.3, i + 0.3], -r.min_effect, r.min_effect, color=BAND_COLOUR, lw=0)
        secondary = r.verdict == SECONDARY
        colour = SECONDARY_COLOUR if secondary else VERDICT_COLOURS.get(verdict_class(r.verdict), "k")
        if np.isfinite(r.lo) and np.isfinite(r.hi):
            ax.plot([r.lo, r.hi], [i, i], color=colour, lw=1 if secondary else 2)
        hollow = secondary or verdict_class(r.verdict) == NOT_TESTABLE
        ax.plot(r.effect, i, "o", color=colour, mfc="white" if hollow else colour, mew=1.5, ms=4 if secondary else 6)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [row_label(r) for r in rows.itertuples()], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", lw=0.3, alpha=0.5)


def _controls_cells(controls: pd.DataFrame) -> tuple[list[list[str]], list[list[str]]]:
    text, colours = [], []
    for r in controls.itertuples():
        regime = "\n".join(textwrap.wrap(text_or(r.regime), 17)) or "—"
        required = ",\n".join("\n".join(textwrap.wrap(part, 15)) for part in CONTROLS[r.id].requirement().split(", "))
        text.append([f"{r.id}\n" + "\n".join(textwrap.wrap(f"on {r.object}", 22)), required, _control_measure(r), regime,
                     r.status])
        colours.append(["white"] * 4 + [STATUS_COLOURS.get(r.status, "white")])
    return text, colours


def claims_figure(claims: pd.DataFrame, controls: pd.DataFrame, title: str = "") -> "Figure":
    """The claims figure: the measured effects with their 95 % CIs over the band ± their minimum effect, one
    panel per metric unit, coloured by verdict (secondary rows grey), and beside them the controls table
    (requirement, measured value [CI], regime, pass/fail)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    measured = claims[np.isfinite(claims["effect"].to_numpy(dtype=float))].reset_index(drop=True)
    panel = measured["metric"].map(metric_panel)
    names = [p for p in PANELS if (panel == p).any()] + sorted(set(panel) - set(PANELS))
    groups = [(p, measured[panel == p]) for p in names]
    heights = [len(rows) + 1.5 for _, rows in groups] or [2.0]
    cells, colours = _controls_cells(controls)
    lines = [1] + [max(c.count("\n") + 1 for c in row) for row in cells]  # header, then each control
    fig = plt.figure(figsize=(15, max(0.5 * sum(heights), 0.3 * sum(lines) + 1.0) + 1.0), layout="constrained")
    gs = fig.add_gridspec(len(heights), 2, width_ratios=[1.2, 1], height_ratios=heights)
    for k, (name, rows) in enumerate(groups):
        _draw_panel(fig.add_subplot(gs[k, 0]), rows, name)
    if not groups:
        ax = fig.add_subplot(gs[0, 0])
        ax.axis("off")
        ax.text(0.5, 0.5, "no claim measured yet", ha="center", va="center")
    axc = fig.add_subplot(gs[:, 1])
    axc.axis("off")
    axc.set_title("controls (pre-registered thresholds)", fontsize=9, loc="left")
    if cells:
        table = axc.table(cellText=cells, cellColours=colours, colLabels=["control", "required", "measured [CI]", "regime", "result"],
                          colWidths=[0.2, 0.17, 0.25, 0.22, 0.16], cellLoc="left", loc="upper left")
        table.auto_set_font_size(False)
        table.set_fontsize(6.5)
        line = min(0.03, 0.9 / sum(lines))  # of the axes height
        for (i, _), cell in table.get_celld().items():
            cell.set_height(line * lines[i])
    unmeasured = list(dict.fromkeys(claims.loc[claims["verdict"] == NOT_MEASURED, "id"]))
    if unmeasured:
        axc.text(0, 1 - line * (sum(lines) + 1) if cells else 0.9, f"claims not measured (not drawn): {', '.join(unmeasured)}",
                 fontsize=8, va="top", transform=axc.transAxes)
    handles = [Line2D([], [], color=c, marker="o", mfc="white" if v == NOT_TESTABLE else c, label=v)
               for v, c in VERDICT_COLOURS.items()]
    handles.append(Line2D([], [], color=SECONDARY_COLOUR, marker="o", mfc="white", ms=4, lw=1, label=SECONDARY))
    handles.append(Patch(color=BAND_COLOUR, label="± minimum effect (negligible inside)"))
    fig.legend(handles=handles, loc="outside lower left", ncols=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


__all__ = [
    "GRADING_PANEL", "PSNR_PANEL", "SSIM_PANEL", "SEG_PANEL", "ENERGY_PANEL", "PANELS", "VERDICT_COLOURS",
    "SECONDARY_COLOUR", "BAND_COLOUR", "STATUS_COLOURS", "VERDICT_ORDER", "metric_panel", "verdict_class", "short_comparison", "row_label", "regimes",
    "regime_sentence", "controls_needed_markdown", "what_we_see", "claims_figure",
    # what notebook 11 calls besides
    "claims_markdown", "collect_claims", "collect_controls", "controls_markdown", "results_dir", "study_config",
    "save_figure", "save_table",
]
