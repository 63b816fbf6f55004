"""Scene cuts: a frame that shows another scene than the last one (a video cut, the next photo).

A track must not outlive its scene: after a cut the mesh, run at the old face's ROI, happily
locks onto whoever is there now (the London photos put every person at the same place), and the
track's id, and with it its AU smoothing, would carry one person's smile onto the next.

Each frame is reduced to a 16x16 colour thumbnail (sampled at 64x64, then averaged), normalised
per channel (mean removed, divided by the mean standard deviation: a global brightness or contrast
change is not a cut), and compared with the last one (mean absolute difference). From
``SHIFT_CHECK`` on, the camera's own motion is taken out (phase correlation of the two 64x64
images, the last one shifted onto the new one, the shifted-in border left out) and the smaller
distance counts, so a pan is not a cut. Measured here (``tests/test_face_tracks.py`` checks each):

- consecutive frames of the shared clips: at most 0.095 (WolfgangLanger_Pexels.mp4, a fast head
  turn; 0.123 before the shift is taken out), 0.098 (face_noface.mov), 0.095 (no_face.mp4);
- consecutive London/Canada photos (110 pairs of one size): at least 0.200 (median 0.34); the same
  person neutral -> smiling 0.04-0.35 (median 0.08): mostly the same scene, as it should be;
- a pan over a 640-px frame: 0.06-0.12 at 5-10 px/frame, up to 0.14 at 20, 0.25-0.40 at 40-64
  (a frame width in half a second is a cut); the frame at 60 % brightness: 0.01.

A frame of (almost) one colour (a black, dropped frame) decides nothing and is not remembered, so a
face that returns after it is in the same scene. A change of frame size is always a cut.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

CUT_DISTANCE = 0.15   # distance of normalised thumbnails from which a frame is a new scene
SHIFT_CHECK = 0.10    # distance from which the camera's motion is taken out before deciding
BLANK_STD = 3.0       # grey levels: a frame with less contrast is blank (decides nothing)
SMALL = 64            # side of the sampled image kept per frame (for the shift)
THUMB = 16            # side of the thumbnails compared


def _normalise(img: np.ndarray) -> np.ndarray | None:
    """Float image, zero mean per channel, divided by the mean std; None when (almost) flat."""
    out = img.astype(np.float32)
    mean, std = cv2.meanStdDev(out)
    spread = float(std.mean())
    if spread < BLANK_STD:
        return None
    out -= mean.reshape(1, 1, 3).astype(np.float32)
    out *= np.float32(1.0 / spread)
    return out


def signature(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(the SMALL x SMALL uint8 image, its normalised THUMB x THUMB thumbnail), or None for a
    blank frame. About 20 us for any frame size: 4096 sampled pixels, averaged 16 to a cell."""
    small = cv2.resize(frame, (SMALL, SMALL), interpolation=cv2.INTER_NEAREST)
    thumb = _normalise(cv2.resize(small, (THUMB, THUMB), interpolation=cv2.INTER_AREA))
    return None if thumb is None else (small, thumb)


def _shifted_distance(last: np.ndarray, new: np.ndarray) -> float | None:
    """Thumbnail distance after shifting the last SMALL image onto the new one (phase
    correlation), the shifted-in border left out; None when the shift leaves nothing to compare."""
    a, b = _normalise(last), _normalise(new)
    if a is None or b is None:
        return None
    (dx, dy), _ = cv2.phaseCorrelate(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY))
    border = math.ceil(max(abs(dx), abs(dy)) * THUMB / SMALL)
    if border >= THUMB // 2 - 1:  # shifted by nearly half the frame
        return None
    moved = cv2.warpAffine(a, np.float32([[1, 0, dx], [0, 1, dy]]), (SMALL, SMALL), borderMode=cv2.BORDER_REPLICATE)
    inner = slice(border, THUMB - border)
    ta = cv2.resize(moved, (THUMB, THUMB), interpolation=cv2.INTER_AREA)[inner, inner]
    tb = cv2.resize(b, (THUMB, THUMB), interpolation=cv2.INTER_AREA)[inner, inner]
    return float(np.abs(ta - tb).mean())


def distance(last: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]) -> float:
    """How different two frame signatures are; past ``SHIFT_CHECK`` also with the global shift
    taken out (the smaller of the two)."""
    plain = float(np.abs(last[1] - new[1]).mean())
    if plain <= SHIFT_CHECK:
        return plain
    moved = _shifted_distance(last[0], new[0])
    return plain if moved is None else min(plain, moved)


class SceneCuts:
    """``cuts(frame) -> bool``: whether this frame starts a new scene (the first frame does not)."""

    def __init__(self, threshold: float = CUT_DISTANCE):
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._shape: tuple[int, ...] | None = None
        self.distance = 0.0  # of the last frame that decided (for tests and tuning)

    def __call__(self, frame: np.ndarray) -> bool:
        new = signature(frame)
        resized = self._shape is not None and frame.shape != self._shape
        self._shape = frame.shape
        if resized:
            self._last = new
            self.distance = math.inf
            return True
        if new is None:
            return False
        last, self._last = self._last, new
        if last is None:
            return False
        self.distance = distance(last, new)
        return self.distance > self.threshold
