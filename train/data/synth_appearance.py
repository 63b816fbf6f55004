"""What a synthetic render looks like beyond the warp: wrinkle shading where active AUs crease the
skin, a dark opening between parted lips, and random photometric changes (``train.data.synth``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from train.data.synth_templates import MAX_INTENSITY, TEMPLATES, WRINKLE_DEPTH
from train.data.synth_warp import face_frame
from train.data.tem import FRL189_GROUPS


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


def draw_photometric(rng: np.random.Generator, photo: Photometric | None) -> np.ndarray | None:
    """(brightness, contrast, gamma, noise sigma) of a photometric draw, or None."""
    if photo is None:
        return None
    r = rng.uniform(-1, 1, 3)
    return np.array([r[0] * photo.brightness, 1 + r[1] * photo.contrast,
                     np.exp(r[2] * np.log1p(photo.gamma)), rng.uniform(0, photo.noise)])


def apply_photometric(image: np.ndarray, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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


def _wrinkle_lines(kind: str, pts: np.ndarray) -> list[np.ndarray]:
    """Polylines (pixels) of one wrinkle pattern, placed from the *warped* FRL points."""
    _, u, v, iod = face_frame(pts)
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


def shade(image: np.ndarray, landmarks: np.ndarray, levels: Mapping[int, float]) -> np.ndarray:
    """Wrinkles where the active AUs crease the skin (depth grows with intensity) and a dark mouth
    opening where the lips part."""
    depth: dict[str, float] = {}
    for au, level in levels.items():
        for kind in TEMPLATES[au].wrinkles:
            depth[kind] = max(depth.get(kind, 0.0), WRINKLE_DEPTH[kind] * level / MAX_INTENSITY)
    _, u, v, iod = face_frame(landmarks)
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
