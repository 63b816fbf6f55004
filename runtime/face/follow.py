"""Following a face between mesh runs with sparse optical flow, so the mesh need not run every frame.

MediaPipe re-runs its mesh on every frame at the ROI of the last one. This is the classic cheaper
way for the frames in between: Lucas-Kanade flow of a few rigid, textured mesh points (nose, eye
corners, brow roots' bridge) inside a small grey copy of the face's region, a robust similarity
transform (RANSAC) fitted to them, and the last mesh moved by it. The moved mesh follows the head
(position, size, in-plane rotation), not the face's own motion (lids, lips, brows): that is what
the aligned AU crop needs, and what a mesh run every few frames puts right.

``FlowFollower.follow`` returns ``None`` (the mesh then runs) when the flow cannot be trusted: too
few points tracked, too few agreeing on one motion (the face turned away, covered or gone), a change
of size no head makes between two frames, or a frame that is not the next view (another size).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Nose ridge and tip, nostrils' sides, eye corners, the bridge between the brows: points that move
# with the skull, not with an AU, and carry texture (not the face outline, which slides along edges).
RIGID_POINTS = (1, 4, 5, 6, 168, 195, 197, 98, 327, 33, 133, 362, 263, 130, 359, 9)
REGION_MARGIN = 0.25  # of the face's landmark box, on every side: room for the motion of one frame
MAX_SIDE = 160  # px: the region is shrunk to at most this before flow (flow cost follows it)
MIN_INLIERS = 10  # of the RIGID_POINTS, agreeing on one similarity within RANSAC_PX
RANSAC_PX = 1.5  # px of the shrunk region
MAX_SCALE_STEP = 0.15  # a face 15 % larger or smaller from one frame to the next: not a head's motion
KEEP_MARGIN = 0.1  # a followed face still this far inside its region keeps the region (no new patch)
LK = {"winSize": (11, 11), "maxLevel": 2,
      "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


@dataclass
class Patch:
    """A face's region of one frame, grey and shrunk: where the next frame's flow starts."""

    grey: np.ndarray       # the shrunk grey region
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 of the region in the frame
    origin: np.ndarray     # x0, y0 (float)
    scale: float           # region pixels per frame pixel
    points: np.ndarray     # (len(RIGID_POINTS), 2) float32: the rigid points in region pixels


def _region(box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The frame pixels (x0, y0, x1, y1) around a landmark box with REGION_MARGIN, inside the frame."""
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = REGION_MARGIN * (x1 - x0), REGION_MARGIN * (y1 - y0)
    h, w = shape[:2]
    r = (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my))))
    return r if r[2] - r[0] >= 16 and r[3] - r[1] >= 16 else None


def _grey(frame: np.ndarray, region: tuple[int, int, int, int], scale: float, bgr: bool) -> np.ndarray:
    x0, y0, x1, y1 = region
    grey = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    if scale == 1.0:
        return grey
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)  # INTER_AREA costs ~10x here


class FlowFollower:
    """Moves a face's last mesh into the next frame by the rigid points' optical flow."""

    def patch(self, frame: np.ndarray, landmarks: np.ndarray, box: np.ndarray, bgr: bool) -> Patch | None:
        """The face's region of this frame, for ``follow`` on the next one (None: too small to follow)."""
        region = _region(box, frame.shape)
        if region is None:
            return None
        scale = min(1.0, MAX_SIDE / max(region[2] - region[0], region[3] - region[1]))
        origin = np.array(region[:2], np.float64)
        pts = ((landmarks[list(RIGID_POINTS), :2] - origin) * scale).astype(np.float32)
        return Patch(_grey(frame, region, scale, bgr), region, origin, scale, pts)

    def follow(self, patch: Patch, frame: np.ndarray, landmarks: np.ndarray,
               bgr: bool) -> tuple[np.ndarray, Patch | None] | None:
        """``landmarks`` (N x 3, frame pixels, as in ``patch``'s frame) moved into ``frame``, and the
        patch for the next frame when the face is still well inside this region (else None: make
        one with ``patch``); None when the flow cannot be trusted."""
        region = patch.region
        if region[2] > frame.shape[1] or region[3] > frame.shape[0]:
            return None  # a smaller frame: not the same video
        now = _grey(frame, region, patch.scale, bgr)
        new, status, _ = cv2.calcOpticalFlowPyrLK(patch.grey, now, patch.points.reshape(-1, 1, 2), None, **LK)
        ok = status.ravel() == 1
        if ok.sum() < MIN_INLIERS:
            return None
        m, inliers = cv2.estimateAffinePartial2D(patch.points[ok], new.reshape(-1, 2)[ok], method=cv2.RANSAC,
                                                 ransacReprojThreshold=RANSAC_PX)
        if m is None or int(inliers.sum()) < MIN_INLIERS:
            return None
        step = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if abs(step - 1.0) > MAX_SCALE_STEP:
            return None
        # Region pixels -> frame pixels: p_frame = p_region / scale + origin, on both sides.
        full = m.copy()
        full[:, 2] = m[:, 2] / patch.scale + patch.origin - m[:, :2] @ patch.origin
        xy = landmarks[:, :2] @ full[:, :2].T + full[:, 2]
        moved = np.concatenate([xy, landmarks[:, 2:] * step], axis=1)
        lo, hi = xy.min(0), xy.max(0)
        pad = KEEP_MARGIN * (hi - lo)
        h_frame, w_frame = frame.shape[:2]
        inside = (((lo - pad >= region[:2]) | (np.array(region[:2]) == 0)).all()
                  and ((hi + pad <= region[2:]) | (np.array(region[2:]) == (w_frame, h_frame))).all())
        points = ((moved[list(RIGID_POINTS), :2] - patch.origin) * patch.scale).astype(np.float32)
        return moved, (Patch(now, region, patch.origin, patch.scale, points) if inside else None)
