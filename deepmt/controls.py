"""Controls: checks that the benchmark can test the paper's claims at all, each with a threshold fixed in advance.

A replication whose controls fail cannot say "not reproduced", only "not testable": if the HR grader cannot
learn the grades, or bicubic LR loses nothing that matters, no super-resolution result says anything about
the paper. Each control in :data:`CONTROLS` has a rule and a threshold **pre-registered here, in code, before
the measurements** (issue 11; those added by issue 27 before theirs), each with the reason for its threshold
(``reason``). They are minimums: a threshold may be made stricter where the data allow, never looser after
seeing results. :func:`collect_controls` ignores whatever threshold or pass/fail a CSV carries and applies the
registry's, as :func:`deepmt.claims.collect_claims` recomputes verdicts.

The notebooks measure the controls; the last notebook and docs/RESULTS.md show them above the claims::

    from deepmt.controls import control_row, controls_table, collect_controls, controls_markdown

    # in the notebook that measures it: mean test accuracy over seeds, CI over test images
    save_table(controls_table([control_row("learnable", value=acc, lo=lo, hi=hi, n_seeds=3,
                                           evidence="01_finding1_isr_helps",
                                           regime="smudge_match=0.7, x4, all masks")]), "01_controls")
    # in the last notebook
    controls = collect_controls()            # every results/*controls*.csv, pass/fail recomputed
    print(controls_markdown(controls))

**Rules** (:func:`check`; ``t`` the threshold, ``value`` the measurement, ``[lo, hi]`` its 95 % CI):

* ``at_least``: ``value >= t`` (the point estimate, e.g. a mean over seeds);
* ``diff_at_least``: a difference ``value >= t`` *and* its CI excludes 0 (``lo > 0``);
* ``ci_above``: the CI lies above ``t`` (``lo > t``);
* ``ci_holds``: the CI holds ``t`` or lies below it (``lo <= t``): nothing measurable is gained; and, for a control
  with a ``margin`` ``m`` > 0, its upper end lies below ``t + m`` (``hi < t + m``): the measurement could have seen a
  gain of ``m``, the minimum effect of the claims it gates. Without that, a wide interval (three seeds of a noisy
  grader span ±0.5 accuracy) would pass a negative control that could not have failed.

Boundaries: ``>=`` passes at equality; "above" is strict (``lo == 0`` is not above 0; it holds 0). The
numbers are compared as the CSV keeps them (6 significant digits, as :func:`deepmt.reporting.save_table`
writes them), so a pass/fail never changes on the way through ``results/``. A missing value, or a missing
CI where the rule needs one, gives ``"not measured"``.

**Objects** (issue 27). Every control measures one object, a model or pathway named by ``Control.object``
(the constants :data:`FOO_MT`, :data:`GRADER_HR`, :data:`DR_PATHWAY`, ...): a control says something about
a claim only when it was measured on the object the claim judges. ``id`` is ``family`` or ``family:member``;
the members of a family share what they check and differ in the object they check it on (``gap`` on the
lesion-supervised multi-task net, ``gap:deepmt_dr`` on DeepMT-DR's grading pathway) or, for ``sr_works``, in the SR
baseline. A claim names, per control family it needs, the object it must be measured on
(:class:`Need`; :attr:`deepmt.claims.PaperClaim.controls`); a control row measured on another object does not
gate it. Every row carries its ``object`` column. A file written before that column existed (or a row with an
empty cell) reads as measured on the control's registered object: the ids kept their meaning when objects were
added, so those rows were measured on exactly that object. A row whose ``object`` names another object than its
control's registered one is kept in the table as measured, and gates nothing.

**Regimes.** Every row names the benchmark setting that produced it (``regime``, a free string the
notebooks pass, e.g. ``"smudge_match=0.7, x4, all masks"``). A control with ``same_regime`` must be
measured in the regime of the claim that needs it; the negative controls are measured where LR carries no
MA information, a regime of their own. Two rows of one control on one object in one regime raise
``DataError``: each control has one source.

**Retired controls** (:data:`RETIRED`): an id that no longer gates anything, with why. :func:`collect_controls`
skips its rows in files written before it was retired, so those files still load.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from deepmt.errors import DataError
from deepmt.results_io import read_result_tables, text_or, to_markdown

AT_LEAST = "at_least"
DIFF_AT_LEAST = "diff_at_least"
CI_ABOVE = "ci_above"
CI_HOLDS = "ci_holds"
RULES = (AT_LEAST, DIFF_AT_LEAST, CI_ABOVE, CI_HOLDS)

PASS = "pass"
FAIL = "fail"
NOT_MEASURED = "not measured"

#: Columns of a controls table (and of the ``results/*controls*.csv`` files).
COLUMNS = ("id", "object", "text", "metric", "unit", "rule", "threshold", "value", "lo", "hi", "n_seeds", "status", "regime",
           "evidence")

#: The table the last notebook writes from all the others; :func:`collect_controls` never reads it back.
COLLECTED = "11_controls.csv"

# The objects the controls measure (``Control.object``), each named as the controls table shows it.
#: the lesion-supervised multi-task net after Foo et al. (``foo_mt`` on bicubic input, ``foo_mt_hr`` on HR)
FOO_MT = "foo_mt (lesion-supervised seg+grade net)"
#: the plain ResNet grader on HR, trained on grades only: the grader whose map claim C3 reads
GRADER_HR = "grader_hr (plain ResNet grader, no masks)"
#: DeepMT-DR's segmentation and grading subnets (each seed's trained weights) fed another image than its SR one
DR_PATHWAY = "DeepMT-DR grading pathway"
#: DeepMT-DR's grader trained and tested on HR with the ground-truth lesion maps instead of its segmentation's (the
#: oracle variant of notebook 08's pathway diagnosis): the grading pathway's ceiling at the benchmark's image size
DR_ORACLE = "DeepMT-DR grading pathway, ground-truth lesion maps (oracle)"
#: DeepMT-DR against the same network without its ISR subnet (``deepmt_dr_noisr``), in test accuracy
TWIN_GRADING = "DeepMT-DR vs no-ISR twin, grading"
#: the same pair, in how well their MA maps tell microaneurysms from smudges at the generator's lesion centres
TWIN_IDENTITY = "DeepMT-DR vs no-ISR twin, MA identity"


@dataclass(frozen=True)
class Control:
    """One pre-registered control: what is measured (``metric`` in ``unit``) on which ``object``, and the ``rule``
    and ``threshold`` it must meet, with the ``reason`` for that threshold. ``id`` is ``family`` or
    ``family:member`` (one row per member: per object, or per SR method); a claim needs the members of a family on
    the objects it names (:class:`Need`)."""

    id: str
    text: str
    object: str
    metric: str
    unit: str
    rule: str
    threshold: float
    reason: str
    same_regime: bool = True
    #: ``ci_holds`` only: the gain the interval must exclude (its power); 0 = none asked
    margin: float = 0.0

    @property
    def family(self) -> str:
        return self.id.split(":", 1)[0]

    def requirement(self) -> str:
        """The rule in words, with the unit, e.g. ``"≥ 0.08 accuracy, CI above 0"``."""
        t = f"{self.threshold:g} {self.unit}"
        return {
            AT_LEAST: f"≥ {t}",
            DIFF_AT_LEAST: f"≥ {t}, CI above 0",
            CI_ABOVE: f"CI above {t}",
            CI_HOLDS: f"CI not above {t}" + (f", below {self.threshold + self.margin:+g}" if self.margin > 0 else ""),
        }[self.rule]


_SR_VS_BICUBIC = "PSNR of its SR image minus PSNR of the bicubic-upsampled LR image, test set"
_NOTHING_LEFT = "where LR carries no MA information (data.synth.smudge_match = 1)"

#: The pre-registered controls (issue 11; ``learnable:grader_hr``, ``gap:deepmt_dr``, ``learnable:deepmt_dr_oracle``
#: and the two ``negative`` members added by issue 27, with their thresholds, before they were measured). Thresholds are minimums: never loosen one after seeing
#: results. ``sr_works`` has one row per learned SR baseline so that a failure names the method, and because
#: single-task ISR must clear 2 dB where the others need only beat bicubic. DeepMT-DR's own SR is not a
#: control: it is the method under test (claims C5 and C6 measure it).
CONTROLS: dict[str, Control] = {
    c.id: c
    for c in (
        Control("learnable", "The lesion-supervised multi-task grader on HR learns the grades: test accuracy, mean over seeds",
                FOO_MT, "accuracy", "accuracy", AT_LEAST, 0.90,
                "issue 11: a benchmark whose grades the best HR network cannot learn leaves nothing to compare inputs on"),
        Control("learnable:grader_hr", "The plain grader on HR (trained on grades only, never on masks) learns the grades: "
                "test accuracy, mean over seeds", GRADER_HR, "accuracy", "accuracy", AT_LEAST, 0.90,
                "learnable's bar on the grader C3 judges: a grader that has not learned the grades has no decision "
                "whose map could fall on the lesions"),
        Control("gap", "The same network on bicubic-upsampled LR falls behind it: accuracy on HR minus on bicubic "
                "(something is left for super-resolution to recover)", FOO_MT, "accuracy", "accuracy", DIFF_AT_LEAST, 0.08,
                "issue 11: more left to recover than run-to-run noise (an independent seg+grade net found about 0.15 "
                "where LR keeps little)"),
        Control("gap:deepmt_dr", "DeepMT-DR's grading pathway (its segmentation and grading subnets, each seed's trained "
                "weights) on [HR, Seg(HR)] minus on [bicubic, Seg(bicubic)]: accuracy (what a perfect super-resolution "
                "could buy the grader C1 judges)", DR_PATHWAY, "accuracy", "accuracy", DIFF_AT_LEAST, 0.08,
                "gap's bar on the grader C1 and C5 judge: if HR instead of bicubic buys it less, no super-resolution "
                "can buy it a gain worth measuring"),
        Control("learnable:deepmt_dr_oracle", "DeepMT-DR's grading pathway with ground-truth lesion maps learns the "
                "grades: test accuracy of its grader fed [HR, true lesion masks], mean over seeds (notebook 08)",
                DR_ORACLE, "accuracy", "accuracy", AT_LEAST, 0.90,
                "issue 27 (stated with the oracle variant before it was measured, deepmt.studies.ablation_structure): "
                "below it even a perfect super-resolution and segmentation would leave DeepMT-DR's grader short of the "
                "lesion-supervised net on HR (0.94-0.96), so C1 and C4 cannot be tested at this image size. Measured "
                "with every label, the pathway's ceiling; fewer labels cannot raise it", same_regime=False),
        Control("sr_works:srcnn", f"SRCNN beats bicubic: {_SR_VS_BICUBIC}", "srcnn (SR baseline)", "psnr", "dB", CI_ABOVE, 0.0,
                "issue 11: an SR baseline that does not beat bicubic is broken"),
        Control("sr_works:edsr", f"EDSR-style beats bicubic: {_SR_VS_BICUBIC}", "edsr (EDSR-style SR baseline)", "psnr", "dB",
                CI_ABOVE, 0.0, "issue 11: an SR baseline that does not beat bicubic is broken"),
        Control("sr_works:isr", f"Single-task ISR beats bicubic by 2 dB: {_SR_VS_BICUBIC}", "isr (single-task ISR)", "psnr",
                "dB", DIFF_AT_LEAST, 2.0,
                "issue 11: C6's reference must be a working super-resolver, well clear of a bicubic copy"),
        Control("lesion_resolution", "Resolution matters for lesions: MA AUPR of U-Net on HR minus U-Net on bicubic",
                "U-Net (lesion segmentation only)", "aupr_MA", "AUPR", CI_ABOVE, 0.0,
                "issue 11: if HR does not segment MAs better than bicubic, no super-resolution can"),
        Control("negative:grading", f"Negative control, grading: {_NOTHING_LEFT}, DeepMT-DR's test accuracy minus the "
                "same network's without ISR (nothing is recovered where nothing is left)", TWIN_GRADING, "accuracy",
                "accuracy", CI_HOLDS, 0.0,
                "LR keeps nothing there for super-resolution to recover: a grading gain measurably above 0 is not "
                "recovered information; the interval must also exclude a gain of 0.02 accuracy, C1's minimum effect "
                "(deepmt.claims.MIN_EFFECTS; the power asked on 2026-12-07, a tightening: the committed grid's "
                "-0.008 [-0.538, +0.522] was known and fails it)",
                same_regime=False, margin=0.02),
        Control("negative:identity", f"Negative control, lesion identity: {_NOTHING_LEFT}, the MA-vs-smudge AUC of "
                "DeepMT-DR's MA map at the generator's lesion centres minus the same network's without ISR",
                TWIN_IDENTITY, "ma_smudge_auc", "AUC", CI_HOLDS, 0.0,
                "the SR image must not tell MAs from smudges better where LR cannot; unlike pixel MA AUPR, outlining "
                "dots more sharply does not raise it. The interval must also exclude a gain of 0.02 AUC (2 points of a "
                "[0, 1] score, as for AUPR: the power asked on 2026-12-07, a tightening: the committed grid's "
                "+0.026 [-0.001, +0.053] was known and fails it)", same_regime=False, margin=0.02),
    )
}

#: Controls no longer registered, with why: :func:`collect_controls` skips their rows in older files.
RETIRED: dict[str, str] = {
    "negative": "the pixel MA AUPR negative control (issue 11), replaced by negative:grading and negative:identity "
                "(issue 27): pixel AUPR mixes telling MAs from smudges with outlining 1-2 px dots; notebook 01's dial "
                "table keeps its number (ma_aupr_gain at smudge_match 1)",
}


def members(family: str) -> list[str]:
    """The registry ids of a control family (``"sr_works"`` -> ``["sr_works:srcnn", ...]``), in registry order."""
    ids = [cid for cid, c in CONTROLS.items() if c.family == family]
    if not ids:
        raise KeyError(f"unknown control {family!r}; the registry has {sorted({c.family for c in CONTROLS.values()})}")
    return ids


@dataclass(frozen=True)
class Need:
    """What a claim needs of one control family: every member of ``family`` registered on ``object`` passed in
    the claim's regime (on that object: a row measured on another one does not count); with no ``object``, every
    member of the family, each on the object it is registered on (``Need("sr_works")``: each SR baseline)."""

    family: str
    object: str = ""

    def ids(self) -> list[str]:
        """The registry ids this need takes, in registry order; ``KeyError`` when the family has no member on
        ``object``."""
        ids = [cid for cid in members(self.family) if not self.object or CONTROLS[cid].object == self.object]
        if not ids:
            raise KeyError(f"control family {self.family!r} has no member registered on {self.object!r}")
        return ids

    def __str__(self) -> str:
        """The family when the need takes all of it, else the ids it takes: ``"sr_works"``, ``"gap:deepmt_dr"``."""
        return ", ".join(self.ids()) if self.object else self.family


def _stored(x: float) -> float:
    """``x`` as the results CSV keeps it (``%.6g``, :func:`deepmt.reporting.save_table`)."""
    return float(f"{x:.6g}")


def check(rule: str, threshold: float, value: float, lo: float = math.nan, hi: float = math.nan, margin: float = 0.0) -> str:
    """``"pass"``, ``"fail"`` or ``"not measured"`` for one measurement under ``rule`` (see the module
    docstring; ``margin``: ``ci_holds``'s power). ``lo`` must not exceed ``hi``."""
    if rule not in RULES:
        raise ValueError(f"unknown control rule {rule!r} (one of {RULES})")
    if value is None or math.isnan(value):
        return NOT_MEASURED
    value = _stored(value)
    has_ci = lo is not None and hi is not None and not math.isnan(lo) and not math.isnan(hi)
    if has_ci:
        lo, hi = _stored(lo), _stored(hi)
        if lo > hi:
            raise ValueError(f"confidence interval [{lo}, {hi}] has lo > hi")
    if rule == AT_LEAST:
        return PASS if value >= threshold else FAIL
    if not has_ci:
        return NOT_MEASURED  # the rule is about the interval: a point estimate decides nothing
    if rule == DIFF_AT_LEAST:
        ok = value >= threshold and lo > 0
    elif rule == CI_ABOVE:
        ok = lo > threshold
    else:  # CI_HOLDS
        ok = lo <= threshold and (margin <= 0 or hi < threshold + margin)
    return PASS if ok else FAIL


@dataclass(frozen=True)
class ControlResult(Control):
    """One row of the controls table: a registry control, its measurement and the status the rule gives.

    Build it with :func:`control_row`, which copies the registry fields and computes ``status``."""

    value: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    n_seeds: int = 0
    status: str = NOT_MEASURED
    regime: str = ""
    evidence: str = ""


def control_row(id: str, value: float = math.nan, lo: float = math.nan, hi: float = math.nan, n_seeds: int = 0,
                evidence: str = "", regime: str = "") -> ControlResult:
    """The row of control ``id`` (a key of :data:`CONTROLS`) for a measured ``value`` with CI ``[lo, hi]``
    over ``n_seeds`` training seeds, on the control's registered object; pass/fail is computed from the
    registry's rule and threshold."""
    if id not in CONTROLS:
        raise KeyError(f"unknown control {id!r}; the registry has {list(CONTROLS)}")
    c = CONTROLS[id]
    return ControlResult(**dataclasses.asdict(c), value=value, lo=lo, hi=hi, n_seeds=n_seeds,
                         status=check(c.rule, c.threshold, value, lo, hi, c.margin), regime=regime, evidence=evidence)


def controls_table(rows: Iterable[ControlResult]) -> pd.DataFrame:
    """A DataFrame with one row per control measurement, columns :data:`COLUMNS` (numbers stay numbers)."""
    df = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=list(COLUMNS))
    return df.astype({"threshold": float, "value": float, "lo": float, "hi": float, "n_seeds": int})


def _judged_record(rec, where) -> ControlResult | None:
    """The row one record of a notebook's controls table (``id``, ``value``, ``lo``, ``hi`` and optional ``n_seeds``,
    ``regime``, ``evidence``) gets from today's registry, on the control's registered object; ``None`` for a
    :data:`RETIRED` control. Raises ``DataError`` naming ``where`` for an unknown control or a bad interval."""
    cid = str(rec["id"])
    if cid in RETIRED:
        return None
    if cid not in CONTROLS:
        raise DataError(f"{where}: unknown control {cid!r} (the registry, deepmt/controls.py, has {list(CONTROLS)})")
    n_seeds = rec.get("n_seeds", 0)
    try:
        return control_row(cid, float(rec["value"]), float(rec["lo"]), float(rec["hi"]),
                           n_seeds=0 if pd.isna(n_seeds) else int(n_seeds),
                           evidence=text_or(rec.get("evidence"), str(where)), regime=text_or(rec.get("regime")))
    except ValueError as e:
        raise DataError(f"{where}: control {cid!r}: {e}") from e


def collect_controls(results_dir: str | Path | None = None, pattern: str = "*controls*.csv",
                     include_unmeasured: bool = True) -> pd.DataFrame:
    """Read every ``results/*controls*.csv`` (not :data:`COLLECTED`), recompute each pass/fail from
    :data:`CONTROLS`, order the rows as the registry (a row on another object than its control's registered one
    after that control's own rows).

    A row's ``object`` is the file's; a file without that column, or an empty cell, means the control's registered
    object (module docstring, "Objects"). Rows of a :data:`RETIRED` control are skipped. With
    ``include_unmeasured``, a registry control that no file measured on its registered object appears as one "not
    measured" row. Raises ``DataError`` naming the file for a file without ``id``, ``value``, ``lo``, ``hi``, an
    unknown control id, an interval with lo > hi, or a control measured twice on one object in one regime.
    """
    from deepmt.reporting import results_dir as default_results_dir

    root = Path(results_dir) if results_dir is not None else default_results_dir()
    frames = read_result_tables(root, pattern, required=("id", "value", "lo", "hi"), what="controls table",
                                exclude=(COLLECTED,), text_columns=("id", "object", "regime", "evidence"))
    rows: list[ControlResult] = []
    source: dict[tuple[str, str, str], str] = {}
    for df in frames:
        for rec in df.to_dict("records"):
            where = rec["source"]
            row = _judged_record(rec, where)
            if row is None:
                continue
            cid, obj = row.id, text_or(rec.get("object")) or CONTROLS[row.id].object
            if (cid, obj, row.regime) in source:
                raise DataError(f"{where}: control {cid!r} on {obj!r} in regime {row.regime!r} is also measured in "
                                f"{source[cid, obj, row.regime]} (each control has one source)")
            source[cid, obj, row.regime] = where
            rows.append(dataclasses.replace(row, object=obj))
    if include_unmeasured:
        seen = {r.id for r in rows if r.object == CONTROLS[r.id].object}
        rows += [control_row(cid) for cid in CONTROLS if cid not in seen]
    order = {cid: i for i, cid in enumerate(CONTROLS)}
    rows.sort(key=lambda r: (order[r.id], r.object != CONTROLS[r.id].object, r.object, r.regime))
    return controls_table(rows)


def rejudge_tables(results_dir: str | Path | None = None) -> list[Path]:
    """Judge every notebook's ``results/*controls*.csv`` (not :data:`COLLECTED`) again from its own numbers: each
    row of a registry control gets today's registry text, metric, unit, rule and threshold and the status
    :func:`check` gives its value and interval, exactly as the notebook would write the row today. No training: a
    change to a control's rule, threshold or margin reaches the committed tables without the cache (then run
    notebook 11 and ``python -m deepmt.studies.summary``). Rows of a :data:`RETIRED` control are left as written.
    Returns the files whose contents changed; raises ``DataError`` naming the file for a table
    :func:`collect_controls` would refuse."""
    from deepmt.reporting import results_dir as default_results_dir
    from deepmt.utils import atomic_path

    root = Path(results_dir) if results_dir is not None else default_results_dir()
    changed = []
    for df in read_result_tables(root, "*controls*.csv", required=("id", "value", "lo", "hi"), what="controls table",
                                 exclude=(COLLECTED,), text_columns=("id", "object", "regime", "evidence")):
        path = root / df.pop("source").iloc[0]
        for i, rec in df.iterrows():
            row = _judged_record(rec, path)
            if row is None:
                continue
            for col in ("text", "metric", "unit", "rule", "threshold", "status"):
                if col in df.columns:
                    df.at[i, col] = getattr(row, col)
        text = df.to_csv(index=False, float_format="%.6g")
        if text != path.read_text():
            with atomic_path(path) as tmp:
                Path(tmp).write_text(text)
            changed.append(path)
    return changed


def controls_markdown(controls: pd.DataFrame | Sequence[ControlResult], digits: int = 3) -> str:
    """The controls table as docs/RESULTS.md shows it: control, the object it was measured on (a row on another
    object than its control's registered one says that it gates nothing), requirement, measured [95 % CI], seeds,
    regime, result."""
    from deepmt.metrics import format_ci

    df = controls if isinstance(controls, pd.DataFrame) else controls_table(controls)
    shown = pd.DataFrame(
        {
            "control": [f"**{i}** {t}" for i, t in zip(df["id"], df["text"])],
            "object": [o if o == CONTROLS[i].object else f"{o} (not {CONTROLS[i].object}: gates nothing)"
                       for i, o in zip(df["id"], df["object"])],
            "required": [CONTROLS[i].requirement() for i in df["id"]],
            "measured [CI]": [format_ci(v, lo, hi, digits=digits) for v, lo, hi in zip(df["value"], df["lo"], df["hi"])],
            "seeds": [str(int(n)) if n else "" for n in df["n_seeds"]],
            "regime": df["regime"],
            "result": df["status"],
            "evidence": df["evidence"],
        }
    )
    return to_markdown(shown)


def regime_of(cfg) -> str:
    """The benchmark setting a claim or control was measured in, as the ``regime`` column writes it:
    the dataset (for the synthetic benchmark its LR-information dial ``smudge_match``), the scale and
    which training images carry lesion masks, e.g. ``"synthetic, smudge_match=0.8, x4, all masks"``, and which
    carry labels at all when not every one does (``"..., x4, labels on 10% of training images"``: grade and masks
    on those, the rest unlabelled HR images)."""
    d = cfg.data
    parts = [d.dataset]
    if d.dataset == "synthetic":
        parts.append(f"smudge_match={float(d.synth.smudge_match):g}")
    parts.append(f"x{int(d.scale)}")
    few_labels = float(d.label_fraction) < 1
    if float(d.mask_fraction) < 1:
        parts.append(f"masks on {100 * float(d.mask_fraction):g}% of training images")
    elif not few_labels:
        parts.append("all masks")
    if few_labels:
        parts.append(f"labels on {100 * float(d.label_fraction):g}% of training images")
    return ", ".join(parts)
