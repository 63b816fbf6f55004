"""Scattered vertex displacements -> dense 2D maps over the photo, and their inverse.

Forward (neutral -> expressive) and backward (expressive -> neutral) maps are both piecewise linear
over a triangulation of the same control points: the visible skin vertices carry their projected
displacement, and a ring of zero-displacement anchors just outside the face (plus the image
border and the two eye centres, where the eyeball does not move with the lids) keeps the rest of
the photo still. The backward map interpolates ``-d`` at the displaced positions, so it is the
exact inverse at every vertex and needs no fixed-point iteration (which diverges where a jaw drop
stretches the lip line by a factor of ten).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import ConvexHull, Delaunay

RING_MARGIN = 0.12   # anchor ring this far outside the face hull (fraction of the face size)
RING_POINTS = 64
BORDER_POINTS = 8    # per image side
FOLD_ROUNDS = 7
GRID_STEP = 2      # maps are interpolated on this lattice (px) and upsampled


@dataclass(frozen=True)
class Maps:
    """Dense maps on the photo's pixel grid (H x W x 2 float32, x then y)."""

    forward: np.ndarray   # neutral pixel p lands at p + forward[p] in the expressive image
    backward: np.ndarray  # absolute neutral position shown by expressive pixel q (for cv2.remap)
    folded: int           # control triangles that invert under the displacement (0 = fold free)
    interpolator: LinearNDInterpolator  # forward displacement at arbitrary neutral points
    dropped: int = 0      # control vertices dropped to avoid folds


def anchors(face_pts: np.ndarray, shape: tuple[int, int], fixed: np.ndarray | None = None) -> np.ndarray:
    """Zero-displacement control points: a ring around the face hull, the image border, ``fixed``."""
    h, w = shape
    hull = face_pts[ConvexHull(face_pts).vertices]
    centre = face_pts.mean(0)
    size = float(np.sqrt(np.prod(face_pts.max(0) - face_pts.min(0))))
    t = np.linspace(0, 1, RING_POINTS, endpoint=False)
    closed = np.vstack([hull, hull[:1]])
    seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))]
    ring = np.stack([np.interp(t * seg[-1], seg, closed[:, k]) for k in range(2)], axis=1)
    radial = ring - centre
    ring = ring + RING_MARGIN * size * radial / np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    s = np.linspace(0, 1, BORDER_POINTS, endpoint=False)
    border = np.concatenate([np.stack([s * (w - 1), 0 * s], 1), np.stack([(w - 1) + 0 * s, s * (h - 1)], 1),
                             np.stack([(1 - s) * (w - 1), (h - 1) + 0 * s], 1), np.stack([0 * s, (1 - s) * (h - 1)], 1)])
    parts = [ring, border] + ([np.asarray(fixed, np.float64).reshape(-1, 2)] if fixed is not None else [])
    return np.concatenate(parts)


def _grid(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return np.dstack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)))


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def _folds(src: np.ndarray, d: np.ndarray) -> tuple[Delaunay, np.ndarray]:
    tri = Delaunay(src)
    s = tri.simplices
    area0 = _cross(src[s[:, 1]] - src[s[:, 0]], src[s[:, 2]] - src[s[:, 0]])
    dst = src + d
    area1 = _cross(dst[s[:, 1]] - dst[s[:, 0]], dst[s[:, 2]] - dst[s[:, 0]])
    return tri, (np.abs(area0) > 1e-9) & (area1 * np.sign(area0) <= 0)


def dense_maps(points: np.ndarray, disp: np.ndarray, zero: np.ndarray, shape: tuple[int, int],
               protected: np.ndarray | None = None, ring: bool = False, step: int = GRID_STEP) -> Maps:
    """Forward and backward maps of control ``points`` moved by ``disp``, ``zero`` held still.

    Where the displacement would fold the control triangulation (vertices a fraction of a pixel
    apart moving apart differently, e.g. where upper and lower lip meet at the corners), the
    offending vertices are dropped from the controls (``FOLD_ROUNDS`` times at most) and their
    neighbours interpolate them; ``protected`` rows (the 68 landmark vertices) stay but for the
    last two rounds (their exact displacement is returned separately, see ``render``).

    Args:
        points: (K, 2) neutral positions (pixels). disp: (K, 2) their displacement.
        zero: (M, 2) anchor positions with zero displacement. shape: (height, width).
        protected: indices into ``points`` never dropped.
        ring: from the second round on, drop the offending vertices' neighbours too (v3: a
            turned head's or a strong AU's folds settle in two or three rounds instead of seven).
        step: lattice (px) the maps are interpolated on.
    """
    keep = np.ones(len(points), bool)
    prot = np.zeros(len(points) + len(zero), bool)
    prot[len(points):] = True
    if protected is not None:
        prot[np.asarray(protected)] = True
    for round_ in range(FOLD_ROUNDS):
        src = np.concatenate([points[keep], zero])
        d = np.concatenate([disp[keep], np.zeros_like(zero)])
        tri, bad = _folds(src, d)
        if not bad.any() or round_ == FOLD_ROUNDS - 1:
            break
        if round_ == (2 if ring else FOLD_ROUNDS - 3):  # last resort: landmark vertices may go too (not anchors)
            prot[:len(points)] = False
        rows = np.concatenate([np.flatnonzero(keep), len(points) + np.arange(len(zero))])
        ids = np.unique(tri.simplices[bad])
        if ring and round_ > 0:
            ids = np.unique(tri.simplices[np.isin(tri.simplices, ids).any(axis=1)])
        drop = rows[ids]
        drop = drop[~prot[drop]]
        if not len(drop):
            break
        keep[drop] = False
    folded = int(bad.sum())
    fwd_i = LinearNDInterpolator(tri, d, fill_value=0.0)
    bwd_i = LinearNDInterpolator(src + d, -d, fill_value=0.0)
    h, w = shape
    fwd = np.zeros((h, w, 2), np.float32)
    bwd = np.zeros((h, w, 2), np.float32)
    # Outside the anchor ring every control point is still, so only its box is interpolated, on a
    # GRID_STEP lattice upsampled bilinearly (the maps are smooth there but at the lip line).
    moving = np.concatenate([points, points + disp, zero[_inside(zero, shape)]])
    x0, y0 = np.clip(np.floor(moving.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(moving.max(0)).astype(int), 0, [w - 1, h - 1])
    xs = np.arange(x0, x1 + step, step, dtype=np.float64)
    ys = np.arange(y0, y1 + step, step, dtype=np.float64)
    q = np.dstack(np.meshgrid(xs, ys)).reshape(-1, 2)
    size = (x1 - x0 + 1, y1 - y0 + 1)
    for out, interp in ((fwd, fwd_i), (bwd, bwd_i)):
        coarse = interp(q).reshape(len(ys), len(xs), 2).astype(np.float32)
        m = np.array([[step, 0, 0], [0, step, 0]], np.float32)  # lattice -> pixels
        out[y0:y1 + 1, x0:x1 + 1] = cv2.warpAffine(coarse, m, size, flags=cv2.INTER_LINEAR,
                                                   borderMode=cv2.BORDER_REPLICATE)
    grid = _grid(shape).astype(np.float32)
    return Maps(fwd, grid + bwd, folded, fwd_i, int((~keep).sum()))


def _inside(pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return (pts[:, 0] > 0) & (pts[:, 0] < w - 1) & (pts[:, 1] > 0) & (pts[:, 1] < h - 1)
