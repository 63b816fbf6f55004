"""The geometry of the synthetic FACS warps: AU intensities -> landmark displacements -> a fold-free
piecewise-affine map (``train.data.synth`` renders with it).

The AU intensities move the 189 FRL landmarks (``synth_templates``); a Delaunay triangulation of
the landmarks plus a fixed ring of points outside the frame carries the pixels along. Displacements
are damped where a triangle would fold (soft tissue bunching), then scaled down if that is not
enough. See ``train.data.synth`` for the flow conventions of the maps.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from runtime.aus import au_name
from train.data.synth_templates import (
    MAX_INTENSITY,
    MAX_LID_CLOSURE,
    SYNTH_AUS,
    TEMPLATES,
)
from train.data.tem import FRL189_GROUPS, group_indices, tem_five_points

_LIP_NUDGE_PX = 0.35  # inner-lip points coincide on closed lips; part them so both stay vertices
_RING_MARGIN = 0.25   # fixed control points this far outside the frame (fraction of its side)
_DAMP_STEPS, _DAMP_FACTOR = 20, 0.8  # local fold resolution before any global scaling
_EYE_INTERIOR = tuple(FRL189_GROUPS["pupil_R"] + FRL189_GROUPS["pupil_L"]
                      + FRL189_GROUPS["iris_R"] + FRL189_GROUPS["iris_L"])
# Per eye, top to bottom: brow upper edge, brow lower edge, lid crease, upper lid, lower lid,
# infraorbital fold (lids with both corners).
_EYE_STACK: dict[str, tuple[tuple[int, ...], ...]] = {
    "R": ((71, 72, 73, 74, 75, 76), (71, 83, 84, 76), (34, 35, 36, 37, 38), (18, 19, 20, 21, 22),
          (18, 28, 29, 30, 22), (44, 45, 46)),
    "L": ((77, 78, 79, 80, 81, 82), (77, 85, 86, 82), (39, 40, 41, 42, 43), (23, 24, 25, 26, 27),
          (23, 31, 32, 33, 27), (47, 48, 49)),
}
# The least fraction of each neutral gap between consecutive stack layers that is kept.
_STACK_KEEP = (0.5, 0.3, 0.3, 1 - MAX_LID_CLOSURE, 0.3)

# --------------------------------------------------------------------------- landmark displacement

def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Origin (eye midpoint), unit ``u`` (subject's right eye -> left eye), ``v`` (down), IOD."""
    five = tem_five_points(points)
    d = five[1] - five[0]
    iod = float(np.linalg.norm(d))
    u = d / iod
    return (five[0] + five[1]) / 2, u, np.array([-u[1], u[0]]), iod


def _profile(name: str, s: np.ndarray) -> np.ndarray:
    a = np.abs(s)
    return {"uniform": np.ones_like(s), "lateral": a, "medial": 1 - a, "arc": 1 - s * s}[name]


def _poly_y(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Height of the polyline through (xs, ys), sorted by x, at ``x`` (constant beyond its ends)."""
    order = np.argsort(xs)
    return np.interp(x, xs[order], ys[order])


def _lid_moves(xy: np.ndarray, d_up: float, d_lo: float) -> np.ndarray:
    """Face-frame displacement (N x 2, px) for lid moves given as fractions of the local lid gap:
    the upper lid and its crease by ``d_up``, the lower lid by ``d_lo`` (corners stay)."""
    disp = np.zeros_like(xy)
    for side in ("R", "L"):
        up, lo = list(_EYE_STACK[side][3]), list(_EYE_STACK[side][4])
        crease = list(FRL189_GROUPS[f"lid_crease_{side}"])
        for idx, frac in ((up, d_up), (lo, d_lo), (crease, d_up)):
            x = xy[idx, 0]
            gap = np.maximum(_poly_y(x, xy[lo, 0], xy[lo, 1]) - _poly_y(x, xy[up, 0], xy[up, 1]), 0)
            disp[idx, 1] = -frac * gap
    return disp


def _push_stack(xy: np.ndarray, dxy: np.ndarray) -> np.ndarray:
    """Resolve collisions in the brow-to-cheek stack of each eye (face frame, px).

    Each gap between consecutive layers may shrink to ``_STACK_KEEP`` of its neutral size; a layer
    moving further pushes the next one along (a lowered brow pushes the lid fold and lid down, a
    raised lower lid pushes up), as soft tissue does, instead of folding the mesh.
    """
    new = xy + dxy
    for side in ("R", "L"):
        layers = [list(idx) for idx in _EYE_STACK[side]]
        for i in range(1, len(layers)):  # downward pushes, top to bottom
            above, layer = layers[i - 1], layers[i]
            gap = xy[layer, 1] - _poly_y(xy[layer, 0], xy[above, 0], xy[above, 1])
            bound = _poly_y(new[layer, 0], new[above, 0], new[above, 1]) + _STACK_KEEP[i - 1] * gap
            new[layer, 1] = np.where(gap > 0, np.maximum(new[layer, 1], bound), new[layer, 1])
        for i in range(len(layers) - 1, 0, -1):  # upward pushes, bottom to top
            above, layer = layers[i - 1], layers[i]
            gap = _poly_y(xy[above, 0], xy[layer, 0], xy[layer, 1]) - xy[above, 1]
            bound = _poly_y(new[above, 0], new[layer, 0], new[layer, 1]) - _STACK_KEEP[i - 1] * gap
            new[above, 1] = np.where(gap > 0, np.minimum(new[above, 1], bound), new[above, 1])
    return new - xy


def displacements(points: np.ndarray, intensities: Mapping[int, float]) -> np.ndarray:
    """Displacement (Nx2, image pixels) of the FRL control points for AU intensities in [0, 5].

    Iris and pupil points are not control points (the lids slide over them) and get zero.

    Raises:
        ValueError: an AU without a template, or an intensity outside [0, 5].
    """
    origin, u, v, iod = face_frame(points)
    xy = np.stack([(points - origin) @ u, (points - origin) @ v], axis=1)  # face frame, y down
    corners = xy[[FRL189_GROUPS["mouth_corner_R"][0], FRL189_GROUPS["mouth_corner_L"][0]], 0]
    s = np.clip((xy[:, 0] - corners.mean()) / max(abs(corners[1] - corners[0]) / 2, 1e-6), -1, 1)
    side = np.sign(xy[:, 0])
    disp = np.zeros_like(xy)  # (x, y down) in IOD, accumulated over AUs
    d_up = d_lo = 0.0
    for au, level in intensities.items():
        if au not in TEMPLATES:
            raise ValueError(f"no synthesis template for {au_name(au)}; have {list(map(au_name, SYNTH_AUS))}")
        if not 0 <= level <= MAX_INTENSITY:
            raise ValueError(f"{au_name(au)} intensity {level!r} not in [0, {MAX_INTENSITY:g}]")
        gain = level / MAX_INTENSITY
        tpl = TEMPLATES[au]
        for mv in tpl.moves:
            idx = list(group_indices(mv.group))
            w = gain * _profile(mv.profile, s[idx])
            out_sign = np.sign(s[idx]) if mv.profile == "lateral" else side[idx]
            disp[idx, 0] += w * mv.out * out_sign
            disp[idx, 1] -= w * mv.up
        d_up += gain * tpl.lids[0]
        d_lo += gain * tpl.lids[1]
    closure = d_lo - d_up
    if closure > MAX_LID_CLOSURE:
        d_up, d_lo = d_up * MAX_LID_CLOSURE / closure, d_lo * MAX_LID_CLOSURE / closure
    disp_px = _push_stack(xy, disp * iod + _lid_moves(xy, d_up, d_lo))
    disp_px[list(_EYE_INTERIOR)] = 0.0
    return disp_px[:, :1] * u + disp_px[:, 1:] * v


# --------------------------------------------------------------------------- piecewise-affine warp

def control_points(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The warp's control points: the FRL points but iris/pupil, inner lips parted by a hair (they
    coincide on closed lips), then a fixed ring outside the frame. Returns ``(points, frl_index)``."""
    pts = np.asarray(points, dtype=np.float64).copy()
    _, _, v, _ = face_frame(pts)
    pts[list(FRL189_GROUPS["upper_lip_inner"])] -= _LIP_NUDGE_PX * v
    pts[list(FRL189_GROUPS["lower_lip_inner"])] += _LIP_NUDGE_PX * v
    keep = np.setdiff1d(np.arange(len(pts)), _EYE_INTERIOR)
    h, w = shape
    m = _RING_MARGIN * max(h, w)
    xs, ys = np.linspace(-m, w - 1 + m, 4), np.linspace(-m, h - 1 + m, 4)
    ring = np.array([(x, y) for x in xs for y in ys if x in (xs[0], xs[-1]) or y in (ys[0], ys[-1])])
    return np.concatenate([pts[keep], ring]), keep


def _signed_areas(tri_pts: np.ndarray) -> np.ndarray:
    a, b, c = tri_pts[:, 0], tri_pts[:, 1], tri_pts[:, 2]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def folding(src: np.ndarray, dst: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Per triangle: True where it inverts (or collapses to < 0.1% of its area)."""
    a0, a1 = _signed_areas(src[simplices]), _signed_areas(dst[simplices])
    keep = np.abs(a0) > 1e-6
    return keep & (a1 / np.where(keep, a0, 1.0) <= 1e-3)


def fold_free(src: np.ndarray, disp: np.ndarray, simplices: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Displacements that fold no triangle: first the points of folding triangles are damped
    (soft tissue bunching where a face has little room), then, if that is not enough, the whole
    displacement is scaled down. Returns ``(disp, n_damped_points, global_scale)``."""
    disp = disp.copy()
    damped = np.zeros(len(disp), dtype=bool)
    for _ in range(_DAMP_STEPS):
        bad = folding(src, src + disp, simplices)
        if not bad.any():
            return disp, int(damped.sum()), 1.0
        verts = np.unique(simplices[bad])
        disp[verts] *= _DAMP_FACTOR
        damped[verts] = True
    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if folding(src, src + mid * disp, simplices).any() else (mid, hi)
    return lo * disp, int(damped.sum()), lo


def pwa_points(tri: Delaunay, dst: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """The piecewise-affine map (triangles of ``tri`` -> same triangles on ``dst``) at ``pts``."""
    k = tri.find_simplex(pts)
    t = tri.transform[k]
    bary = np.einsum("nij,nj->ni", t[:, :2], pts - t[:, 2])
    bary = np.concatenate([bary, 1 - bary.sum(1, keepdims=True)], axis=1)
    return np.einsum("ni,nij->nj", bary, dst[tri.simplices[k]])


@lru_cache(maxsize=8)
def grid(h: int, w: int) -> np.ndarray:
    g = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    g.setflags(write=False)
    return g


def piecewise_map(frm: np.ndarray, to: np.ndarray, simplices: np.ndarray, fallback: np.ndarray,
                   shape: tuple[int, int]) -> np.ndarray:
    """Absolute positions (HxWx2 float32) of the piecewise-affine map taking triangles ``frm`` to
    ``to``, evaluated on the pixel grid of the ``frm`` side; pixels outside every triangle use the
    2x3 ``fallback``."""
    h, w = shape
    a, b = frm[simplices], to[simplices]                          # T x 3 x 2
    xa = np.concatenate([a, np.ones((len(a), 3, 1))], axis=2)     # T x 3 x 3
    ok = np.abs(np.linalg.det(xa)) > 1e-9
    mt = np.empty((len(a) + 1, 3, 2))
    mt[:-1][ok] = np.linalg.solve(xa[ok], b[ok])                  # [x y 1] @ mt = mapped
    mt[:-1][~ok] = np.linalg.pinv(xa[~ok]) @ b[~ok] if (~ok).any() else 0
    mt[-1] = fallback.T
    label = np.full((h, w), len(a), dtype=np.int32)
    fixed = np.round(a * 16).astype(np.int32)                     # 4 fractional bits
    for k in np.flatnonzero(ok):
        cv2.fillConvexPoly(label, fixed[k], int(k), lineType=cv2.LINE_8, shift=4)
    coef = mt.astype(np.float32).reshape(-1, 6)                   # ax ay bx by cx cy
    g = grid(h, w)
    out = np.empty((h, w, 2), dtype=np.float32)
    for j in range(2):  # per-plane take + in-place math: ~4x faster than gathering T x 3 x 2
        plane = np.take(coef[:, j], label) * g[..., 0]
        plane += np.take(coef[:, 2 + j], label) * g[..., 1]
        plane += np.take(coef[:, 4 + j], label)
        out[..., j] = plane
    return out
