"""Drawing primitives for the v3 look: a face frame (eye axis, IOD, sides) and a canvas of float
layers over the face box that creases, folds and broad shading are drawn into and then blended
into the photo as one multiplicative gain.

Why layers by width: a skin crease is a sharp dark core with a fainter lit lip beside it (a pixel
or two at the photos' IOD of ~85 px), a fold (nasolabial, infraorbital) is a wider soft valley
with a lit bulge beside it, and a raised cheek or a lowered brow is broad shading: each gets its own
blur. Creases and folds are drawn only where the pixels look like skin (``skin_mask``), so a crease
placed over hair or a dark brow fades out instead of drawing a line on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

SHIFT = 4  # cv2 sub-pixel bits
LAYERS = ("fine", "fine_light", "fold", "fold_light", "broad")


@dataclass(frozen=True)
class FaceFrame:
    """Directions and sizes on one face (moved 68 points). Side 0 = the subject's right (image
    left of a frontal photo: eye 36-41, mouth corner 48, nostril 31); side 1 = the subject's left."""

    p: np.ndarray
    iod: float
    u: np.ndarray  # along the eye line, subject's right -> left (image left -> right)
    v: np.ndarray  # down the face

    @classmethod
    def of(cls, p68: np.ndarray) -> FaceFrame:
        p = np.asarray(p68, np.float64)
        d = p[42:48].mean(0) - p[36:42].mean(0)
        iod = max(float(np.linalg.norm(d)), 1e-6)
        u = d / iod
        return cls(p, iod, u, np.array([-u[1], u[0]]))

    def eye(self, side: int) -> np.ndarray:
        return self.p[36:42].mean(0) if side == 0 else self.p[42:48].mean(0)

    def out(self, side: int) -> np.ndarray:
        """Away from the face's midline on ``side``."""
        return -self.u if side == 0 else self.u

    def at(self, origin: np.ndarray, along: float, down: float, side: int = 1) -> np.ndarray:
        """``origin`` + ``along`` IOD outwards on ``side`` + ``down`` IOD down the face."""
        return origin + self.iod * (along * self.out(side) + down * self.v)


def side_weight(weights: dict[int, float], sides: dict, au: int, side: int) -> float:
    """An AU's weight on one side (``facs`` sides are (left, right): side 1 is the left)."""
    w = float(weights.get(au, 0.0))
    if au in sides:
        w *= float(sides[au][0] if side == 1 else sides[au][1])
    return w


def curve(a: np.ndarray, b: np.ndarray, bend: float = 0.0, n: int = 9) -> np.ndarray:
    """A quadratic arc from ``a`` to ``b`` bowed by ``bend`` x its length (to the left of a->b)."""
    d = b - a
    normal = np.array([-d[1], d[0]])
    c = (a + b) / 2 + bend * normal
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * c + t ** 2 * b


def resample(line: np.ndarray, n: int) -> np.ndarray:
    seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))]
    t = np.linspace(0, seg[-1], n)
    return np.stack([np.interp(t, seg, line[:, k]) for k in range(2)], axis=1)


@dataclass
class Canvas:
    """Float layers over the face box of an image (see the module docstring)."""

    shape: tuple[int, int]   # image (h, w)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    layers: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def around(cls, f: FaceFrame, shape: tuple[int, int]) -> Canvas:
        lo = f.p.min(0) - f.iod * np.array([0.4, 0.9])
        hi = f.p.max(0) + f.iod * np.array([0.4, 0.3])
        x0, y0 = np.clip(np.floor(lo).astype(int), 0, [shape[1], shape[0]])
        x1, y1 = np.clip(np.ceil(hi).astype(int), 0, [shape[1], shape[0]])
        c = cls(shape, (int(x0), int(y0), int(x1), int(y1)))
        c.layers = {k: np.zeros((int(y1 - y0), int(x1 - x0)), np.float32) for k in LAYERS}
        return c

    def _fix(self, pts: np.ndarray) -> np.ndarray:
        return np.round((pts - np.array(self.box[:2])) * (1 << SHIFT)).astype(np.int32)

    def stroke(self, layer: str, line: np.ndarray, depth: float | np.ndarray, width: float = 1.0,
               taper: bool = True, n: int = 12) -> None:
        """A polyline whose value tapers to 0 at both ends (``taper``); ``depth`` per point or one."""
        pts = resample(np.asarray(line, np.float64), n)
        d = np.broadcast_to(np.asarray(depth, np.float64), (len(line),))
        d = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(line)), d)
        q = self._fix(pts)
        thick = max(1, round(width))
        dst = self.layers[layer]
        for k in range(n - 1):
            val = (d[k] + d[k + 1]) / 2
            if taper:
                val *= np.sin(np.pi * (k + 0.5) / (n - 1)) ** 0.7
            if val > 1e-4:
                cv2.line(dst, tuple(map(int, q[k])), tuple(map(int, q[k + 1])), float(val), thick, cv2.LINE_AA, SHIFT)

    def blob(self, layer: str, centre: np.ndarray, axes: tuple[float, float], angle_deg: float, value: float) -> None:
        """A filled ellipse (axes in pixels), blurred later with its layer."""
        if abs(value) < 1e-4 or min(axes) < 0.5:
            return
        cv2.ellipse(self.layers[layer], tuple(map(int, self._fix(centre))),
                    tuple(map(int, np.round(np.array(axes) * (1 << SHIFT)))), float(angle_deg), 0, 360,
                    float(value), -1, cv2.LINE_AA, SHIFT)

    def gain(self, iod: float, skin: np.ndarray) -> np.ndarray:
        """The multiplicative gain over the box (1 = unchanged)."""
        lay = self.layers
        s1 = max(0.6, 0.008 * iod)

        def blur(a: np.ndarray, s: float) -> np.ndarray:
            return cv2.GaussianBlur(a, (0, 0), s) if a.any() else a

        creases = -blur(lay["fine"], s1) + blur(lay["fine_light"], 1.6 * s1) - blur(lay["fold"], max(1.0, 0.02 * iod))
        return 1 + skin * creases + blur(lay["fold_light"], max(1.5, 0.045 * iod)) + blur(lay["broad"], 0.09 * iod)


def skin_mask(image_box: np.ndarray, f: FaceFrame, box: tuple[int, int, int, int]) -> np.ndarray:
    """Soft 0..1 map of skin-coloured pixels in the box (chroma near the cheeks', not dark)."""
    ycc = cv2.cvtColor(image_box, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    refs = []
    for side in (0, 1):
        c = f.at(f.eye(side), 0.05, 0.55, side) - np.array(box[:2])
        r = max(2, int(0.08 * f.iod))
        x, y = round(c[0]), round(c[1])
        patch = ycc[max(0, y - r):y + r, max(0, x - r):x + r].reshape(-1, 3)
        if len(patch):
            refs.append(patch)
    if not refs:
        return np.ones(image_box.shape[:2], np.float32)
    ref = np.median(np.concatenate(refs), axis=0)
    chroma = np.linalg.norm(ycc[..., 1:] - ref[1:], axis=-1)
    m = np.clip((22.0 - chroma) / 10.0, 0, 1) * np.clip((ycc[..., 0] - 0.45 * ref[0]) / (0.2 * ref[0] + 1e-6), 0, 1)
    return cv2.GaussianBlur(m.astype(np.float32), (0, 0), max(1.0, 0.015 * f.iod))
