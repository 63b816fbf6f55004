"""MediaPipe-style face tracking: the detector finds faces, the mesh follows them.

Each tracked face's next ROI comes from its own landmarks, so the (slower, less precise) detector
runs only when needed: while nothing is tracked or a track is lost, and every ``detect_every``
frames (``FaceStage``'s default 10; 0 = never) while fewer than ``max_faces`` are tracked (to pick
up newcomers). When the mesh's presence score drops below ``min_score`` (a blink into a
blur, a hand in front, a dropped frame) the track is not ended at once: it is kept for
``grace_frames`` frames, its mesh tried again at the last ROI, and a detection overlapping that
ROI (IoU > ``REASSOCIATE_IOU``) is given back its id. A face gone for longer gets a new id (there
is no re-identification by appearance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runtime.face import roi as R
from runtime.face.blazeface import BlazeFace
from runtime.face.mesh import FaceMesh

DUPLICATE_IOU = 0.5  # as MediaPipe's AssociationNormRectCalculator (min_similarity_threshold)
REASSOCIATE_IOU = 0.3  # a detection this close to a lost track's last ROI is that face again
GRACE_FRAMES = 8  # ~0.3 s at 25-30 fps: a blink, a blurred or dropped frame, a hand passing


@dataclass
class Track:
    track_id: int
    landmarks: np.ndarray  # (N, 3) frame pixels, as last seen
    score: float           # mesh presence probability
    roi: R.Roi             # where the face is looked for in the next frame
    missed: int = 0        # consecutive frames without the face (0: seen in this frame)

    def box(self) -> np.ndarray:
        """x0, y0, x1, y1 of the landmarks."""
        xy = self.landmarks[:, :2]
        return np.concatenate([xy.min(0), xy.max(0)])


class Tracker:
    """Track state (ids, ROIs, detection schedule) over a detector and a mesh it does not own.

    ``beyond_max`` after each call: faces the detector found in that frame but that were not
    processed because ``max_faces`` were already held (0 when the detector did not run).
    """

    def __init__(self, detector: BlazeFace, mesh: FaceMesh, max_faces: int | None, detect_every: int,
                 min_score: float, grace_frames: int = GRACE_FRAMES):
        self.detector, self.mesh = detector, mesh
        self.bgr = False  # the frames' channel order (set per call by FaceStage)
        self.max_faces = max_faces
        self._cap = math.inf if max_faces is None else max_faces
        self.detect_every, self.min_score = detect_every, min_score
        self.grace_frames = grace_frames
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []  # seen and lost-in-grace tracks
        self._next_id = 1
        self._since_detect = 0
        self.beyond_max = 0

    def step(self, frame: np.ndarray) -> list[Track]:
        """Follow the tracked faces into this frame, detecting (new or lost) ones when due."""
        self._since_detect += 1
        self.beyond_max = 0
        for t in self.tracks:
            lm, p = self.mesh.run(frame, t.roi, self.bgr)
            if p >= self.min_score:
                t.landmarks, t.score, t.roi, t.missed = lm, p, R.from_landmarks(lm), 0
            else:
                t.missed += 1
        # Two tracks that drifted onto one face: keep the older; lost tracks past grace end.
        seen = _drop_duplicates([t for t in self.tracks if t.missed == 0])
        lost = [t for t in self.tracks if 0 < t.missed <= self.grace_frames]
        periodic = self.detect_every > 0 and self._since_detect >= self.detect_every
        if not seen or lost or (len(seen) < self._cap and periodic):
            self._since_detect = 0
            for t in self._new_faces(frame, seen, lost):
                if not t.track_id:
                    t.track_id, self._next_id = self._next_id, self._next_id + 1
                seen.append(t)
            lost = [t for t in lost if t.missed > 0]
        self.tracks = sorted(seen + lost, key=lambda t: t.track_id)
        return [t for t in self.tracks if t.missed == 0]

    def detect(self, frame: np.ndarray) -> list[Track]:
        """Faces of one image, best detection first, numbered 1..n; tracking state untouched
        (``beyond_max`` is set for this image)."""
        found = self._new_faces(frame, [], [])
        for i, t in enumerate(found, 1):
            t.track_id = i
        return found

    def _new_faces(self, frame: np.ndarray, existing: list[Track], lost: list[Track]) -> list[Track]:
        """Detections the mesh confirms that are not already tracked, up to max_faces in all.

        A detection over a lost track's last ROI revives that track (same object, same id; it is
        returned with ``missed = 0``); other new ones come back with ``track_id = 0``. Faces past
        ``max_faces`` are counted in ``self.beyond_max``, not run through the mesh.
        """
        dets = self.detector.detect(frame, self.bgr)
        found: list[Track] = []
        self.beyond_max = 0
        for box, kps in zip(dets.boxes, dets.keypoints):
            roi = R.from_detection(box, kps)
            others = existing + found
            # Cheap test first (no mesh run): the detection's ROI against the tracked ROIs.
            if any(R.iou(roi.box(), t.roi.box()) > DUPLICATE_IOU for t in others):
                continue
            waiting = [t for t in lost if t.missed > 0]
            owner = max(waiting, key=lambda t: R.iou(roi.box(), t.roi.box()), default=None)
            if owner is not None and R.iou(roi.box(), owner.roi.box()) <= REASSOCIATE_IOU:
                owner = None
            # A lost track keeps its slot through its grace period: it is not a newcomer's.
            if owner is None and len(existing) + len(found) + len(waiting) >= self._cap:
                self.beyond_max += 1
                continue
            lm, p = self.mesh.run(frame, roi, self.bgr)
            if p < self.min_score:
                continue
            new = Track(0, lm, p, R.from_landmarks(lm))
            if any(R.iou(new.box(), t.box()) > DUPLICATE_IOU for t in others):
                continue
            if owner is not None:
                owner.landmarks, owner.score, owner.roi, owner.missed = new.landmarks, p, new.roi, 0
                new = owner
            found.append(new)
        return found


def _drop_duplicates(tracks: list[Track]) -> list[Track]:
    out: list[Track] = []
    for t in sorted(tracks, key=lambda t: t.track_id):
        if all(R.iou(t.box(), o.box()) <= DUPLICATE_IOU for o in out):
            out.append(t)
    return out
