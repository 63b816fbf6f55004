"""Synthetic FACS expressions: real neutral faces warped by per-AU landmark displacement templates.

Why: labelled AU data is scarce and licensed; warping the 82 open London neutral faces gives
exact, dense supervision (AU intensities, landmarks and the true flow) for any AU mix.

How: the AU intensities move the 189 FRL landmarks (``synth_templates``), and a piecewise-affine
warp over a Delaunay triangulation of the landmarks plus a fixed ring of points outside the frame
carries the pixels along; an optional similarity transform (pose jitter) is composed into the same
warp, so the neutral image is resampled once. Wrinkle shading and photometric changes come after.

Flow conventions (the same as ``train.data.flow``), for an output pixel grid ``(x, y)``:

- ``backward_map[y, x]`` = the absolute neutral-image position that output pixel ``(x, y)``
  shows. The render *is* ``cv2.remap(neutral, backward_map, None, cv2.INTER_LINEAR,
  borderMode=cv2.BORDER_REFLECT101)``, bit-exactly, when ``shading=False`` and
  ``photometric=None``; otherwise shading and photometry are applied on top of that remap.
- ``flow[y, x]`` = where the neutral pixel ``(x, y)`` moves: it lands at ``(x, y) + flow[y, x]``
  in the render (so ``neutral(p) ~ render(p + flow(p))``, what ``dis_flow(neutral, render)``
  estimates). ``flow`` and ``backward_map`` are inverse piecewise-affine maps on the same
  triangles: ``p + flow(p)`` sampled (bilinearly) at ``p = backward_map(q)`` gives ``q`` back to
  ~0.001 px (median); only where a thin band is stretched a lot (parted lips, the closing lid
  fold) does the sampling of the fast-changing flow leave errors of up to a few pixels.

Labels: ``labels[AU] = 1`` when the rendered intensity is at least 1 (FACS A, trace) - the
occurrence rule of BP4D/GFT-style coding; intensities in (0, 1) (clip onsets) count as absent.
"""
from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from runtime.align import align_face, transform_points
from runtime.aus import au_name, au_number
from train.data.synth_templates import (
    EXCLUSIVE,
    IMPLIES,
    MAX_INTENSITY,
    MAX_LID_CLOSURE,
    OCCURRENCE_THRESHOLD,
    SYNTH_AUS,
    TEMPLATES,
    WRINKLE_DEPTH,
)
from train.data.tem import (
    FRL189_GROUPS,
    group_indices,
    list_faces,
    load_face,
    tem_five_points,
)

LABEL_KIND = "synthetic"
STATIC_AUS: tuple[int, ...] = tuple(a for a in SYNTH_AUS if a != 45)  # a blink is a clip event
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


@dataclass(frozen=True)
class PoseJitter:
    """Ranges of a random similarity transform about the face centre (uniform in +-range)."""

    rotation_deg: float = 3.0
    scale: float = 0.04   # relative
    shift: float = 0.02   # fraction of the image side

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "scale", "shift"):
            if not 0 <= getattr(self, name) <= (30 if name == "rotation_deg" else 0.2):
                raise ValueError(f"PoseJitter.{name}={getattr(self, name)!r} out of range")


@dataclass(frozen=True)
class Photometric:
    """Ranges of random brightness (+- gray levels), contrast (+- fraction), gamma (+- fraction,
    log-symmetric) and Gaussian noise (sigma up to, gray levels)."""

    brightness: float = 15.0
    contrast: float = 0.15
    gamma: float = 0.2
    noise: float = 3.0

    def __post_init__(self) -> None:
        limits = {"brightness": 128.0, "contrast": 0.9, "gamma": 1.0, "noise": 50.0}
        for name, hi in limits.items():
            if not 0 <= getattr(self, name) <= hi:
                raise ValueError(f"Photometric.{name}={getattr(self, name)!r} not in [0, {hi}]")


@dataclass
class SynthSample:
    """One render. Arrays are HxW of the output; see the module docstring for the flow maps."""

    image: np.ndarray            # HxWx3 uint8 BGR, the expressive face
    neutral: np.ndarray          # HxWx3 uint8 BGR, the source the maps refer to
    intensities: dict[str, float]  # every synthesizable AU -> rendered intensity in [0, 5]
    labels: dict[str, int]       # occurrence: 1 where intensity >= OCCURRENCE_THRESHOLD (1, FACS A)
    landmarks: np.ndarray        # 189x2 float32, warped FRL points in output pixels
    landmarks5: np.ndarray       # 5x2 float32, runtime 5-point order
    flow: np.ndarray             # HxWx2 float32, forward: neutral (x, y) -> (x, y) + flow
    backward_map: np.ndarray     # HxWx2 float32, absolute neutral position per output pixel
    face_id: str = ""
    label_kind: str = LABEL_KIND
    warp_scale: float = 1.0      # < 1 where all displacements (and intensities) were scaled down
    damped_points: int = 0       # control points whose displacement was damped to avoid a fold
    pose: np.ndarray = field(default_factory=lambda: np.eye(2, 3))  # 2x3 similarity applied


# --------------------------------------------------------------------------- landmark displacement

def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
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


def _displacements(points: np.ndarray, intensities: Mapping[int, float]) -> np.ndarray:
    """Displacement (Nx2, image pixels) of the FRL control points for AU intensities in [0, 5].

    Iris and pupil points are not control points (the lids slide over them) and get zero.

    Raises:
        ValueError: an AU without a template, or an intensity outside [0, 5].
    """
    origin, u, v, iod = _face_frame(points)
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

def _control_points(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The warp's control points: the FRL points but iris/pupil, inner lips parted by a hair (they
    coincide on closed lips), then a fixed ring outside the frame. Returns ``(points, frl_index)``."""
    pts = np.asarray(points, dtype=np.float64).copy()
    _, _, v, _ = _face_frame(pts)
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


def _folding(src: np.ndarray, dst: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Per triangle: True where it inverts (or collapses to < 0.1% of its area)."""
    a0, a1 = _signed_areas(src[simplices]), _signed_areas(dst[simplices])
    keep = np.abs(a0) > 1e-6
    return keep & (a1 / np.where(keep, a0, 1.0) <= 1e-3)


def _fold_free(src: np.ndarray, disp: np.ndarray, simplices: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Displacements that fold no triangle: first the points of folding triangles are damped
    (soft tissue bunching where a face has little room), then, if that is not enough, the whole
    displacement is scaled down. Returns ``(disp, n_damped_points, global_scale)``."""
    disp = disp.copy()
    damped = np.zeros(len(disp), dtype=bool)
    for _ in range(_DAMP_STEPS):
        bad = _folding(src, src + disp, simplices)
        if not bad.any():
            return disp, int(damped.sum()), 1.0
        verts = np.unique(simplices[bad])
        disp[verts] *= _DAMP_FACTOR
        damped[verts] = True
    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _folding(src, src + mid * disp, simplices).any() else (mid, hi)
    return lo * disp, int(damped.sum()), lo


def _pwa_points(tri: Delaunay, dst: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """The piecewise-affine map (triangles of ``tri`` -> same triangles on ``dst``) at ``pts``."""
    k = tri.find_simplex(pts)
    t = tri.transform[k]
    bary = np.einsum("nij,nj->ni", t[:, :2], pts - t[:, 2])
    bary = np.concatenate([bary, 1 - bary.sum(1, keepdims=True)], axis=1)
    return np.einsum("ni,nij->nj", bary, dst[tri.simplices[k]])


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    g = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    g.setflags(write=False)
    return g


def _piecewise_map(frm: np.ndarray, to: np.ndarray, simplices: np.ndarray, fallback: np.ndarray,
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
    g = _grid(h, w)
    out = np.empty((h, w, 2), dtype=np.float32)
    for j in range(2):  # per-plane take + in-place math: ~4x faster than gathering T x 3 x 2
        plane = np.take(coef[:, j], label) * g[..., 0]
        plane += np.take(coef[:, 2 + j], label) * g[..., 1]
        plane += np.take(coef[:, 4 + j], label)
        out[..., j] = plane
    return out


# --------------------------------------------------------------------------- random draws

def _draw_pose(rng: np.random.Generator, pose: PoseJitter | None) -> np.ndarray:
    """(angle_deg, scale, tx, ty) of a jitter draw; zeros/one without jitter."""
    if pose is None:
        return np.array([0.0, 1.0, 0.0, 0.0])
    r = rng.uniform(-1, 1, 4)
    return np.array([r[0] * pose.rotation_deg, 1 + r[1] * pose.scale, r[2] * pose.shift, r[3] * pose.shift])


def _pose_matrix(params: np.ndarray, centre: np.ndarray, size: int) -> np.ndarray:
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(params[0]), float(params[1]))
    m[:, 2] += params[2:] * size
    return m


def _draw_photometric(rng: np.random.Generator, photo: Photometric | None) -> np.ndarray | None:
    """(brightness, contrast, gamma, noise sigma) of a photometric draw, or None."""
    if photo is None:
        return None
    r = rng.uniform(-1, 1, 3)
    return np.array([r[0] * photo.brightness, 1 + r[1] * photo.contrast,
                     np.exp(r[2] * np.log1p(photo.gamma)), rng.uniform(0, photo.noise)])


def _apply_photometric(image: np.ndarray, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    brightness, contrast, gamma, sigma = params
    x = np.arange(256) / 255.0
    lut = np.clip(((x ** gamma - 0.5) * contrast + 0.5) * 255 + brightness, 0, 255)
    out = cv2.LUT(image, np.round(lut).astype(np.uint8))
    if sigma > 0:
        noisy = rng.standard_normal(out.shape, dtype=np.float32)
        noisy *= np.float32(sigma)
        noisy += out
        out = np.rint(np.clip(noisy, 0, 255, out=noisy), out=noisy).astype(np.uint8)
    return out


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _levels(intensities: Mapping[str | int, float]) -> dict[int, float]:
    return {au_number(k): float(v) for k, v in intensities.items() if float(v) != 0.0}


def _labelled(levels: Mapping[int, float]) -> tuple[dict[str, float], dict[str, int]]:
    """Intensities of every synthesizable AU (implied AUs raised) and their occurrence labels."""
    full = {a: float(levels.get(a, 0.0)) for a in SYNTH_AUS}
    for a, implied in IMPLIES.items():
        for b in implied:
            full[b] = max(full[b], full[a])
    return ({au_name(a): v for a, v in full.items()},
            {au_name(a): int(v >= OCCURRENCE_THRESHOLD) for a, v in full.items()})


# --------------------------------------------------------------------------- shading

def _wrinkle_lines(kind: str, pts: np.ndarray) -> list[np.ndarray]:
    """Polylines (pixels) of one wrinkle pattern, placed from the *warped* FRL points."""
    _, u, v, iod = _face_frame(pts)
    if kind == "glabella":  # short vertical furrows between the inner brow heads (76, 77)
        a, b = pts[76], pts[77]
        mid, half = (a + b) / 2, np.linalg.norm(b - a) / 2
        return [np.array([mid + sg * 0.22 * half * u + 0.01 * iod * v,
                          mid + sg * 0.3 * half * u - 0.08 * iod * v]) for sg in (-1, 1)]
    if kind == "crows_feet":  # a fan lateral to the outer eye corners (18, 27)
        lines = []
        for idx, sg in ((18, -1), (27, 1)):
            o = pts[idx] + sg * 0.07 * iod * u
            for ang in (-0.45, 0.0, 0.45):
                lines.append(np.array([o, o + 0.09 * iod * (sg * np.cos(ang) * u + np.sin(ang) * v)]))
        return lines
    if kind == "nose_bridge":  # short, slightly arched folds across the root of the nose (51, 57)
        c, half = (pts[51] + pts[57]) / 2, 0.3 * np.linalg.norm(pts[57] - pts[51])
        return [np.array([c - half * u + k * iod * v, c + (k - 0.012) * iod * v, c + half * u + k * iod * v])
                for k in (-0.03, 0.0, 0.03)]
    if kind == "nasolabial":  # from the ala along the fold towards the mouth corner
        return [pts[[62, 158, 159, 160]], pts[[67, 161, 162, 163]]]
    if kind == "dimple":  # short vertical creases just lateral to the mouth corners (87, 93)
        return [np.array([pts[i] + sg * 0.05 * iod * u - 0.025 * iod * v,
                          pts[i] + sg * 0.05 * iod * u + 0.025 * iod * v]) for i, sg in ((87, -1), (93, 1))]
    raise ValueError(f"unknown wrinkle pattern {kind!r}")


def _resample(line: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced along a polyline."""
    seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))]
    t = np.linspace(0, seg[-1], n)
    return np.stack([np.interp(t, seg, line[:, 0]), np.interp(t, seg, line[:, 1])], axis=1)


def _crease(dark: np.ndarray, light: np.ndarray, line: np.ndarray, depth: float, offset: np.ndarray) -> None:
    """A tapered crease: a dark line and, beside it, a fainter highlight (the fold's lit side)."""
    pts = _resample(line, 9)
    for k in range(len(pts) - 1):
        d = depth * np.sin(np.pi * (k + 0.5) / (len(pts) - 1))
        seg = np.round(pts[k:k + 2] * 16).astype(np.int32)
        cv2.line(dark, tuple(seg[0]), tuple(seg[1]), float(d), 1, cv2.LINE_8, 4)
        seg = np.round((pts[k:k + 2] + offset) * 16).astype(np.int32)
        cv2.line(light, tuple(seg[0]), tuple(seg[1]), float(0.5 * d), 1, cv2.LINE_8, 4)


def _mouth_cavity(canvas: np.ndarray, pts: np.ndarray) -> None:
    """Darken the opening between parted lips (the warp can only stretch the lip line there)."""
    up = pts[list(FRL189_GROUPS["upper_lip_inner"])]
    lo = pts[list(FRL189_GROUPS["lower_lip_inner"])]
    opening = float(np.max(np.linalg.norm(lo - up, axis=1)))
    strength = np.clip((opening - 1.5) / 4.0, 0, 1) * 0.8
    if strength > 0:
        poly = np.concatenate([pts[[87]], up, pts[[93]], lo[::-1]])
        cv2.fillPoly(canvas, [np.round(poly * 16).astype(np.int32)], float(strength), cv2.LINE_8, 4)


def _shade(image: np.ndarray, landmarks: np.ndarray, levels: Mapping[int, float]) -> np.ndarray:
    """Wrinkles where the active AUs crease the skin (depth grows with intensity) and a dark mouth
    opening where the lips part."""
    depth: dict[str, float] = {}
    for au, level in levels.items():
        for kind in TEMPLATES[au].wrinkles:
            depth[kind] = max(depth.get(kind, 0.0), WRINKLE_DEPTH[kind] * level / MAX_INTENSITY)
    _, u, v, iod = _face_frame(landmarks)
    dark = np.zeros(image.shape[:2], dtype=np.float32)
    light = np.zeros_like(dark)
    for kind, d in depth.items():
        for line in _wrinkle_lines(kind, landmarks):
            direction = line[-1] - line[0]
            normal = np.array([-direction[1], direction[0]]) / max(np.linalg.norm(direction), 1e-6)
            _crease(dark, light, line, d, 0.025 * iod * normal * np.sign(normal @ (v - u) + 1e-9))
    _mouth_cavity(dark, landmarks)
    if not dark.any():
        return image
    sigma = max(0.6, 0.01 * iod)
    gain = 1 - cv2.GaussianBlur(dark, (0, 0), sigma) + cv2.GaussianBlur(light, (0, 0), 1.5 * sigma)
    return np.clip(image * gain[..., None], 0, 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- rendering

def prepare_face(image: np.ndarray, points: np.ndarray, crop_size: int | None = None,
                 template: str = "default", scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The neutral image and its points, either as they are or aligned into a square crop with the
    runtime's own alignment (so renders match what the model sees)."""
    points = np.asarray(points, dtype=np.float64)
    if crop_size is None:
        return image, points
    crop, m = align_face(image, tem_five_points(points), crop_size, template, scale)
    return crop, transform_points(points, m)


def _render(neutral: np.ndarray, points: np.ndarray, levels: dict[int, float], pose: np.ndarray,
            photo: np.ndarray | None, shading: bool, rng: np.random.Generator, face_id: str) -> SynthSample:
    h, w = neutral.shape[:2]
    src, keep = _control_points(points, (h, w))
    tri = Delaunay(src)
    disp = np.zeros_like(src)
    disp[: len(keep)] = _displacements(points, levels)[keep]
    disp, damped, scale = _fold_free(src, disp, tri.simplices)
    if scale < 1.0:
        levels = {a: v * scale for a, v in levels.items()}
    dst = transform_points(src + disp, pose)
    backward = _piecewise_map(dst, src, tri.simplices, cv2.invertAffineTransform(pose), (h, w))
    forward = _piecewise_map(src, dst, tri.simplices, pose, (h, w)) - _grid(h, w)
    image = cv2.remap(neutral, backward, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    landmarks = _pwa_points(tri, dst, points).astype(np.float32)
    if shading:
        image = _shade(image, landmarks, levels)
    if photo is not None:
        image = _apply_photometric(image, photo, rng)
    intens, labels = _labelled(levels)
    return SynthSample(image=image, neutral=neutral, intensities=intens, labels=labels,
                       landmarks=landmarks, landmarks5=tem_five_points(landmarks).astype(np.float32),
                       flow=forward, backward_map=backward, face_id=face_id, warp_scale=scale,
                       damped_points=damped, pose=pose)


def render_face(neutral: np.ndarray, points: np.ndarray, intensities: Mapping[str | int, float], *,
                rng: np.random.Generator | int | None = None, pose: PoseJitter | None = None,
                photometric: Photometric | None = None, shading: bool = False,
                face_id: str = "") -> SynthSample:
    """Render one neutral face with the given AU intensities.

    Args:
        neutral: HxWx3 uint8 BGR neutral face (full photo or aligned crop, see ``prepare_face``).
        points: its 189 FRL landmarks (Nx2 pixels).
        intensities: AU (``"AU12"`` or ``12``) -> intensity in [0, 5]; absent AUs are 0.
        rng: Generator or seed for the pose and photometric draws (the warp itself is not random).
        pose: similarity jitter ranges, or None for none.
        photometric: brightness/contrast/gamma/noise ranges, or None for none.
        shading: draw wrinkles (AU4 glabella, AU6 crow's feet, AU9 nose bridge, AU10/12 nasolabial,
            AU14 dimples) and darken the opening of parted lips.
        face_id: carried into the sample.

    Returns:
        A ``SynthSample``; with ``shading=False`` and ``photometric=None`` its image equals
        ``cv2.remap(neutral, backward_map, None, INTER_LINEAR, borderMode=BORDER_REFLECT101)``.

    Raises:
        ValueError: unknown AU, intensity outside [0, 5], or not 189 points.
    """
    rng = _as_rng(rng)
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    params = _draw_pose(rng, pose)
    m = _pose_matrix(params, tem_five_points(pts).mean(0), max(neutral.shape[:2]))
    return _render(neutral, pts, _levels(intensities), m, _draw_photometric(rng, photometric),
                   shading, rng, face_id)


def sample_intensities(rng: np.random.Generator, aus: Sequence[int | str] = STATIC_AUS,
                       max_active: int = 3, p_neutral: float = 0.1,
                       low: float = OCCURRENCE_THRESHOLD, high: float = MAX_INTENSITY) -> dict[int, float]:
    """A random AU mix: 1..``max_active`` AUs (none with probability ``p_neutral``) with
    intensities uniform in [low, high], never two AUs of one ``EXCLUSIVE`` set."""
    pool = [au_number(a) for a in aus]
    if p_neutral >= 1 or rng.random() < p_neutral or not pool:
        return {}
    want = int(rng.integers(1, max_active + 1))
    chosen: dict[int, float] = {}
    for a in rng.permutation(pool):
        if len(chosen) == want:
            break
        if any(a in ex and chosen.keys() & ex for ex in EXCLUSIVE):
            continue
        chosen[int(a)] = float(rng.uniform(low, high))
    return chosen


def render_dataset(faces_dir: str | Path, n: int, seed: int, aus: Sequence[int | str] = STATIC_AUS, *,
                   crop_size: int | None = 256, max_active: int = 3, p_neutral: float = 0.1,
                   pose: PoseJitter | None = PoseJitter(), photometric: Photometric | None = Photometric(),
                   shading: bool = True, low: float = OCCURRENCE_THRESHOLD,
                   exclude: Collection[str] = ()) -> Iterator[SynthSample]:
    """``n`` random renders over the neutral faces (``NNN.jpg`` + ``NNN.tem``) in ``faces_dir``,
    leaving out the face ids in ``exclude`` (e.g. the held-out identities, ``train.data.holdout``).

    Sample ``i`` depends only on ``(seed, i)``, so workers can split the range and reruns match.
    ``crop_size`` aligns every face with the runtime's default template first (None: full photo).
    ``low`` is the smallest intensity an active AU gets (FACS A = 1; smoke runs use clearer ones).

    Raises:
        FileNotFoundError: no faces in ``faces_dir``. ValueError: ``n < 0`` or an unknown AU.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for a in aus:
        if au_number(a) not in TEMPLATES:
            raise ValueError(f"no synthesis template for {au_name(au_number(a))}")
    faces = [f for f in list_faces(faces_dir) if f.face_id not in set(exclude)]  # checked now, not at next()
    if not faces:
        raise FileNotFoundError(f"every face in {faces_dir} is excluded; nothing to render")
    return _dataset(faces, n, seed, [au_number(a) for a in aus], crop_size, max_active, p_neutral,
                    pose, photometric, shading, low)


def _dataset(faces: list, n: int, seed: int, aus: list[int], crop_size: int | None, max_active: int,
             p_neutral: float, pose: PoseJitter | None, photometric: Photometric | None,
             shading: bool, low: float = OCCURRENCE_THRESHOLD) -> Iterator[SynthSample]:
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(n):
        rng = np.random.default_rng((seed, i))
        k = int(rng.integers(len(faces)))
        if k not in cache:
            image, points = prepare_face(*load_face(faces[k]), crop_size=crop_size)
            image.setflags(write=False)  # shared by every sample of this face
            cache[k] = image, points
        levels = sample_intensities(rng, aus, max_active, p_neutral, low=low)
        yield render_face(*cache[k], levels, rng=rng, pose=pose, photometric=photometric,
                          shading=shading, face_id=faces[k].face_id)


# --------------------------------------------------------------------------- clips

@dataclass(frozen=True)
class AUEvent:
    """One AU action in a clip: zero at ``onset``, a raised-cosine rise to ``peak`` at ``apex``,
    held to ``apex_end``, a raised-cosine fall back to zero at ``offset`` (frame indices)."""

    au: int  # "AU12" is accepted too and stored as 12
    onset: int
    apex: int
    apex_end: int
    offset: int
    peak: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "au", au_number(self.au))
        if self.au not in TEMPLATES:
            raise ValueError(f"no synthesis template for {au_name(self.au)}")
        if not (self.onset < self.apex <= self.apex_end < self.offset):
            raise ValueError(f"need onset < apex <= apex_end < offset, got {self}")
        if not 0 < self.peak <= MAX_INTENSITY:
            raise ValueError(f"peak {self.peak!r} not in (0, {MAX_INTENSITY:g}]")

    def curve(self, n_frames: int) -> np.ndarray:
        """Intensity per frame (``n_frames`` float64)."""
        t = np.arange(n_frames, dtype=np.float64)
        rise = np.clip((t - self.onset) / (self.apex - self.onset), 0, 1)
        fall = np.clip((self.offset - t) / (self.offset - self.apex_end), 0, 1)
        return self.peak * (0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall)))


@dataclass
class SynthClip:
    """Frames of one face with their per-frame AU intensity and occurrence matrices."""

    frames: list[SynthSample]
    events: tuple[AUEvent, ...]
    aus: tuple[str, ...]          # column order of the matrices below (every synthesizable AU)
    intensities: np.ndarray       # T x A float32, as rendered
    labels: np.ndarray            # T x A uint8 occurrence (intensity >= 1)
    fps: float
    face_id: str = ""
    label_kind: str = LABEL_KIND


def random_events(rng: np.random.Generator, n_frames: int,
                  aus: Sequence[int | str] = SYNTH_AUS, max_events: int = 3) -> list[AUEvent]:
    """1..``max_events`` random AU events inside ``n_frames`` (blinks short, others long), no
    two AUs of one ``EXCLUSIVE`` set.

    Raises:
        ValueError: ``n_frames < 12``.
    """
    if n_frames < 12:
        raise ValueError(f"a clip needs at least 12 frames, got {n_frames}")
    pool = [au_number(a) for a in aus]
    events: list[AUEvent] = []
    for a in rng.permutation(pool)[: int(rng.integers(1, max_events + 1))]:
        a = int(a)
        if any(a in ex and {e.au for e in events} & ex for ex in EXCLUSIVE):
            continue
        dur = int(rng.integers(6, 11)) if a == 45 else int(rng.integers(n_frames // 3, n_frames))
        onset = int(rng.integers(0, n_frames - dur))
        apex = onset + max(1, int(dur * rng.uniform(0.2, 0.35)))
        apex_end = apex + int(dur * rng.uniform(0.0, 0.3))
        offset = max(onset + dur, apex_end + 1)
        events.append(AUEvent(a, onset, apex, apex_end, offset, float(rng.uniform(1.5, MAX_INTENSITY))))
    return events


def render_clip(neutral: np.ndarray, points: np.ndarray, events: Sequence[AUEvent], n_frames: int, *,
                rng: np.random.Generator | int | None = None, pose: PoseJitter | None = None,
                photometric: Photometric | None = None, shading: bool = False, fps: float = 25.0,
                face_id: str = "") -> SynthClip:
    """A clip of one face following AU intensity curves, with a slow pose drift (two jitter draws,
    interpolated), one photometric draw for the clip and fresh noise per frame.

    Raises:
        ValueError: ``n_frames < 1`` or an event outside the clip.
    """
    if n_frames < 1 or any(e.onset >= n_frames for e in events):
        raise ValueError(f"n_frames={n_frames} must be >= 1 and after every event's onset")
    rng = _as_rng(rng)
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    curves: dict[int, np.ndarray] = {}
    for e in events:
        curves[e.au] = np.maximum(curves.get(e.au, 0.0), e.curve(n_frames))
    p0, p1 = _draw_pose(rng, pose), _draw_pose(rng, pose)
    photo = _draw_photometric(rng, photometric)
    centre, size = tem_five_points(pts).mean(0), max(neutral.shape[:2])
    frames = []
    for t in range(n_frames):
        a = t / max(n_frames - 1, 1)
        m = _pose_matrix((1 - a) * p0 + a * p1, centre, size)
        levels = {au: float(c[t]) for au, c in curves.items() if c[t] > 0}
        frames.append(_render(neutral, pts, levels, m, photo, shading, rng, face_id))
    names = tuple(au_name(a) for a in SYNTH_AUS)
    inten = np.array([[f.intensities[n] for n in names] for f in frames], dtype=np.float32)
    labels = np.array([[f.labels[n] for n in names] for f in frames], dtype=np.uint8)
    return SynthClip(frames, tuple(events), names, inten, labels, fps, face_id)


def flow_between(a: SynthSample, b: SynthSample) -> np.ndarray:
    """Exact flow from render ``a`` to render ``b`` of the same neutral face (pixel ``p`` of ``a``
    lands at ``p + flow[p]`` in ``b``; the ``dis_flow(a, b)`` convention)."""
    fb = cv2.remap(b.flow, a.backward_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return a.backward_map + fb - _grid(*a.flow.shape[:2])
