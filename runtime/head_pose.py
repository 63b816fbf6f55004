"""Head pose from the dense face mesh, computed as MediaPipe's face geometry pipeline does.

MediaPipe FaceLandmarker's ``facial_transformation_matrixes`` come from a fixed recipe
(``mediapipe/modules/face_geometry``): a virtual perspective camera (vertical field of view 63°,
near plane 1) turns the mesh's screen coordinates and relative depth into metric 3-D points in two
passes, and a weighted orthogonal Procrustes fit (33 landmarks, MediaPipe's weights) maps the
canonical face onto them. This module repeats that recipe in numpy on the mesh the runtime already
tracks, so its angles are comparable with MediaPipe's, without mediapipe at run time (the canonical
face ships in ``runtime/data/canonical_face.npz``, Apache-2.0, see ``runtime/data/NOTICE.md``).

Convention (OpenFace 2's, so ``pose_Rx/Ry/Rz`` are these angles in radians): camera axes as in
OpenCV, right-handed, x to the image right, y down, z from the camera into the scene; the head's
rotation is ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` applied to a face that looks straight at the
camera (all angles 0). So, in degrees:

- ``pitch`` > 0: the head tips down (nose down), < 0: up;
- ``yaw`` > 0: the head turns to the subject's right (the nose moves to the image left);
- ``roll`` > 0: the head tilts clockwise in the image (the top of the head moves to the image right,
  towards the subject's left shoulder).

The angles are of the head relative to the camera's optical axis, as MediaPipe's and OpenFace's.
The camera is unknown: ``tx, ty, tz`` (same axes; ``tz`` the distance in front of the camera) are
in centimetres of MediaPipe's canonical face, i.e. metric only for a face of the canonical size
seen by a camera with a 63° vertical field of view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

VERTICAL_FOV_DEG = 63.0  # MediaPipe FaceLandmarker's default virtual camera
NEAR = 1.0
EPS = 1e-9  # MediaPipe's kAbsoluteErrorEps: below it the fit is refused (a degenerate mesh)
CANONICAL_POINTS = 468  # the 478-point mesh adds the irises after these


@dataclass(frozen=True)
class CanonicalFace:
    """The Procrustes landmarks of MediaPipe's canonical face (centimetres, y up, looking along +z),
    with the parts of the weighted fit that depend on them alone (computed once)."""

    ids: np.ndarray       # (33,) landmark indices
    weights: np.ndarray   # (33,) the Procrustes weights
    vertices: np.ndarray  # (468, 3) the whole canonical mesh
    design: np.ndarray    # (33, 3) weights * (canonical point - weighted centre): dst @ design = A
    centre_sum: np.ndarray  # (3,) sum of weights * canonical points
    total: float          # sum of the weights
    denominator: float    # the scale's denominator: sum of weights * |point - centre|^2


@cache
def canonical_face() -> CanonicalFace:
    """The canonical face, read once from the package data (plain arrays: no pickle)."""
    path = resources.files("runtime.data").joinpath("canonical_face.npz")
    with path.open("rb") as f, np.load(f, allow_pickle=False) as d:
        vertices = d["vertices"].astype(np.float64)
        ids = d["procrustes_ids"].astype(np.int64)
        weights = d["procrustes_weights"].astype(np.float64)
    src = vertices[ids]
    total = float(weights.sum())
    centred = src - weights @ src / total
    return CanonicalFace(ids=ids, weights=weights, vertices=vertices, design=centred * weights[:, None],
                         centre_sum=weights @ src, total=total,
                         denominator=float((weights[:, None] * centred * centred).sum()))


def _cross(canon: CanonicalFace, dst: np.ndarray) -> list[list[float]]:
    """The weighted cross-covariance ``A = sum w dst (src - c)^T`` (3x3, as lists) of ``dst`` (3xN)."""
    a = (dst @ canon.design).tolist()
    if not max(abs(v) for row in a for v in row) > EPS:
        raise ValueError("head pose: degenerate face mesh (all points in one place)")
    return a


def _trace_max(a: list[list[float]]) -> float:
    """``max trace(R^T A)`` over proper rotations R: the singular values of A summed, the last one
    negated when det(A) < 0 (MediaPipe's solver flips it to avoid a reflection). Closed form: the
    eigenvalues of the symmetric A^T A by the trigonometric method (Smith 1961)."""
    m = [[sum(a[k][i] * a[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    q = (m[0][0] + m[1][1] + m[2][2]) / 3.0
    p1 = m[0][1] ** 2 + m[0][2] ** 2 + m[1][2] ** 2
    p = math.sqrt(((m[0][0] - q) ** 2 + (m[1][1] - q) ** 2 + (m[2][2] - q) ** 2 + 2.0 * p1) / 6.0)
    if p > 0.0:
        b = [[(m[i][j] - (q if i == j else 0.0)) / p for j in range(3)] for i in range(3)]
        phi = math.acos(max(-1.0, min(1.0, _det(b) / 2.0))) / 3.0
        e1, e3 = q + 2.0 * p * math.cos(phi), q + 2.0 * p * math.cos(phi + 2.0 * math.pi / 3.0)
        eig = (e1, 3.0 * q - e1 - e3, e3)  # descending
    else:
        eig = (q, q, q)
    s1, s2, s3 = (math.sqrt(max(e, 0.0)) for e in eig)
    return s1 + s2 + math.copysign(s3, _det(a))


def _det(m: list[list[float]]) -> float:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def _scale(canon: CanonicalFace, dst: np.ndarray) -> float:
    """The scale of the weighted Procrustes fit of the canonical points onto ``dst`` (3xN)."""
    return _trace_max(_cross(canon, dst)) / canon.denominator


def _fit(canon: CanonicalFace, dst: np.ndarray) -> tuple[list[list[float]], float, np.ndarray]:
    """Weighted orthogonal Procrustes: ``dst ≈ scale * R @ canonical + t`` (3xN), no reflection:
    the fit of MediaPipe's ``ProcrustesSolver``, solved in closed form. R is the eigenvector of the
    largest eigenvalue of Horn's 4x4 matrix, as a quaternion (Horn 1987, "Closed-form solution of
    absolute orientation using unit quaternions"); that eigenvalue is ``_trace_max``."""
    (bxx, bxy, bxz), (byx, byy, byz), (bzx, bzy, bzz) = _cross(canon, dst)  # A[i][j] = Horn's S[j][i]
    horn = np.array([[bxx + byy + bzz, bzy - byz, bxz - bzx, byx - bxy],
                     [bzy - byz, bxx - byy - bzz, byx + bxy, bxz + bzx],
                     [bxz - bzx, byx + bxy, byy - bxx - bzz, bzy + byz],
                     [byx - bxy, bxz + bzx, bzy + byz, bzz - bxx - byy]])
    values, vectors = np.linalg.eigh(horn)
    w, x, y, z = vectors[:, -1].tolist()
    rot = [[w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
           [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
           [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z]]
    scale = float(values[-1]) / canon.denominator
    t = (dst @ canon.weights - scale * (np.array(rot) @ canon.centre_sum)) / canon.total
    return rot, scale, t


def _solve(landmarks: np.ndarray, width: int, height: int,
           vertical_fov_deg: float) -> tuple[list[list[float]], float, np.ndarray]:
    """(R, scale, t) of the canonical face onto one mesh in MediaPipe's metric camera space."""
    pts = np.asarray(landmarks)
    if pts.ndim != 2 or pts.shape[0] < CANONICAL_POINTS or pts.shape[1] < 3:
        raise ValueError(f"head pose needs a (468 or 478, 3) face mesh, got shape {pts.shape}")
    canon = canonical_face()
    h_near = 2.0 * NEAR * math.tan(0.5 * math.radians(vertical_fov_deg))
    w_near = width * h_near / height
    z_scale = w_near / width
    # MediaPipe's normalised screen coordinates (its pixel grid's origin is the top-left corner;
    # ours is the top-left pixel's centre) projected onto the near plane, y up; z like x, flipped.
    gain = np.array([[z_scale], [-h_near / height], [-z_scale]])
    offset = np.array([[(0.5 / width - 0.5) * w_near], [(0.5 - 0.5 / height) * h_near], [0.0]])
    screen = pts[canon.ids, :3].T * gain + offset  # (3, 33) float64
    depth_offset = float(pts[:CANONICAL_POINTS, 2].mean()) * z_scale
    # Pass 1: no unprojection (the depth is only relative), just the scale of the fit.
    s1 = _scale(canon, screen)
    # Pass 2: unproject with that scale, refit the scale; then unproject with both and fit the pose.
    s2 = _scale(canon, _unproject(screen, depth_offset, s1))
    return _fit(canon, _unproject(screen, depth_offset, s1 * s2))


def transformation_matrix(landmarks: np.ndarray, width: int, height: int,
                          vertical_fov_deg: float = VERTICAL_FOV_DEG) -> np.ndarray:
    """MediaPipe's facial transformation matrix (4x4) for one mesh.

    It maps the canonical face into MediaPipe's metric camera space (OpenGL axes: x right, y up,
    the camera looking along -z), with the scale the fit found in its upper 3x3 block.

    Args:
        landmarks: (468 or 478, 3) mesh points in frame pixels (x, y; z relative depth scaled like
            x), as ``FaceAU.landmarks``; the irises (468-477) are not used.
        width, height: the frame's size in pixels.
        vertical_fov_deg: the virtual camera's vertical field of view.

    Raises:
        ValueError: fewer than 468 points or a degenerate (e.g. all-equal) mesh.
    """
    rot, scale, t = _solve(landmarks, width, height, vertical_fov_deg)
    m = np.eye(4)
    m[:3, :3] = scale * np.array(rot)
    m[:3, 3] = t
    return m


def _unproject(screen: np.ndarray, depth_offset: float, scale: float) -> np.ndarray:
    """Near-plane points (z flipped) -> metric points at depth ``(z - offset + near) / scale``."""
    if not scale > EPS or not math.isfinite(scale):
        raise ValueError("head pose: degenerate face mesh (the Procrustes scale is not positive)")
    depth = (-screen[2] - depth_offset + NEAR) / scale
    out = screen * (depth / NEAR)
    out[2] = -depth
    return out


def _angles(r: list[list[float]] | np.ndarray, t: np.ndarray) -> dict[str, float]:
    """Pitch, yaw, roll (degrees) and tx, ty, tz of a rotation in MediaPipe's (OpenGL) axes.

    OpenGL -> OpenCV axes on both sides (camera and face frames): R_cv = F R_gl F, F = diag(1,-1,-1);
    then R_cv = Rx(pitch) Ry(yaw) Rz(roll) is solved for the angles.
    """
    pitch = math.atan2(-r[1][2], r[2][2])
    yaw = math.asin(max(-1.0, min(1.0, -r[0][2])))
    roll = math.atan2(r[0][1], r[0][0])
    return {"pitch": math.degrees(pitch), "yaw": math.degrees(yaw), "roll": math.degrees(roll),
            "tx": float(t[0]), "ty": float(-t[1]), "tz": float(-t[2])}


def pose_from_matrix(m: np.ndarray) -> dict[str, float]:
    """``{"pitch", "yaw", "roll"}`` (degrees) and ``{"tx", "ty", "tz"}`` (canonical cm) of a
    MediaPipe facial transformation matrix, in this module's convention (see the docstring)."""
    m = np.asarray(m, dtype=np.float64)
    return _angles(m[:3, :3] / np.linalg.norm(m[:3, 0]), m[:3, 3])


def head_pose(landmarks: np.ndarray, width: int, height: int) -> dict[str, float] | None:
    """The head pose of one mesh (as ``pose_from_matrix(transformation_matrix(...))``), rounded for
    output; ``None`` when the mesh is degenerate or a value is not finite (never NaN in JSON)."""
    try:
        rot, _, t = _solve(landmarks, width, height, VERTICAL_FOV_DEG)
        pose = _angles(rot, t)
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not all(math.isfinite(v) for v in pose.values()):
        return None
    return {k: round(v, 2) for k, v in pose.items()}
