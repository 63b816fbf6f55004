"""What the warp cannot show: skin creases, cheek shading, the mouth cavity and teeth.

Geometry moves pixels but cannot fold skin or reveal what was hidden. Each effect is placed from
the moved 68 points, sized by the inter-ocular distance (IOD), darkened in proportion to the AU
weight, and varied by the caller's ``rng`` (angles, lengths, depths, texture), so a seed gives
the same render:

- AU6: crow's feet (three creases fanning from each outer eye corner), the infraorbital furrow
  under the lower lid, and a faint highlight on the raised cheek.
- AU4: two vertical glabella furrows between the inner brows.
- AU9: three or four short transverse creases across the nose bridge.
- AU17: the chin boss's dimpled ("peau d'orange") texture and the deepened mentolabial fold.
- Lips apart (AU25/AU26, or any render whose inner lips separate by more than 1.5 px): the
  opening is filled with a dark oral cavity and an upper-teeth band under the upper lip.

Depths are a few percent of the pixel value at full weight: subtle, like the creases in the FACS
manual photos, and below what would draw attention at the 112-224 px crops the models see.
"""
from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

CREASE_DEPTH = {4: 0.22, 6: 0.24, 9: 0.28, 17: 0.18}  # core-line darkening at weight 1
CHEEK_HIGHLIGHT = 0.05
CHIN_TEXTURE = 0.07
MIN_OPENING_PX = 1.5
CAVITY_BGR = (28, 22, 48)
TEETH_BGR = (188, 204, 214)


def _iod(p68: np.ndarray) -> float:
    return float(np.linalg.norm(p68[42:48].mean(0) - p68[36:42].mean(0)))


def lip_opening(neutral68: np.ndarray, moved68: np.ndarray) -> float:
    """How much further apart (px) the inner lips are at the midline after the warp: the lower
    inner lip (row 66) below the upper (row 62) along the face's own down direction, minus the
    same on the neutral photo. Signed, so a lower lip pushed up (AU17) does not count as open."""
    eye = neutral68[42:48].mean(0) - neutral68[36:42].mean(0)
    down = np.array([-eye[1], eye[0]]) / max(float(np.linalg.norm(eye)), 1e-9)
    return float((moved68[66] - moved68[62]) @ down - (neutral68[66] - neutral68[62]) @ down)


def _crease(dark: np.ndarray, light: np.ndarray, line: np.ndarray, depth: float, offset: np.ndarray) -> None:
    """A tapered crease: a dark core line, and a fainter highlight beside it (the fold's lit lip)."""
    seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))]
    t = np.linspace(0, seg[-1], 9)
    pts = np.stack([np.interp(t, seg, line[:, k]) for k in range(2)], axis=1)
    for k in range(len(pts) - 1):
        d = depth * np.sin(np.pi * (k + 0.5) / (len(pts) - 1))
        a, b = np.round(pts[k:k + 2] * 16).astype(np.int32)
        cv2.line(dark, tuple(map(int, a)), tuple(map(int, b)), float(d), 1, cv2.LINE_AA, 4)
        a, b = np.round((pts[k:k + 2] + offset) * 16).astype(np.int32)
        cv2.line(light, tuple(map(int, a)), tuple(map(int, b)), float(0.4 * d), 1, cv2.LINE_AA, 4)


def _ray(start: np.ndarray, direction: np.ndarray, length: float, bend: float) -> np.ndarray:
    normal = np.array([-direction[1], direction[0]])
    t = np.linspace(0, 1, 5)[:, None]
    return start + t * length * direction + (t * (1 - t)) * bend * length * normal


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _creases(p: np.ndarray, weights: Mapping[int, float], rng: np.random.Generator,
             shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    iod = _iod(p)
    eyes = np.stack([p[36:42].mean(0), p[42:48].mean(0)])
    u = (eyes[1] - eyes[0]) / iod          # subject's right -> left, along the eye line
    v = np.array([-u[1], u[0]])            # down the face
    dark, light = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    def jit() -> float:
        return float(rng.uniform(0.85, 1.15))
    w6 = weights.get(6, 0.0)
    if w6 > 0:
        for corner, out in ((p[36], -u), (p[45], u)):
            for ang in (-28.0, 0.0, 26.0):
                ang = ang * (1 if out @ u > 0 else -1) + rng.uniform(-6, 6)
                d = _rot(out, ang)
                line = _ray(corner + 0.07 * iod * d, d, 0.2 * iod * jit(), rng.uniform(-0.15, 0.15))
                _crease(dark, light, line, CREASE_DEPTH[6] * w6 * jit(), -0.02 * iod * v)
        for lo in (p[[36, 41, 40, 39]], p[[42, 47, 46, 45]]):  # infraorbital furrow below the lower lid
            _crease(dark, light, lo + 0.16 * iod * v, 0.7 * CREASE_DEPTH[6] * w6 * jit(), 0.02 * iod * v)
    w4 = weights.get(4, 0.0)
    if w4 > 0:
        mid = (p[21] + p[22]) / 2
        for side in (-1, 1):
            top = mid + side * 0.07 * iod * u - 0.22 * iod * v * jit()
            bottom = mid + side * 0.045 * iod * u + 0.06 * iod * v
            line = np.stack([bottom, (bottom + top) / 2 + side * 0.01 * iod * u, top])
            _crease(dark, light, line, CREASE_DEPTH[4] * w4 * jit(), side * 0.02 * iod * u)
    w9 = weights.get(9, 0.0)
    if w9 > 0:
        n = int(rng.integers(3, 5))
        for k in range(n):
            c = p[27] + (p[28] - p[27]) * (0.1 + 0.9 * k / max(n - 1, 1))
            half = 0.11 * iod * jit()
            line = np.stack([c - half * u, c + 0.015 * iod * v * rng.uniform(-1, 1), c + half * u])
            _crease(dark, light, line, CREASE_DEPTH[9] * w9 * jit(), 0.02 * iod * v)
    w17 = weights.get(17, 0.0)
    if w17 > 0:
        c = p[57] + 0.3 * (p[8] - p[57])
        half = 0.28 * iod
        line = np.stack([c - half * u - 0.03 * iod * v, c + 0.02 * iod * v, c + half * u - 0.03 * iod * v])
        _crease(dark, light, line, CREASE_DEPTH[17] * w17 * jit(), 0.025 * iod * v)
    return dark, light


def _ellipse_mask(shape: tuple[int, int], centre: np.ndarray, axes: tuple[float, float], angle: float) -> np.ndarray:
    m = np.zeros(shape, np.float32)
    cv2.ellipse(m, (tuple(map(int, np.round(centre))), tuple(map(int, np.round(axes))), angle), 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(m, (0, 0), max(axes) / 2)


def _surface(p: np.ndarray, weights: Mapping[int, float], rng: np.random.Generator,
             shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative gain from broad effects: cheek highlight (AU6), chin texture (AU17)."""
    iod = _iod(p)
    eyes = np.stack([p[36:42].mean(0), p[42:48].mean(0)])
    u = (eyes[1] - eyes[0]) / iod
    v = np.array([-u[1], u[0]])
    angle = float(np.degrees(np.arctan2(u[1], u[0])))
    gain = np.ones(shape, np.float32)
    w6 = weights.get(6, 0.0)
    if w6 > 0:
        for eye, out in ((eyes[0], -u), (eyes[1], u)):
            m = _ellipse_mask(shape, eye + 0.5 * iod * v + 0.1 * iod * out, (0.28 * iod, 0.16 * iod), angle)
            gain += CHEEK_HIGHLIGHT * w6 * m
    w17 = weights.get(17, 0.0)
    if w17 > 0:
        c = p[57] + 0.6 * (p[8] - p[57])
        m = _ellipse_mask(shape, c, (0.3 * iod, 0.16 * iod), angle)
        noise = rng.standard_normal(shape).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), max(0.8, 0.012 * iod))
        noise /= max(float(noise.std()), 1e-6)
        gain -= CHIN_TEXTURE * w17 * m * np.clip(noise, -2, 2) / 2
    return gain


def _mouth(image: np.ndarray, p0: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark cavity and upper teeth between inner lips that the warp pulled apart."""
    opening = lip_opening(p0, p)
    if opening <= MIN_OPENING_PX:
        return image
    h, w = image.shape[:2]
    upper = p[[60, 61, 62, 63, 64]]
    lower = p[[64, 65, 66, 67, 60]]
    poly = np.concatenate([upper, lower[1:-1]])
    cavity = np.zeros((h, w), np.float32)
    cv2.fillPoly(cavity, [np.round(poly * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    iod = _iod(p)
    band = min(0.42 * opening, 0.1 * iod) * rng.uniform(0.85, 1.1)
    down = np.array([-(p[45] - p[36])[1], (p[45] - p[36])[0]]) / max(np.linalg.norm(p[45] - p[36]), 1e-6)
    teeth_poly = np.concatenate([upper, (upper + band * down)[::-1]])
    teeth = np.zeros((h, w), np.float32)
    cv2.fillPoly(teeth, [np.round(teeth_poly * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    # Teeth are darker towards the mouth corners (deeper in the mouth, in shadow).
    x = np.arange(w, dtype=np.float32)[None, :]
    centre, half = float((p[60, 0] + p[64, 0]) / 2), max(float(abs(p[64, 0] - p[60, 0]) / 2), 1.0)
    falloff = np.clip(1 - ((x - centre) / half) ** 2, 0, 1) ** 0.6
    strength = float(np.clip((opening - 1.0) / 3.0, 0, 1))
    cavity = cv2.GaussianBlur(cavity, (0, 0), 0.8) * 0.92 * strength
    teeth = cv2.GaussianBlur(teeth * cavity, (0, 0), 0.7) * falloff * 0.85 * float(np.clip((opening - 3) / 4, 0, 1))
    tooth = np.array(TEETH_BGR, np.float32) * rng.uniform(0.9, 1.05)
    img = image.astype(np.float32)
    img = img * (1 - cavity[..., None]) + np.array(CAVITY_BGR, np.float32) * cavity[..., None]
    img = img * (1 - teeth[..., None]) + tooth * (0.75 + 0.25 * falloff[..., None]) * teeth[..., None]
    return img


def shade(image: np.ndarray, neutral68: np.ndarray, moved68: np.ndarray, weights: Mapping[int, float],
          rng: np.random.Generator) -> np.ndarray:
    """The render with the appearance layer (uint8 BGR, same size).

    Args:
        image: the warped photo. neutral68 / moved68: the 68 points before / after the warp.
        weights: AU -> weight in [0, 1]. rng: the render's generator (consumed here).
    """
    shape = image.shape[:2]
    dark, light = _creases(moved68, weights, rng, shape)
    sigma = max(0.6, 0.008 * _iod(moved68))
    gain = _surface(moved68, weights, rng, shape)
    gain = gain - cv2.GaussianBlur(dark, (0, 0), sigma) + cv2.GaussianBlur(light, (0, 0), 1.5 * sigma)
    out = _mouth(image.astype(np.float32) * gain[..., None], neutral68, moved68, rng)
    return np.clip(out, 0, 255).round().astype(np.uint8)
