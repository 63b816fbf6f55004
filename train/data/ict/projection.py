"""Carry the ICT face onto a photo: a scaled-orthographic (weak-perspective) fit of the model's 68
landmark vertices to the photo's 68 points, then a thin-plate residual so the landmarks land
exactly; each visible skin vertex gets a photo position and, per AU mix, a 2D displacement.

Why weak perspective: the London and Canada photos are frontal portraits taken from well over a
metre, where depth variation across the face (~10 cm) changes the projection scale by a few
percent; six parameters (rotation, scale, 2D shift) are then well determined by 68 points.
Why the residual: ICT's face is one average identity; its mouth may be wider or its eyes closer
than the person's. The residual moves the projected vertices smoothly so the model's lips and lids
sit on the photo's, so a lip displacement starts from the photo's lip (displacements themselves
are the projected 3D ones: s * R[:2] @ delta, image y down).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RBFInterpolator

from train.data.ict.model import ICTModel

MIN_FACING = 0.25      # cos of the angle between a vertex normal and the view direction to keep it
RESIDUAL_SMOOTHING = 1.0  # thin-plate smoothing (px^2 scale) so noisy landmarks do not ripple the skin


@dataclass(frozen=True)
class Projection:
    """``x_img = scale * rotation[:2] @ X + shift`` (rotation rows 0, 1 are image x and y)."""

    scale: float
    rotation: np.ndarray  # (3, 3) orthonormal, det +1
    shift: np.ndarray     # (2,)

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(xyz, np.float64) @ self.rotation[:2].T + self.shift

    def vectors(self, dxyz: np.ndarray) -> np.ndarray:
        """2D image displacement of 3D displacements (no shift)."""
        return self.scale * np.asarray(dxyz, np.float64) @ self.rotation[:2].T

    def towards_camera(self) -> np.ndarray:
        """Unit model-space direction pointing at the camera."""
        return -self.rotation[2]


def fit_projection(model_pts: np.ndarray, image_pts: np.ndarray) -> Projection:
    """Least-squares scaled orthographic projection of 3D ``model_pts`` onto 2D ``image_pts``.

    The unconstrained affine camera is solved first, then replaced by the nearest scaled rotation
    (SVD: equal singular values, orthonormal rows), with the shift re-solved for it.

    Raises:
        ValueError: fewer than 4 point pairs or mismatched counts.
    """
    X, x = np.asarray(model_pts, np.float64), np.asarray(image_pts, np.float64)[:, :2]
    if len(X) != len(x) or len(X) < 4:
        raise ValueError(f"need >= 4 matching points, got {len(X)} model and {len(x)} image points")
    Xc, xc = X - X.mean(0), x - x.mean(0)
    A = np.linalg.lstsq(Xc, xc, rcond=None)[0].T          # (2, 3)
    u, _, vt = np.linalg.svd(A, full_matrices=False)
    r2 = u @ vt                                             # (2, 3) orthonormal rows
    scale = float(np.sum(xc * (Xc @ r2.T)) / np.sum((Xc @ r2.T) ** 2))
    rot = np.vstack([r2, np.cross(r2[0], r2[1])])
    return Projection(scale, rot, x.mean(0) - scale * X.mean(0) @ r2.T)


@dataclass(frozen=True)
class Correspondence:
    """Where the visible ICT skin vertices sit on one photo."""

    projection: Projection
    vertices: np.ndarray   # (K,) ICT vertex ids kept (facing the camera, inside the image)
    positions: np.ndarray  # (K, 2) photo pixels of those vertices (residual-corrected)
    landmarks68: np.ndarray  # (68, 2) the photo's 68 points the fit used
    fit_rms_px: float      # RMS of the rigid fit's residual at the 68 points, before correction
    landmark_rows: np.ndarray  # (68,) rows of ``vertices`` holding the 68 landmark vertices

    def displacement(self, model: ICTModel, shape_mix: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """``(vertex_disp (K, 2), landmark_disp (68, 2))`` image-pixel displacements of a shape mix."""
        d3 = np.zeros_like(model.neutral, dtype=np.float64)
        for name, w in shape_mix.items():
            d3 += w * model.deltas[name]
        return self.projection.vectors(d3[self.vertices]), self.projection.vectors(d3[model.landmarks68])


def correspond(model: ICTModel, pts68: np.ndarray, image_shape: tuple[int, int],
               max_vertices: int = 4000) -> Correspondence:
    """Fit the model to a photo's 68 points and place its visible skin vertices.

    Args:
        model: the ICT model.
        pts68: (68, 2) photo points (iBUG order), e.g. ``mesh68.mesh_to_68(face.landmarks)``.
        image_shape: (height, width) of the photo.
        max_vertices: most vertices kept (an even subsample: the field is smooth at this density).
    """
    pts68 = np.asarray(pts68, np.float64)[:, :2]
    proj = fit_projection(model.neutral[model.landmarks68], pts68)
    at_lm = proj(model.neutral[model.landmarks68])
    rms = float(np.sqrt(np.mean(np.sum((pts68 - at_lm) ** 2, axis=1))))
    facing = model.normals() @ proj.towards_camera()
    pos = proj(model.neutral)
    h, w = image_shape
    ok = (facing > MIN_FACING) & (pos[:, 0] >= 0) & (pos[:, 0] <= w - 1) & (pos[:, 1] >= 0) & (pos[:, 1] <= h - 1)
    keep = np.flatnonzero(ok)
    if len(keep) > max_vertices:
        keep = keep[np.linspace(0, len(keep) - 1, max_vertices).round().astype(int)]
    keep = np.union1d(keep, model.landmarks68)  # the landmarks always take part
    residual = RBFInterpolator(at_lm, pts68 - at_lm, kernel="thin_plate_spline", smoothing=RESIDUAL_SMOOTHING)
    positions = pos[keep] + residual(pos[keep])
    rows = np.searchsorted(keep, model.landmarks68)
    return Correspondence(proj, keep, positions, pts68, rms, rows)
