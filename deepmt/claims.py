"""The claims table: each claim of the paper, our effect size with its confidence interval, and a verdict.

The last notebook and docs/RESULTS.md show this table (the README one row per claim). It is generated from ``results/*claims*.csv`` (written by
the notebooks through :func:`deepmt.reporting.save_table`), never edited by hand::

    from deepmt.claims import Claim, claims_table, collect_claims, claims_markdown
    from deepmt.results_io import update_readme_section

    # in a notebook that measures claim C1 (effect = DeepMT-DR SR minus bicubic, accuracy, over 3 seeds)
    save_table(claims_table([Claim.from_paper("C1", metric="accuracy", effect=d, lo=lo, hi=hi, p_value=p, n_seeds=3,
                                              evidence="03_isr_helps_grading",
                                              regime="smudge_match=0.7, x4, all masks")]), "03_claims")
    # in the last notebook
    df = collect_claims()          # every results/*claims*.csv, verdicts recomputed, controls applied
    update_readme_section("README.md", "claims", claims_markdown(df))

**Effects are signed in the claim's direction**: positive = what the paper says (A better than B; for a
lower-is-better metric pass B - A). ``lo``/``hi`` is a 95% confidence interval of the effect (bootstrap over
images, or across seeds), ``p_value`` the two-sided p-value of "no effect" where the notebook wrote one.

**The reading of the numbers is stated here, in code, before the results it is to judge** (issue 27). The primary
metrics were listed first before any claim was measured; the minimum effects and the multiplicity rule were added
after the committed tables had been seen, so on those tables they are a reading chosen afterwards, fixed for the
tables to come:

* **One primary metric per claim** (:attr:`PaperClaim.primary`). Only a row in a paper claim's primary metric
  carries a verdict; a row in any other metric (a claim's :attr:`PaperClaim.secondary` metrics, or one a notebook
  adds, such as C2's MA AUPR) is reported with its effect and interval, and its verdict column says
  :data:`SECONDARY`, ``"secondary (no verdict)"``. A claim outside :data:`PAPER_CLAIMS` declares no primary
  metric, so none of its rows carries a verdict.
* **One judged comparison where a claim has several** (:attr:`PaperClaim.primary_comparison`, issue 27): C3 is
  judged on the plain HR grader's map only, a grader that never saw a lesion mask. DeepMT-DR's map is trained toward
  the lesions (its visualization-consistency loss and lesion-oriented feature selection pull it onto its lesion
  maps), so its row is no evidence for Finding 2: it is reported as :data:`SECONDARY`. A row's comparison is named by
  its label, the text before the first colon of its ``comparison`` (:func:`comparison_label`).
* **A minimum effect per unit** (:data:`MIN_EFFECTS`, :func:`min_effect`): the smallest effect that would matter.
  A row is judged against the larger of the table's minimum and its own ``min_effect`` column (a notebook may
  state a stricter minimum, never a looser one: the 0 that older notebooks wrote does not lower it). A measured
  row whose metric has no minimum in the table is an error: state one before measuring it.
* **Multiplicity: Holm over the primary rows** (:func:`holm`, :func:`holm_adjusted`). The family is every measured
  primary row of the collected table, whatever its controls say. A row's ``p_value`` is Holm-adjusted within that
  family (``p_holm``); a row without a p-value stays in the family (it counts towards the number of tests, and is
  never significant), gets no adjusted p-value and is shown as ``"not adjusted: no p-value"``: nothing here
  invents a p-value. Holm gates "reproduced" only: "negligible" and "not reproduced" compare the interval with
  the minimum effect, not with zero, and no test of "no effect" bears on them.

**Verdict rule** (:func:`apply_controls`, which calls :func:`verdict`), ``m`` the row's minimum effect (> 0 for
every unit of the table), the first line that applies:

====  ==========================================================  ===========================================
step  condition                                                   verdict
====  ==========================================================  ===========================================
1     the effect is nan (no notebook has produced it)             ``"not measured"``
2     the metric is not the claim's primary metric, or the        ``"secondary (no verdict)"``
      comparison not its primary comparison
3     a control the claim needs failed, or was not measured on    ``"not testable (control gap failed)"``
      the object the claim names, in its regime                   (the reason names the controls)
4     no interval (``lo`` or ``hi`` is nan)                       ``"inconclusive"``
5     the whole interval lies inside the band: ``-m < lo`` and    ``"negligible"``, whatever the p-value
      ``hi < m``
6     ``hi < m`` (and so ``lo <= -m``): the interval rules out    ``"not reproduced"``
      an improvement as large as ``m``
7     ``lo > 0`` and ``effect >= m``, and the Holm-adjusted       ``"reproduced"`` (with no p-value: not
      p < 0.05 where the row has a p-value                        adjusted, the interval alone decides)
8     otherwise: the interval is too wide to decide (it holds     ``"inconclusive"``
      both 0 and ``m``), the effect is real but of uncertain
      size, or Holm's p is not below 0.05
====  ==========================================================  ===========================================

Negligible comes before not reproduced, so an interval inside the band is "negligible" even though it also lies
below ``m``; "not reproduced" is left for an interval that rules out an improvement that matters and reaches an
effect that matters the other way. With ``m = 0`` the band is empty: step 5 never applies, and step 6 is "the
effect is significantly in the opposite direction".

A :class:`Claim` built by a notebook gets the verdict of :func:`verdict` on its own numbers (its own
``min_effect`` and unadjusted p-value; no controls, no primary metric, no table minimum): a notebook's provisional
reading. :func:`collect_claims` recomputes every verdict by the rule above.

**Controls before claims.** Each paper claim names the controls it needs (``PaperClaim.controls``: per family of
:data:`deepmt.controls.CONTROLS`, the object it must be measured on, a :class:`deepmt.controls.Need`), each chosen
to check the object the claim judges (issue 27):

=====  =====================================================================================================
claim  controls (family on object)
=====  =====================================================================================================
C1     learnable and gap on foo_mt (the benchmark: the grades can be learned at HR, and LR loses some of
       them); gap on DeepMT-DR's grading pathway (the grader C1 judges gains from HR over bicubic); sr_works
       (each SR baseline); negative on DeepMT-DR vs its no-ISR twin in grading (C1's own comparison, where
       nothing is left to recover)
C2     lesion_resolution (U-Net); sr_works; negative on the twin pair in MA-vs-smudge identity (a segmentation
       claim: do the MA maps tell MAs from smudges where LR cannot)
C3     learnable on grader_hr (the grader whose map C3 judges)
C4     learnable and gap on foo_mt (DeepMT-DR against the best baseline: benchmark-level)
C5     gap on foo_mt and on DeepMT-DR's grading pathway (the task-aware terms reach grading only through the
       SR image that pathway reads); sr_works
C6     sr_works
C7     learnable on foo_mt (in C7's partial-mask regime)
=====  =====================================================================================================

:func:`collect_claims` applies them (:func:`apply_controls`): a measured primary row whose required control failed
gets ``"not testable (control gap failed)"``, one whose required control was never measured on its object (in the
claim's ``regime``, for a control bound to it) gets ``"not testable (control gap:deepmt_dr not measured)"``
(several reasons: ``"not testable (control learnable failed; controls gap, negative:grading not measured)"``). A
control row measured on another object than the one the claim names neither passes nor fails it. ``regime`` names
the benchmark setting that produced the claim (a free string the notebooks pass, e.g. ``"smudge_match=0.7, x4, all
masks"``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from deepmt import controls as K
from deepmt.controls import Need
from deepmt.errors import DataError
from deepmt.results_io import read_result_tables, text_or, to_markdown

REPRODUCED = "reproduced"
NEGLIGIBLE = "negligible"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
#: a claim without a number yet: the word the controls table uses for a control without one
NOT_MEASURED = K.NOT_MEASURED
VERDICTS = (REPRODUCED, NEGLIGIBLE, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED)
#: prefix of the verdict of a claim whose controls failed or were not measured: "not testable (...)"
NOT_TESTABLE = "not testable"
#: the verdict column of a row in a secondary metric: reported, not judged (not one of :data:`VERDICTS`)
SECONDARY = "secondary (no verdict)"
#: the family-wise error rate Holm's adjustment keeps (step 7 of the rule)
ALPHA = 0.05
#: the p-value cell of a primary row without a p-value (:func:`claims_markdown`)
NOT_ADJUSTED = "not adjusted: no p-value"

#: Columns of a claims table (and of the ``results/*claims*.csv`` files). The collected table
#: (:func:`apply_controls`) adds ``p_holm`` after ``p_value``.
COLUMNS = ("id", "text", "metric", "comparison", "regime", "effect", "lo", "hi", "p_value", "min_effect", "n_seeds",
           "verdict", "evidence", "interval", "stage2_fallbacks", "stage2_rising", "stage2_rising_b")

#: a claims row's counts of how the last stages of its runs ended: on how many seeds A's kept the weights it started
#: from (DeepMT-DR's stage 2 falling back to stage 1's), and A's / B's was still rising by notebook 03's rule; each
#: with the seeds cell's note on it (:func:`stage2_note`)
STAGE2_NOTES = {"stage2_fallbacks": "stage 2 fell back on {}", "stage2_rising": "A's stage 2 still rising on {}",
                "stage2_rising_b": "B's stage 2 still rising on {}"}


def stage2_counts(row: Mapping[str, Any]) -> dict[str, int]:
    """A claims or effects row's :data:`STAGE2_NOTES` counts, 0 where missing or nan."""
    return {k: 0 if pd.isna(row.get(k, 0)) else int(row.get(k, 0)) for k in STAGE2_NOTES}


def stage2_note(row: Mapping[str, Any]) -> str:
    """The seeds cell's note on a row's last stages (" (B's stage 2 still rising on 1)"); "" if every count is 0."""
    parts = [STAGE2_NOTES[k].format(c) for k, c in stage2_counts(row).items() if c]
    return f" ({'; '.join(parts)})" if parts else ""


#: what each ``interval`` of a claims row resamples (:func:`deepmt.studies.common.effect`), as the tables show it
INTERVAL_OVER = {"hierarchical": "seeds + images", "seed t": "seeds (t)", "images": "images"}


@dataclass(frozen=True)
class MinEffect:
    """The smallest effect that would matter in one unit, and why."""

    value: float
    reason: str


#: The minimum effect per unit (issue 27), stated before the results of the next run; like the controls' thresholds
#: (:mod:`deepmt.controls`) it may be made stricter, never looser after seeing results. A metric's unit is its
#: name (``accuracy``, ``macro_f1``, ``energy_in_lesions``) or, failing that, the part before its first ``_``
#: (``psnr_lesion`` -> ``psnr``, ``aupr_MA`` -> ``aupr``): :func:`unit_of`.
MIN_EFFECTS: dict[str, MinEffect] = {
    "accuracy": MinEffect(0.02, "2 images in 100 graded right that were not: less would not repay a heavier pipeline"),
    "qwk": MinEffect(0.01, "QWK counts an adjacent misgrade as a small part of an error, so the same images graded "
                           "right move it less than accuracy: half accuracy's minimum"),
    "macro_f1": MinEffect(0.02, "a per-class share of images like accuracy: the same minimum"),
    "psnr": MinEffect(0.1, "0.1 dB is 2.3% less mean squared error, about the smallest gain SR papers call one"),
    "ssim": MinEffect(0.01, "one point of a [0, 1] similarity score, as for QWK"),
    "aupr": MinEffect(0.02, "2 points of a [0, 1] score of lesion detection, as for accuracy"),
    "dice": MinEffect(0.02, "2 points of a [0, 1] overlap score, as for AUPR"),
    # C3's effect is a difference of energy shares: (share of the map's energy inside the lesion regions) minus
    # (the same inside the regions placed at random), and its "lift" is their ratio, 1 + effect / random share.
    # A 1.1x lift is an effect of 0.1 x the random share. The random share is what a map that ignores the lesions
    # puts there, i.e. the area the (dilated) lesion regions cover in the field of view: about 0.30 on this
    # benchmark (area_share 0.296 in notebook 02's results/02_energy_summary.csv: a property of the benchmark's
    # lesion masks and their dilation, the same for every map), so 0.1 x 0.30 = 0.03.
    "energy_in_lesions": MinEffect(0.03, "a 1.1x energy lift over random placement: 0.1 x the ~0.30 share of the "
                                         "field of view the dilated lesion regions cover"),
}


def unit_of(metric: str) -> str | None:
    """The key of :data:`MIN_EFFECTS` that holds ``metric`` (see there), or ``None`` when none does."""
    for key in (metric, metric.split("_", 1)[0]):
        if key in MIN_EFFECTS:
            return key
    return None


def min_effect(metric: str, stated_by_row: float = 0.0) -> float:
    """The minimum effect a row in ``metric`` is judged against: the larger of :data:`MIN_EFFECTS`'s for its unit
    and the row's own (``stated_by_row``; nan counts as 0). Raises ``ValueError`` for a metric without a stated
    minimum, or a negative ``stated_by_row``."""
    unit = unit_of(metric)
    if unit is None:
        raise ValueError(f"no minimum effect is stated for metric {metric!r}: add its unit to "
                         f"deepmt.claims.MIN_EFFECTS (units: {sorted(MIN_EFFECTS)}) before judging it")
    own = 0.0 if stated_by_row is None or math.isnan(stated_by_row) else float(stated_by_row)
    if own < 0:
        raise ValueError(f"min_effect must be >= 0 (the smallest improvement that matters), got {own}")
    return max(MIN_EFFECTS[unit].value, own)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` (one family of tests), in their order: sorted ascending
    ``p_(1) <= ... <= p_(k)``, ``adjusted_(i) = max over j <= i of min(1, (k - j + 1) * p_(j))``. A test is
    rejected at family-wise error ``alpha`` when its adjusted value is below ``alpha``. Raises ``ValueError`` for
    a p-value outside [0, 1] or nan."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    k = p.size
    stepped = np.minimum(1.0, (k - np.arange(k)) * p[order])
    out = np.empty(k)
    out[order] = np.maximum.accumulate(stepped)
    return out


def comparison_label(comparison: str) -> str:
    """The label that names a row's comparison: the text before its first colon (``"HR grader's plain Grad-CAM:
    ..."`` -> ``"HR grader's plain Grad-CAM"``), else the whole text."""
    head, colon, _ = text_or(comparison).partition(":")
    return head.strip() if colon else text_or(comparison).strip()


def is_primary(claim_id: str, metric: str, comparison: str) -> bool:
    """Whether a row of claim ``claim_id`` in ``metric`` comparing ``comparison`` carries a verdict: ``metric`` is
    the primary metric of a claim of :data:`PAPER_CLAIMS` and, where the claim names a primary comparison, the
    row's :func:`comparison_label` is that comparison."""
    pc = PAPER_CLAIMS.get(claim_id)
    return (pc is not None and metric == pc.primary
            and (not pc.primary_comparison or comparison_label(comparison) == pc.primary_comparison))


def holm_adjusted(claims: pd.DataFrame) -> pd.Series:
    """The Holm-adjusted p-value of every row of ``claims`` (index as ``claims``): the family is the measured
    primary rows (:func:`is_primary`), those without a ``p_value`` counted in it as never significant; nan for a
    row outside the family or without a p-value."""
    out = pd.Series(math.nan, index=claims.index, dtype=float)
    family = [i for i, r in claims.iterrows()
              if not math.isnan(r["effect"]) and is_primary(str(r["id"]), str(r["metric"]), r["comparison"])]
    if family:
        given = claims.loc[family, "p_value"].astype(float)
        adjusted = pd.Series(holm(given.fillna(1.0).to_numpy()), index=family)
        out.loc[family] = adjusted.where(given.notna())
    return out


def verdict(effect: float, lo: float, hi: float, min_effect: float = 0.0, p_value: float = math.nan) -> str:
    """The verdict on one judged row from its effect (signed in the claim's direction), confidence interval,
    minimum effect and (Holm-adjusted) p-value: steps 1 and 4-8 of the rule in the module docstring (the
    primary metric and the controls are :func:`apply_controls`'s). ``min_effect`` must be >= 0; ``lo`` must not
    exceed ``hi``; a nan ``p_value`` leaves the interval alone to decide."""
    if min_effect is None or (isinstance(min_effect, float) and math.isnan(min_effect)):
        min_effect = 0.0
    if min_effect < 0:
        raise ValueError(f"min_effect must be >= 0 (the smallest improvement that matters), got {min_effect}")
    if effect is None or math.isnan(effect):
        return NOT_MEASURED
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE  # a point estimate without an interval decides nothing
    if lo > hi:
        raise ValueError(f"confidence interval [{lo}, {hi}] has lo > hi")
    if -min_effect < lo and hi < min_effect:
        return NEGLIGIBLE
    if hi < min_effect:
        return NOT_REPRODUCED
    significant = p_value is None or math.isnan(p_value) or p_value < ALPHA
    if lo > 0 and effect >= min_effect and significant:
        return REPRODUCED
    return INCONCLUSIVE


def is_verdict(v: str) -> bool:
    """Whether ``v`` is one of :data:`VERDICTS` or a ``"not testable (...)"`` verdict (:data:`SECONDARY` is not:
    a secondary row carries no verdict)."""
    return v in VERDICTS or v.startswith(NOT_TESTABLE + " (")


@dataclass(frozen=True)
class PaperClaim:
    """One claim of the paper: its text, the comparison that tests it, its one primary metric (the only one that
    gets a verdict), the secondary metrics the notebooks report beside it, the controls it needs (per control
    family, the object it must be measured on: :class:`deepmt.controls.Need`) and, for a claim measured by several
    comparisons, the one that gets a verdict (``primary_comparison``, a :func:`comparison_label`; empty: every
    comparison)."""

    id: str
    text: str
    comparison: str
    primary: str
    secondary: tuple[str, ...] = ()
    controls: tuple[Need, ...] = ()
    primary_comparison: str = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        """The primary metric, then the secondary ones."""
        return (self.primary, *self.secondary)


#: the label of C3's judged comparison: the plain HR grader's map, a grader trained on grades only
#: (:mod:`deepmt.studies.finding2` starts its comparison with it)
PLAIN_GRADER_MAP = "HR grader's plain Grad-CAM"

#: The paper's claims that the notebooks test (effects signed so that positive supports the claim). The primary
#: metric of each was its first-listed metric before any claim was measured (issue 27 made it explicit); the
#: controls each needs, and on which object, are listed in the module docstring.
PAPER_CLAIMS: dict[str, PaperClaim] = {
    c.id: c
    for c in (
        PaperClaim(
            "C1",
            "Super-resolving the low-resolution input improves DR grading (Finding 1).",
            "DeepMT-DR SR input vs bicubic-upsampled LR input, same grader",
            "accuracy", ("qwk", "macro_f1"),
            (Need("learnable", K.FOO_MT), Need("learnable", K.DR_ORACLE), Need("gap", K.FOO_MT), Need("gap", K.DR_PATHWAY),
             Need("sr_works"), Need("negative", K.TWIN_GRADING)),
        ),
        PaperClaim(
            "C2",
            "Super-resolving the low-resolution input improves lesion segmentation (Finding 1).",
            "segmentation of the SR image vs of the bicubic-upsampled LR image",
            "aupr", ("dice",),
            (Need("lesion_resolution"), Need("sr_works"), Need("negative", K.TWIN_IDENTITY)),
        ),
        PaperClaim(
            "C3",
            "The lesion segmentation regions agree with the regions that drive the grading decision (Finding 2).",
            "visualization-map energy inside lesion masks vs the same masks at random positions in the FOV",
            "energy_in_lesions", (),
            (Need("learnable", K.GRADER_HR),),
            primary_comparison=PLAIN_GRADER_MAP,
        ),
        PaperClaim(
            "C4",
            "DeepMT-DR grades low-resolution fundus images better than the best baseline.",
            "DeepMT-DR vs best baseline, LR input",
            "accuracy", ("qwk", "macro_f1"),
            (Need("learnable", K.FOO_MT), Need("learnable", K.DR_ORACLE), Need("gap", K.FOO_MT)),
        ),
        PaperClaim(
            "C5",
            "The task-aware loss improves grading and super-resolution in lesion regions.",
            "DeepMT-DR vs the same network trained without the task-aware loss terms",
            "accuracy", ("qwk", "psnr_lesion", "ssim_lesion"),
            (Need("gap", K.FOO_MT), Need("gap", K.DR_PATHWAY), Need("sr_works")),
        ),
        PaperClaim(
            "C6",
            "DeepMT-DR's super-resolution beats single-task ISR inside lesion regions.",
            "DeepMT-DR ISR vs single-task ISR network (same architecture, pixel loss only)",
            "psnr_lesion", ("ssim_lesion",),
            (Need("sr_works"),),
        ),
        PaperClaim(
            "C7",
            "Pseudo masks from the visualization map improve grading when only a fraction of the training images "
            "have lesion masks (journal extension, unsupervised part).",
            "DeepMT-DR with the pseudo-mask term vs without it, partial-mask training set",
            "accuracy", ("qwk", "macro_f1"),
            (Need("learnable", K.FOO_MT),),
        ),
    )
}


@dataclass
class Claim:
    """One row of the claims table: a claim, one metric, the measured effect and the verdict.

    ``effect`` = metric(A) - metric(B) signed so that positive supports the claim; ``lo``/``hi`` its confidence interval;
    ``p_value`` the two-sided p-value of "no effect" (nan where none was computed); ``n_seeds`` training seeds behind
    it; ``evidence`` the notebook that measured it; ``regime`` the benchmark setting that produced it; ``min_effect`` a
    minimum stricter than the unit's (:data:`MIN_EFFECTS`), 0 for the unit's own; ``interval`` what the interval
    resamples (:data:`INTERVAL_OVER`); the counts of :data:`STAGE2_NOTES`. ``verdict`` is computed from the row's own
    numbers by :func:`verdict` when left empty; :func:`collect_claims` recomputes it by the full rule (module docstring)."""

    id: str
    text: str
    metric: str
    comparison: str
    regime: str = ""
    effect: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    n_seeds: int = 0
    verdict: str = ""
    evidence: str = ""
    min_effect: float = 0.0
    p_value: float = math.nan
    interval: str = ""
    stage2_fallbacks: int = 0
    stage2_rising: int = 0
    stage2_rising_b: int = 0

    def __post_init__(self) -> None:
        computed = verdict(self.effect, self.lo, self.hi, self.min_effect, self.p_value)
        if not self.verdict:
            self.verdict = computed
        elif not is_verdict(self.verdict):
            raise ValueError(f"claim {self.id}: unknown verdict {self.verdict!r} (one of {VERDICTS} or '{NOT_TESTABLE} (...)')")

    @classmethod
    def from_paper(cls, id: str, metric: str, **kwargs: Any) -> "Claim":
        """A claim of :data:`PAPER_CLAIMS` with its text and comparison filled in (both can be overridden)."""
        if id not in PAPER_CLAIMS:
            raise KeyError(f"unknown claim {id!r}; the paper's claims are {sorted(PAPER_CLAIMS)}")
        pc = PAPER_CLAIMS[id]
        kwargs.setdefault("text", pc.text)
        kwargs.setdefault("comparison", pc.comparison)
        return cls(id=id, metric=metric, **kwargs)


def claims_table(claims: Iterable[Claim]) -> pd.DataFrame:
    """A DataFrame with one row per claim and metric, columns :data:`COLUMNS` (numbers stay numbers)."""
    rows = [asdict(c) for c in claims]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype({"effect": float, "lo": float, "hi": float, "p_value": float, "min_effect": float})


#: a control measured on its object, but only in regimes other than the claim's (:func:`control_statuses`)
OTHER_REGIME = "measured only in another regime"


def control_statuses(claim_id: str, regime: str, controls: pd.DataFrame) -> dict[str, str]:
    """The status of every control claim ``claim_id``, measured in ``regime``, needs, member by member, in the
    order of its needs (``{"sr_works:srcnn": "pass", ...}``; a claim outside :data:`PAPER_CLAIMS` needs none).

    ``controls`` is a controls table (:func:`deepmt.controls.collect_controls`). A row applies when it measures
    the control on the object the claim names (the control's registered object, :attr:`PaperClaim.controls`) and
    was made in the claim's regime, or in any regime for a control not bound to one (``same_regime=False``, the
    negative controls). *fail* when a row that applies failed, *pass* when at least one applies and all passed,
    :data:`OTHER_REGIME` when the only rows on its object are in other regimes, *not measured* otherwise (a row on
    another object counts for nothing)."""
    pc = PAPER_CLAIMS.get(claim_id)
    out: dict[str, str] = {}
    for need in pc.controls if pc else ():
        for cid in need.ids():
            c = K.CONTROLS[cid]
            rows = controls[(controls["id"] == cid) & (controls["object"] == c.object) & (controls["status"] != K.NOT_MEASURED)]
            here = rows[rows["regime"].fillna("") == regime] if c.same_regime else rows
            if (here["status"] == K.FAIL).any():
                out[cid] = K.FAIL
            elif len(here):
                out[cid] = K.PASS
            else:
                out[cid] = OTHER_REGIME if len(rows) else K.NOT_MEASURED
    return out


def not_testable_reason(claim_id: str, regime: str, controls: pd.DataFrame) -> str:
    """Why claim ``claim_id``, measured in ``regime``, cannot be judged; ``""`` when it can: every control it needs
    passed (:func:`control_statuses`). The reason names the controls that failed (``"control gap failed"``),
    then those not measured on the object the claim names (``"controls gap:deepmt_dr, negative:grading not
    measured"``), then those measured only in other regimes (``"control gap measured only in another regime"``:
    check the ``regime`` strings), joined by ``"; "``."""
    statuses = control_statuses(claim_id, regime, controls)
    groups = [([cid for cid, s in statuses.items() if s == status], words)
              for status, words in ((K.FAIL, "failed"), (K.NOT_MEASURED, "not measured"), (OTHER_REGIME, OTHER_REGIME))]
    return "; ".join(f"control{'s' * (len(ids) > 1)} {', '.join(ids)} {words}" for ids, words in groups if ids)


def apply_controls(claims: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    """``claims`` judged by the full rule of the module docstring: each row's ``min_effect`` raised to its unit's
    (:func:`min_effect`; a measured row whose metric has none raises ``ValueError``), ``p_holm`` added after
    ``p_value`` (:func:`holm_adjusted`), and each verdict recomputed: "not measured", :data:`SECONDARY` for a
    row outside its claim's primary metric or primary comparison (:func:`is_primary`), ``"not testable
    (<reason>)"`` (:func:`not_testable_reason`) for a primary row whose controls did not all pass, else
    :func:`verdict` with the Holm-adjusted p-value."""
    out = claims.copy()
    out["min_effect"] = [min_effect(r.metric, r.min_effect) if not math.isnan(r.effect) or unit_of(r.metric)
                         else r.min_effect for r in out.itertuples(index=False)]
    out.insert(out.columns.get_loc("p_value") + 1, "p_holm", holm_adjusted(out))
    verdicts = []
    for r in out.itertuples(index=False):
        if math.isnan(r.effect):
            verdicts.append(NOT_MEASURED)
        elif not is_primary(r.id, r.metric, r.comparison):
            verdicts.append(SECONDARY)
        else:
            reason = not_testable_reason(r.id, text_or(r.regime), controls)
            verdicts.append(f"{NOT_TESTABLE} ({reason})" if reason
                            else verdict(r.effect, r.lo, r.hi, r.min_effect, r.p_holm))
    out["verdict"] = verdicts
    return out


def collect_claims(results_dir: str | Path | None = None, pattern: str = "*claims*.csv", include_unmeasured: bool = True,
                   controls: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read every ``results/*claims*.csv``, judge every row by the rule of the module docstring (the units'
    minimum effects, Holm over the primary rows, the controls), sort by claim id.

    ``controls`` is the controls table to apply (:func:`apply_controls`); by default the one
    :func:`deepmt.controls.collect_controls` gathers from the same folder. Missing ``text`` / ``comparison``
    are taken from :data:`PAPER_CLAIMS`; a file without ``p_value`` or ``min_effect`` columns (older notebooks)
    reads as nan / 0 there. With ``include_unmeasured``, a paper claim that no file mentions appears as one
    "not measured" row in its primary metric, so the table always lists all of them. A file without the columns
    ``id``, ``metric``, ``effect``, ``lo``, ``hi``, with an interval whose lo > hi, or with a measured row in a
    metric without a minimum effect (:data:`MIN_EFFECTS`) raises ``DataError``.
    """
    from deepmt.reporting import results_dir as default_results_dir

    root = Path(results_dir) if results_dir is not None else default_results_dir()
    frames = read_result_tables(root, pattern, required=("id", "metric", "effect", "lo", "hi"), what="claims table",
                                text_columns=("id", "text", "metric", "comparison", "regime", "evidence", "interval"))
    claims = []
    for df in frames:
        for row in df.to_dict("records"):
            cid = str(row["id"])
            pc = PAPER_CLAIMS.get(cid)
            text = text_or(row.get("text"), pc.text if pc else "")
            comp = text_or(row.get("comparison"), pc.comparison if pc else "")
            min_eff = row.get("min_effect", 0.0)
            n_seeds = row.get("n_seeds", 0)
            try:
                claim = Claim(id=cid, text=text, metric=str(row["metric"]), comparison=comp, regime=text_or(row.get("regime")),
                              effect=float(row["effect"]), lo=float(row["lo"]), hi=float(row["hi"]),
                              p_value=float(row.get("p_value", math.nan)), n_seeds=0 if pd.isna(n_seeds) else int(n_seeds),
                              evidence=text_or(row.get("evidence"), row["source"]),
                              min_effect=0.0 if pd.isna(min_eff) else float(min_eff), interval=text_or(row.get("interval")),
                              **stage2_counts(row))
                if not math.isnan(claim.effect):
                    min_effect(claim.metric, claim.min_effect)  # a measured row needs a stated minimum
            except ValueError as e:
                raise DataError(f"{row['source']}: claim {cid} ({row['metric']}): {e}") from e
            claims.append(claim)
    if include_unmeasured:
        seen = {c.id for c in claims}
        claims += [Claim(id=pc.id, text=pc.text, metric=pc.primary, comparison=pc.comparison)
                   for pc in PAPER_CLAIMS.values() if pc.id not in seen]
    claims.sort(key=lambda c: _natural_key(c.id))
    if controls is None:
        controls = K.collect_controls(root)
    return apply_controls(claims_table(claims), controls)


def _natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


# --------------------------------------------------------------------------- markdown
def _p_cell(primary: bool, measured: bool, p: float, p_holm: float) -> str:
    """The p-value cell of a row: the Holm-adjusted p (and the raw one) for a primary row, :data:`NOT_ADJUSTED`
    for a measured primary row without one, the row's own p (if any) for a secondary row."""
    if primary and measured:
        return f"{p_holm:.3g} (raw {p:.3g})" if not math.isnan(p_holm) else NOT_ADJUSTED
    return "" if math.isnan(p) else f"{p:.3g}"


def claims_markdown(claims: pd.DataFrame | Sequence[Claim], digits: int = 3) -> str:
    """The claims table as docs/RESULTS.md shows it: claim, comparison, regime, metric, effect [95 % CI], the
    minimum effect, seeds, what the interval resamples (:data:`INTERVAL_OVER`), the p-value (Holm-adjusted over the primary rows: :func:`holm_adjusted`), verdict."""
    df = claims if isinstance(claims, pd.DataFrame) else claims_table(claims)
    from deepmt.metrics import format_ci

    p_holm = df["p_holm"] if "p_holm" in df else holm_adjusted(df)
    shown = pd.DataFrame(
        {
            "claim": [f"**{i}** {t}" for i, t in zip(df["id"], df["text"])],
            "comparison (A vs B)": df["comparison"],
            "regime": df["regime"],
            "metric": df["metric"],
            "effect A−B [CI]": [format_ci(e, lo, hi, digits=digits, signed=True) for e, lo, hi in zip(df["effect"], df["lo"], df["hi"])],
            "min. effect": [f"{m:g}" for m in df["min_effect"]],
            "seeds": [(str(int(n)) if n else "") + stage2_note(r) for n, r in zip(df["n_seeds"], df.to_dict("records"))],
            "CI over": [INTERVAL_OVER.get(text_or(i), text_or(i)) for i in df.get("interval", [""] * len(df))],
            "p (Holm)": [_p_cell(is_primary(str(i), str(m), c), not math.isnan(e), pv, ph)
                         for i, m, c, e, pv, ph in zip(df["id"], df["metric"], df["comparison"], df["effect"],
                                                       df["p_value"], p_holm)],
            "verdict": df["verdict"],
            "evidence": df["evidence"],
        }
    )
    return to_markdown(shown)
