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
are frame pixels in OpenCV's convention (the centre of the top-left pixel is (0, 0)). How faces are
found and tracked, and what ``score`` means: docs/face_stage.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.align import five_points
from runtime.face.blazeface import BlazeFace
from runtime.face.mesh import FaceMesh
from runtime.face.models import DETECTOR_KINDS, FaceModelError, resolve
from runtime.face.search import LARGE_FRAME, TILE_SIDE, FaceSearch
from runtime.face.tracker import GRACE_FRAMES, Track, Tracker

__all__ = ["Face", "FaceModelError", "FaceStage"]


@dataclass
class Face:
    """One face in frame pixels."""

    track_id: int
    bbox: np.ndarray        # x, y, w, h of the landmarks
    score: float            # confidence in [0, 1] from the mesh's face logit (runtime.face.quality)
    landmarks: np.ndarray   # (468 or 478, 3): x, y, z (z relative depth, scaled like x)
    points5: np.ndarray     # (5, 2) runtime.align.five_points(landmarks)
    meshed: bool = True     # landmarks from this frame's mesh run (False: the last run's, moved by flow)


class FaceStage:
    """Faces and dense landmarks per frame, MediaPipe FaceLandmarker style.

    Args:
        face_model: folder with the .tflite files or a ``face_landmarker*.task`` bundle; else env
            ``AU_FACE_MODEL``, else the user cache, else the mediapipe wheel from PyPI (cached).
        detector: ``"full"`` (BlazeFace full range, 192 px, with the short-range model beside it
            for faces too close for it, and tiles of large frames: faces of every size) or
            ``"short"`` (128 px alone, faces within ~2 m, as inside MediaPipe's FaceLandmarker).
        max_faces: most faces tracked (and returned) at once; ``None``: no cap.
        detect_every: while fewer than ``max_faces`` are tracked, the detector also runs every N
            frames to pick up newcomers (default 10; ``1``: every such frame, one detector run
            each; ``0``: only while no face is tracked, a track is lost or a face scores low).
        min_presence: the mesh's own face probability (sigmoid of its face logit) below which a
            face is lost (its track is kept ``grace_frames`` frames for the face to come back,
            then ended); MediaPipe's 0.5. Not ``score``: see ``runtime.face.quality``.
        grace_frames: frames a lost track keeps its id, waiting to be re-found (``tracker``).
        scene_cuts: end every track at a scene cut (``runtime.face.scenecut``), so the next
            scene's faces get new ids.
        threads: LiteRT CPU threads per model; ``None``: ``runtime.litert.default_threads()``.
        mesh_every: video mode: the mesh runs at least every N frames on a reliably tracked face;
            between, its last mesh is moved by optical flow (``runtime.face.follow``: the head's
            motion, not the lids' or lips'). 1 (default): the mesh runs every frame.

    Raises:
        ValueError: a bad option, naming it.
        FaceModelError: the face models cannot be found, read or fetched (one line with the fix).
    """

    def __init__(self, face_model: str | None = None, detector: str = "full", max_faces: int | None = 4,
                 detect_every: int = 10, min_presence: float = 0.5, threads: int | None = None,
                 grace_frames: int = GRACE_FRAMES, scene_cuts: bool = True, mesh_every: int = 1):
        if detector not in DETECTOR_KINDS:
            raise ValueError(f"detector must be one of {DETECTOR_KINDS}, got {detector!r}")
        _check_max_faces(max_faces)
        if not isinstance(detect_every, int) or detect_every < 0:
            raise ValueError(f"detect_every must be an integer >= 0 (0: only when a face is missing), "
                             f"got {detect_every!r}")
        if not isinstance(grace_frames, int) or grace_frames < 0:
            raise ValueError(f"grace_frames must be an integer >= 0, got {grace_frames!r}")
        if not isinstance(mesh_every, int) or isinstance(mesh_every, bool) or mesh_every < 1:
            raise ValueError(f"mesh_every must be an integer >= 1 (1: the mesh on every frame), got {mesh_every!r}")
        if not 0.0 <= float(min_presence) <= 1.0:
            raise ValueError(f"min_presence must be in [0, 1], got {min_presence!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
        models = resolve(face_model, detector)
        main = BlazeFace(models.detector, detector, threads)
        close_up = BlazeFace(models.close_up, "short", threads) if models.close_up is not None else None
        self.search = FaceSearch(main if detector == "full" else None, main if detector == "short" else close_up)
        self.mesh = FaceMesh(models.mesh, threads)
        self.num_landmarks = self.mesh.num_points
        self._tracker = Tracker(self.search, self.mesh, max_faces, detect_every, float(min_presence),
                                grace_frames, scene_cuts, mesh_every)
        self._large_empty = False
        self._closed = False

    def process(self, frame_rgb: np.ndarray, bgr: bool = False) -> list[Face]:
        """The faces of the next video frame (HxWx3 uint8 RGB, or BGR with ``bgr=True``: no
        full-frame colour conversion is needed); tracks carry over between calls."""
        self._check_open()
        self._tracker.bgr = bgr
        return self._faces(frame_rgb, self._tracker.step(_check(frame_rgb)))

    def detect(self, frame_rgb: np.ndarray, bgr: bool = False) -> list[Face]:
        """The faces of a single image, best first, ids 1..n; tracking state is left alone."""
        self._check_open()
        self._tracker.bgr = bgr
        return self._faces(frame_rgb, self._tracker.detect(_check(frame_rgb)))

    def _faces(self, frame: np.ndarray, tracks: list[Track]) -> list[Face]:
        self._large_empty = not tracks and max(frame.shape[:2]) > LARGE_FRAME
        return [_face(t) for t in tracks]

    @property
    def max_faces(self) -> int | None:
        """Most faces tracked (and returned) at once; ``None``: no cap. Settable (a new source's mode)."""
        return self._tracker.max_faces

    @max_faces.setter
    def max_faces(self, value: int | None) -> None:
        _check_max_faces(value)
        self._tracker.set_cap(value)

    @property
    def beyond_max(self) -> int:
        """Faces the last ``process``/``detect`` call found but dropped for ``max_faces`` (counted
        when the detector ran in that call)."""
        return self._tracker.beyond_max

    @property
    def scene_cut(self) -> bool:
        """Whether the last ``process`` frame was a scene cut (every earlier track ended)."""
        return self._tracker.cut

    @property
    def hint(self) -> str | None:
        """A one-line note when the last frame was large and yielded no face, else None."""
        if not self._large_empty:
            return None
        return (f"no face found in a frame over {LARGE_FRAME} px: faces smaller than ~{TILE_SIDE // 12} px "
                f"are not found (image mode searches {TILE_SIDE}-px tiles; video mode a few per search)")

    def reset(self) -> None:
        """Forget all tracks (a new, unrelated source); ids restart at 1."""
        self._tracker.reset()

    def close(self) -> None:
        """Release the interpreters; later calls raise ``ValueError``. Closing twice is fine."""
        self._closed = True
        self.search.close()
        self.mesh.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this FaceStage is closed; create a new one")

    def __enter__(self) -> FaceStage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_max_faces(max_faces: int | None) -> None:
    if max_faces is not None and (not isinstance(max_faces, int) or isinstance(max_faces, bool) or max_faces < 1):
        raise ValueError(f"max_faces must be an integer >= 1 or None (no cap), got {max_faces!r}")


def _check(frame: np.ndarray) -> np.ndarray:
    if (not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3
            or frame.size == 0):
        what = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame must be an HxWx3 uint8 RGB array, got {what}")
    return np.ascontiguousarray(frame)  # OpenCV needs it; a no-op for ordinary frames


def _face(t: Track) -> Face:
    box = t.box()
    return Face(track_id=t.track_id, bbox=np.concatenate([box[:2], box[2:] - box[:2]]), score=float(t.score),
                landmarks=t.landmarks, points5=five_points(t.landmarks), meshed=t.meshed)
