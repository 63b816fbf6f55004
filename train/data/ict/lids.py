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

LASH_DARK = 0.35   # the lash line keeps this much of the lid's brightness at its core
CREASE_DARK = 0.12


def close_eyes(img: np.ndarray, neutral68: np.ndarray, f: FaceFrame, rng: np.random.Generator,
               lr: tuple[float, float]) -> np.ndarray:
    """Paint closed lids on the sides whose factor (left, right) is >= 0.5 (float BGR in/out).

    The lid covers what the warp stretched: from above the photo's own upper lashes down to the
    closed margin (the moved lower lid), in the lid skin's colour taken above it."""
    out = img
    h, w = img.shape[:2]
    for side in (0, 1):
        if (lr[0] if side == 1 else lr[1]) < 0.5:
            continue
        rows = slice(36, 42) if side == 0 else slice(42, 48)
        ring, ring0 = f.p[rows], np.asarray(neutral68, np.float64)[rows]
        lo = np.clip(np.floor(np.minimum(ring.min(0), ring0.min(0)) - 0.3 * f.iod).astype(int), 0, [w, h])
        hi = np.clip(np.ceil(np.maximum(ring.max(0), ring0.max(0)) + 0.15 * f.iod).astype(int), 0, [w, h])
        if (hi <= lo).any():
            continue
        (x0, y0), (x1, y1) = lo, hi
        origin = np.array([x0, y0], np.float64)
        shape = (int(y1 - y0), int(x1 - x0))
        # Upper edge: the photo's upper lid raised over its lashes; lower edge: the closed margin.
        upper = ring0[[0, 1, 2, 3]] - 0.07 * f.iod * f.v
        upper[[0, 3]] = ring[[0, 3]] - 0.01 * f.iod * f.v
        margin = ring[[3, 4, 5, 0]] + 0.012 * f.iod * f.v
        cover = np.zeros(shape, np.float32)
        cv2.fillPoly(cover, [np.round((np.concatenate([upper, margin]) - origin) * 16).astype(np.int32)], 1.0,
                     cv2.LINE_AA, 4)
        cover = cv2.GaussianBlur(cover, (0, 0), max(0.8, 0.015 * f.iod))
        region = out[y0:y1, x0:x1]
        # The lid's skin: filled in from around the hole (Telea inpainting), so its colour and
        # shading continue those of the lid above and the lower lid below.
        hole = (cover > 0.2).astype(np.uint8)
        lid = cv2.inpaint(np.clip(region, 0, 255).astype(np.uint8), hole, max(2.0, 0.06 * f.iod),
                          cv2.INPAINT_TELEA).astype(np.float32)
        yy = np.arange(shape[0], dtype=np.float32)[:, None] + y0
        top, bottom = float(upper[:, 1].min()), float(margin[:, 1].max())
        shadow = 1 - 0.1 * np.clip((yy - top) / max(bottom - top, 1.0), 0, 1)  # darker towards the lashes
        lid = lid * shadow[..., None]
        inner, outer = (ring[3], ring[0]) if side == 0 else (ring[0], ring[3])
        line = curve(inner - 0.01 * f.iod * f.v, outer, -0.12 if side == 0 else 0.12, 11)
        flick = np.stack([outer, outer + f.iod * (0.025 * f.out(side) + 0.01 * f.v)])
        lash = np.zeros(shape, np.float32)
        width = max(1, round(0.022 * f.iod * rng.uniform(0.8, 1.2)))
        for pts, wd in ((line, width), (flick, max(1, width - 1))):
            cv2.polylines(lash, [np.round((pts - origin) * 16).astype(np.int32)], False, 1.0, wd, cv2.LINE_AA, 4)
        crease = np.zeros(shape, np.float32)
        q = np.round((ring0[[0, 1, 2, 3]] - 0.1 * f.iod * f.v - origin) * 16).astype(np.int32)
        cv2.polylines(crease, [q], False, 1.0, 1, cv2.LINE_AA, 4)
        lash = cv2.GaussianBlur(lash, (0, 0), 0.7)
        crease = cv2.GaussianBlur(crease, (0, 0), max(1.0, 0.015 * f.iod))
        a = cover[..., None]
        painted = region * (1 - a) + lid * a
        painted *= (1 - (1 - LASH_DARK) * lash - CREASE_DARK * crease)[..., None]
        out = out.copy() if out is img else out
        out[y0:y1, x0:x1] = painted
    return out
