"""Per-person neutral calibration of AU probabilities (off by default).

People differ in their resting face: deep nasolabial folds read as AU10/AU12, low brows as AU04.
OpenFace 2 (Baltrusaitis et al., FG 2018) removes this per person: its dynamic AU models subtract
a person's running median of the appearance features, and its offline post-processing shifts
each AU's predictions so the person's low (neutral) values sit at zero. We do the same on the
outputs, online: for the first ``seconds`` of each track the raw AU probabilities are collected
and passed through unchanged; at the end of that window the per-AU median becomes the track's
baseline, and from then on ``p' = clip(p - baseline, 0, 1)`` (before smoothing and thresholds).
It assumes the person is mostly neutral during the window, as OpenFace does.
"""
from __future__ import annotations

import numpy as np


class NeutralCalibration:
    """Per-track baselines from the first ``seconds`` of each track (track time, not wall time).

    Args:
        seconds: length of the calibration window; ``0`` disables calibration.
        forget_after_s: a track not seen for this long is forgotten (a new window if it returns).

    Raises:
        ValueError: a negative ``seconds``.
    """

    def __init__(self, seconds: float, forget_after_s: float = 2.0):
        if not seconds >= 0.0:
            raise ValueError(f"calibrate_neutral_s must be >= 0 seconds, got {seconds!r}")
        self.seconds = float(seconds)
        self.forget_after_s = forget_after_s
        self._start: dict[int, float] = {}
        self._samples: dict[int, list[np.ndarray]] = {}
        self._baseline: dict[int, np.ndarray] = {}
        self._last: dict[int, float] = {}

    @property
    def enabled(self) -> bool:
        return self.seconds > 0.0

    def __call__(self, track_id: int, probs: np.ndarray, t: float) -> np.ndarray:
        """The calibrated probabilities of one face at time ``t``."""
        if not self.enabled:
            return probs
        self._last[track_id] = t
        base = self._baseline.get(track_id)
        if base is None:
            start = self._start.setdefault(track_id, t)
            if t - start < self.seconds:
                self._samples.setdefault(track_id, []).append(np.asarray(probs, np.float32).copy())
                return probs
            samples = self._samples.pop(track_id, None) or [np.asarray(probs, np.float32)]
            base = self._baseline[track_id] = np.median(np.stack(samples), axis=0).astype(np.float32)
        return np.clip(probs - base, 0.0, 1.0).astype(np.float32)

    def baseline(self, track_id: int) -> np.ndarray | None:
        """The track's baseline, or None while it is still being measured."""
        return self._baseline.get(track_id)

    def forget_stale(self, t: float) -> None:
        for k in [k for k, last in self._last.items() if t - last > self.forget_after_s or t < last]:
            for d in (self._start, self._samples, self._baseline, self._last):
                d.pop(k, None)

    def reset(self) -> None:
        for d in (self._start, self._samples, self._baseline, self._last):
            d.clear()
