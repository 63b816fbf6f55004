"""MediaPipe-style face tracking: the detector finds faces, the mesh follows them.

Each tracked face's next ROI comes from its own landmarks, so the (slower, less precise) detector
runs only when nothing is tracked, or every ``detect_every`` frames while fewer than ``max_faces``
are tracked (to pick up newcomers). A track ends when the mesh's presence score drops below
``min_score``; a face that comes back gets a new id (there is no re-identification).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.face import roi as R
from runtime.face.blazeface import BlazeFace
from runtime.face.mesh import FaceMesh

DUPLICATE_IOU = 0.5  # as MediaPipe's AssociationNormRectCalculator (min_similarity_threshold)


@dataclass
class Track:
    track_id: int
    landmarks: np.ndarray  # (N, 3) frame pixels
    score: float           # mesh presence probability
    roi: R.Roi             # where the face is looked for in the next frame

    def box(self) -> np.ndarray:
        """x0, y0, x1, y1 of the landmarks."""
        xy = self.landmarks[:, :2]
        return np.concatenate([xy.min(0), xy.max(0)])


class Tracker:
    """Track state (ids, ROIs, detection schedule) over a detector and a mesh it does not own."""

    def __init__(self, detector: BlazeFace, mesh: FaceMesh, max_faces: int, detect_every: int,
                 min_score: float):
        self.detector, self.mesh = detector, mesh
        self.max_faces, self.detect_every, self.min_score = max_faces, detect_every, min_score
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self._next_id = 1
        self._since_detect = self.detect_every  # detect on the first frame

    def step(self, frame: np.ndarray) -> list[Track]:
        """Follow the tracked faces into this frame, detecting new ones when due."""
        self._since_detect += 1
        kept = []
        for t in self.tracks:
            lm, p = self.mesh.run(frame, t.roi)
            if p >= self.min_score:
                t.landmarks, t.score, t.roi = lm, p, R.from_landmarks(lm)
                kept.append(t)
        kept = _drop_duplicates(kept)  # two tracks that drifted onto one face: keep the older
        if not kept or (len(kept) < self.max_faces and self._since_detect >= self.detect_every):
            self._since_detect = 0
            for t in self._new_faces(frame, kept):
                t.track_id, self._next_id = self._next_id, self._next_id + 1
                kept.append(t)
        self.tracks = kept
        return list(kept)

    def detect(self, frame: np.ndarray) -> list[Track]:
        """Faces of one image, best detection first, numbered 1..n; tracking state untouched."""
        found = self._new_faces(frame, [])
        for i, t in enumerate(found, 1):
            t.track_id = i
        return found

    def _new_faces(self, frame: np.ndarray, existing: list[Track]) -> list[Track]:
        """Detections that are not already tracked and that the mesh confirms, up to max_faces."""
        dets = self.detector.detect(frame)
        found: list[Track] = []
        for box, kps in zip(dets.boxes, dets.keypoints):
            if len(existing) + len(found) >= self.max_faces:
                break
            roi = R.from_detection(box, kps)
            others = existing + found
            # Cheap test first (no mesh run): the detection's ROI against the tracked ROIs.
            if any(R.iou(roi.box(), t.roi.box()) > DUPLICATE_IOU for t in others):
                continue
            lm, p = self.mesh.run(frame, roi)
            if p < self.min_score:
                continue
            new = Track(0, lm, p, R.from_landmarks(lm))
            if any(R.iou(new.box(), t.box()) > DUPLICATE_IOU for t in others):
                continue
            found.append(new)
        return found


def _drop_duplicates(tracks: list[Track]) -> list[Track]:
    out: list[Track] = []
    for t in sorted(tracks, key=lambda t: t.track_id):
        if all(R.iou(t.box(), o.box()) <= DUPLICATE_IOU for o in out):
            out.append(t)
    return out
