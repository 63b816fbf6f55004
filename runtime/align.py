"""The one face alignment of au-edge, used by training, export calibration and inference alike.

Five points (eye centres, nose tip, mouth corners; see ``runtime.landmarks``) are mapped by a
least-squares similarity transform onto a canonical template, and the face is warped into a square
crop. The 2x3 matrix is returned so landmarks and AU centres can be mapped into the crop.
"""
from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from runtime.landmarks import SCHEMES

# Canonical 5-point templates in unit-square coordinates (x, y) of the crop. "default" keeps the
# brows, forehead band and chin inside the crop, which AUs 1/2/4 and 17/26 need; "arcface" is the
# InsightFace 112x112 template (a tighter crop used by face-recognition backbones).
TEMPLATES: dict[str, np.ndarray] = {
    "default": np.array(
        [[0.345, 0.400], [0.655, 0.400], [0.500, 0.560], [0.370, 0.720], [0.630, 0.720]],
        dtype=np.float64,
    ),
    "arcface": np.array(
        [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
         [70.7299, 92.2041]],
        dtype=np.float64,
    ) / 112.0,
}


def template_points(crop_size: int, template: str = "default", scale: float = 1.0) -> np.ndarray:
    """The template's 5 points in pixels of a ``crop_size`` crop.

    ``scale`` multiplies the face size about the crop centre (``< 1`` shows more context).

    Raises:
        ValueError: unknown template name or non-positive size/scale.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown alignment template {template!r}; known: {sorted(TEMPLATES)}")
    if crop_size <= 0 or scale <= 0:
        raise ValueError(f"crop_size and scale must be positive, got {crop_size}, {scale}")
    unit = (TEMPLATES[template] - 0.5) * scale + 0.5
    return unit * crop_size


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The 5 alignment points (5x2) from a landmark set whose scheme is known by its point count.

    Accepts 5 (already five points), 68 (iBUG), 468 or 478 (MediaPipe mesh) points, x/y[/z].

    Raises:
        ValueError: a point count with no known scheme.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if len(pts) == 5:
        return pts.copy()
    weights = _five_weights(len(pts))
    if weights is None:
        raise ValueError(
            f"no 5-point scheme for {len(pts)} landmarks (known: 5, {sorted(SCHEMES)}); "
            "add one to runtime/landmarks.py"
        )
    return weights @ pts


@cache
def _five_weights(n: int) -> np.ndarray | None:
    """5 x n averaging matrix of a scheme (one product per frame instead of five fancy-index means)."""
    scheme = SCHEMES.get(n)
    if scheme is None:
        return None
    w = np.zeros((5, n))
    for row, idx in enumerate(scheme):
        w[row, list(idx)] = 1.0 / len(idx)
    w.flags.writeable = False
    return w


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama (1991) restricted to proper rotations, which in 2-D is closed form: with centred points
    as complex numbers, the rotation-and-scale ``a + ib = sum(conj(s) d) / sum(|s|^2)``. Returns the
    2x3 matrix ``M`` with ``dst ~ M @ [src, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)[:, :2]
    dst = np.asarray(dst, dtype=np.float64)[:, :2]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = float((s * s).sum())
    if var > 0:
        a = float((s * d).sum()) / var
        b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / var
    else:
        a, b = 1.0, 0.0
    m = np.array([[a, -b, 0.0], [b, a, 0.0]])
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def alignment_matrix(
    points5: np.ndarray, crop_size: int, template: str = "default", scale: float = 1.0
) -> np.ndarray:
    """The 2x3 matrix taking source-image pixels to aligned-crop pixels."""
    return similarity_transform(np.asarray(points5)[:, :2], template_points(crop_size, template, scale))


def resize_matrix(m: np.ndarray, crop_size: int, out_size: int) -> np.ndarray:
    """``m`` (image -> ``crop_size`` crop) followed by a resize of the crop to ``out_size``.

    Pixel centres map as ``cv2.resize`` and the training loader's views map them
    (``u_out = (u_crop + 0.5) * s - 0.5``), so a crop warped straight to ``out_size`` with this
    matrix shows what resizing the ``crop_size`` crop would, without the large intermediate.
    """
    s = out_size / crop_size
    out = np.asarray(m, dtype=np.float64) * s
    out[:, 2] += (s - 1.0) / 2.0
    return out


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """``image`` warped by ``m`` into a ``size`` square: bilinear, black border.

    Bilinear sampling aliases once it shrinks more than 2x (a large face in a 4K frame into a
    112-px crop): then the crop is sampled at twice the size and 2x2-averaged (area), which is
    what crop-then-resize gives, at a quarter of its cost for a 256 -> 112 crop.
    """
    if abs(np.linalg.det(m[:, :2])) >= 0.25:  # linear scale >= 0.5
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    m2 = m * 2.0
    m2[:, 2] += 0.5  # output pixel u covers supersampled pixels 2u and 2u + 1
    big = cv2.warpAffine(image, m2, (2 * size, 2 * size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def align_face(
    image: np.ndarray,
    points5: np.ndarray,
    crop_size: int = 256,
    template: str = "default",
    scale: float = 1.0,
    out_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp a face into a square aligned crop.

    Args:
        image: HxW or HxWxC image (any channel order; it is kept).
        points5: 5x2 points in image pixels (``five_points`` makes them from any landmark set).
        crop_size: side of the aligned crop in pixels (the model card's ``alignment.crop_size``).
        template: template name (``TEMPLATES``).
        scale: face size relative to the template.
        out_size: if given and different from ``crop_size``, the ``crop_size`` crop's view at
            ``out_size`` (the model card's ``input.size``), warped there in one step from the
            image. Training and export, which only have the cached ``crop_size`` crop, get it with
            ``resize_crop``; the two differ by about 0.6 grey levels on average on a face (256 ->
            112 or 64 px; p99 6-7), far below any training augmentation.

    Returns:
        ``(crop, M)``: the crop (``out_size`` or ``crop_size`` square) and the 2x3 matrix mapping
        image pixels into that crop's pixels.
    """
    m = alignment_matrix(points5, crop_size, template, scale)
    size = crop_size
    if out_size is not None and out_size != crop_size:
        m, size = resize_matrix(m, crop_size, out_size), out_size
    return warp(image, m, size), m


def resize_crop(crop: np.ndarray, out_size: int) -> np.ndarray:
    """A cached ``crop_size`` crop at the model input size: area when shrinking, bilinear when
    enlarging. The one crop -> input resize of training (``train.data.torch_data``) and export."""
    if crop.shape[0] == out_size:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if out_size < crop.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(crop, (out_size, out_size), interpolation=interp)


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 (or Nx3: x, y used, z scaled by the matrix scale) points."""
    pts = np.asarray(points, dtype=np.float64)
    xy = pts[:, :2] @ m[:, :2].T + m[:, 2]
    if pts.shape[1] == 2:
        return xy
    z = pts[:, 2:] * np.sqrt(abs(np.linalg.det(m[:, :2])))
    return np.concatenate([xy, z], axis=1)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop pixels back to image pixels)."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))
