"""Vessels of the synthetic fundus: a branching vessel tree, its rasterisation, and neovascular tufts."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


# --------------------------------------------------------------------------- vessels
def grow_vessel_tree(rng: np.random.Generator, disc, macula, fov_c, R: float) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Random branching, tapering vessel tree leaving the optic disc (arteries and veins).

    Four trunks each for arteries and veins: superior/inferior temporal arcades that arch around
    the macula, and superior/inferior nasal vessels. Every vessel random-walks, tapers, branches
    (children thinner and diverging) and stops at the field-of-view rim, near the fovea (avascular
    zone) or when thinner than ~0.3% of the FOV radius. Returns ``[(points (n,2), widths (n,), kind)]``
    with kind 0 = vein, 1 = artery; widths in px.
    """
    dx, dy = disc
    mx, my = macula
    temporal = math.atan2(my - dy, mx - dx)  # direction disc -> macula
    out: list[tuple[np.ndarray, np.ndarray, int]] = []
    step = 0.03 * R
    min_w = 0.0035 * R
    fcx, fcy = fov_c

    max_steps = (70, 30, 16, 10)

    def grow(p, h, w, kind, arc_sign, depth):
        pts, ws = [p], [w]
        x, y = p
        arc_r = None
        omega = 0.0  # angular velocity: smooth tortuosity
        for _ in range(max_steps[depth]):
            if arc_sign:
                # arcade: steer towards the tangent of a circle around the macula
                rx, ry = x - mx, y - my
                rr = math.hypot(rx, ry) + 1e-6
                a_now = math.atan2(ry, rx)
                if arc_r is None:
                    arc_r, turned, last_a = min(max(rr, 0.45 * R), 0.6 * R), 0.0, a_now
                turned += abs((a_now - last_a + math.pi) % (2 * math.pi) - math.pi)
                last_a = a_now
                if turned > 2.0:  # arched past the macula: run on freely towards the temporal periphery
                    arc_sign = 0
                else:
                    tang = a_now + arc_sign * math.pi / 2 - 0.6 * (arc_r - rr) / arc_r * arc_sign
                    h += 0.25 * ((tang - h + math.pi) % (2 * math.pi) - math.pi)
            else:
                # branches drift outwards (away from the disc)
                radial = math.atan2(y - dy, x - dx)
                h += 0.06 * ((radial - h + math.pi) % (2 * math.pi) - math.pi)
            omega = 0.75 * omega + rng.normal(0.0, 0.07)
            h += omega
            x, y = x + step * math.cos(h), y + step * math.sin(h)
            w *= 0.99 if depth == 0 else 0.975
            if math.hypot(x - fcx, y - fcy) > 0.99 * R or math.hypot(x - mx, y - my) < 0.09 * R or w < min_w:
                break
            pts.append((x, y))
            ws.append(w)
            if depth < 3 and w > 2.5 * min_w and rng.random() < (0.08 if depth == 0 else 0.06):
                side = 1 if rng.random() < 0.5 else -1
                cw = w * rng.uniform(0.5, 0.8)
                w *= 0.9
                grow((x, y), h + side * rng.uniform(0.5, 1.0), cw, kind, 0, depth + 1)
                h -= side * rng.uniform(0.1, 0.3)  # the parent deflects the other way
        if len(pts) > 1:
            out.append((np.asarray(pts, dtype=np.float32), np.asarray(ws, dtype=np.float32), kind))

    for kind, w0 in ((0, 0.026 * R), (1, 0.019 * R)):
        for up in (-1, 1):
            # temporal arcade: leaves the disc up/down, then arches around the macula
            h0 = temporal + up * rng.uniform(0.9, 1.3)
            start = (dx + 0.05 * R * math.cos(h0) + rng.normal(0, 0.01 * R), dy + 0.05 * R * math.sin(h0))
            rho = math.atan2(start[1] - my, start[0] - mx)
            diff = [abs((rho + sg * math.pi / 2 - h0 + math.pi) % (2 * math.pi) - math.pi) for sg in (1, -1)]
            sign = 1 if diff[0] < diff[1] else -1
            grow(start, h0, w0 * rng.uniform(0.9, 1.1), kind, sign, 0)
            # nasal vessels
            hn = temporal + math.pi + up * rng.uniform(0.4, 1.0)
            grow((dx, dy), hn, w0 * rng.uniform(0.6, 0.8), kind, 0, 1)
            # small vessels towards the macula
            hm = temporal + up * rng.uniform(0.2, 0.5)
            grow((dx, dy), hm, w0 * rng.uniform(0.3, 0.45), kind, 0, 2)
    return out


def render_polylines(lines, h: int, w: int, kinds: int = 2, ss: int = 2) -> np.ndarray:
    """Rasterise tapering polylines into coverage maps (kinds, h, w) in [0,1], antialiased by ``ss`` supersampling."""
    canvases = [Image.new("L", (w * ss, h * ss), 0) for _ in range(kinds)]
    draws = [ImageDraw.Draw(c) for c in canvases]
    for pts, ws, kind in lines:
        d = draws[kind]
        P = (pts + 0.5) * ss - 0.5
        wpx = np.maximum(1, np.round(ws * ss)).astype(int)
        # one polyline call per run of equal (rounded) width
        start = 0
        for i in range(1, len(P) + 1):
            if i == len(P) or wpx[i] != wpx[start]:
                seg = P[start : min(i + 1, len(P))]
                if len(seg) > 1:
                    d.line([tuple(q) for q in seg], fill=255, width=int(wpx[start]), joint="curve" if wpx[start] > 2 else None)
                start = i
    maps = np.stack([np.asarray(c.resize((w, h), Image.BOX), dtype=np.float32) for c in canvases]) / 255.0
    return maps


def tuft_patch(rng: np.random.Generator, radius: float, line_w: float, n_seg: int, ss: int = 4) -> np.ndarray:
    """A neovascular tuft: ``n_seg`` fine, tortuous loops within ``radius`` px, as coverage in [0,1].

    Returns a square patch of side ``2 * ceil(radius + 2) + 1`` px centred on the tuft.
    """
    half = int(math.ceil(radius + 2))
    side = 2 * half + 1
    canvas = Image.new("L", (side * ss, side * ss), 0)
    d = ImageDraw.Draw(canvas)
    c = half + 0.5
    lw = max(1, int(round(line_w * ss)))
    for _ in range(n_seg):
        a = rng.uniform(0, 2 * math.pi)
        r0 = radius * math.sqrt(rng.uniform(0, 0.8))
        x, y = c + r0 * math.cos(a), c + r0 * math.sin(a)
        h = rng.uniform(0, 2 * math.pi)
        curl = rng.choice([-1, 1]) * rng.uniform(0.25, 0.6)
        n = int(rng.integers(6, 12))
        pts = [(x * ss, y * ss)]
        for _ in range(n):
            h += curl + rng.normal(0, 0.25)
            x += 0.18 * radius * math.cos(h)
            y += 0.18 * radius * math.sin(h)
            # keep the loop inside the tuft
            dx, dy = x - c, y - c
            rr = math.hypot(dx, dy)
            if rr > radius:
                x, y = c + dx * radius / rr, c + dy * radius / rr
            pts.append((x * ss, y * ss))
        d.line(pts, fill=255, width=lw, joint="curve")
    return np.asarray(canvas.resize((side, side), Image.BOX), dtype=np.float32) / 255.0
