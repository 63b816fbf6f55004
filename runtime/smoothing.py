"""Per-track temporal smoothing of AU probabilities and thresholding with hysteresis.

AU probabilities flicker frame to frame; robots acting on ``au_active`` need stable decisions.
The One Euro filter (Casiez et al., CHI 2012) smooths strongly when a value is steady and follows
quickly when it moves; hysteresis keeps an AU from toggling around its threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class OneEuroFilter:
    """Vectorised One Euro filter over the AU vector of one track."""

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

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x
        dt = t - self._t
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x


class Hysteresis:
    """On at ``p >= thr + margin``, off at ``p < thr - margin``, else keep the last state."""

    def __init__(self, thresholds: np.ndarray, margin: float = 0.05):
        self.on = thresholds + margin
        self.off = thresholds - margin
        self.state = np.zeros_like(thresholds, dtype=bool)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        self.state = np.where(self.state, p >= self.off, p >= self.on)
        return self.state


class TrackSmoother:
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

    def forget_stale(self, t: float) -> None:
        stale = [k for k, (_, _, last) in self._tracks.items() if t - last > self.forget_after_s or t < last]
        for k in stale:
            del self._tracks[k]

    def reset(self) -> None:
        self._tracks.clear()
