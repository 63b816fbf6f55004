"""The v3 look: the appearance changes FACS lists for each AU, at the strength real faces show.

Looked at next to real expressions (the Pexels clip's grief frames 0-60 and laugh 312-456): a real
AU4 carries deep vertical glabella furrows, AU1 (+2) horizontal forehead lines, AU6 crow's feet, a
bagged lower lid and a raised cheek, AU12 a deepened nasolabial fold; v2's creases (a few percent
darker) were invisible at the crops the models see. Every effect is placed from the moved 68
points (``strokes.FaceFrame``), sized by the IOD, scaled per side by the AU's weight (unilateral
and asymmetric actions crease one side), and varied by the render's ``rng`` (counts, lengths,
angles), so a seed gives the same render. Closed lids (AU43) and the mouth interior are painted by
``lids`` and ``mouth``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from train.data.ict.strokes import Canvas, FaceFrame, curve, side_weight, skin_mask

# Core darkening (fraction of the pixel value) at AU weight 1.
DEPTH = {"forehead": 0.26, "glabella": 0.36, "root": 0.22, "brow_shadow": 0.10, "crow": 0.34,
         "infraorbital": 0.30, "bag": 0.09, "cheek": 0.08, "lid7": 0.20, "nose": 0.36, "nasolabial": 0.40,
         "nasolabial_lit": 0.09, "dimple": 0.30, "marionette": 0.30, "stretch": 0.22, "sulcus": 0.34,
         "chin": 0.12, "chin_lit": 0.06, "press": 0.30}


def _forehead(c: Canvas, f: FaceFrame, w: Mapping[int, float], sides: Mapping, rng: np.random.Generator) -> None:
    """AU1: lines over the centre of the forehead; AU2: over the outer brows (per side)."""
    w1 = [side_weight(w, sides, 1, s) for s in (0, 1)]
    w2 = [side_weight(w, sides, 2, s) for s in (0, 1)]
    if max(w1 + w2) <= 0:
        return
    brow = f.p[17:27]
    mid = (f.p[21] + f.p[22]) / 2
    n = int(rng.integers(2, 5))
    h = rng.uniform(0.17, 0.24)
    gap = rng.uniform(0.11, 0.15)
    for k in range(n):
        up = h + k * gap * rng.uniform(0.9, 1.1)
        line = brow - up * f.iod * f.v
        flat = line @ f.v
        line = line + np.outer(0.65 * (flat.mean() - flat), f.v)  # flatter than the brows
        line = np.concatenate([line[:1] - 0.12 * f.iod * f.u, line, line[-1:] + 0.12 * f.iod * f.u])
        x = (line - mid) @ f.u / f.iod
        side = (x > 0).astype(int)
        centre = np.exp(-x ** 2 / (2 * 0.28 ** 2)) * np.where(side, w1[1], w1[0])
        lateral = np.exp(-(np.abs(x) - 0.55) ** 2 / (2 * 0.25 ** 2)) * np.where(side, w2[1], w2[0])
        wobble = rng.normal(0, 0.012 * f.iod, len(line))
        line = line + np.outer(np.convolve(wobble, np.ones(3) / 3, "same"), f.v)
        depth = DEPTH["forehead"] * np.maximum(centre, lateral) * (1 - 0.18 * k) * rng.uniform(0.85, 1.15)
        c.stroke("fine", line, 0.55 * depth, width=1.2, n=24)
        c.stroke("fold", line, 0.7 * depth, width=max(2.0, 0.025 * f.iod), n=24)
        c.stroke("fold_light", line + 0.05 * f.iod * f.v, 0.25 * depth, width=0.04 * f.iod, n=24)


def _glabella(c: Canvas, f: FaceFrame, w: Mapping[int, float], sides: Mapping, rng: np.random.Generator) -> None:
    """AU4: vertical furrows between the brows, a transverse line at the nose root, the lowered
    brows' shadow on the upper lids."""
    w4 = [side_weight(w, sides, 4, s) for s in (0, 1)]
    if max(w4) <= 0:
        return
    mid = (f.p[21] + f.p[22]) / 2
    pairs = 1 + int(rng.random() < 0.6)
    for side in (0, 1):
        for k in range(pairs):
            off = rng.uniform(0.04, 0.08) + 0.07 * k
            top = f.at(mid, off * 0.8, -rng.uniform(0.18, 0.28) * (1 - 0.3 * k), side)
            bottom = f.at(mid, off, 0.07 + 0.03 * k, side)
            line = curve(bottom, top, rng.uniform(-0.08, 0.08))
            d = DEPTH["glabella"] * w4[side] * (1 - 0.35 * k) * rng.uniform(0.85, 1.15)
            c.stroke("fine", line, 0.2 * d, width=1.3)
            c.stroke("fold", line, 0.7 * d, width=max(2.0, 0.035 * f.iod))
            c.stroke("broad", line, -0.3 * d, width=0.05 * f.iod)
            c.stroke("fold_light", line + f.out(side) * 0.05 * f.iod, 0.25 * d, width=0.04 * f.iod)
        brow = f.p[19] if side == 0 else f.p[24]
        eye = f.eye(side)
        angle = float(np.degrees(np.arctan2(f.u[1], f.u[0])))
        c.blob("broad", (brow + eye) / 2 + 0.03 * f.iod * f.v, (0.26 * f.iod, 0.08 * f.iod), angle,
               -DEPTH["brow_shadow"] * w4[side])
    if max(w4) > 0.5:
        root = f.p[27] - 0.02 * f.iod * f.v
        line = np.stack([root - 0.08 * f.iod * f.u, root - 0.01 * f.iod * f.v, root + 0.08 * f.iod * f.u])
        c.stroke("fine", line, DEPTH["root"] * (max(w4) - 0.3), width=1.2)


def _eyes(c: Canvas, f: FaceFrame, w: Mapping[int, float], sides: Mapping, rng: np.random.Generator) -> None:
    """AU6: crow's feet, the infraorbital furrow, the bagged lower lid, the raised cheek; AU7: a
    tensed lower lid's crease; AU12 alone lifts the cheek a little."""
    angle = float(np.degrees(np.arctan2(f.u[1], f.u[0])))
    for side in (0, 1):
        w6, w7 = side_weight(w, sides, 6, side), side_weight(w, sides, 7, side)
        w12 = side_weight(w, sides, 12, side)
        out = f.out(side)
        corner = f.p[36] if side == 0 else f.p[45]
        lower = f.p[[36, 41, 40, 39]] if side == 0 else f.p[[45, 46, 47, 42]]
        if w6 > 0:
            n = int(rng.integers(3, 6))
            for a in np.linspace(-38, 30, n) + rng.uniform(-6, 6, n):
                rad = np.radians(a)
                d = np.cos(rad) * out + np.sin(rad) * f.v
                start = corner + 0.11 * f.iod * d
                line = curve(start, start + rng.uniform(0.15, 0.3) * f.iod * d, rng.uniform(-0.12, 0.12))
                dd = DEPTH["crow"] * w6 * rng.uniform(0.75, 1.15)
                c.stroke("fine", line, 0.6 * dd, width=1.2)
                c.stroke("fold", line, 0.6 * dd, width=2)
            furrow = lower + rng.uniform(0.13, 0.17) * f.iod * f.v
            c.stroke("fold", furrow, DEPTH["infraorbital"] * w6, width=2, n=10)
            c.stroke("fold_light", lower + 0.07 * f.iod * f.v, DEPTH["bag"] * w6, width=0.06 * f.iod, n=10)
            c.stroke("fine", lower[1:] + 0.27 * f.iod * f.v, 0.5 * DEPTH["infraorbital"] * w6, width=1.2)
        cheek = max(w6, 0.4 * w12)
        if cheek > 0:
            c.blob("broad", f.at(f.eye(side), 0.08, 0.55, side), (0.3 * f.iod, 0.17 * f.iod), angle,
                   DEPTH["cheek"] * cheek)
        if w7 > 0:
            c.stroke("fine", lower + 0.06 * f.iod * f.v, DEPTH["lid7"] * w7, width=1.2, n=10)


def _nose(c: Canvas, f: FaceFrame, w: Mapping[int, float], sides: Mapping, rng: np.random.Generator) -> None:
    """AU9: transverse wrinkles over the bridge and oblique ones down its sides."""
    w9 = [side_weight(w, sides, 9, s) for s in (0, 1)]
    if max(w9) <= 0:
        return
    n = int(rng.integers(3, 5))
    for k in range(n):
        cen = f.p[27] + (f.p[28] - f.p[27]) * (0.05 + 0.95 * k / max(n - 1, 1))
        half = rng.uniform(0.09, 0.13) * f.iod
        line = np.stack([cen - half * f.u, cen + 0.02 * f.iod * f.v * rng.uniform(-1, 1), cen + half * f.u])
        c.stroke("fine", line, DEPTH["nose"] * max(w9) * rng.uniform(0.8, 1.1), width=1.3)
    for side in (0, 1):
        for k in range(2):
            a = f.at(f.p[27], 0.07 + 0.03 * k, 0.08 + 0.1 * k, side)
            b = f.at(f.p[28], 0.2, 0.12 + 0.08 * k, side)
            c.stroke("fine", curve(a, b, 0.1), 0.8 * DEPTH["nose"] * w9[side], width=1.2)


def _mouth_region(c: Canvas, f: FaceFrame, w: Mapping[int, float], sides: Mapping, rng: np.random.Generator) -> None:
    """AU12/10/9/6: the nasolabial fold; AU14 dimples, AU15 corner lines, AU20 stretch lines."""
    for side in (0, 1):
        ws = {a: side_weight(w, sides, a, side) for a in (6, 9, 10, 12, 14, 15, 20)}
        out = f.out(side)
        ala = f.p[31] if side == 0 else f.p[35]
        corner = f.p[48] if side == 0 else f.p[54]
        fold = max(ws[12], 0.8 * ws[10], 0.7 * ws[9], 0.35 * ws[6])
        if fold > 0:
            reach = 0.55 + 0.45 * min(1.0, ws[12] / max(fold, 1e-6))  # AU10/9 deepen its upper part
            start = ala + f.iod * (0.06 * out - 0.05 * f.v)
            end = corner + f.iod * (0.14 * out + 0.08 * f.v)
            mid = (start + end) / 2 + 0.09 * f.iod * out
            t = np.linspace(0, reach, 10)[:, None]
            line = (1 - t) ** 2 * start + 2 * t * (1 - t) * mid + t ** 2 * end
            d = DEPTH["nasolabial"] * fold * rng.uniform(0.85, 1.1)
            c.stroke("fold", line, 0.6 * d, width=max(2.0, 0.04 * f.iod), n=14)
            c.stroke("broad", line + 0.02 * f.iod * out, -0.5 * d, width=0.07 * f.iod, n=14)
            c.stroke("fold_light", line + 0.08 * f.iod * out, DEPTH["nasolabial_lit"] * fold, width=0.08 * f.iod, n=14)
        if ws[14] > 0:
            c.blob("fold", corner + 0.03 * f.iod * out, (0.025 * f.iod, 0.04 * f.iod), 0.0, 0.6 * DEPTH["dimple"] * ws[14])
            a = f.at(corner, 0.07, -0.06, side)
            c.stroke("fine", curve(a, f.at(corner, 0.08, 0.07, side), 0.1), DEPTH["dimple"] * ws[14], width=1.3)
        if ws[15] > 0:
            line = curve(f.at(corner, 0.02, 0.03, side), f.at(corner, 0.1, 0.24, side), rng.uniform(-0.1, 0.1))
            c.stroke("fine", line, DEPTH["marionette"] * ws[15], width=1.3)
            c.stroke("fold", line, 0.5 * DEPTH["marionette"] * ws[15], width=2)
        if ws[20] > 0:
            line = curve(f.at(corner, 0.05, 0.0, side), f.at(corner, 0.17, 0.03, side), 0.05)
            c.stroke("fine", line, DEPTH["stretch"] * ws[20], width=1.2)


def _chin(c: Canvas, f: FaceFrame, w: Mapping[int, float], rng: np.random.Generator) -> None:
    """AU17: the deepened mentolabial sulcus, the raised chin boss's highlight and dimpled skin;
    AU24: the pressed lips' junction."""
    w17 = float(w.get(17, 0.0))
    if w17 > 0:
        cen = f.p[57] + 0.28 * (f.p[8] - f.p[57])
        half = 0.26 * f.iod
        line = np.stack([cen - half * f.u + 0.04 * f.iod * f.v, cen, cen + half * f.u + 0.04 * f.iod * f.v])
        c.stroke("fold", line, DEPTH["sulcus"] * w17, width=2)
        boss = f.p[57] + 0.62 * (f.p[8] - f.p[57])
        angle = float(np.degrees(np.arctan2(f.u[1], f.u[0])))
        c.blob("broad", boss, (0.22 * f.iod, 0.12 * f.iod), angle, DEPTH["chin_lit"] * w17)
        for _ in range(int(12 + 10 * w17)):  # dimpled skin: small pits over the boss
            q = boss + f.iod * (rng.uniform(-0.2, 0.2) * f.u + rng.uniform(-0.1, 0.1) * f.v)
            c.blob("fine", q, (rng.uniform(0.012, 0.025) * f.iod,) * 2, 0.0, DEPTH["chin"] * w17 * rng.uniform(0.5, 1))
    w24 = float(w.get(24, 0.0))
    if w24 > 0:
        c.stroke("fine", f.p[[48, 61, 62, 63, 54]], DEPTH["press"] * w24, width=1.5)


def shade_v3(image: np.ndarray, neutral68: np.ndarray, moved68: np.ndarray, weights: Mapping[int, float],
             rng: np.random.Generator, sides: Mapping[int, tuple[float, float]]) -> np.ndarray:
    """The render with the v3 look (uint8 BGR, same size): creases, folds and shading, pale pressed
    lips, closed lids (AU43) and the mouth interior.

    Args:
        image: the warped photo. neutral68 / moved68: the 68 points before / after the warp.
        weights: AU -> weight in [0, 1]. rng: the render's generator. sides: AU -> (left, right).
    """
    from train.data.ict.lids import close_eyes
    from train.data.ict.mouth import lips_pale, mouth_v3

    f = FaceFrame.of(moved68)
    c = Canvas.around(f, image.shape[:2])
    for draw in (_forehead, _glabella, _eyes, _nose, _mouth_region):
        draw(c, f, weights, sides, rng)
    _chin(c, f, weights, rng)
    x0, y0, x1, y1 = c.box
    out = image.astype(np.float32)
    if x1 > x0 and y1 > y0:
        box = image[y0:y1, x0:x1]
        out[y0:y1, x0:x1] *= c.gain(f.iod, skin_mask(box, f, c.box))[..., None]
    press = max(float(weights.get(23, 0.0)), float(weights.get(24, 0.0)))
    if press > 0:
        out = lips_pale(out, f, press)
    if weights.get(43, 0.0) >= 0.5:
        out = close_eyes(out, neutral68, f, rng, sides.get(43, (1.0, 1.0)))
    out = mouth_v3(out, neutral68, moved68, rng)
    return np.clip(out, 0, 255).round().astype(np.uint8)
