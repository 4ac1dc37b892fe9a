"""Where a sample's lesions go: how many of each kind its grade gets, and non-overlapping centres for them.

The haemorrhages are placed first (quadrant by quadrant, each wholly inside its quadrant, the grade-4
preretinal haemorrhage before them as it needs the most room), and the grade rule is re-checked on what
was placed; the other lesions are placed while they are drawn (:mod:`deepmt.data.synthetic.lesions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepmt.data.synthetic.rules import grade_from_lesions, quadrant_of


class Placer:
    """Rejection sampling of lesion centres with minimum gaps (vectorised candidate draws)."""

    def __init__(self) -> None:
        self.x: list[float] = []
        self.y: list[float] = []
        self.r: list[float] = []

    def place(self, rng, n, radius_fn, region_fn, gap: float, tries: int = 40):
        """Place ``n`` points; ``region_fn(rng, k) -> (xs, ys, ok)`` proposes; ``radius_fn()`` draws a radius."""
        out = []
        for _ in range(tries):
            if len(out) >= n:
                break
            xs, ys, ok = region_fn(rng, 64)
            for x, y in zip(xs[ok], ys[ok]):
                r = radius_fn()
                if self.x:
                    d = np.hypot(np.asarray(self.x) - x, np.asarray(self.y) - y)
                    if np.any(d < np.asarray(self.r) + r + gap):
                        continue
                self.x.append(float(x))
                self.y.append(float(y))
                self.r.append(float(r))
                out.append((float(x), float(y), float(r)))
                if len(out) >= n:
                    break
        return out


def lesion_plan(rng, grade: int, sc) -> dict[str, Any]:
    """How many lesions of each kind a sample of ``grade`` gets (before placement)."""
    t = sc.severe_he_per_quadrant
    lo, hi = sc.ma_count
    n_ma = 0 if grade == 0 else int(rng.integers(lo, hi + 1) if grade <= 2 else rng.integers(lo + 2, hi + 6))
    if sc.smudge_match > 0:
        tot_lo, tot_hi = sc.dot_total
        total = int(rng.integers(max(tot_lo, 0), tot_hi + 1))
        n_ma = min(n_ma, total)
        n_smudge = total - n_ma
    else:
        n_smudge = 0
    if grade > 0:
        n_ma = max(n_ma, 1)
    he_q = np.zeros(4, dtype=int)
    n_ex_clusters = n_se = 0
    if grade == 2:
        mode = rng.random()
        if mode < 0.35:  # HE in all 4 quadrants, but too few in at least one (counting dots decides 2 vs 3)
            he_q = rng.integers(1, t + 3, size=4)
            k = rng.integers(1, 3)
            he_q[rng.choice(4, size=k, replace=False)] = rng.integers(1, t, size=k)
        elif mode < 0.85:  # HE in 1-3 quadrants
            k = int(rng.integers(1, 4))
            he_q[rng.choice(4, size=k, replace=False)] = rng.integers(1, t + 3, size=k)
        if rng.random() < 0.45:
            n_ex_clusters = int(rng.integers(1, 3))
        if rng.random() < 0.3:
            n_se = int(rng.integers(1, 3))
        if he_q.sum() + n_ex_clusters + n_se == 0:
            n_ex_clusters = 1 if rng.random() < 0.5 else 0
            n_se = 1 - n_ex_clusters
    elif grade >= 3:
        he_q = rng.integers(t, t + 4, size=4)
        n_ex_clusters = int(rng.integers(1, 4)) if rng.random() < 0.6 else 0
        n_se = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
    return dict(n_ma=n_ma, n_smudge=n_smudge, he_q=he_q, n_ex_clusters=n_ex_clusters, n_se=n_se, nv=grade == 4)


def inside_region(c, R, rmax, disc, disc_r, quadrant=None, axis_margin=0.0):
    cx, cy = c

    def propose(rng, k):
        if quadrant is None:
            a = rng.uniform(0, 2 * math.pi, k)
        else:
            qa = {0: math.pi, 1: 1.5 * math.pi, 2: 0.5 * math.pi, 3: 0.0}[quadrant]
            a = qa + rng.uniform(0, math.pi / 2, k)
        rr = rmax * R * np.sqrt(rng.uniform(0, 1, k))
        xs, ys = cx + rr * np.cos(a), cy + rr * np.sin(a)
        ok = np.hypot(xs - disc[0], ys - disc[1]) > disc_r
        if quadrant is not None:
            ok &= (np.abs(xs - cx) > axis_margin) & (np.abs(ys - cy) > axis_margin)
            ok &= quadrant_of(xs, ys, cx, cy) == quadrant
        return xs, ys, ok

    return propose


def near_region(center, r_in, r_out, c, R, rmax=0.9):
    def propose(rng, k):
        a = rng.uniform(0, 2 * math.pi, k)
        rr = rng.uniform(r_in, r_out, k)
        xs, ys = center[0] + rr * np.cos(a), center[1] + rr * np.sin(a)
        ok = np.hypot(xs - c[0], ys - c[1]) < rmax * R
        return xs, ys, ok

    return propose


@dataclass
class Layout:
    """The lesion plan of a sample, its placer (which keeps every later lesion clear of the placed ones) and
    the placed haemorrhages: ``he`` ``[(kind, size, (x, y, r), quadrant)]``, ``prh`` ``[(a, (x, y, r), quadrant)]``."""

    plan: dict[str, Any]
    placer: Placer
    gap: float
    he: list
    prh: list


#: attempts at a layout that satisfies the grade rule (each draws a new plan; a sample that needs fewer never sees
#: the limit, so raising it changes no image that could be made before)
ATTEMPTS = 30


def place_haemorrhages(rng: np.random.Generator, scene, grade: int, sc) -> Layout | None:
    """Plan the lesions of ``grade`` and place its haemorrhages on ``scene`` (a
    :class:`~deepmt.data.synthetic.background.Scene`); up to :data:`ATTEMPTS` attempts, None if none satisfies
    the grade rule."""
    c, R, disc, disc_r, s = scene.c, scene.R, scene.disc, scene.disc_r, scene.s
    for _attempt in range(ATTEMPTS):
        plan = lesion_plan(rng, grade, sc)
        placer = Placer()
        placer.place(rng, 1, lambda: disc_r + 2, lambda r, k: (np.array([disc[0]]), np.array([disc[1]]), np.array([True])), 0)
        gap = 1.5 + 0.5 * s
        # ---- grade 4: one large preretinal haemorrhage, placed first (it needs the most room)
        prh = []
        if plan["nv"] and sc.preretinal_he:
            a = rng.uniform(8.0, 12.0) * s
            q = int(rng.integers(0, 4))  # wholly inside one quadrant, like every haemorrhage
            got = placer.place(rng, 1, lambda e=1.3 * a: e, inside_region(c, R, 0.8, disc, disc_r + 1.3 * a, q, 1.3 * a + 1.0), gap)
            if not got:
                continue
            prh.append((a, got[0], q))
        # ---- haemorrhages: quadrant by quadrant, each wholly inside its quadrant
        he = []
        for q in range(4):
            for _ in range(int(plan["he_q"][q])):
                kind, size, ext = _haemorrhage_shape(rng, s)
                got = placer.place(rng, 1, lambda e=ext: e, inside_region(c, R, 0.85, disc, disc_r + ext, q, ext + 1.0), gap)
                if got:
                    he.append((kind, size, got[0], q))
        placed_q = np.bincount([h[3] for h in he], minlength=4)
        if grade_from_lesions(plan["n_ma"], placed_q, plan["n_ex_clusters"], plan["n_se"], plan["nv"], sc.severe_he_per_quadrant) == grade:
            return Layout(plan, placer, gap, he, prh)
    return None


def _haemorrhage_shape(rng: np.random.Generator, s: float) -> tuple[str, float, float]:
    """A haemorrhage's kind (dot 55 %, blot 30 %, flame 15 %), size and the extent it needs clear (px)."""
    u = rng.random()
    kind = "dot" if u < 0.55 else ("blot" if u < 0.85 else "flame")
    if kind == "dot":
        size = rng.uniform(1.2, 2.0) * s
        ext = 1.5 * size
    elif kind == "blot":
        size = rng.uniform(2.5, 4.5) * s
        ext = 1.7 * size
    else:
        size = rng.uniform(3.0, 6.0) * s
        ext = size * 1.5
    return kind, size, max(ext, 0.75)
