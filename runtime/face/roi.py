"""Face regions of interest for the mesh model, as MediaPipe builds them.

A ROI is a rotated square in frame pixels: centre, side, angle. From a detection: the box centre,
1.5x the box's long side, rotated so the eye keypoints are level (face_detection_front_detection_
to_roi.pbtxt). From landmarks: the same around the landmarks' box, rotated by landmarks 33 -> 263
(the Tasks FaceLandmarker). The rotation makes the mesh see an upright face whatever the roll.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

ROI_SCALE = 1.5
EYE_OUTER = (33, 263)  # subject's right eye outer corner, left eye outer corner (both meshes)


class Roi(NamedTuple):
    cx: float
    cy: float
    side: float
    angle: float  # radians; the crop's x axis points along (cos, sin) in the frame (y down)

    def box(self) -> np.ndarray:
        """The axis-aligned x0, y0, x1, y1 of the unrotated square (for overlap tests)."""
        h = self.side / 2
        return np.array([self.cx - h, self.cy - h, self.cx + h, self.cy + h])


def _roi(box_xyxy: np.ndarray, start: np.ndarray, end: np.ndarray, scale: float) -> Roi:
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    angle = float(np.arctan2(end[1] - start[1], end[0] - start[0]))
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale, angle)


def from_detection(box_xywh: np.ndarray, keypoints: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """ROI from a BlazeFace box (x, y, w, h) and its keypoints (0 right eye, 1 left eye)."""
    x, y, w, h = (float(v) for v in box_xywh)
    return _roi(np.array([x, y, x + w, y + h]), keypoints[0], keypoints[1], scale)


def from_landmarks(landmarks: np.ndarray, scale: float = ROI_SCALE, box: np.ndarray | None = None) -> Roi:
    """ROI for the next frame from this frame's mesh (N x 2+ frame pixels); ``box``: the
    landmarks' x0, y0, x1, y1 when the caller already has it."""
    xy = landmarks[:, :2]
    if box is None:
        box = landmark_box(landmarks)
    return _roi(box, xy[EYE_OUTER[0]], xy[EYE_OUTER[1]], scale)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """x0, y0, x1, y1 of a landmark set."""
    xy = landmarks[:, :2]
    return np.concatenate([xy.min(0), xy.max(0)])


def crop_to_frame(roi: Roi, size: int) -> np.ndarray:
    """2x3 matrix from crop pixel edges (0..size, model output convention) to frame pixel centres."""
    s = roi.side / size
    c, n = np.cos(roi.angle), np.sin(roi.angle)
    lin = np.array([[c, -n], [n, c]]) * s
    t = np.array([roi.cx, roi.cy]) - lin @ np.array([size / 2, size / 2])
    return np.concatenate([lin, t[:, None]], axis=1)


def warp_matrix(roi: Roi, size: int, to_frame: np.ndarray | None = None) -> np.ndarray:
    """2x3 matrix from crop pixel centres to frame pixel centres (cv2.WARP_INVERSE_MAP).

    ``to_frame``: ``crop_to_frame(roi, size)`` when the caller already has it.
    """
    m = (crop_to_frame(roi, size) if to_frame is None else to_frame).copy()
    m[:, 2] += m[:, :2].sum(axis=1) * 0.5  # pixel centre u lies at edge coordinate u + 0.5
    return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))
