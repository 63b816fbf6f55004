"""The v3 mouth: what parted lips reveal (cavity, upper and lower teeth with their gaps, tongue) and
the pale red of tightened / pressed lips (AU23/24).

Why beyond v2's band: a laugh (the clip's frames 312-456) shows a full row of upper teeth, their
separations, the lower teeth's edges once the jaw drops and a dark mouth behind; a flat light band
reads as a warp artefact. Teeth and cavity take their brightness from the face's own skin (a dim
photo gets dim teeth). Everything is painted inside the inner-lip polygon of the moved 68 points.
"""
from __future__ import annotations

import cv2
import numpy as np

from train.data.ict.appearance import MIN_OPENING_PX, lip_opening
from train.data.ict.strokes import FaceFrame

TEETH_BGR = np.array([196.0, 212.0, 224.0])
CAVITY_BGR = np.array([22.0, 20.0, 42.0])
TONGUE_BGR = np.array([92.0, 96.0, 168.0])
# Tooth edges from the midline outwards (IOD): central incisor, lateral, canine, premolars.
GAPS_IOD = (0.0, 0.09, 0.16, 0.22)


def _skin_level(img: np.ndarray, f: FaceFrame) -> float:
    """Mean brightness of the cheeks relative to a studio-lit face (1.0 ~ London)."""
    vals = []
    for side in (0, 1):
        c = np.round(f.at(f.eye(side), 0.05, 0.6, side)).astype(int)
        r = max(2, int(0.06 * f.iod))
        patch = img[max(0, c[1] - r):c[1] + r, max(0, c[0] - r):c[0] + r]
        if patch.size:
            vals.append(float(patch.mean()))
    return float(np.clip(np.mean(vals) / 165.0, 0.35, 1.3)) if vals else 1.0


def _fill(shape: tuple[int, int], poly: np.ndarray, origin: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, np.float32)
    cv2.fillPoly(m, [np.round((poly - origin) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    return m


def mouth_v3(img: np.ndarray, neutral68: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint the mouth interior where the inner lips part (float BGR in, float BGR out)."""
    opening = lip_opening(neutral68, p)
    if opening <= MIN_OPENING_PX:
        return img
    f = FaceFrame.of(p)
    h, w = img.shape[:2]
    inner = p[[60, 61, 62, 63, 64, 65, 66, 67]]
    x0, y0 = np.clip(np.floor(inner.min(0) - 4).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(inner.max(0) + 4).astype(int), 0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return img
    origin = np.array([x0, y0], np.float64)
    shape = (int(y1 - y0), int(x1 - x0))
    cavity = cv2.GaussianBlur(_fill(shape, inner, origin), (0, 0), 0.7)
    strength = float(np.clip((opening - 1.0) / 3.0, 0, 1))
    level = _skin_level(img, f) * rng.uniform(0.9, 1.05)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    q = np.stack([xx + x0, yy + y0], -1)
    centre = (p[60] + p[64]) / 2
    along = (q - centre) @ f.u / f.iod          # IOD from the mouth's midline
    half = max(float(np.linalg.norm(p[64] - p[60])) / 2 / f.iod, 1e-3)
    falloff = np.clip(1 - (along / half) ** 2, 0, 1) ** 0.5   # darker towards the corners
    upper = p[[60, 61, 62, 63, 64]]
    lower = p[[60, 67, 66, 65, 64]]
    # Distance below the upper inner lip / above the lower, along the face's down direction.
    below_up = (q @ f.v) - np.interp(along, (upper - centre) @ f.u / f.iod, upper @ f.v)
    above_lo = np.interp(along, (lower - centre) @ f.u / f.iod, lower @ f.v) - (q @ f.v)
    band = min(0.5 * opening, 0.13 * f.iod) * rng.uniform(0.85, 1.1)
    teeth = np.clip((band * (0.55 + 0.45 * falloff) - below_up) / 1.5, 0, 1) * (below_up > -2)
    low_band = min(0.22 * opening, 0.07 * f.iod) * float(opening > 0.12 * f.iod)
    low = np.clip((low_band * falloff - above_lo) / 1.5, 0, 1) * (above_lo > -2)
    edges = np.zeros(shape, np.float32)
    for g in GAPS_IOD[1:]:
        for s in (-1, 1):
            edges = np.maximum(edges, np.exp(-((along - s * g) * f.iod) ** 2 / (2 * 1.0 ** 2)))
    edges = np.maximum(edges, np.exp(-(along * f.iod) ** 2 / (2 * 0.8 ** 2)))  # between the central incisors
    tooth = TEETH_BGR * level * rng.uniform(0.92, 1.04)
    tooth_px = tooth * (0.62 + 0.38 * falloff[..., None]) * (1 - 0.16 * edges[..., None])
    tooth_px *= (1 - 0.15 * np.clip(below_up / max(band, 1e-3), 0, 1))[..., None]  # translucent edge
    depth = np.clip(above_lo / max(opening, 1e-3), 0, 1)
    back = CAVITY_BGR * level * (0.7 + 0.6 * (1 - depth[..., None]))
    tongue_on = float(opening > 0.2 * f.iod)
    tongue = tongue_on * np.clip(1 - ((along / (0.7 * half)) ** 2 + ((above_lo - 0.12 * opening) /
                                                                       (0.25 * opening)) ** 2), 0, 1) ** 0.5
    back = back * (1 - tongue[..., None]) + TONGUE_BGR * level * 0.55 * tongue[..., None]
    interior = back * (1 - teeth[..., None]) + tooth_px * teeth[..., None]
    interior = interior * (1 - low[..., None]) + 0.78 * tooth_px * low[..., None]
    a = (cavity * 0.96 * strength)[..., None]
    out = img.copy()
    out[y0:y1, x0:x1] = out[y0:y1, x0:x1] * (1 - a) + interior * a
    return out


def lips_pale(img: np.ndarray, f: FaceFrame, weight: float) -> np.ndarray:
    """Tightened / pressed lips (AU23/24): the red drains towards the surrounding skin."""
    p = f.p
    h, w = img.shape[:2]
    outer = p[48:60]
    x0, y0 = np.clip(np.floor(outer.min(0) - 6).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(outer.max(0) + 6).astype(int), 0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return img
    origin = np.array([x0, y0], np.float64)
    shape = (int(y1 - y0), int(x1 - x0))
    lips = _fill(shape, outer, origin) - _fill(shape, p[60:68], origin)
    lips = cv2.GaussianBlur(np.clip(lips, 0, 1), (0, 0), 1.0)
    region = img[y0:y1, x0:x1]
    ring = (cv2.GaussianBlur(lips, (0, 0), 0.08 * f.iod) > 0.02) & (lips < 0.05)
    if not ring.any():
        return img
    skin = region[ring].mean(0)
    lum = region.mean(-1, keepdims=True)
    target = skin * (lum / max(float(skin.mean()), 1e-3))  # skin hue at the lips' own brightness
    a = (0.45 * weight * lips)[..., None]
    out = img.copy()
    out[y0:y1, x0:x1] = region * (1 - a) + target * a
    return out
