"""Per-track temporal smoothing (AU probabilities, landmarks) and thresholding with hysteresis.

AU probabilities flicker frame to frame; robots acting on ``au_active`` need stable decisions.
The One Euro filter (Casiez et al., CHI 2012) smooths strongly when a value is steady and follows
quickly when it moves; hysteresis keeps an AU from toggling around its threshold. The same filter
steadies the face mesh before alignment, as MediaPipe's FaceLandmarker does in video mode, so the
aligned crop (and the AUs read from it) do not jitter with the landmarks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# MediaPipe's face landmark smoothing (face_landmarks_detector_graph.cc, video/stream mode):
# One Euro with min_cutoff 0.05 Hz, beta 80, derivative cutoff 1 Hz, the speed measured in face
# sizes per second (LandmarksSmoothingCalculator divides by the landmarks' object scale).
MESH_MIN_CUTOFF, MESH_BETA, MESH_D_CUTOFF = 0.05, 80.0, 1.0


@dataclass
class OneEuroFilter:
    """Vectorised One Euro filter over one array (an AU vector, or a mesh) of one track."""

    min_cutoff: float = 1.5  # Hz: smoothing of steady values
    beta: float = 0.5  # speed coefficient: how fast the cutoff rises with change
    d_cutoff: float = 1.0
    _x: np.ndarray | None = None
    _dx: np.ndarray | None = None
    _t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, value_scale: float = 1.0) -> np.ndarray:
        """The filtered ``x`` at time ``t`` (s). ``value_scale`` multiplies the speed that raises the
        cutoff (``1 / face size`` makes landmark speed scale-free, as MediaPipe does)."""
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x
        dt = t - self._t
        dx = (x - self._x) * (value_scale / dt)
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x


def hysteresis_margins(thresholds: np.ndarray, margin: float) -> np.ndarray:
    """The half-width of each AU's hysteresis band, clamped to the threshold.

    The band ``[thr - m, thr + m]`` must lie inside ``[0, 1]`` with room on both sides, or an AU
    with a calibrated threshold near 0 never switches off (``p < thr - m`` is impossible) and one
    near 1 never switches on. ``m = min(margin, thr / 2, (1 - thr) / 2)``: at threshold 0.05 the
    band is [0.025, 0.075], at 0.95 it is [0.925, 0.975].
    """
    thr = np.asarray(thresholds, dtype=np.float32)
    return np.minimum(np.float32(margin), np.minimum(thr, 1.0 - thr) / 2).clip(0.0, None)


class Hysteresis:
    """On at ``p >= thr + m``, off at ``p < thr - m``, else keep the last state (``m`` clamped:
    ``hysteresis_margins``)."""

    def __init__(self, thresholds: np.ndarray, margin: float = 0.05):
        thr = np.asarray(thresholds, dtype=np.float32)
        m = hysteresis_margins(thr, margin)
        self.on = thr + m
        self.off = thr - m
        self.state = np.zeros_like(thr, dtype=bool)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        self.state = np.where(self.state, p >= self.off, p >= self.on)
        return self.state


class PerTrack:
    """Per-track state (``self._tracks``: track id -> a tuple whose last item is the time last seen),
    forgotten after ``forget_after_s`` unseen or when time goes back, and cleared by ``reset``."""

    forget_after_s: float
    _tracks: dict

    def forget_stale(self, t: float) -> None:
        stale = [k for k, entry in self._tracks.items() if t - entry[-1] > self.forget_after_s or t < entry[-1]]
        for k in stale:
            del self._tracks[k]

    def reset(self) -> None:
        self._tracks.clear()


class TrackSmoother(PerTrack):
    """Holds one filter and one hysteresis per track id; forgets tracks not seen for a while."""

    def __init__(self, thresholds: np.ndarray, enabled: bool = True, margin: float = 0.05,
                 forget_after_s: float = 2.0):
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.enabled = enabled
        self.margin = margin
        self.forget_after_s = forget_after_s
        self._tracks: dict[int, tuple[OneEuroFilter, Hysteresis, float]] = {}

    def __call__(self, track_id: int, probs: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Returns (smoothed probabilities, active mask) for one face."""
        if not self.enabled:
            return probs, probs >= self.thresholds
        entry = self._tracks.get(track_id)
        if entry is None:
            entry = (OneEuroFilter(), Hysteresis(self.thresholds, self.margin), t)
        filt, hyst, _ = entry
        smooth = filt(probs, t)
        self._tracks[track_id] = (filt, hyst, t)
        return smooth, hyst(smooth)


class ValueSmoother(PerTrack):
    """One Euro per track on a vector of values without a decision (AU intensities), with the
    probabilities' filter settings: the speed is measured in units of ``scale`` (5 for the FACS
    0-5 scale), so an intensity and a probability moving alike are smoothed alike."""

    def __init__(self, enabled: bool = True, scale: float = 5.0, forget_after_s: float = 2.0):
        self.enabled, self.scale, self.forget_after_s = enabled, float(scale), forget_after_s
        self._tracks: dict[int, tuple[OneEuroFilter, float]] = {}

    def __call__(self, track_id: int, values: np.ndarray, t: float) -> np.ndarray:
        if not self.enabled:
            return values
        entry = self._tracks.get(track_id)
        filt = entry[0] if entry is not None else OneEuroFilter()
        out = filt(np.asarray(values, np.float32), t, 1.0 / self.scale)
        self._tracks[track_id] = (filt, t)
        return out


class LandmarkSmoother(PerTrack):
    """One Euro on each track's mesh (N x 3 frame pixels), MediaPipe's video-mode parameters.

    The speed that opens the filter is measured in face sizes per second (the mesh's box, mean of
    width and height), so a near and a far face are smoothed alike.
    """

    def __init__(self, forget_after_s: float = 2.0, min_cutoff: float = MESH_MIN_CUTOFF,
                 beta: float = MESH_BETA, d_cutoff: float = MESH_D_CUTOFF):
        self.forget_after_s = forget_after_s
        self._params = (min_cutoff, beta, d_cutoff)
        self._tracks: dict[int, tuple[OneEuroFilter, float]] = {}

    def __call__(self, track_id: int, landmarks: np.ndarray, t: float) -> np.ndarray:
        """The smoothed landmarks (a new float32 array; the input is not changed)."""
        entry = self._tracks.get(track_id)
        filt = entry[0] if entry is not None else OneEuroFilter(*self._params)
        xy = landmarks[:, :2]
        size = float((xy.max(0) - xy.min(0)).mean())
        out = filt(landmarks.astype(np.float32), t, 1.0 / size if size > 1e-6 else 1.0)
        self._tracks[track_id] = (filt, t)
        return out.astype(np.float32, copy=True)

