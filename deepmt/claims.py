"""The claims table: each claim of the paper, our effect size with its confidence interval, and a verdict.

The last notebook and docs/RESULTS.md show this table (the README one row per claim). It is generated from ``results/*claims*.csv`` (written by
the notebooks through :func:`deepmt.reporting.save_table`), never edited by hand::

    from deepmt.claims import Claim, claims_table, collect_claims, claims_markdown
    from deepmt.results_io import update_readme_section

    # in a notebook that measures claim C1 (effect = DeepMT-DR SR minus bicubic, accuracy, over 3 seeds)
    save_table(claims_table([Claim.from_paper("C1", metric="accuracy", effect=d, lo=lo, hi=hi, n_seeds=3,
                                              evidence="03_isr_helps_grading",
                                              regime="smudge_match=0.7, x4, all masks")]), "03_claims")
    # in the last notebook
    df = collect_claims()          # every results/*claims*.csv, verdicts recomputed, controls applied
    update_readme_section("README.md", "claims", claims_markdown(df))

**Effects are signed in the claim's direction**: positive = what the paper says (A better than B; for a
lower-is-better metric pass B - A). ``lo``/``hi`` is a confidence interval of the effect (bootstrap over
images, or across seeds).

**Verdict rule** (:func:`verdict`), with ``min_effect`` >= 0 the smallest improvement that would matter:

* ``"not reproduced"`` when ``hi < min_effect``: the interval rules out an improvement as large as
  ``min_effect`` (with ``min_effect = 0``: the effect is significantly in the opposite direction);
* ``"reproduced"`` when ``lo > 0`` and ``effect >= min_effect``: the improvement is clearly above zero and
  its point estimate is large enough to matter;
* ``"inconclusive"`` otherwise: the interval is too wide to decide (it holds both 0 and ``min_effect``, or
  the effect is real but of uncertain size).
* ``"not measured"`` when the effect is nan (no notebook has produced it yet).

**Controls before claims.** Each paper claim names the controls it needs (``PaperClaim.controls``, families
of :data:`deepmt.controls.CONTROLS`). :func:`collect_claims` applies them (:func:`apply_controls`): a
measured claim whose required control failed gets ``"not testable (control gap failed)"``, one whose
required control was never measured (in the claim's ``regime``, for a control bound to it) gets
``"not testable (control gap not measured)"`` (several reasons: ``"not testable (control learnable failed;
controls gap, negative not measured)"``). Only when every required control passes does the verdict rule
above decide. ``regime`` names the benchmark setting that produced the claim (a free string the notebooks
pass, e.g. ``"smudge_match=0.7, x4, all masks"``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from deepmt import controls as K
from deepmt.errors import DataError
from deepmt.results_io import read_result_tables, text_or, to_markdown

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
#: a claim without a number yet: the word the controls table uses for a control without one
NOT_MEASURED = K.NOT_MEASURED
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED)
#: prefix of the verdict of a claim whose controls failed or were not measured: "not testable (...)"
NOT_TESTABLE = "not testable"

#: Columns of a claims table (and of the ``results/*claims*.csv`` files).
COLUMNS = ("id", "text", "metric", "comparison", "regime", "effect", "lo", "hi", "min_effect", "n_seeds", "verdict", "evidence")


def verdict(effect: float, lo: float, hi: float, min_effect: float = 0.0) -> str:
    """The verdict on a claim from its effect (signed in the claim's direction) and confidence interval.

    See the module docstring for the rule. ``min_effect`` must be >= 0; ``lo`` must not exceed ``hi``.
    """
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
    if hi < min_effect:
        return NOT_REPRODUCED
    if lo > 0 and effect >= min_effect:
        return REPRODUCED
    return INCONCLUSIVE


def is_verdict(v: str) -> bool:
    """Whether ``v`` is one of :data:`VERDICTS` or a ``"not testable (...)"`` verdict."""
    return v in VERDICTS or v.startswith(NOT_TESTABLE + " (")


@dataclass(frozen=True)
class PaperClaim:
    """One claim of the paper: its text, the comparison that tests it, and the control families it needs."""

    id: str
    text: str
    comparison: str
    metrics: tuple[str, ...]
    controls: tuple[str, ...] = ()


#: The paper's claims that the notebooks test (effects signed so that positive supports the claim).
PAPER_CLAIMS: dict[str, PaperClaim] = {
    c.id: c
    for c in (
        PaperClaim(
            "C1",
            "Super-resolving the low-resolution input improves DR grading (Finding 1).",
            "DeepMT-DR SR input vs bicubic-upsampled LR input, same grader",
            ("accuracy", "qwk", "macro_f1"),
            ("learnable", "gap", "sr_works", "negative"),
        ),
        PaperClaim(
            "C2",
            "Super-resolving the low-resolution input improves lesion segmentation (Finding 1).",
            "segmentation of the SR image vs of the bicubic-upsampled LR image",
            ("aupr", "dice"),
            ("lesion_resolution", "sr_works", "negative"),
        ),
        PaperClaim(
            "C3",
            "The lesion segmentation regions agree with the regions that drive the grading decision (Finding 2).",
            "visualization-map energy inside lesion masks vs the same masks at random positions in the FOV",
            ("energy_in_lesions",),
            ("learnable",),
        ),
        PaperClaim(
            "C4",
            "DeepMT-DR grades low-resolution fundus images better than the best baseline.",
            "DeepMT-DR vs best baseline, LR input",
            ("accuracy", "qwk", "macro_f1"),
            ("learnable", "gap"),
        ),
        PaperClaim(
            "C5",
            "The task-aware loss improves grading and super-resolution in lesion regions.",
            "DeepMT-DR vs the same network trained without the task-aware loss terms",
            ("accuracy", "qwk", "psnr_lesion", "ssim_lesion"),
            ("gap", "sr_works"),
        ),
        PaperClaim(
            "C6",
            "DeepMT-DR's super-resolution beats single-task ISR inside lesion regions.",
            "DeepMT-DR ISR vs single-task ISR network (same architecture, pixel loss only)",
            ("psnr_lesion", "ssim_lesion"),
            ("sr_works",),
        ),
        PaperClaim(
            "C7",
            "Pseudo masks from the visualization map improve grading when only a fraction of the training images "
            "have lesion masks (journal extension, unsupervised part).",
            "DeepMT-DR with the pseudo-mask term vs without it, partial-mask training set",
            ("accuracy", "qwk", "macro_f1"),
            ("learnable",),
        ),
    )
}


@dataclass
class Claim:
    """One row of the claims table: a claim, one metric, the measured effect and the verdict.

    ``effect`` = metric(A) - metric(B) signed so that positive supports the claim; ``lo``/``hi`` its
    confidence interval; ``n_seeds`` training seeds behind it; ``evidence`` the notebook that measured it;
    ``regime`` the benchmark setting that produced it. ``verdict`` is computed from the numbers by
    :func:`verdict` when left empty (controls are applied when the claims are collected).
    """

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

    def __post_init__(self) -> None:
        computed = verdict(self.effect, self.lo, self.hi, self.min_effect)
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
    rows = [dataclasses.asdict(c) for c in claims]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype({"effect": float, "lo": float, "hi": float, "min_effect": float})


def not_testable_reason(claim_id: str, regime: str, controls: pd.DataFrame) -> str:
    """Why claim ``claim_id``, measured in ``regime``, cannot be judged; ``""`` when it can.

    ``controls`` is a controls table (:func:`deepmt.controls.collect_controls`). Every member of every
    control family the claim needs (:attr:`PaperClaim.controls`) must have passed: measured in the same
    regime for a control bound to it (``same_regime``), in any regime otherwise (every such row must pass).
    The reason names the controls that failed (``"control gap failed"``), then those that were not measured
    (``"controls gap, negative not measured"``), then those measured only in other regimes (``"control gap
    measured only in another regime"``: check the ``regime`` strings), joined by ``"; "``. A claim outside
    :data:`PAPER_CLAIMS` needs none.
    """
    pc = PAPER_CLAIMS.get(claim_id)
    failed, missing, elsewhere = [], [], []
    for family in pc.controls if pc else ():
        for cid in K.members(family):
            rows = controls[(controls["id"] == cid) & (controls["status"] != K.NOT_MEASURED)]
            here = rows[rows["regime"].fillna("") == regime] if K.CONTROLS[cid].same_regime else rows
            if (here["status"] == K.FAIL).any():
                failed.append(cid)
            elif len(here) == 0:
                (elsewhere if len(rows) else missing).append(cid)
    return "; ".join(f"control{'s' * (len(ids) > 1)} {', '.join(ids)} {what}"
                     for ids, what in ((failed, "failed"), (missing, "not measured"),
                                       (elsewhere, "measured only in another regime")) if ids)


def apply_controls(claims: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    """``claims`` with each verdict recomputed from its numbers (:func:`verdict`), then turned into
    ``"not testable (<reason>)"`` (:func:`not_testable_reason`) for a measured claim whose controls did not
    all pass. A claim that is not measured stays "not measured"."""
    out = claims.copy()
    verdicts = []
    for r in out.itertuples(index=False):
        v = verdict(r.effect, r.lo, r.hi, r.min_effect)
        reason = not_testable_reason(r.id, text_or(r.regime), controls) if v != NOT_MEASURED else ""
        verdicts.append(f"{NOT_TESTABLE} ({reason})" if reason else v)
    out["verdict"] = verdicts
    return out


def collect_claims(results_dir: str | Path | None = None, pattern: str = "*claims*.csv", include_unmeasured: bool = True,
                   controls: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read every ``results/*claims*.csv``, recompute each verdict from its numbers, apply the controls,
    sort by claim id.

    ``controls`` is the controls table to apply (:func:`apply_controls`); by default the one
    :func:`deepmt.controls.collect_controls` gathers from the same folder. Missing ``text`` / ``comparison``
    are taken from :data:`PAPER_CLAIMS`. With ``include_unmeasured``, a paper claim that no file mentions
    appears as one "not measured" row, so the table always lists all of them. A file without the columns
    ``id``, ``metric``, ``effect``, ``lo``, ``hi``, or with an interval whose lo > hi, raises ``DataError``.
    """
    from deepmt.reporting import results_dir as default_results_dir

    root = Path(results_dir) if results_dir is not None else default_results_dir()
    frames = read_result_tables(root, pattern, required=("id", "metric", "effect", "lo", "hi"), what="claims table",
                                text_columns=("id", "text", "metric", "comparison", "regime", "evidence"))
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
                claims.append(
                    Claim(
                        id=cid,
                        text=text,
                        metric=str(row["metric"]),
                        comparison=comp,
                        regime=text_or(row.get("regime")),
                        effect=float(row["effect"]),
                        lo=float(row["lo"]),
                        hi=float(row["hi"]),
                        n_seeds=0 if pd.isna(n_seeds) else int(n_seeds),
                        evidence=text_or(row.get("evidence"), row["source"]),
                        min_effect=0.0 if pd.isna(min_eff) else float(min_eff),
                    )
                )
            except ValueError as e:
                raise DataError(f"{row['source']}: claim {cid} ({row['metric']}): {e}") from e
    if include_unmeasured:
        seen = {c.id for c in claims}
        claims += [Claim(id=pc.id, text=pc.text, metric=", ".join(pc.metrics), comparison=pc.comparison) for pc in PAPER_CLAIMS.values() if pc.id not in seen]
    claims.sort(key=lambda c: _natural_key(c.id))
    if controls is None:
        controls = K.collect_controls(root)
    return apply_controls(claims_table(claims), controls)


def _natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


# --------------------------------------------------------------------------- markdown
def claims_markdown(claims: pd.DataFrame | Sequence[Claim], digits: int = 3) -> str:
    """The claims table as docs/RESULTS.md shows it: claim, comparison, regime, metric, effect [95 % CI], seeds, verdict."""
    df = claims if isinstance(claims, pd.DataFrame) else claims_table(claims)
    from deepmt.metrics import format_ci

    shown = pd.DataFrame(
        {
            "claim": [f"**{i}** {t}" for i, t in zip(df["id"], df["text"])],
            "comparison (A vs B)": df["comparison"],
            "regime": df["regime"],
            "metric": df["metric"],
            "effect A−B [CI]": [format_ci(e, lo, hi, digits=digits, signed=True) for e, lo, hi in zip(df["effect"], df["lo"], df["hi"])],
            "seeds": [str(int(n)) if n else "" for n in df["n_seeds"]],
            "verdict": df["verdict"],
            "evidence": df["evidence"],
        }
    )
    return to_markdown(shown)
