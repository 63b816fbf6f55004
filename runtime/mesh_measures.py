"""What the face mesh itself tells about each face, beside the AU engine: head pose and eye closure.

Both are on by default and cheap (numpy on a few dozen points, well under 0.1 ms per face; measured
in docs/analysis.md); ``AUDetector(head_pose=False, blink=False)`` turns them off.
"""
from __future__ import annotations

import numpy as np

from runtime.blink import BlinkEstimator
from runtime.head_pose import CANONICAL_POINTS, head_pose

BLINK_AU = "AU45"


class MeshMeasures:
    """Per face: ``head_pose`` (``runtime.head_pose``) and the AU45 closure score (``runtime.blink``).

    Args:
        head_pose: compute pitch, yaw, roll (and translation) from the mesh.
        blink: compute AU45; video mode normalises it per track.
    """

    def __init__(self, head_pose: bool = True, blink: bool = True):
        self.head_pose = bool(head_pose)
        self.blink = BlinkEstimator() if blink else None

    @property
    def aus(self) -> list[str]:
        """The AUs these measures add to ``au_prob`` (``["AU45"]`` with blink on)."""
        return [BLINK_AU] if self.blink is not None else []

    def __call__(self, landmarks: np.ndarray | None, width: int, height: int, track_id: int | None,
                 t: float, eye_landmarks: np.ndarray | None = None) -> tuple[dict[str, float] | None, float | None]:
        """``(head_pose or None, AU45 score or None)`` for one face.

        Args:
            landmarks: the mesh (frame pixels) the pose is computed on (in video mode the smoothed one).
            width, height: the frame's size.
            track_id: the face's track (video mode: per-track eye reference); ``None``: image mode.
            t: the frame's time in seconds.
            eye_landmarks: the mesh before temporal smoothing, for the eyelids (default: ``landmarks``).
        """
        if landmarks is None or len(landmarks) < CANONICAL_POINTS:
            return None, None
        pose = head_pose(landmarks, width, height) if self.head_pose else None
        eyes = landmarks if eye_landmarks is None else eye_landmarks
        closure = self.blink(eyes, track_id, t) if self.blink is not None else None
        return pose, closure

    def forget_stale(self, t: float) -> None:
        if self.blink is not None:
            self.blink.forget_stale(t)

    def reset(self) -> None:
        if self.blink is not None:
            self.blink.reset()
