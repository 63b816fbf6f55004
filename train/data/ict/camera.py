"""What cameras and rooms do to a face (v3): directional light on the fitted 3D face, colour cast,
exposure and contrast, defocus or motion blur, a lower face resolution, sensor noise and JPEG.

Why: the London and Canada photos are one studio's flat, sharp, well-exposed portraits; the faces
people bring (the clip: warm, dim, desaturated; webcams: noisy, compressed, soft) are not. None of
this moves the face, so labels and flow stay as they are. The light is Lambertian on the fitted
ICT normals (a light from the side darkens the far cheek and the nose's shadow side, relative to
the studio's frontal light) and a gentle gradient across the whole frame.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import Delaunay

GRID = 6  # px: the light's face map is interpolated on this lattice


def light_gain(shape: tuple[int, int], tri: Delaunay, normals_cam: np.ndarray, rng: np.random.Generator,
               iod: float) -> np.ndarray:
    """HxW float32 gain of a directional light relative to a frontal one.

    Args:
        tri: Delaunay triangulation of the visible vertices' photo positions (one per photo).
        normals_cam: (K, 3) their unit normals in camera axes (x right, y down, z away from the camera).
    """
    h, w = shape
    az = rng.uniform(0, 2 * np.pi)
    off = np.radians(rng.uniform(20, 65))
    light = np.array([np.sin(off) * np.cos(az), np.sin(off) * np.sin(az), -np.cos(off)])
    ambient = rng.uniform(0.3, 0.6)
    lit = ambient + (1 - ambient) * np.clip(normals_cam @ light, 0, None)
    front = ambient + (1 - ambient) * np.clip(-normals_cam[:, 2], 0, None)
    vertex_gain = np.clip(lit / np.maximum(front, 1e-3), 0.45, 1.35)
    pts = tri.points
    x0, y0 = np.clip(np.floor(pts.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int), 0, [w - 1, h - 1])
    xs, ys = np.arange(x0, x1 + GRID, GRID), np.arange(y0, y1 + GRID, GRID)
    q = np.dstack(np.meshgrid(xs, ys)).reshape(-1, 2).astype(np.float64)
    coarse = LinearNDInterpolator(tri, vertex_gain, fill_value=np.nan)(q).reshape(len(ys), len(xs))
    inside = np.isfinite(coarse).astype(np.float32)
    coarse = np.where(np.isfinite(coarse), coarse, 1.0).astype(np.float32)
    face = np.ones((h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    m = np.array([[GRID, 0, x0], [0, GRID, y0]], np.float32)
    face = cv2.warpAffine(coarse, m, (w, h), dst=face, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_TRANSPARENT)
    mask = cv2.warpAffine(inside, m, (w, h), dst=mask, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(0.05 * iod))),
                            (0, 0), 0.12 * iod)
    face = cv2.GaussianBlur(face, (0, 0), 0.03 * iod)
    strength = rng.uniform(0.5, 1.0)
    centre = pts.mean(0)
    xx, yy = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]
    grad = ((xx - centre[0]) * light[0] + (yy - centre[1]) * light[1]) / (4 * iod)
    return (1 + strength * (mask * (face - 1) + 0.5 * np.clip(grad, -1, 1))).astype(np.float32)


def colour_exposure(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White balance, exposure, gamma (one lookup table per channel), then saturation and contrast
    (one 3x4 colour matrix); uint8 BGR in, float32 BGR out."""
    temp, tint = rng.uniform(-1, 1), rng.uniform(-0.5, 0.5)
    gain = np.array([1 - 0.13 * temp, 1 + 0.05 * tint, 1 + 0.13 * temp]) * 2 ** rng.uniform(-0.8, 0.35)
    gamma = rng.uniform(0.8, 1.25)
    v = np.arange(256, dtype=np.float64)[:, None] / 255
    lut = (255 * np.clip(v * gain, 0, 1) ** gamma).astype(np.float32)  # (256, 3)
    out = cv2.LUT(img, lut.reshape(256, 1, 3))
    sat, con = rng.uniform(0.55, 1.25), rng.uniform(0.8, 1.15)
    mean = float(out.mean())
    m = con * (sat * np.eye(3) + (1 - sat) / 3 * np.ones((3, 3)))
    return cv2.transform(out, np.hstack([m, np.full((3, 1), (1 - con) * mean)]).astype(np.float32))


def blur(img: np.ndarray, rng: np.random.Generator, iod: float) -> np.ndarray:
    """Defocus (Gaussian) or motion (a line kernel at a random angle); sizes relative to the IOD."""
    if rng.random() < 0.65:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.025 * iod))
    n = max(3, round(rng.uniform(0.03, 0.1) * iod) | 1)
    k = np.zeros((n, n), np.float32)
    k[n // 2] = 1.0
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0), (n, n))
    return cv2.filter2D(img, -1, k / max(float(k.sum()), 1e-6))


def sensor(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Read noise plus shot noise (grows with brightness), a little of it in colour."""
    sigma = rng.uniform(0.5, 6.0)
    shot = rng.uniform(0.0, 0.5)
    std = np.sqrt(sigma ** 2 + shot * np.clip(img, 0, 255))
    luma = rng.standard_normal(img.shape[:2], dtype=np.float32)[..., None]
    chroma = rng.standard_normal(img.shape, dtype=np.float32) * 0.35
    return img + std.astype(np.float32) * (luma + chroma)


def jpeg(img_u8: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img_u8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img_u8


def capture(img: np.ndarray, rng: np.random.Generator, iod: float, scale: float) -> np.ndarray:
    """Colour, blur, then the sensor at ``scale`` of the resolution (noise and JPEG there), back up
    to the original size so points and flow keep their pixels (uint8 BGR in and out)."""
    out = colour_exposure(img, rng)
    if rng.random() < 0.45:
        out = blur(out, rng, iod)
    h, w = img.shape[:2]
    small = scale < 0.98
    if small:
        out = cv2.resize(out, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.7:
        out = sensor(out, rng)
    out = np.clip(out, 0, 255).round().astype(np.uint8)
    if rng.random() < 0.7:
        out = jpeg(out, int(rng.integers(30, 96)))
    if small:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out
