"""Head pose for synthetic v3: small yaw/pitch by turning the fitted 3D face before projecting it,
and in-plane roll / scale as a camera transform of the finished render.

Why the 3D route for yaw and pitch: a photo cannot be turned, but the fitted ICT face knows how far
each skin point sits in front of the head's pivot, so turning it by a few degrees moves the nose
more than the cheeks, as a turned head does. The move joins the expression's in one dense map (one
resampling). The pivot sits at the depth of the face's outline and the move fades out towards the
outline (``FADE_IOD``): the warp has still anchors just outside the face, and a moving outline
would stretch ears and hair against them. Beyond ``MAX_YAW`` / ``MAX_PITCH`` the far cheek would
need pixels the photo does not have (the warp only stretches and squeezes).

Roll and scale move the whole frame (background included), as a tilted head or a farther camera
does, so they are an affine of the render, its points and its flow (``roll_scale``).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import ConvexHull

from train.data.ict.model import ICTModel
from train.data.ict.projection import Correspondence

PIVOT_CM = np.array([0.0, 1.0, 3.5])  # model space: at the depth of the face outline (see the docstring)
MAX_YAW, MAX_PITCH = 16.0, 10.0       # degrees: the warp stays plausible within these
FADE_IOD = 0.4  # the turn's move grows from 0 at the face outline to full this far inside


def _hull_distance(pts: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Distance (px) of points to the closed polygon ``hull`` (its edges)."""
    a, b = hull, np.roll(hull, -1, axis=0)
    ab = b - a
    t = np.clip(((pts[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab ** 2).sum(-1), 1e-9), 0, 1)
    near = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(pts[:, None] - near, axis=-1).min(1)


def rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Model-space rotation: yaw about the face's vertical (y) axis, then pitch about x."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rx @ ry


def check_pose(yaw_deg: float, pitch_deg: float) -> None:
    """Raises ValueError for a pose outside the plausible range (names the value)."""
    if abs(yaw_deg) > MAX_YAW or abs(pitch_deg) > MAX_PITCH:
        raise ValueError(f"head pose yaw {yaw_deg}, pitch {pitch_deg} outside +-{MAX_YAW} / +-{MAX_PITCH} degrees")


def posed_displacement(model: ICTModel, corr: Correspondence, shape_mix: dict[str, float], yaw_deg: float,
                       pitch_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image displacements of an expression on a turned head.

    Returns:
        ``(vertex_disp (K, 2), landmark_disp (68, 2), eye_disp (2, 2))``: the kept vertices, the 68
        landmark vertices, and the two eyeball centres (which turn with the head, not the lids).
    """
    q = rotation(yaw_deg, pitch_deg)
    d3 = np.zeros_like(model.neutral, dtype=np.float64)
    for name, w in shape_mix.items():
        d3 += w * model.deltas[name]

    hull = corr.positions[ConvexHull(corr.positions).vertices]
    iod = float(np.linalg.norm(corr.landmarks68[42:48].mean(0) - corr.landmarks68[36:42].mean(0)))

    def moved(ids: np.ndarray, at: np.ndarray) -> np.ndarray:
        x = model.neutral[ids].astype(np.float64)
        # The turn fades out over FADE_IOD towards the face's outline, which stays where the photo
        # has it (the still anchors around the face would otherwise stretch the background).
        fade = np.clip(_hull_distance(at, hull) / (FADE_IOD * iod), 0, 1)[:, None]
        return corr.projection.vectors(fade * ((x - PIVOT_CM) @ (q - np.eye(3)).T) + d3[ids] @ q.T)

    lm = model.landmarks68
    eyes = np.stack([model.neutral[lm[36:42]].mean(0), model.neutral[lm[42:48]].mean(0)]).astype(np.float64)
    eye_disp = corr.projection.vectors((eyes - PIVOT_CM) @ (q - np.eye(3)).T)
    return moved(corr.vertices, corr.positions), moved(lm, corr.landmarks68), eye_disp


_NORMALS: dict[int, tuple[ICTModel, np.ndarray]] = {}


def rotated_normals(model: ICTModel, yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Unit skin normals (V, 3) after the head turn (for visibility and the lighting)."""
    cached = _NORMALS.get(id(model))
    if cached is None or cached[0] is not model:
        cached = _NORMALS[id(model)] = (model, model.normals())
    return cached[1] @ rotation(yaw_deg, pitch_deg).T


def roll_matrix(centre: np.ndarray, roll_deg: float, scale: float = 1.0) -> np.ndarray:
    """2x3 affine: rotate by ``roll_deg`` and scale about ``centre`` (pixels)."""
    return cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(roll_deg), float(scale))


def roll_scale(image: np.ndarray, flow: np.ndarray, points: np.ndarray, m: np.ndarray,
               masks: tuple[np.ndarray, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Apply a camera affine ``m`` to a render: image (border reflected), flow (its vectors through
    the linear part, so ``image'(q') ~ photo'(q' + flow'(q'))`` for the photo under the same
    affine), points (x, y; z kept) and any float masks."""
    h, w = image.shape[:2]
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    f = cv2.warpAffine(flow.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    f = f @ m[:, :2].T.astype(np.float32)
    pts = np.array(points, np.float64, copy=True)
    pts[:, :2] = pts[:, :2] @ m[:, :2].T + m[:, 2]
    moved = tuple(cv2.warpAffine(k, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                  for k in masks)
    return out, f, pts, moved
