"""Where each AU acts in the aligned crop: canonical anchors, and per-sample anchors from a mesh.

Every AU has two anchor points (x, y): the subject's right side (image left) then the left side for
bilateral AUs, or two midline points (e.g. upper and lower lip for AU23), or one point given twice
(AU17). The order matches ``runtime.aus.CATALOG[n].centre_mesh``.

Canonical anchors are derived from the alignment template's five points, so they follow the
template (``runtime.align.TEMPLATES``) and its ``scale``: a face frame with x along the eye line
and y down towards the mouth, a horizontal unit of the inter-ocular distance (IOD) and a vertical
unit of the eye-line to mouth-line distance (EM). Each AU is a base point (eye centre, mouth
corner, nose tip, mouth centre) plus an offset in those units, read from the usual anatomy of the
AU's region (e.g. AU01: inner brow, 0.26 IOD medial and 0.36 EM above the eye centre), checked
against the ``centre_mesh`` points of MediaPipe meshes on 20 London-set faces (means within about
0.01 of the crop side for the default template). They are the teacher's attention priors
(Gaussians) and the inpainting masks' fallback; per-sample MediaPipe landmarks, when the cache has
them, give the exact anchors (``mesh_au_points``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from runtime.align import template_points
from runtime.aus import CATALOG, au_number

# AU number -> (base, lateral offset in IOD (+ = away from the midline), downward offset in EM).
# base: "eye" / "corner" (side-specific) or "nose" / "mouth" (midline, offset sideways per side).
_BILATERAL: dict[int, tuple[str, float, float]] = {
    1: ("eye", -0.26, -0.36),    # inner brow, above the inner eye corner
    2: ("eye", 0.41, -0.25),     # outer brow
    4: ("eye", -0.30, -0.23),    # lower edge of the inner brow (glabella side)
    5: ("eye", 0.0, -0.10),      # upper lid
    6: ("eye", 0.20, 0.27),      # infraorbital cheek
    7: ("eye", 0.0, 0.05),       # lower lid
    9: ("nose", 0.21, -0.15),    # side of the nose, above the wing
    10: ("mouth", 0.12, -0.13),  # upper lip beside the philtrum
    11: ("corner", 0.08, -0.29),  # nasolabial fold
    12: ("corner", 0.0, 0.0),    # lip corner
    14: ("corner", 0.19, 0.01),  # dimple, lateral to the corner
    15: ("corner", -0.045, 0.03),  # just below and medial to the corner
    16: ("mouth", 0.125, 0.15),  # lateral lower lip
    20: ("corner", 0.10, -0.01),  # lateral lip stretch
    43: ("eye", 0.0, -0.10),     # upper lid (closure)
    45: ("eye", 0.0, -0.10),
}
# AU number -> midline points as (base, downward offset in EM).
_MIDLINE: dict[int, tuple[tuple[str, float], ...]] = {
    17: (("mouth", 0.53),),                    # chin boss
    18: (("mouth", -0.11), ("mouth", 0.16)),   # upper / lower lip
    22: (("mouth", -0.11), ("mouth", 0.16)),
    23: (("mouth", -0.11), ("mouth", 0.16)),
    24: (("mouth", -0.025), ("mouth", 0.02)),  # inner lips
    25: (("mouth", -0.025), ("mouth", 0.02)),
    26: (("mouth", 0.16), ("mouth", 0.39)),    # lower lip, chin
    27: (("mouth", 0.16), ("mouth", 0.71)),    # lower lip, chin bottom
    28: (("mouth", -0.025), ("mouth", 0.02)),
}


def _numbers(aus: Sequence[str | int]) -> list[int]:
    return [au_number(a) for a in aus]


def canonical_au_points(aus: Sequence[str | int], template: str = "default",
                        scale: float = 1.0) -> np.ndarray:
    """Anchor points of each AU in unit-square crop coordinates.

    Args:
        aus: AU names (``"AU12"``) or numbers, in model output order.
        template: alignment template name (``runtime.align.TEMPLATES``).
        scale: the alignment's face scale (``alignment.scale`` of the model card).

    Returns:
        ``(A, 2, 2)`` float32: per AU two (x, y) points in [0, 1] (one point repeated for AUs with
        a single anchor).

    Raises:
        ValueError: an AU is not in the catalog or has no canonical anchor.
    """
    p = template_points(1, template, scale)
    eye = {-1: p[0], 1: p[1]}
    corner = {-1: p[3], 1: p[4]}
    mouth, nose = (p[3] + p[4]) / 2, p[2]
    u = (p[1] - p[0]) / np.linalg.norm(p[1] - p[0])
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    iod = np.linalg.norm(p[1] - p[0])
    em = float(np.dot(mouth - (p[0] + p[1]) / 2, v))
    bases = {"nose": nose, "mouth": mouth}
    out = np.zeros((len(aus), 2, 2), np.float64)
    for i, n in enumerate(_numbers(aus)):
        if n in _BILATERAL:
            base, dx, dy = _BILATERAL[n]
            for k, side in enumerate((-1, 1)):  # subject's right (image left) first
                b = eye[side] if base == "eye" else corner[side] if base == "corner" else bases[base]
                out[i, k] = b + side * dx * iod * u + dy * em * v
        elif n in _MIDLINE:
            pts = _MIDLINE[n]
            for k in range(2):
                base, dy = pts[min(k, len(pts) - 1)]
                out[i, k] = bases[base] + dy * em * v
        else:
            raise ValueError(f"AU{n:02d} has no canonical anchor; add it to train/model/au_centres.py")
    return out.astype(np.float32)


def canonical_au_centres(aus: Sequence[str | int], template: str = "default",
                         scale: float = 1.0) -> np.ndarray:
    """One (x, y) centre per AU in unit-square crop coordinates: the mean of its anchors, ``(A, 2)``."""
    return canonical_au_points(aus, template, scale).mean(axis=1)


def mesh_au_points(landmarks: torch.Tensor, aus: Sequence[str | int],
                   fallback: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample AU anchors from MediaPipe face-mesh landmarks (``centre_mesh`` of the catalog).

    Args:
        landmarks: ``(B, P, 2)`` crop pixels, P = 468 or 478. Missing points are NaN or negative
            (the data layer writes -1 for NaN).
        aus: AU names or numbers, in model output order.
        fallback: ``(A, 2, 2)`` points in the same pixels (e.g. canonical points times the input
            size) used where a sample lacks any of an AU's mesh points; without it such anchors
            are NaN.

    Returns:
        ``(B, A, 2, 2)`` anchors in crop pixels (same dtype and device as ``landmarks``).

    Raises:
        ValueError: fewer than 468 landmarks per sample.
    """
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2 or landmarks.shape[1] < 468:
        raise ValueError(f"expected (B, 468|478, 2) mesh landmarks, got {tuple(landmarks.shape)}")
    idx = []
    for n in _numbers(aus):
        mesh = CATALOG[n].centre_mesh
        idx.append([mesh[0], mesh[-1]])
    index = torch.tensor(idx, device=landmarks.device).view(-1)
    pts = landmarks[:, index].view(landmarks.shape[0], len(idx), 2, 2)
    ok = torch.isfinite(pts).all(-1) & (pts >= 0).all(-1)  # (B, A, 2)
    ok = ok.all(-1, keepdim=True).unsqueeze(-1)  # an AU uses the mesh only if all its points are there
    if fallback is None:
        fallback = torch.full_like(pts[0], float("nan"))
    return torch.where(ok, pts, fallback.to(pts).expand_as(pts))
