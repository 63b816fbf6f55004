"""Render one ICT-driven FACS warp of a real neutral photo.

``render(photo_bgr, points, aus, rng) -> (image, flow, moved_points, labels)``:

1. ``points`` (the runtime face stage's 468/478-point mesh, or 68 iBUG points) give the photo's
   68 points (``mesh68``); the ICT neutral's 68 landmark vertices are fitted to them
   (``projection``: weak perspective + thin-plate residual).
2. The AU weights become an ICT shape mix (``facs``); its 3D displacement, projected, moves every
   visible skin vertex; ``field`` turns that into dense forward/backward maps and the photo is
   resampled once with ``cv2.remap`` (inverse map, bilinear, border reflected).
3. ``appearance`` adds what geometry cannot show (wrinkles, cheek shading, mouth cavity, teeth;
   v3: ``look``'s stronger creases, folds, closed lids and teeth).

Synthetic v3 adds (keyword arguments, defaults = v2): ``sides`` (unilateral / asymmetric AUs),
``pose`` (yaw, pitch: the fitted 3D face turned before projecting, ``pose``), ``motion`` (ICT
shapes that are no labelled AU, e.g. a pucker or a glance: negatives that move the face) and
``version`` (shape gains and the look).

Flow convention (what the training helper's cache is moving to, "t -> t-k"): ``flow`` is from the
expressive render back to the neutral photo, ``image(q) ~ photo(q + flow(q))`` (before shading):
the ``train.data.flow.dis_flow(image, photo)`` convention, HxWx2 float32 pixels, x then y. It is
exactly ``backward_map - grid``, so ``warp_by_flow(photo, flow)`` reproduces the unshaded render.
``moved_points`` are the input points after the warp (same count and columns; z unchanged);
mesh vertices that are a 68-point row by themselves move with the ICT landmark displacement
exactly, the rest by the dense forward field.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from train.data.ict import appearance
from train.data.ict.facs import LIPS_APART_IOD, Sides, check_weights, labels_for, shape_weights
from train.data.ict.field import anchors, dense_maps
from train.data.ict.mesh68 import mesh_to_68, single_vertex_rows
from train.data.ict.model import ICTModel, load_ict
from train.data.ict.pose import check_pose, posed_displacement, rotated_normals
from train.data.ict.projection import MIN_FACING, Correspondence, correspond


@dataclass
class Render:
    """Everything one render knows (``render`` returns the first four)."""

    image: np.ndarray          # HxWx3 uint8 BGR, the expressive face
    flow: np.ndarray           # HxWx2 float32, expressive -> neutral (see the module docstring)
    moved_points: np.ndarray   # the input points, moved
    labels: dict[str, int]     # AU name -> 0/1 (``facs.labels_for``; AU25 also when lips part)
    weights: dict[int, float]  # AU -> weight rendered
    landmarks68: np.ndarray    # (68, 2) neutral 68 points of the photo
    moved68: np.ndarray        # (68, 2) after the warp (exact ICT landmark displacement)
    forward: np.ndarray        # HxWx2 float32, neutral p -> p + forward[p]
    folded: int                # control triangles still inverted after dropping (0 expected)
    dropped: int               # control vertices dropped to avoid folds
    fit_rms_px: float          # rigid fit residual at the 68 points


def points68(points: np.ndarray) -> np.ndarray:
    """68 points from a 468/478 mesh or a 68-point array.

    Raises:
        ValueError: another point count.
    """
    pts = np.asarray(points, np.float64)
    if pts.ndim == 2 and len(pts) == 68 and pts.shape[1] >= 2:
        return pts[:, :2]
    return mesh_to_68(pts)


def _eye_centres(pts68: np.ndarray) -> np.ndarray:
    return np.stack([pts68[36:42].mean(0), pts68[42:48].mean(0)])


def _open_eyes(weights: Mapping[int, float], sides: Sides | None) -> np.ndarray:
    """Which eye centres (subject's right, left) stay put: not those AU43 closes (their lid skin
    must slide over the eye)."""
    w = weights.get(43, 0.0)
    lr = (sides or {}).get(43, (1.0, 1.0))
    return np.array([w * lr[1] <= 0, w * lr[0] <= 0])


def render_full(photo_bgr: np.ndarray, points: np.ndarray, aus: Mapping[int, float],
                rng: np.random.Generator | int | None = None, *, model: ICTModel | str | Path,
                correspondence: Correspondence | None = None, shading: bool = True,
                sides: Sides | None = None, pose: tuple[float, float] = (0.0, 0.0),
                motion: Mapping[str, float] | None = None, version: int = 2) -> Render:
    """One render with everything it computed (see ``render``).

    Args:
        correspondence: a precomputed ``projection.correspond`` for this photo and points (reuse it
            across renders of one photo: it is the costly part after the maps).
        shading: add the appearance layer (off: the image is exactly the remap of the photo).
        sides: AU -> (left, right) factors (``facs.shape_weights``). pose: (yaw, pitch) degrees.
        motion: ICT shape -> weight added to the mix, labelling no AU (negatives).
        version: 2 (as before) or 3 (``facs.V3_GAIN``, ``look``).
    """
    if not isinstance(photo_bgr, np.ndarray) or photo_bgr.dtype != np.uint8 or photo_bgr.ndim != 3:
        raise ValueError(f"photo must be an HxWx3 uint8 BGR array, got {getattr(photo_bgr, 'shape', type(photo_bgr))}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ict = model if isinstance(model, ICTModel) else load_ict(model)
    weights = check_weights(aus)
    pts = np.asarray(points, np.float64)
    p68 = points68(pts)
    shape = photo_bgr.shape[:2]
    corr = correspondence or correspond(ict, p68, shape)
    mix = shape_weights(weights, sides, version)
    for name, w in (motion or {}).items():
        if name not in ict.deltas or not 0 <= w <= 1:
            raise ValueError(f"motion shape {name!r} weight {w!r}: need an ICT shape name and a weight in [0, 1]")
        mix[name] = min(mix.get(name, 0.0) + w, 1.0)
    expr_ldisp = None
    if pose == (0.0, 0.0) or pose == (0, 0):
        vdisp, ldisp = corr.displacement(ict, mix)
        zero = anchors(corr.positions, shape, fixed=_eye_centres(p68)[_open_eyes(weights, sides)])
        maps = dense_maps(corr.positions, vdisp, zero, shape, protected=corr.landmark_rows, ring=version >= 3)
    else:
        check_pose(*pose)
        vdisp, ldisp, eye_disp = posed_displacement(ict, corr, mix, *pose)
        expr_ldisp = corr.displacement(ict, mix)[1]
        still = _open_eyes(weights, sides)
        # Skin the turn hides (the far side of the nose) would fold the map: leave it out.
        seen = rotated_normals(ict, *pose)[corr.vertices] @ corr.projection.towards_camera() > MIN_FACING
        seen[corr.landmark_rows] = True
        rows = np.cumsum(seen) - 1
        controls = np.concatenate([corr.positions[seen], _eye_centres(p68)[still]])
        k = int(seen.sum())
        maps = dense_maps(controls, np.concatenate([vdisp[seen], eye_disp[still]]), anchors(corr.positions, shape),
                          shape, protected=np.r_[rows[corr.landmark_rows], k + np.arange(int(still.sum()))], ring=True)
    image = cv2.remap(photo_bgr, maps.backward, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    moved68 = p68 + ldisp
    moved = pts.copy()
    moved[:, :2] += maps.interpolator(pts[:, :2])
    if len(pts) in (468, 478):
        rows, ids = single_vertex_rows()
        moved[ids, :2] = moved68[rows]
    else:
        moved[:, :2] = moved68
    if shading and version >= 3 and (weights or motion):
        from train.data.ict.look import shade_v3

        image = shade_v3(image, p68, moved68, weights, rng, sides or {})
    elif shading and weights:
        image = appearance.shade(image, p68, moved68, weights, rng)
    flow = maps.backward - np.dstack(np.meshgrid(np.arange(shape[1], dtype=np.float32),
                                                 np.arange(shape[0], dtype=np.float32)))
    iod = float(np.linalg.norm(p68[42:48].mean(0) - p68[36:42].mean(0)))
    # Lips part by the expression, not by a head turn's foreshortening.
    opening = appearance.lip_opening(p68, moved68 if expr_ldisp is None else p68 + expr_ldisp)
    labels = labels_for(weights, lips_apart=bool(opening >= LIPS_APART_IOD * iod))
    return Render(image, flow, moved, labels, weights, p68, moved68, maps.forward,
                  maps.folded, maps.dropped, corr.fit_rms_px)


def render(photo_bgr: np.ndarray, points: np.ndarray, aus: Mapping[int, float],
           rng: np.random.Generator | int | None = None, *, model: ICTModel | str | Path,
           shading: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Warp a neutral photo by ICT-FaceKit FACS shapes.

    Args:
        photo_bgr: HxWx3 uint8 BGR neutral photo.
        points: its face mesh from ``runtime.face.FaceStage`` (468/478 x 2|3) or 68 iBUG points.
        aus: AU number -> weight in [0, 1] (FACS A..E = ``facs.FACS_WEIGHT``); absent AUs are 0.
        rng: Generator or seed for the appearance layer's small random variations.
        model: the ICT model or the path of ``ict_face_model_light.npz`` (e.g. under AU_DATA_DIR).
        shading: add wrinkles / cavity (see ``appearance``).

    Returns:
        ``(image, flow, moved_points, labels)``: see the module docstring.

    Raises:
        ValueError: a bad photo, point array, AU or weight. FileNotFoundError: no model file.
    """
    r = render_full(photo_bgr, points, aus, rng, model=model, shading=shading)
    return r.image, r.flow, r.moved_points, r.labels
