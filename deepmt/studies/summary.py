"""The README's claim summary and docs/RESULTS.md's results, generated from ``results/*.csv`` (never edited by hand).

``./run_all.sh`` calls this after a complete run of every notebook under a non-smoke profile::

    python -m deepmt.studies.summary --readme README.md docs/RESULTS.md --timing results/timing/run_all.json

Each named file gets the generated blocks it holds (:func:`deepmt.results_io.update_sections`; a block that none of
them holds is an error):

* ``<!-- BEGIN claims-summary -->`` (the README): one row per claim, its primary effect, verdict and the controls it
  needs with their status (:func:`claims_summary_markdown`; only the primary metric's rows carry a verdict, the
  others are marked secondary);
* ``<!-- BEGIN results -->`` (docs/RESULTS.md): the controls table (from every ``results/*controls*.csv``,
  pass/fail recomputed against the pre-registered thresholds of :mod:`deepmt.controls`), then the claims table
  (from every ``results/*claims*.csv``, verdicts recomputed by :mod:`deepmt.claims`'s rule: primary metric, minimum
  effect, Holm, "not testable" where a control a claim needs did not pass) with the regime the claims come from
  and the minimum effect of each unit, the main tables (01 with its dial sweep and few-labels regime, the
  convergence and the lesion channels of every trained part from 03, 04, 05, 06, the Dice loss check of 06) and the
  provenance of the numbers: command, profile, machine and wall time (:func:`results_markdown`; its figure links are
  written relative to the file).

Timings are read from ``results/timing/`` (``run_all.json``, written by :func:`deepmt.run_all_timing.write_run_all_timing`;
``04_train_seconds.csv``), where they live apart from the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from deepmt import LESIONS
from deepmt.claims import (MIN_EFFECTS, NOT_TESTABLE, PAPER_CLAIMS, claims_markdown, collect_claims,
                           control_statuses, is_primary)
from deepmt.config import LossConfig, get_config
from deepmt.controls import FAIL, NOT_MEASURED, PASS, collect_controls, controls_markdown, rejudge_tables
from deepmt.errors import DataError, DeepMTError
from deepmt.reporting import results_dir
from deepmt.run_all_timing import cache_at_start_phrase
from deepmt.results_io import text_or, to_markdown, update_readme_section, update_sections
from deepmt.studies.convergence import COLLAPSE_SHARE, LEVEL_SHARE, convergence_summary, lesion_channel_summary
from deepmt.studies.verdicts import controls_needed_markdown, regime_sentence, regimes


def _default_note(dice_empty: str) -> str:
    """What the Dice-on-empty-masks table says after the ``loss.seg_dice_empty`` setting every profile trains with."""
    return ", every other table's setting" if LossConfig().seg_dice_empty == dice_empty else ""


def _read(root: Path, name: str) -> pd.DataFrame | None:
    path = root / f"{name}.csv"
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - name the file whatever pandas says
        raise DataError(f"{path}: cannot read results table ({exc})") from exc


def _cols(df: pd.DataFrame, cols: list[str], names: dict[str, str] | None = None) -> pd.DataFrame:
    keep = [c for c in cols if c in df.columns]
    return df[keep].rename(columns=names or {})


def _gap_and_gain(df: pd.DataFrame, setting: str) -> str:
    """A gap-and-gain table of notebook 01 (dial sweep, few labels) as markdown: one row per ``setting``."""
    return to_markdown(_cols(df, [setting, "n_seeds", "gap [95% CI]", "gain [95% CI]", "share_recovered", "ma_aupr_gain [95% CI]"],
                             {"share_recovered": "share", "ma_aupr_gain [95% CI]": "MA AUPR gain [95% CI]"}))


def machine_line() -> str:
    from deepmt.bench import cpu_model
    from deepmt.worker_pool import usable_cores

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu_model()} ({usable_cores()} cores), {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def data_line(profile: str) -> str:
    """The synthetic benchmark of ``profile`` in words: image sizes and split sizes."""
    d = get_config(profile).data
    return f"HR {d.hr_size} px, LR {d.lr_size} px (x{d.scale}), {d.n_train}/{d.n_val}/{d.n_test} train/val/test images"


#: the marker of the README's claim summary (:func:`claims_summary_markdown`)
CLAIMS_SUMMARY = "claims-summary"
#: the marker of docs/RESULTS.md's results block (:func:`results_markdown`)
RESULTS = "results"
def _controls_cell(statuses: dict[str, str]) -> str:
    """The controls a claim needs (:func:`deepmt.claims.control_statuses`), one per family:
    ``learnable pass, sr_works fail (edsr), negative:grading **fail**``; a family passes when every member passed,
    else the members that did not are named with their status (``gap **fail** (deepmt_dr)``); a family of which the
    claim needs one member only is named by that member's id."""
    families: dict[str, list[tuple[str, str]]] = {}
    for cid, status in statuses.items():
        family, _, member = cid.partition(":")
        families.setdefault(family, []).append((member, status))
    cells = []
    for family, rows in families.items():
        name = f"{family}:{rows[0][0]}" if len(rows) == 1 and rows[0][0] else family
        bad = [(m, s) for m, s in rows if s != PASS]
        if not bad:
            cells.append(f"{name} {PASS}")
            continue
        worst = FAIL if any(s == FAIL for _, s in bad) else bad[0][1]
        named = [m or family for m, s in bad if s == worst]  # the bare member (``gap``) by its family's name
        cells.append(f"{name} **{worst}**" + (f" ({', '.join(named)})" if named and len(named) < len(rows) else ""))
    return ", ".join(cells) if cells else "none"


def _verdict_class(v: str) -> str:
    """``"not testable (control gap failed)"`` -> ``"not testable"``; other verdicts (and the secondary rows'
    :data:`~deepmt.claims.SECONDARY`) unchanged."""
    return NOT_TESTABLE if v.startswith(NOT_TESTABLE) else v


def primary_rows(claims: pd.DataFrame) -> pd.DataFrame:
    """One row per claim, in the claims table's order: the claim's **primary** row. Rule: the first row (in the
    order :func:`deepmt.claims.collect_claims` gives, i.e. the claims files by name and their rows in file order)
    in the claim's primary metric, :attr:`deepmt.claims.PaperClaim.primary` (accuracy for C1, C4, C5, C7; AUPR
    for C2; the map energy inside lesions for C3; lesion PSNR for C6) and, for C3, its primary comparison (the
    plain HR grader's map, :attr:`deepmt.claims.PaperClaim.primary_comparison`): the only rows that carry a
    verdict; the claim's first row when none is one (a claim outside :data:`~deepmt.claims.PAPER_CLAIMS`, which
    declares no primary metric). Among a claim's primary rows, one in the main regime (the regime of most measured
    rows, :func:`deepmt.studies.verdicts.regimes`) comes first: a claim also judged in another regime (C1 and C4 with
    few labels, notebook 01) keeps its main-regime row as its headline."""
    found = regimes(claims)
    main = found[0][0] if found else None
    keep = []
    for _, rows in claims.groupby("id", sort=False):
        primary = rows[[is_primary(str(i), str(m), c) for i, m, c in zip(rows["id"], rows["metric"], rows["comparison"])]]
        in_main = primary[primary["regime"].map(text_or) == main]
        keep.append((in_main if len(in_main) else primary if len(primary) else rows).index[0])
    return claims.loc[keep]


def claims_summary_markdown(root: str | Path | None = None) -> str:
    """The README's claim summary from ``root`` (``results/``): one row per claim (C1..C7) with its regime, its
    primary effect A−B with the 95% interval, seeds and minimum effect, the verdict, the verdicts of its other rows, and the
    controls it needs with their status in the claim's regime (:func:`control_statuses`; for a claim not
    measured, which has no regime, only their names).

    The rows and controls are those of the full tables in docs/RESULTS.md (:func:`results_markdown`): the claims
    from every ``results/*claims*.csv`` and the controls from every ``results/*controls*.csv`` (the collected
    ``11_controls.csv`` / ``11_verdicts.csv`` are not read back), verdicts recomputed. Which row is a claim's
    primary: :func:`primary_rows` (in its primary metric, the first in the claims table's order). "Other rows"
    groups the claim's other rows by verdict: its other primary-metric rows (other comparisons or regimes) with
    theirs, its secondary metrics under :data:`~deepmt.claims.SECONDARY`."""
    from deepmt.metrics import format_ci

    root = Path(root) if root is not None else results_dir()
    controls = collect_controls(root)
    claims = collect_claims(root, controls=controls)
    rows = []
    for i, r in primary_rows(claims).iterrows():
        others = claims[(claims["id"] == r["id"]) & (claims.index != i)]
        by_verdict: dict[str, list[str]] = {}
        for o in others.itertuples(index=False):
            by_verdict.setdefault(_verdict_class(o.verdict), []).append(o.metric)
        measured = not pd.isna(r["effect"])
        seeds = f", {int(r['n_seeds'])} seed{'s' * (int(r['n_seeds']) != 1)}" if measured and r["n_seeds"] else ""
        rows.append({
            "claim": f"**{r['id']}** {r['text']}",
            "regime": r["regime"],
            "primary effect A−B [95% CI]": (f"{r['metric']} {format_ci(r['effect'], r['lo'], r['hi'], digits=3, signed=True)}{seeds}, "
                                            f"minimum {r['min_effect']:g}" if measured else NOT_MEASURED),
            "verdict": r["verdict"],
            "other rows": "; ".join(f"{', '.join(ms)}: {v}" for v, ms in by_verdict.items()),
            "controls needed": (_controls_cell(control_statuses(str(r["id"]), str(r["regime"] or ""), controls)) if measured
                                else ", ".join(map(str, PAPER_CLAIMS[r["id"]].controls)) if r["id"] in PAPER_CLAIMS
                                else "none"),
            "evidence": r["evidence"],
        })
    table = to_markdown(pd.DataFrame(rows, columns=["claim", "regime", "primary effect A−B [95% CI]", "verdict",
                                                    "other rows", "controls needed", "evidence"]))
    return (
        "*Generated by `python -m deepmt.studies.summary` from `results/*claims*.csv` and `results/*controls*.csv`; "
        "never edit by hand. Primary row per claim: the first row in the primary metric the claim declares "
        "(`deepmt/claims.py`), in the main regime where it has one, the only metric that gets a verdict; the others "
        "are secondary. Every row, with its "
        "minimum effect and p-value, and each control's measurement, is in [docs/RESULTS.md](docs/RESULTS.md).*\n\n" + table
    )


def results_markdown(root: str | Path | None = None, timing: dict[str, Any] | None = None,
                     figures: str = "figures") -> str:
    """The results block from ``root`` (``results/``): provenance, the controls table, then the claims
    table with the regime the claims come from and the verdict rule, then the main tables. ``figures`` is the
    figures folder as the file that shows the block links it (``../figures`` from docs/)."""
    root = Path(root) if root is not None else results_dir()
    parts: list[str] = []
    if timing:
        parts.append(
            f"Made by `{timing.get('command', './run_all.sh')}` (profile `{timing.get('profile', '?')}`) on "
            f"{timing.get('machine', '?')}, {timing.get('date', '')}: {timing.get('total_s', float('nan')) / 60:.1f} min "
            f"wall time for all notebooks, "
            + cache_at_start_phrase(timing) + ". Synthetic benchmark: "
            f"{timing.get('data', '')}. The executed notebooks are rendered into "
            f"`results/report-{timing.get('profile', 'quick')}.html` by `./run_all.sh` (not committed)."
        )
    controls = collect_controls(root)
    claims = collect_claims(root, controls=controls)
    parts.append("### Controls: can this benchmark test the claims?\n\n" + controls_markdown(controls))
    parts.append(
        "Controls (`deepmt/controls.py`): each requirement was stated in code before the measurements and is a "
        "minimum, never loosened after seeing results; *pass* / *fail* is recomputed from the measured value and "
        "its 95% interval. Each control measures one object, and a claim is gated only by controls measured on the "
        "objects it names; a claim whose controls did not all pass cannot be judged on this benchmark. The registry, "
        "with the reason for each threshold and the claims each control gates:\n\n" + controls_needed_markdown()
    )
    parts.append("### Claims of the paper\n\n" + regime_sentence(claims) + "\n\n" + claims_markdown(claims))
    parts.append(
        "Verdict rule (`deepmt/claims.py`, stated before the results it judges): only a claim's **primary metric** "
        "gets a verdict; a row in another metric is *secondary (no verdict)*. A primary row is *not testable "
        "(control … failed / not measured)* when a control the claim needs did not pass in the claim's regime; "
        "otherwise, with *m* the minimum effect of its unit (the larger of `MIN_EFFECTS`' and the row's own): "
        "*negligible* when the whole 95% interval lies inside (−*m*, +*m*), whatever the p-value; *not reproduced* "
        "when it lies below +*m* (and reaches −*m*); *reproduced* when it lies above 0 with the effect at least *m* "
        "and, where the row has a p-value, the Holm-adjusted p (over every measured primary row) below 0.05; "
        "*inconclusive* otherwise; *not measured* when no notebook has produced the effect. A primary row without "
        "a p-value is *not adjusted: no p-value* (the interval alone decides). Intervals are paired bootstraps over "
        "test images (metrics averaged over the training seeds)."
    )
    parts.append("Minimum effects (`deepmt.claims.MIN_EFFECTS`; a metric's unit is its name or the part before its "
                 "first `_`):\n\n" + to_markdown(pd.DataFrame(
                     [(unit, f"{m.value:g}", m.reason) for unit, m in MIN_EFFECTS.items()],
                     columns=["unit", "minimum effect", "why"])))
    t01 = _read(root, "01_grading_by_input")
    if t01 is not None:
        parts.append("### Finding 1: grading from each input (notebook 01)\n\n" + to_markdown(
            _cols(t01, ["label", "input", "n_seeds", "accuracy [95% CI]", "qwk [95% CI]", "macro_f1 [95% CI]"])))
    dial = _read(root, "01_dial_sweep")
    if dial is not None:
        parts.append(
            "### The LR-information dial (notebook 01)\n\n"
            "`smudge_match` sets how much the LR image still tells microaneurysms from look-alike smudges (0: easy, "
            "1: nothing left). *gap*: accuracy of the multi-task grader on HR minus on bicubic LR (what there is to "
            "recover); *gain*: DeepMT-DR minus the same network without ISR (what super-resolution recovers); "
            "*share*: gain / gap.\n\n" + _gap_and_gain(dial, "smudge_match"))
    identity = _read(root, "01_ma_vs_smudge")
    if identity is not None and len(identity):
        wide = identity.pivot_table(index="label", columns="smudge_match", values="auc [95% CI]", aggfunc="first", sort=False)
        wide.columns = [f"smudge_match {c:g}" for c in wide.columns]
        parts.append(
            "**Does the MA map tell microaneurysms from smudges?** (notebook 01, `deepmt/studies/lesion_identity.py`; "
            "at smudge_match 1, DeepMT-DR minus its no-ISR twin is the control `negative:identity`): AUC of MA vs "
            "smudge of each method's MA probability at the generator's lesion centres, 95% CI over test images; 0.5 = "
            "smudges scored like MAs.\n\n"
            + to_markdown(wide.reset_index()))
    few = _read(root, "01_few_labels")
    if few is not None:
        text = ("### Few labels, many unlabelled HR images (notebook 01)\n\n"
                "Grade and masks on a share of the training images (`label_fraction`); DeepMT-DR's ISR still learns "
                "from all of them.\n\n" + _gap_and_gain(few, "label_fraction"))
        change = _read(root, "01_few_labels_change")
        if change is not None:
            text += "\n\nChange few − all labels (paired over the test images):\n\n" + to_markdown(
                _cols(change, ["quantity", "metric", "few_labels", "all_labels", "change [95% CI]", "p_value"]))
        parts.append(text)
    conv = _read(root, "03_convergence")
    if conv is not None and len(conv):
        parts.append(
            f"### Convergence of every trained part (notebook 03)\n\n"
            f"A curve has levelled off when the running best of the metric that selects the kept epoch gained at most "
            f"{LEVEL_SHARE:.0%} of its total gain over the last third of the epochs (`deepmt/studies/convergence.py`, fixed "
            f"before any curve was seen); *still rising*: the seeds that had not, with that last-third share.\n\n"
            + to_markdown(_cols(convergence_summary(conv), ["label", "stage", "metric", "epochs", "levelled", "still_rising"],
                                {"still_rising": "still rising"})))
    channels = _read(root, "03_lesion_channels")
    if channels is not None and len(channels):
        parts.append(
            f"### Lesion channels of every segmenting part (notebook 03)\n\n"
            f"A mean AUPR that selects the kept epoch can rise while one rare lesion's channel dies. A channel has "
            f"*collapsed* when the kept epoch's validation AUPR for that lesion is below {COLLAPSE_SHARE:.0%} of the best it "
            f"reached in the same stage (*kept / best* below). *kept all*: the seeds whose kept epoch kept every lesion.\n\n"
            + to_markdown(_cols(lesion_channel_summary(channels), ["label", "stage", "kept_all", "collapsed"],
                                {"kept_all": "kept all", "collapsed": "collapsed (seed, lesion, kept / best)"})))
    t04 = _read(root, "04_grading_table")
    seconds = _read(root / "timing", "04_train_seconds")
    if t04 is not None and seconds is not None:
        t04 = t04.merge(seconds[["method", "train_s"]], on="method", how="left")
    if t04 is not None:
        parts.append("### Grading from LR input, mean ± std over seeds (notebook 04)\n\n" + to_markdown(
            _cols(t04, ["label", "input", "n_seeds", "accuracy", "qwk", "macro_f1", "auc_ovr", "train_s"],
                  {"train_s": "train s"}), floatfmt=".0f"))
    t05 = _read(root, "05_isr_table")
    if t05 is not None:
        parts.append("### Super-resolution quality (notebook 05)\n\n" + to_markdown(
            _cols(t05, ["label", "psnr [95% CI]", "ssim [95% CI]", "psnr_lesion [95% CI]", "ssim_lesion [95% CI]"])))
    t06 = _read(root, "06_segmentation_table")
    if t06 is not None:
        a = t06[t06.metric == "aupr"]
        parts.append("### Lesion segmentation AUPR (notebook 06)\n\n" + to_markdown(
            _cols(a, ["label", "input", "MA", "HE", "EX", "SE", "mean"])))
    dice = _read(root, "06_dice_empty")
    if dice is not None:
        parts.append(
            "### Loss check: Dice on empty masks (notebook 06)\n\n"
            "Test AUPR with the per-image Dice averaged over every annotated mask, an empty one included "
            f"(`loss.seg_dice_empty = include`{_default_note('include')}), or only over masks with a lesion pixel "
            f"(`skip`{_default_note('skip')}); *kept all*: the seeds whose kept epoch kept every lesion channel (notebook "
            "03's check); test accuracy for a network that also grades.\n\n"
            + to_markdown(_cols(dice, ["label", "seg_dice_empty", "kept_all", *(f"{l} [95% CI]" for l in LESIONS), "mean [95% CI]",
                                       "accuracy [95% CI]"], {"kept_all": "kept all"})))
    figs = [f for f in ("01_grading_by_input", "01_dial_sweep", "04_grading_table", "11_claims") if (root.parent / "figures" / f"{f}.png").is_file()]
    if figs:
        parts.append("\n".join(f"![{f}]({figures}/{f}.png)" for f in figs))
    return "\n\n".join(parts) + "\n"


def _figures_link(doc: str | Path, root: Path) -> str:
    """The figures folder beside ``root`` (``results/`` -> ``figures/``) as a link from ``doc``'s folder."""
    return Path(os.path.relpath(root.resolve().parent / "figures", Path(doc).resolve().parent)).as_posix()


def update_readme(readme: str | Path, root: str | Path | None = None, timing: dict[str, Any] | None = None) -> bool:
    """Rewrite the ``results`` block of one file (figure links relative to it); returns whether it changed."""
    root = Path(root) if root is not None else results_dir()
    return update_readme_section(readme, RESULTS, results_markdown(root, timing, _figures_link(readme, root)))


def update_docs(files: list[str | Path], root: str | Path | None = None,
                timing: dict[str, Any] | None = None) -> dict[str, dict[str, bool]]:
    """Write the claim summary and the results block into whichever of ``files`` holds each
    (:func:`deepmt.results_io.update_sections`); returns ``{file: {marker: changed}}``."""
    root = Path(root) if root is not None else results_dir()
    return update_sections(files, {CLAIMS_SUMMARY: claims_summary_markdown(root),
                                   RESULTS: lambda doc: results_markdown(root, timing, _figures_link(doc, root))})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deepmt.studies.summary", description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", nargs="+", default=["README.md", "docs/RESULTS.md"], metavar="FILE",
                   help="files to write the generated blocks into, each the blocks it holds: the claim summary "
                   "(README.md) and the results (docs/RESULTS.md); default: both")
    p.add_argument("--results", default=None, help="results folder (default: $DEEPMT_RESULTS or results/)")
    p.add_argument("--timing", default=None,
                   help="JSON written by run_all.sh (results/timing/run_all.json): command, profile, total_s, date")
    p.add_argument("--rejudge", action="store_true",
                   help="first judge every notebook's results/*controls*.csv again from its numbers by today's "
                   "deepmt/controls.py (deepmt.controls.rejudge_tables: a changed rule, threshold or margin, no "
                   "training) and refresh the generated blocks from them; ./run_all.sh --only 11 then remakes notebook 11's "
                   "collected tables and figure")
    args = p.parse_args(argv)
    if args.rejudge:
        try:
            changed = rejudge_tables(args.results)
        except DeepMTError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print("controls re-judged: " + (", ".join(str(c) for c in changed) or "every status already today's"))
    timing = None
    if args.timing:
        timing = json.loads(Path(args.timing).read_text())
        timing.setdefault("machine", machine_line())
        timing.setdefault("data", data_line(timing["profile"]))
    for name, done in update_docs(args.readme, args.results, timing).items():
        print(f"{name}: " + (", ".join(f"{m} section {'updated' if c else 'unchanged'}" for m, c in done.items())
                             or "no generated section, left alone"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
