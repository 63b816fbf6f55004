"""Occluders drawn from nothing but shapes (no external images): a hand over the mouth and nose or
over the eyes (the clip's frames 64-230), and glasses; plus which AUs they hide.

A hand is a palm, four fingers, a thumb and the forearm, in a frame sized by the face's IOD (an
adult hand is about 3 IOD long), skin-toned from the face's own cheeks, each part shaded round
(darker towards its edges, so touching fingers show their separations), with nails, knuckle
creases, faint texture and a soft shadow on the face. Glasses are two rounded rims, a bridge and
the temples, in black, brown or metal, clear (nothing hidden) or dark (sunglasses: the eye AUs
hidden). ``hidden_aus`` turns the drawn alpha into the AUs whose region it covers: their labels
become unknown, never negative.
"""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from train.data.ict.strokes import FaceFrame

# AU -> the 68-point rows its appearance is judged on (plus the derived cheek/forehead points of
# ``_region_points``); an AU is hidden when HIDDEN_AT of them lie under the occluder.
AU_REGION: dict[int, tuple[int, ...]] = {
    1: (20, 21, 22, 23), 2: (17, 18, 19, 24, 25, 26), 4: (20, 21, 22, 23, 27),
    5: tuple(range(36, 48)), 6: (36, 39, 40, 41, 42, 45, 46, 47), 7: tuple(range(36, 48)),
    9: tuple(range(27, 36)), 10: (31, 32, 33, 34, 35, 49, 50, 51, 52, 53), 12: (48, 54),
    14: (48, 54), 15: (48, 54, 55, 57, 59), 17: (7, 8, 9, 57), 20: (48, 54),
    23: tuple(range(48, 60)), 24: tuple(range(48, 60)), 25: tuple(range(60, 68)),
    26: tuple(range(60, 68)) + (7, 8, 9), 43: tuple(range(36, 48)),
}
HIDDEN_AT = 0.3
SUNGLASSES_HIDE = (5, 6, 7, 43)
# Hand in IOD units (an adult hand is ~3 IOD from wrist to fingertip): fingers as (x across the
# palm, length); the palm's width and length; a finger's width at its base and at its tip.
FINGERS = ((-0.36, 1.0), (-0.12, 1.12), (0.12, 1.05), (0.35, 0.82))
PALM_W, PALM_L, FINGER_W, TIP_W = 1.05, 1.35, 0.25, 0.2


def _region_points(f: FaceFrame, au: int) -> np.ndarray:
    pts = [f.p[list(AU_REGION[au])]]
    if au in (6, 12):  # the cheeks below the eyes
        pts.append(np.stack([f.at(f.eye(s), 0.05, 0.5, s) for s in (0, 1)]))
    if au in (1, 2):   # the forehead above the brows
        pts.append(f.p[[19, 24]] - 0.3 * f.iod * f.v)
    return np.concatenate(pts)


def hidden_aus(alpha: np.ndarray, p68: np.ndarray, aus: Iterable[int] = AU_REGION) -> set[int]:
    """AUs whose region lies (HIDDEN_AT of its points or more) under ``alpha`` > 0.5."""
    f = FaceFrame.of(p68)
    h, w = alpha.shape
    out = set()
    for au in aus:
        if au not in AU_REGION:
            continue
        q = np.round(_region_points(f, au)).astype(int)
        inside = (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h)
        cov = np.zeros(len(q))
        cov[inside] = alpha[q[inside, 1], q[inside, 0]] > 0.5
        if cov.mean() >= HIDDEN_AT:
            out.add(au)
    return out


def _skin_tone(img: np.ndarray, f: FaceFrame, rng: np.random.Generator) -> np.ndarray:
    vals = []
    for side in (0, 1):
        c = np.round(f.at(f.eye(side), 0.05, 0.6, side)).astype(int)
        r = max(2, int(0.06 * f.iod))
        patch = img[max(0, c[1] - r):c[1] + r, max(0, c[0] - r):c[0] + r].reshape(-1, 3)
        if len(patch):
            vals.append(np.median(patch, axis=0))
    tone = np.mean(vals, axis=0) if vals else np.array([120.0, 140.0, 180.0])
    grey = tone.mean()
    tone = grey + 0.8 * (tone - grey)  # the cheeks' make-up and blush are not on the hand
    return tone * rng.uniform(0.88, 1.05) * np.array([0.97, 0.99, 1.04])  # hands run a little redder


def _capsule(base: np.ndarray, tip: np.ndarray, wb: float, wt: float) -> np.ndarray:
    """A tapered finger outline: base width ``wb``, a rounded tip of width ``wt`` (pixels)."""
    d = (tip - base) / max(float(np.linalg.norm(tip - base)), 1e-6)
    n = np.array([-d[1], d[0]])
    arc = [tip + wt / 2 * (np.cos(a) * n + np.sin(a) * d) for a in np.linspace(0, np.pi, 9)]
    return np.stack([base + wb / 2 * n] + arc + [base - wb / 2 * n])


def _parts(f: FaceFrame, anchor: np.ndarray, angle_deg: float, size: float, mirror: bool,
           rng: np.random.Generator) -> list[tuple[str, np.ndarray, float]]:
    """(kind, outline polygon in pixels, half width in px) per part, back to front."""
    a = np.radians(angle_deg)
    up = np.array([np.sin(a), -np.cos(a)])      # towards the fingertips
    across = np.array([np.cos(a), np.sin(a)]) * (-1 if mirror else 1)
    s = f.iod * size

    def at(x: float, y: float) -> np.ndarray:
        return anchor + s * (x * across + y * up)

    arm = np.stack([at(-0.4 * PALM_W, 0.1), at(0.42 * PALM_W, 0.1), at(0.5 * PALM_W, -3.5), at(-0.5 * PALM_W, -3.5)])
    parts: list[tuple[str, np.ndarray, float]] = [("arm", arm, 0.45 * PALM_W * s)]
    t = np.linspace(0, np.pi, 9)
    top = [at(0.5 * PALM_W * np.cos(k), PALM_L - 0.1 + 0.1 * np.sin(k)) for k in t]
    palm = np.stack([at(-0.44 * PALM_W, 0), at(0.46 * PALM_W, 0), at(0.52 * PALM_W, 0.6 * PALM_L)] + top)
    parts.append(("palm", palm, 0.45 * PALM_W * s))
    th = np.radians(rng.uniform(25, 55))
    d = np.cos(th) * up + np.sin(th) * across
    base = at(0.3 * PALM_W, 0.35)
    parts.append(("thumb", _capsule(base, base + 0.95 * s * d, 0.36 * s, 0.24 * s), 0.15 * s))
    spread = rng.uniform(0, 5)
    for x, length in FINGERS:
        ang = np.radians(rng.uniform(-2, 2) + spread * x / 0.36)
        d = np.cos(ang) * up + np.sin(ang) * across
        base = at(x * PALM_W, PALM_L - 0.2)
        tip = base + s * length * rng.uniform(0.94, 1.04) * d
        parts.append(("finger", _capsule(base, tip, FINGER_W * s, TIP_W * s), 0.5 * FINGER_W * s))
    return parts


def draw_hand(img: np.ndarray, p68: np.ndarray, target: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A hand over ``target`` ("mouth": mouth and nose; "eyes": one or both eyes).

    Returns:
        ``(image uint8 BGR, alpha float32 HxW)`` (alpha: how much of each pixel is hand).
    """
    f = FaceFrame.of(p68)
    h, w = img.shape[:2]
    mirror = bool(rng.random() < 0.5)
    size = rng.uniform(0.95, 1.15)   # a hand on the face is a little nearer the camera
    if target == "mouth":
        angle = rng.uniform(-40, 40)
        goal = (f.p[62] + f.p[33]) / 2 + f.iod * rng.uniform(-0.12, 0.12, 2)
        along = PALM_L + 0.25    # the lower finger joints over the mouth, the palm on the chin
    elif target == "eyes":
        both = rng.random() < 0.5
        angle = rng.choice([-1, 1]) * rng.uniform(70, 100) if both else rng.uniform(-30, 30)
        goal = ((f.eye(0) + f.eye(1)) / 2 if both else f.eye(int(rng.integers(2)))) + f.iod * rng.uniform(-0.1, 0.1, 2)
        along = PALM_L + (0.55 if both else 0.35)
    else:
        raise ValueError(f"hand target {target!r}: use 'mouth' or 'eyes'")
    a = np.radians(angle)
    anchor = goal - along * size * f.iod * np.array([np.sin(a), -np.cos(a)])
    back = bool(rng.random() < 0.6)  # the back of the hand to the camera: nails show
    alpha = np.zeros((h, w), np.float32)
    shade = np.ones((h, w), np.float32)
    nails = np.zeros((h, w), np.float32)
    for kind, poly, half in _parts(f, anchor, angle, size, mirror, rng):
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 255, cv2.LINE_8, 2)
        if not m.any():
            continue
        dist = cv2.distanceTransform(m, cv2.DIST_L2, 3)
        on = m > 0
        shade[on] = (0.6 + 0.4 * np.sqrt(np.clip(dist / max(half, 1.0), 0, 1)))[on]
        alpha[on] = 1.0
        if kind in ("finger", "thumb"):
            tip = poly[len(poly) // 2]
            base = (poly[0] + poly[-1]) / 2
            d = (tip - base) / max(np.linalg.norm(tip - base), 1e-6)
            n = np.array([-d[1], d[0]])
            if back:
                nail = tip - 0.17 * size * f.iod * d
                ax = (0.12 * size * f.iod, 0.075 * size * f.iod)
                cv2.ellipse(nails, tuple(map(int, np.round(nail * 4))), tuple(map(int, np.round(np.array(ax) * 4))),
                            float(np.degrees(np.arctan2(d[1], d[0]))), 0, 360, 1.0, -1, cv2.LINE_AA, 2)
            for frac in (0.35, 0.62) if kind == "finger" else (0.5,):
                c = base + frac * (tip - base)
                seg = np.round(np.stack([c - 0.8 * half * n, c + 0.8 * half * n]) * 4).astype(np.int32)
                cv2.line(shade, tuple(map(int, seg[0])), tuple(map(int, seg[1])), 0.85, 1, cv2.LINE_AA, 2)
    soft = rng.uniform(0.7, 1.6)  # near the lens: a little out of focus
    alpha = cv2.GaussianBlur(alpha, (0, 0), soft)
    shade = cv2.GaussianBlur(shade, (0, 0), soft)
    xx, yy = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]
    theta = rng.uniform(0, 2 * np.pi)
    grad = ((xx - goal[0]) * np.cos(theta) + (yy - goal[1]) * np.sin(theta)) / (3 * f.iod)
    tex = cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), 1.2) * 0.02
    tone = _skin_tone(img, f, rng)[None, None, :]
    nails = cv2.GaussianBlur(nails, (0, 0), soft)[..., None] * 0.45
    colour = tone * (1 - nails) + (0.75 * tone + 0.25 * np.array([205.0, 205.0, 225.0])) * 1.08 * nails
    hand = colour * (shade * (1 + 0.15 * np.clip(grad, -1, 1)) + tex)[..., None]
    # A soft shadow the hand casts on the face beside it.
    off = f.iod * 0.06 * np.array([np.cos(theta + np.pi), np.sin(theta + np.pi)])
    shadow = cv2.GaussianBlur(cv2.warpAffine(alpha, np.float32([[1, 0, off[0]], [0, 1, off[1]]]), (w, h)),
                              (0, 0), 0.07 * f.iod)
    face = img.astype(np.float32) * (1 - 0.35 * shadow * (1 - alpha))[..., None]
    out = face * (1 - alpha[..., None]) + hand * alpha[..., None]
    return np.clip(out, 0, 255).round().astype(np.uint8), alpha


def _rim(centre: np.ndarray, a: float, b: float, power: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2 / power)
    y = b * np.sign(s) * np.abs(s) ** (2 / power)
    return centre + np.outer(x, u) + np.outer(y, v)


def draw_glasses(img: np.ndarray, p68: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """Glasses over the eyes.

    Returns:
        ``(image uint8 BGR, alpha float32 HxW of what hides the eyes, sunglasses)``: alpha is the
        dark lenses of sunglasses (clear lenses hide nothing; the thin frame is not counted).
    """
    f = FaceFrame.of(p68)
    h, w = img.shape[:2]
    a, b = f.iod * rng.uniform(0.4, 0.5), f.iod * rng.uniform(0.24, 0.33)
    power = rng.uniform(2.2, 4.5)
    lift = rng.uniform(-0.02, 0.06) * f.iod
    rims = [_rim(f.eye(s) - lift * f.v + 0.02 * f.iod * f.out(s), a, b, power, f.u, f.v) for s in (0, 1)]
    thick = max(1, round(f.iod * rng.uniform(0.018, 0.055)))
    style = rng.choice(["black", "brown", "metal"])
    colour = {"black": np.array([22.0, 22.0, 24.0]), "brown": np.array([30.0, 45.0, 70.0]),
              "metal": np.array([150.0, 150.0, 155.0])}[style] * rng.uniform(0.8, 1.2)
    if style == "metal":
        thick = max(1, thick // 2)
    sun = bool(rng.random() < 0.25)
    frame = np.zeros((h, w), np.float32)
    lens = np.zeros((h, w), np.float32)
    for rim in rims:
        q = np.round(rim * 4).astype(np.int32)
        cv2.fillPoly(lens, [q], 1.0, cv2.LINE_AA, 2)
        cv2.polylines(frame, [q], True, 1.0, thick, cv2.LINE_AA, 2)
    inner = [rims[0][np.argmax(rims[0] @ f.u)], rims[1][np.argmin(rims[1] @ f.u)]]
    bridge = np.stack([inner[0] - 0.05 * f.iod * f.v, (inner[0] + inner[1]) / 2 - 0.1 * f.iod * f.v,
                       inner[1] - 0.05 * f.iod * f.v])
    cv2.polylines(frame, [np.round(bridge * 4).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA, 2)
    for s, rim in enumerate(rims):
        outer = rim[np.argmax(rim @ f.out(s))] - 0.6 * b * f.v
        ear = f.p[0] if s == 0 else f.p[16]
        end = outer + 0.85 * ((ear - 0.25 * f.iod * f.v) - outer)
        cv2.line(frame, tuple(map(int, np.round(outer * 4))), tuple(map(int, np.round(end * 4))), 1.0, thick,
                 cv2.LINE_AA, 2)
    out = img.astype(np.float32)
    shadow = cv2.GaussianBlur(cv2.warpAffine(frame, np.float32([[1, 0, 0], [0, 1, 0.04 * f.iod]]), (w, h)),
                              (0, 0), 0.03 * f.iod)
    out *= (1 - 0.25 * shadow)[..., None]
    if sun:
        tint = np.array([30.0, 28.0, 26.0]) * rng.uniform(0.6, 1.6)
        opacity = rng.uniform(0.75, 0.92)
        out = out * (1 - opacity * lens[..., None]) + tint * opacity * lens[..., None]
    else:
        out *= (1 - rng.uniform(0.0, 0.06) * lens)[..., None]
    # A faint reflection band across the lenses.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    k = rng.uniform(-1, 1)
    band = np.exp(-(((xx - yy * k) - rng.uniform(0, w)) / (0.15 * f.iod)) ** 2) * lens * rng.uniform(0.04, 0.14)
    out = out + (255 - out) * band[..., None]
    out = out * (1 - frame[..., None]) + colour * frame[..., None]
    return np.clip(out, 0, 255).round().astype(np.uint8), (lens if sun else np.zeros_like(lens)), sun
