"""The benchmark's grade rules and grade sequence: which grade a sample has, and what its lesions must satisfy.

Grades (ICDR-like rules, see :func:`grade_rules_text`) are drawn first, from the class prior by a golden-ratio
low-discrepancy sequence (:func:`grade_for_index`), so any n has close to the prior's proportions and every
sample is still a pure function of (seed, split, index); the generator then draws lesions satisfying the rule
and re-checks it with :func:`grade_from_lesions`.
"""

from __future__ import annotations

import numpy as np

from deepmt.errors import DataError

#: Class priors over grades 0-4. DDR: gradable images of the DDR dataset (6266/630/4477/236/913).
GRADE_PRIORS: dict[str, tuple[float, ...]] = {
    "balanced": (0.2, 0.2, 0.2, 0.2, 0.2),
    "ddr": tuple(float(c) / 12522 for c in (6266, 630, 4477, 236, 913)),
}

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
QUADRANTS = ("upper-left", "upper-right", "lower-left", "lower-right")


def grade_rules_text(severe_he_per_quadrant: int = 3) -> str:
    """The grading rules of the benchmark in plain text (for README.txt, the notebook and the docs)."""
    t = severe_he_per_quadrant
    return "\n".join(
        [
            "Grades follow the international (ICDR) scale, scaled down to a small image:",
            "  0 No DR        : no lesion at all (distractors only).",
            "  1 Mild NPDR    : microaneurysms (MA) only.",
            "  2 Moderate NPDR: MA plus at least one haemorrhage (HE), hard exudate (EX) or soft exudate (SE),",
            f"                   but fewer than {t} haemorrhages in at least one of the four quadrants, no NV.",
            f"  3 Severe NPDR  : at least {t} haemorrhages in each of the four quadrants (the ICDR '4-2-1' rule's",
            "                   'haemorrhages in all 4 quadrants'), no neovascularisation.",
            "  4 PDR          : neovascularisation (NV, a tuft of fine new vessels at the disc or on an arcade),",
            "                   drawn on top of grade-3 lesions. NV is not in the masks, as in real datasets.",
            "                   With preretinal_he (default) every grade-4 image also has one large boat-shaped",
            "                   preretinal haemorrhage (an ICDR sign of PDR), masked as HE.",
            "Quadrants are the image quadrants about the centre of the field of view; a haemorrhage counts in the",
            "quadrant of its centre (every haemorrhage lies wholly inside one quadrant).",
            "Rule order: NV -> 4; else HE in all 4 quadrants -> 3; else any HE/EX/SE -> 2; else any MA -> 1; else 0.",
            "Distractors never change the grade: MA-coloured smudges, pigment spots, reflections, a haze near the",
            "disc, vessel crossings and decoy (blurred) NV tufts appear in every grade.",
        ]
    )


def grade_from_lesions(n_ma: int, he_per_quadrant, n_ex: int, n_se: int, has_nv: bool, severe_he_per_quadrant: int = 3) -> int:
    """Apply the benchmark's grade rules (:func:`grade_rules_text`) to lesion counts."""
    he_q = np.asarray(he_per_quadrant)
    if has_nv:
        return 4
    if np.all(he_q >= severe_he_per_quadrant):
        return 3
    if he_q.sum() + n_ex + n_se > 0:
        return 2
    if n_ma > 0:
        return 1
    return 0


def quadrant_of(x, y, cx: float, cy: float):
    """Quadrant index 0..3 (upper-left, upper-right, lower-left, lower-right) of points about (cx, cy)."""
    return (np.asarray(y) >= cy).astype(int) * 2 + (np.asarray(x) >= cx).astype(int)


def grade_for_index(index: int, prior: str, seed: int, split: str) -> int:
    """The grade of sample ``index``: a golden-ratio sequence mapped through the prior's CDF."""
    if prior not in GRADE_PRIORS:
        raise DataError(f"data.synth.class_prior={prior!r}: choose one of {sorted(GRADE_PRIORS)}")
    u0 = np.random.default_rng([int(seed), SPLIT_IDS.get(split, 9), 7919]).random()
    u = (u0 + index * 0.6180339887498949) % 1.0
    cdf = np.cumsum(GRADE_PRIORS[prior])
    return int(min(np.searchsorted(cdf, u, side="right"), 4))


def sample_id(split: str, index: int) -> str:
    return f"synth_{split}_{index:05d}"
