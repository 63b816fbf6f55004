"""Eye closure (AU45, as OpenFace reports it) from the face mesh's eyelids.

Openness of an eye = the mean image-plane gap between three upper/lower lid point pairs over the
3-D distance between the eye's corners (an eye aspect ratio whose width does not shrink when the
head turns). Both eyes are averaged and divided by an open-eye reference:

- image mode: the population reference (``MeshScale.open``: the median openness of the 30 neutral,
  open-eyed faces of the open data's ``canada/`` set);
- video mode, per track: a running 90th percentile of the track's own openness, with
  ``PRIOR_SAMPLES`` pseudo-samples at the population reference in the pool, so a track that starts
  with its eyes closed is judged against the population until its open eyes have been seen.

The two MediaPipe meshes close their lids very differently (the 468-point ``face_landmark.tflite``
never brings them together; the 478-point v2 mesh does), so each has its own scale, measured on
open data that the AU45 check does not use (``python -m runtime.blink_calibration``; see
docs/analysis.md): ``closed`` is the ratio on a blink whose frames were checked by eye
(``media/face_noface.mov`` frames 26-27), ``open_low`` the lowest ratio of open but narrowed
(smiling) eyes (``media/multi_face.jpg``, ``face_noface.mov`` smiling frames 32-61). The decision
point is their midpoint, and the score ``1 / (1 + exp((ratio - mid) / slope))`` puts ``closed`` and
``open_low`` two logits either side of it. It is a monotone score with its decision at 0.5, not a
probability calibrated on labelled data. It is measured on the mesh before the detector's One Euro
smoothing (which would flatten a blink of a few frames: on the calibration blink the 468-point
mesh's ``closed`` ratio rises from 0.46 to 0.53 when smoothed) and is not smoothed over time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# (upper lid, lower lid) point pairs and the corners of each eye in the MediaPipe mesh (468/478).
RIGHT_EYE = {"corners": (33, 133), "pairs": ((160, 144), (159, 145), (158, 153))}
LEFT_EYE = {"corners": (263, 362), "pairs": ((387, 373), (386, 374), (385, 380))}
_UPPER = np.array([u for eye in (RIGHT_EYE, LEFT_EYE) for u, _ in eye["pairs"]])
_LOWER = np.array([v for eye in (RIGHT_EYE, LEFT_EYE) for _, v in eye["pairs"]])
_CORNER_A = np.array([RIGHT_EYE["corners"][0], LEFT_EYE["corners"][0]])
_CORNER_B = np.array([RIGHT_EYE["corners"][1], LEFT_EYE["corners"][1]])
_POINTS = np.concatenate([_UPPER, _CORNER_A, _LOWER, _CORNER_B])  # one gather: 8 "from", 8 "to" points


@dataclass(frozen=True)
class MeshScale:
    """How one mesh model's openness reads (measured by ``runtime.blink_calibration``)."""

    open: float      # population open-eye openness (median of canada/)
    closed: float    # openness / open reference on eyes seen closed
    open_low: float  # lowest openness / open reference of open, narrowed eyes

    @property
    def mid(self) -> float:
        return 0.5 * (self.closed + self.open_low)

    @property
    def slope(self) -> float:
        return 0.25 * (self.open_low - self.closed)


# By point count: 468 = mediapipe's face_landmark.tflite (the default), 478 = the v2 mesh of
# face_landmarker*.task bundles.
SCALES: dict[int, MeshScale] = {
    468: MeshScale(open=0.316, closed=0.462, open_low=0.639),
    478: MeshScale(open=0.332, closed=0.155, open_low=0.596),
}
PERCENTILE = 90.0
WINDOW = 900             # openness samples kept per track (~30 s at 30 fps)
PRIOR_SAMPLES = 30       # pseudo-samples at the population reference in every track's pool
REFRESH = 8              # the track's reference is recomputed every REFRESH samples
STALE_S = 2.0            # a track unseen this long is forgotten


def eye_openness(landmarks: np.ndarray) -> np.ndarray:
    """(right, left) openness of one mesh: mean image-plane lid gap / 3-D corner distance per eye."""
    pts = np.asarray(landmarks)[_POINTS, :3].astype(np.float64)
    d = pts[:8] - pts[8:]
    d[:6, 2] = 0.0  # the lid gaps in the image plane; the corner distances in 3-D
    length = np.sqrt((d * d).sum(axis=1))
    return length[:6].reshape(2, 3).mean(axis=1) / np.maximum(length[6:], 1e-6)


def closure_score(ratio: float, scale: MeshScale) -> float:
    """Closure score in [0, 1] of openness / open reference (0.5 at the scale's midpoint)."""
    return 1.0 / (1.0 + math.exp(max(-60.0, min(60.0, (ratio - scale.mid) / scale.slope))))


class _Track:
    """A ring of the track's last ``WINDOW`` openness values after ``PRIOR_SAMPLES`` prior values."""

    __slots__ = ("last_t", "n", "reference", "samples")

    def __init__(self, prior: float) -> None:
        self.samples = np.full(PRIOR_SAMPLES + WINDOW, prior)
        self.n = 0
        self.reference = prior
        self.last_t = 0.0

    def add(self, value: float, t: float) -> float:
        self.samples[PRIOR_SAMPLES + self.n % WINDOW] = value
        self.n += 1
        self.last_t = t
        if self.n <= REFRESH or self.n % REFRESH == 0:
            pool = self.samples[:PRIOR_SAMPLES + min(self.n, WINDOW)]
            k = int(PERCENTILE / 100.0 * (len(pool) - 1))  # the PERCENTILE-th value (no interpolation)
            self.reference = float(np.partition(pool, k)[k])
        return self.reference


class BlinkEstimator:
    """AU45 (eye closure) score per face: population reference in image mode, per track in video mode."""

    def __init__(self) -> None:
        self._tracks: dict[int, _Track] = {}

    def __call__(self, landmarks: np.ndarray, track_id: int | None = None, t: float = 0.0) -> float | None:
        """The closure score of one mesh; ``track_id`` given (video mode): against the track's own
        open-eye reference. ``None`` for a mesh of unknown size or a non-finite openness."""
        scale = SCALES.get(len(landmarks))
        if scale is None:
            return None
        openness = float(eye_openness(landmarks).mean())
        if not math.isfinite(openness):
            return None
        if track_id is None:
            reference = scale.open
        else:
            track = self._tracks.get(track_id)
            if track is None:
                track = self._tracks[track_id] = _Track(scale.open)
            reference = track.add(openness, t)
        return closure_score(openness / reference, scale)

    def forget_stale(self, t: float) -> None:
        """Drop tracks not seen for ``STALE_S`` seconds (their ids are not reused)."""
        for tid in [k for k, tr in self._tracks.items() if t - tr.last_t > STALE_S or t < tr.last_t]:
            del self._tracks[tid]

    def reset(self) -> None:
        self._tracks.clear()
