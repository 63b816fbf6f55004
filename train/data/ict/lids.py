"""Closed eyes (AU43, the clip's crying frames): the lash line and lid crease of a shut eye.

The warp does most of it: for a closing eye ``render`` drops that eye's still anchor, so ICT's
``eyeBlink`` pulls the upper lid's skin (and its lashes) down to the lower lid. What the warp
leaves is a thin sliver of eye between the lid margins and no lash line of its own; this paints
the sliver with the lid's colour (taken just above it), a dark lash line along the closed margin
and a faint crease above, per closed side.
"""
from __future__ import annotations

import cv2
import numpy as np

from train.data.ict.strokes import FaceFrame, curve

LASH_DARK = 0.5    # the lash line keeps this much of the lid's brightness at its core
CREASE_DARK = 0.12


def close_eyes(img: np.ndarray, f: FaceFrame, rng: np.random.Generator, lr: tuple[float, float]) -> np.ndarray:
    """Paint closed lids on the sides whose factor (left, right) is >= 0.5 (float BGR in/out)."""
    out = img
    h, w = img.shape[:2]
    for side in (0, 1):
        if (lr[0] if side == 1 else lr[1]) < 0.5:
            continue
        ring = f.p[36:42] if side == 0 else f.p[42:48]
        lo = np.clip(np.floor(ring.min(0) - 0.25 * f.iod).astype(int), 0, [w, h])
        hi = np.clip(np.ceil(ring.max(0) + 0.15 * f.iod).astype(int), 0, [w, h])
        if (hi <= lo).any():
            continue
        (x0, y0), (x1, y1) = lo, hi
        origin = np.array([x0, y0], np.float64)
        shape = (int(y1 - y0), int(x1 - x0))
        centre = ring.mean(0)
        grow = centre + (ring - centre) * np.array([1.05, 1.0]) + 0.015 * f.iod * np.array([[0, 1]])
        sliver = np.zeros(shape, np.float32)
        cv2.fillPoly(sliver, [np.round((grow - origin) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
        sliver = cv2.GaussianBlur(sliver, (0, 0), max(0.8, 0.012 * f.iod))
        region = out[y0:y1, x0:x1]
        above = np.round(centre - origin - 0.1 * f.iod * f.v).astype(int)
        r = max(2, int(0.04 * f.iod))
        patch = region[max(0, above[1] - r):above[1] + r, max(0, above[0] - 2 * r):above[0] + 2 * r]
        lid = np.median(patch.reshape(-1, 3), axis=0) if patch.size else region.reshape(-1, 3).mean(0)
        # The closed margin: the lower lid's contour, a little up, flicking out at the outer corner.
        inner, outer = (ring[3], ring[0]) if side == 0 else (ring[0], ring[3])
        margin = curve(inner - 0.01 * f.iod * f.v, outer - 0.005 * f.iod * f.v, -0.12 if side == 0 else 0.12, 11)
        flick = np.stack([outer, outer + f.iod * (0.025 * f.out(side) + 0.01 * f.v)])
        lash = np.zeros(shape, np.float32)
        width = max(1, round(0.022 * f.iod * rng.uniform(0.8, 1.2)))
        for line, wd in ((margin, width), (flick, max(1, width - 1))):
            q = np.round((line - origin) * 16).astype(np.int32)
            cv2.polylines(lash, [q], False, 1.0, wd, cv2.LINE_AA, 4)
        crease = np.zeros(shape, np.float32)
        q = np.round((margin - 0.11 * f.iod * f.v - origin) * 16).astype(np.int32)
        cv2.polylines(crease, [q[1:-1]], False, 1.0, 1, cv2.LINE_AA, 4)
        lash = cv2.GaussianBlur(lash, (0, 0), 0.7)
        crease = cv2.GaussianBlur(crease, (0, 0), max(1.0, 0.015 * f.iod))
        a = sliver[..., None]
        painted = region * (1 - a) + lid * a
        painted *= (1 - (1 - LASH_DARK) * lash - CREASE_DARK * crease)[..., None]
        out = out.copy() if out is img else out
        out[y0:y1, x0:x1] = painted
    return out
