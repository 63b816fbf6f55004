"""The face stage: BlazeFace detection + MediaPipe face mesh on LiteRT, with tracking.

```python
from runtime.face import FaceStage
with FaceStage(max_faces=2) as stage:            # models: face_model=, AU_FACE_MODEL, cache, PyPI
    for rgb in frames:
        for face in stage.process(rgb):          # tracks across calls
            face.track_id, face.bbox, face.score, face.landmarks, face.points5
    faces = stage.detect(photo_rgb)               # one image, no tracking state
```
MediaPipe's models run directly on LiteRT; mediapipe itself is never imported. All coordinates
are frame pixels in OpenCV's convention (the centre of the top-left pixel is (0, 0)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.align import five_points
from runtime.face.blazeface import BlazeFace
from runtime.face.mesh import FaceMesh
from runtime.face.models import DETECTOR_KINDS, FaceModelError, resolve
from runtime.face.tracker import GRACE_FRAMES, Track, Tracker

__all__ = ["Face", "FaceModelError", "FaceStage"]


@dataclass
class Face:
    """One face in frame pixels."""

    track_id: int
    bbox: np.ndarray        # x, y, w, h of the landmarks
    score: float            # mesh presence probability in [0, 1]
    landmarks: np.ndarray   # (468 or 478, 3): x, y, z (z relative depth, scaled like x)
    points5: np.ndarray     # (5, 2) runtime.align.five_points(landmarks)


class FaceStage:
    """Faces and dense landmarks per frame, MediaPipe FaceLandmarker style.

    Args:
        face_model: folder with the .tflite files or a ``face_landmarker*.task`` bundle; else env
            ``AU_FACE_MODEL``, else the user cache, else the mediapipe wheel from PyPI (cached).
        detector: ``"full"`` (BlazeFace full range, 192 px: faces across a room) or ``"short"``
            (128 px, faces within ~2 m, as inside MediaPipe's FaceLandmarker).
        max_faces: most faces tracked (and returned) at once; ``None``: no cap.
        detect_every: while fewer than ``max_faces`` are tracked, the detector also runs every N
            frames to pick up newcomers (default 10; ``1``: every such frame, one detector run
            each; ``0``: only while no face is tracked or a track is lost).
        min_score: mesh presence probability below which a face is not reported (its track is
            kept ``grace_frames`` frames for the face to come back, then ended).
        grace_frames: frames a lost track keeps its id, waiting to be re-found (``tracker``).
        threads: LiteRT CPU threads per model; ``None``: ``runtime.litert.default_threads()``.

    Raises:
        ValueError: a bad option, naming it.
        FaceModelError: the face models cannot be found, read or fetched (one line with the fix).
    """

    def __init__(self, face_model: str | None = None, detector: str = "full", max_faces: int | None = 4,
                 detect_every: int = 10, min_score: float = 0.5, threads: int | None = None,
                 grace_frames: int = GRACE_FRAMES):
        if detector not in DETECTOR_KINDS:
            raise ValueError(f"detector must be one of {DETECTOR_KINDS}, got {detector!r}")
        if max_faces is not None and (not isinstance(max_faces, int) or isinstance(max_faces, bool)
                                      or max_faces < 1):
            raise ValueError(f"max_faces must be an integer >= 1 or None (no cap), got {max_faces!r}")
        if not isinstance(detect_every, int) or detect_every < 0:
            raise ValueError(f"detect_every must be an integer >= 0 (0: only when a face is missing), "
                             f"got {detect_every!r}")
        if not isinstance(grace_frames, int) or grace_frames < 0:
            raise ValueError(f"grace_frames must be an integer >= 0, got {grace_frames!r}")
        if not 0.0 <= float(min_score) <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
        models = resolve(face_model, detector)
        self.detector = BlazeFace(models.detector, detector, threads)
        self.mesh = FaceMesh(models.mesh, threads)
        self.num_landmarks = self.mesh.num_points
        self._tracker = Tracker(self.detector, self.mesh, max_faces, detect_every, float(min_score),
                                grace_frames)
        self._closed = False

    def process(self, frame_rgb: np.ndarray, bgr: bool = False) -> list[Face]:
        """The faces of the next video frame (HxWx3 uint8 RGB, or BGR with ``bgr=True``: no
        full-frame colour conversion is needed); tracks carry over between calls."""
        self._check_open()
        self._tracker.bgr = bgr
        return [_face(t) for t in self._tracker.step(_check(frame_rgb))]

    def detect(self, frame_rgb: np.ndarray, bgr: bool = False) -> list[Face]:
        """The faces of a single image, best first, ids 1..n; tracking state is left alone."""
        self._check_open()
        self._tracker.bgr = bgr
        return [_face(t) for t in self._tracker.detect(_check(frame_rgb))]

    @property
    def beyond_max(self) -> int:
        """Faces the last ``process``/``detect`` call found but dropped for ``max_faces`` (counted
        when the detector ran in that call)."""
        return self._tracker.beyond_max

    def reset(self) -> None:
        """Forget all tracks (a new, unrelated source); ids restart at 1."""
        self._tracker.reset()

    def close(self) -> None:
        """Release the interpreters; later calls raise ``ValueError``. Closing twice is fine."""
        self._closed = True
        self.detector.close()
        self.mesh.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this FaceStage is closed; create a new one")

    def __enter__(self) -> FaceStage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check(frame: np.ndarray) -> np.ndarray:
    if (not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3
            or frame.size == 0):
        what = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame must be an HxWx3 uint8 RGB array, got {what}")
    return np.ascontiguousarray(frame)  # OpenCV needs it; a no-op for ordinary frames


def _face(t: Track) -> Face:
    box = t.box()
    return Face(track_id=t.track_id, bbox=np.concatenate([box[:2], box[2:] - box[:2]]), score=float(t.score),
                landmarks=t.landmarks, points5=five_points(t.landmarks))
