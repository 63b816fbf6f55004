"""Scene cuts: a frame that shows another scene than the last one (a video cut, the next photo).

A track must not outlive its scene: after a cut the mesh, run at the old face's ROI, happily
locks onto whoever is there now (the London photos put every person at the same place), and the
track's id, and with it its AU smoothing, would carry one person's smile onto the next.

Each frame is reduced to a 64x64 colour image, normalised per channel (mean removed, divided by the
mean standard deviation: a global brightness or contrast change is not a cut), and compared with
the last one as 16x16 thumbnails (mean absolute difference). Only when that exceeds
``CUT_DISTANCE`` is the camera's own motion taken out (phase correlation of the two 64x64 images,
the last one shifted onto the new one, the shifted-in border left out) and compared again, so a
pan is not a cut. Measured here (``tests/test_face_tracks.py`` checks the photo side):

- consecutive frames of the shared clips: at most 0.110 (0.097 after the shift;
  WolfgangLanger_Pexels.mp4, a fast head turn); no_face.mp4 0.095 (0.073);
- consecutive London/Canada photos: at least 0.179 (median 0.33); the same person neutral -> smiling
  0.04-0.34 (median 0.08): usually the same scene, as it should be;
- a pan over a 640-px frame: 0.07 at 10 px/frame, 0.14 at 20, 0.25-0.30 at 40-64 (a frame width in
  half a second is a cut).

A frame of (almost) one colour (a black, dropped frame) decides nothing and is not remembered, so a
face that returns after it is in the same scene. A change of frame size is always a cut.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

CUT_DISTANCE = 0.15   # distance of normalised thumbnails from which a frame is a new scene
BLANK_STD = 3.0       # grey levels: a frame with less contrast is blank (decides nothing)
SMALL = 64            # side of the normalised image kept per frame
THUMB = 16            # side of the thumbnails compared


def normalised(frame: np.ndarray) -> np.ndarray | None:
    """The frame as a SMALL x SMALL x 3 float image, zero mean per channel, unit mean std; None
    for a blank frame."""
    small = cv2.resize(frame, (SMALL, SMALL), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mean, std = cv2.meanStdDev(small)
    spread = float(std.mean())
    if spread < BLANK_STD:
        return None
    small -= mean.reshape(1, 1, 3).astype(np.float32)
    small *= np.float32(1.0 / spread)
    return small


def _thumb(img: np.ndarray, border: int = 0) -> np.ndarray:
    t = cv2.resize(img, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return t[border:THUMB - border, border:THUMB - border] if border else t


def distance(last: np.ndarray, new: np.ndarray, threshold: float = CUT_DISTANCE) -> float:
    """How different two normalised frames are; past ``threshold`` also with the global shift taken
    out (the smaller of the two)."""
    plain = float(np.abs(_thumb(last) - _thumb(new)).mean())
    if plain <= threshold:
        return plain
    (dx, dy), _ = cv2.phaseCorrelate(cv2.cvtColor(last, cv2.COLOR_BGR2GRAY), cv2.cvtColor(new, cv2.COLOR_BGR2GRAY))
    border = math.ceil(max(abs(dx), abs(dy)) * THUMB / SMALL)
    if border >= THUMB // 2 - 1:  # shifted by nearly half the frame: nothing left to compare
        return plain
    moved = cv2.warpAffine(last, np.float32([[1, 0, dx], [0, 1, dy]]), (SMALL, SMALL),
                           borderMode=cv2.BORDER_REPLICATE)
    return min(plain, float(np.abs(_thumb(moved, border) - _thumb(new, border)).mean()))


class SceneCuts:
    """``cuts(frame) -> bool``: whether this frame starts a new scene (the first frame does not)."""

    def __init__(self, threshold: float = CUT_DISTANCE):
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._last: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self.distance = 0.0  # of the last frame that decided (for tests and tuning)

    def __call__(self, frame: np.ndarray) -> bool:
        new = normalised(frame)
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
        self.distance = distance(last, new, self.threshold)
        return self.distance > self.threshold
