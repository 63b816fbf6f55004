"""Per-person baselines of AU outputs (identity bias): the one home for both kinds.

People differ in their resting face: deep nasolabial folds read as AU10/AU12, low brows as AU04, and
such a person's AU stays "on" while they do nothing. OpenFace 2 (Baltrusaitis et al., FG 2018) removes
this per person: its dynamic models subtract a person's running median of the appearance features,
and its post-processing shifts each AU's predictions so the person's low values sit at zero. Here,
on the engine's outputs per track (video and live mode; image mode never), before smoothing:

- ``PersonBaseline`` (on by default): a running LOW quantile ``q`` of each AU's logit over the track
  (``QUANTILE``, a fixed logit histogram that forgets with ``HALF_LIFE_S``: bounded memory), compared
  with ``r``, the same quantile expected of a neutral face: the card's ``person_baseline.reference``
  when it has one, else ``logit(threshold) - MARGIN`` (a resting face sits at least ``MARGIN`` logits
  below the decision). Only the excess is removed, ``p' = sigmoid(logit(p) - s)`` with
  ``s = clip(q - r, 0, MAX_SHIFT)``, so a typical face (``q <= r``) is left exactly as it was. No
  shift before ``WARMUP_S`` seconds and ``WARMUP_FRAMES`` frames of the track, then it fades in over
  ``RAMP_S``. It does not assume the first seconds are neutral: a person who smiles from the first
  frame and relaxes within the ramp never gets much of a shift (the relaxed frames soon make up the
  low quantile), and one who never relaxes loses at most ``MAX_SHIFT`` logits (a clear smile stays
  on). A face that never changes cannot tell its bias from a held expression: the slow ramp and the
  cap are that trade-off (measured in docs/person_baseline.md).
- ``NeutralCalibration`` (opt-in, ``calibrate_neutral_s`` / ``--calibrate-neutral``): the user says the
  first seconds ARE neutral; the per-AU median of that window is subtracted from the probabilities,
  ``p' = clip(p - median, 0, 1)``. It replaces ``PersonBaseline`` when asked for.

Both forget a track not seen for ``forget_after_s`` (as the smoothers do; a scene cut gives new track
ids, ``runtime.face.tracker``), hold at most ``max_tracks`` tracks, and start afresh on ``reset()``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import CardError

if TYPE_CHECKING:
    from runtime.card import ModelCard

QUANTILE = 0.10  # the track's "resting" level: the value 10 % of its (recent) frames stay below
MARGIN = 2.0  # logits: default reference = decision logit - MARGIN (p 0.12 at a 0.5 decision)
MAX_SHIFT = 2.0  # logits: the most a baseline may remove (a smile 2+ logits over the decision stays on)
WARMUP_S, WARMUP_FRAMES, RAMP_S = 2.0, 10, 8.0  # full shift after 10 s: a held smile rarely lasts that long
HALF_LIFE_S = 60.0  # the histogram's memory: a minute-old frame counts half
REFRESH_FRAMES = 4  # the quantile moves slowly: read it every 4th frame (its cumsum is the cost)
LOGIT_RANGE, BIN_WIDTH = 12.0, 0.1  # histogram over [-12, 12] logits (INT8 logit engines span about that)
FORGET_AFTER_S = 2.0  # as runtime.smoothing's trackers
MAX_TRACKS = 256  # as many as --max-faces allows; beyond, the longest-unseen track is dropped
CARD_KEY = "person_baseline"  # optional card section: {"quantile": q, "reference": {AU: logit}}
_EPS = 1e-6


# np.minimum/np.maximum rather than np.clip here: np.clip's Python wrapper costs more than the
# arithmetic on 15 values, and this runs for every face of every frame.
def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with p kept in [1e-6, 1 - 1e-6] (so |logit| <= 13.8)."""
    p = np.minimum(np.maximum(np.asarray(p, np.float64), _EPS), 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)); exp overflows to inf for z < -709, which gives the right 0."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


class LogitHistogram:
    """A streaming quantile per AU: counts in fixed logit bins that decay with time (bounded memory:
    ``n_aus x bins`` floats whatever the track's length).

    The decay is lazy: a frame at time ``t`` adds ``2 ** ((t - t0) / half_life)`` instead of every count
    being halved each half-life (the same proportions, no pass over the array per frame); the counts
    are brought back to scale when that weight grows large.
    """

    RESCALE_AT = 1e12

    def __init__(self, n_aus: int, half_life_s: float = HALF_LIFE_S, limit: float = LOGIT_RANGE,
                 width: float = BIN_WIDTH):
        self.lo, self.width = -float(limit), float(width)
        self.bins = int(round(2 * limit / width))
        self.counts = np.zeros((n_aus, self.bins), np.float64)
        self._rows = np.arange(n_aus) * self.bins  # flat index of each AU's first bin
        self.half_life_s = float(half_life_s)
        self._t0: float | None = None
        self._weight = 1.0

    def add(self, z: np.ndarray, t: float) -> None:
        """Count one frame's logits ``z`` (one per AU) at time ``t`` (older frames weigh less)."""
        if self._t0 is None:
            self._t0 = t
        elif math.isfinite(self.half_life_s):
            self._weight = 2.0 ** (max(t - self._t0, 0.0) / self.half_life_s)
            if self._weight > self.RESCALE_AT:
                self.counts /= self._weight
                self._t0, self._weight = t, 1.0
        idx = np.minimum(np.maximum(((np.asarray(z, np.float64) - self.lo) / self.width).astype(np.int64), 0),
                         self.bins - 1)
        self.counts.ravel()[self._rows + idx] += self._weight

    def mass(self) -> float:
        """The decayed number of frames counted per AU (a frame now counts 1)."""
        return float(self.counts[0].sum() / self._weight) if len(self.counts) else 0.0

    def quantile(self, q: float) -> np.ndarray:
        """Each AU's ``q`` quantile (linear within its bin)."""
        cum = np.cumsum(self.counts, axis=1)
        target = q * cum[:, -1]
        k = np.minimum((cum < target[:, None]).sum(axis=1), self.bins - 1)  # first bin reaching the target
        flat = self._rows + k
        below = cum.ravel()[flat] - self.counts.ravel()[flat]
        frac = np.minimum(np.maximum((target - below) / np.maximum(self.counts.ravel()[flat], 1e-300), 0.0), 1.0)
        return self.lo + (k + frac) * self.width


class _PerTrack:
    """What both baselines share: per-track state, last-seen times, forgetting and the track cap."""

    def __init__(self, forget_after_s: float, max_tracks: int):
        self.forget_after_s = float(forget_after_s)
        self.max_tracks = int(max_tracks)
        self._state: dict[int, Any] = {}
        self._last: dict[int, float] = {}

    def _seen(self, track_id: int, t: float) -> None:
        self._last[track_id] = t
        if len(self._last) > self.max_tracks:  # the longest-unseen goes first: memory stays bounded
            oldest = min(self._last, key=self._last.__getitem__)
            self._drop(oldest)

    def _drop(self, track_id: int) -> None:
        self._state.pop(track_id, None)
        self._last.pop(track_id, None)

    @property
    def tracks(self) -> int:
        """Tracks held now."""
        return len(self._state)

    def forget_stale(self, t: float) -> None:
        for k in [k for k, last in self._last.items() if t - last > self.forget_after_s or t < last]:
            self._drop(k)

    def reset(self) -> None:
        self._state.clear()
        self._last.clear()


class _Track:
    __slots__ = ("hist", "start", "frames", "low", "low_frame")

    def __init__(self, hist: LogitHistogram, start: float):
        self.hist, self.start, self.frames = hist, start, 0
        self.low: np.ndarray | None = None  # the low quantile, refreshed every REFRESH_FRAMES frames
        self.low_frame = 0


class PersonBaseline(_PerTrack):
    """Running low-quantile baseline per track, in logit space (see the module docstring).

    Args:
        thresholds: each AU's decision probability (the card's), in the engine's AU order.
        reference: each AU's expected low quantile (logit) for a neutral face; ``None``: from
            ``thresholds`` and ``margin``.
        quantile, margin, max_shift, warmup_s, warmup_frames, ramp_s, half_life_s: as the constants.

    Raises:
        ValueError: a value out of range, naming it.
    """

    enabled = True

    def __init__(self, thresholds: np.ndarray, reference: np.ndarray | None = None, quantile: float = QUANTILE,
                 margin: float = MARGIN, max_shift: float = MAX_SHIFT, warmup_s: float = WARMUP_S,
                 warmup_frames: int = WARMUP_FRAMES, ramp_s: float = RAMP_S, half_life_s: float = HALF_LIFE_S,
                 forget_after_s: float = FORGET_AFTER_S, max_tracks: int = MAX_TRACKS):
        super().__init__(forget_after_s, max_tracks)
        checks = {"quantile": (quantile, 0.0 < quantile < 1.0), "margin": (margin, margin >= 0.0),
                  "max_shift": (max_shift, max_shift >= 0.0), "warmup_s": (warmup_s, warmup_s >= 0.0),
                  "warmup_frames": (warmup_frames, warmup_frames >= 1), "ramp_s": (ramp_s, ramp_s >= 0.0),
                  "half_life_s": (half_life_s, half_life_s > 0.0), "max_tracks": (max_tracks, max_tracks >= 1)}
        for name, (value, ok) in checks.items():  # half_life_s may be inf: never forget
            if not ok or not (math.isfinite(value) or name == "half_life_s"):
                raise ValueError(f"person baseline: {name} out of range, got {value!r}")
        thr = np.asarray(thresholds, np.float64)
        self.reference = (logit(thr) - margin) if reference is None else np.asarray(reference, np.float64)
        if self.reference.shape != thr.shape:
            raise ValueError(f"person baseline: {len(self.reference)} reference values for {len(thr)} AUs")
        self.quantile, self.max_shift = float(quantile), float(max_shift)
        self.warmup_s, self.warmup_frames, self.ramp_s = float(warmup_s), int(warmup_frames), float(ramp_s)
        self.half_life_s = float(half_life_s)

    def __call__(self, track_id: int, probs: np.ndarray, t: float) -> np.ndarray:
        """One face's probabilities at time ``t`` with its track's excess over the reference removed
        (unchanged, the same array, while no AU is shifted)."""
        z = logit(probs)
        track = self._state.get(track_id)
        if track is None:
            track = self._state[track_id] = _Track(LogitHistogram(len(z), self.half_life_s), t)
        self._seen(track_id, t)
        track.hist.add(z, t)
        track.frames += 1
        shift = self._shift(track, t)
        if shift is None or not shift.any():
            return probs
        out = np.where(shift > 0, sigmoid(z - shift), probs)
        return out.astype(np.float32)

    def _shift(self, track: _Track, t: float) -> np.ndarray | None:
        age = t - track.start
        if track.frames < self.warmup_frames or age < self.warmup_s:
            return None
        ramp = 1.0 if self.ramp_s == 0 else min(1.0, (age - self.warmup_s) / self.ramp_s)
        if track.low is None or track.frames - track.low_frame >= REFRESH_FRAMES:
            track.low, track.low_frame = track.hist.quantile(self.quantile), track.frames
        return np.minimum(np.maximum(track.low - self.reference, 0.0), self.max_shift) * ramp

    def baseline(self, track_id: int) -> np.ndarray | None:
        """The track's running low quantile (logits), or None before it has any frame."""
        track = self._state.get(track_id)
        return None if track is None else track.hist.quantile(self.quantile)

    def shift(self, track_id: int, t: float) -> np.ndarray | None:
        """The logit shift the track gets at time ``t`` (None during warm-up or for an unknown track)."""
        track = self._state.get(track_id)
        return None if track is None else self._shift(track, t)


class NeutralCalibration(_PerTrack):
    """Per-track baselines from the first ``seconds`` of each track (track time, not wall time): the
    window's per-AU median is subtracted from the probabilities afterwards (passed through during it).

    Args:
        seconds: length of the calibration window; ``0`` disables calibration.
        forget_after_s: a track not seen for this long is forgotten (a new window if it returns).

    Raises:
        ValueError: a negative ``seconds``.
    """

    def __init__(self, seconds: float, forget_after_s: float = FORGET_AFTER_S, max_tracks: int = MAX_TRACKS):
        if not seconds >= 0.0:
            raise ValueError(f"calibrate_neutral_s must be >= 0 seconds, got {seconds!r}")
        super().__init__(forget_after_s, max_tracks)
        self.seconds = float(seconds)

    @property
    def enabled(self) -> bool:
        return self.seconds > 0.0

    def __call__(self, track_id: int, probs: np.ndarray, t: float) -> np.ndarray:
        """The calibrated probabilities of one face at time ``t``."""
        if not self.enabled:
            return probs
        self._seen(track_id, t)
        state = self._state.setdefault(track_id, (t, []))  # (start, window samples) or the baseline
        if isinstance(state, tuple):
            start, samples = state
            if t - start < self.seconds:
                samples.append(np.asarray(probs, np.float32).copy())
                return probs
            state = self._state[track_id] = np.median(np.stack(samples or [np.asarray(probs, np.float32)]),
                                                      axis=0).astype(np.float32)
        return np.clip(probs - state, 0.0, 1.0).astype(np.float32)

    def baseline(self, track_id: int) -> np.ndarray | None:
        """The track's baseline, or None while it is still being measured."""
        state = self._state.get(track_id)
        return None if state is None or isinstance(state, tuple) else state


def card_reference(card: ModelCard) -> tuple[float, np.ndarray | None]:
    """The card's ``person_baseline`` section: (quantile, reference logits in the card's AU order, the
    default ``logit(threshold) - MARGIN`` for AUs it leaves out), or ``(QUANTILE, None)`` without one.

    Raises:
        CardError: a malformed section, naming the key and the fix.
    """
    section = card.extra.get(CARD_KEY)
    if section is None:
        return QUANTILE, None
    where = f"model card: {CARD_KEY}"
    if not isinstance(section, dict) or not isinstance(section.get("reference"), dict):
        raise CardError(f"{where} must be {{\"quantile\": q, \"reference\": {{AU: logit}}}}; fix or remove it")
    q = section.get("quantile", QUANTILE)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
        raise CardError(f"{where}.quantile must be a number in (0, 1), got {q!r}; fix or remove it")
    ref = logit(np.array([card.threshold(a) for a in card.aus])) - MARGIN
    for au, v in section["reference"].items():
        if au not in card.aus:
            raise CardError(f"{where}.reference has {au!r}, which the engine does not output ({', '.join(card.aus)})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > LOGIT_RANGE:
            raise CardError(f"{where}.reference[{au!r}] must be a logit in [-{LOGIT_RANGE:g}, {LOGIT_RANGE:g}], "
                            f"got {v!r}")
        ref[card.aus.index(au)] = float(v)
    return float(q), ref


def check_baseline_options(enabled: bool, calibrate_neutral_s: float) -> None:
    """Refuse a negative window, or a window with the baselines turned off (they contradict).

    Raises:
        ValueError: naming the value and the fix.
    """
    NeutralCalibration(calibrate_neutral_s)  # validates the value
    if calibrate_neutral_s > 0 and not enabled:
        raise ValueError(f"calibrate_neutral_s={calibrate_neutral_s} is a per-person baseline, and "
                         "person_baseline=False turns them off: drop one of the two")


def person_baseline(card: ModelCard, enabled: bool = True,
                    calibrate_neutral_s: float = 0.0) -> PersonBaseline | NeutralCalibration:
    """The baseline ``AUDetector`` applies in video mode: the explicit first-seconds window when
    ``calibrate_neutral_s > 0``, else the running one when ``enabled``, else none (a disabled window).

    Raises:
        ValueError: ``calibrate_neutral_s`` negative, or given with ``enabled=False``.
        CardError: a malformed ``person_baseline`` card section.
    """
    check_baseline_options(enabled, calibrate_neutral_s)
    window = NeutralCalibration(calibrate_neutral_s)
    if window.enabled or not enabled:
        return window
    quantile, reference = card_reference(card)
    return PersonBaseline(np.array([card.threshold(a) for a in card.aus]), reference, quantile=quantile)
