"""Per-AU probability calibration from the model card: ``p' = sigmoid(a * logit(p) + b)``.

Why: a network's raw score means a different thing for every AU (one AU's decision sits at 0.385,
another's at 0.999), so a user reading ``au_prob`` cannot tell on from off. The card's
``calibration`` moves every AU's decision point to 0.5 and makes the value an honest probability
around it (the scale ``a`` is fitted on validation data by ``train.calibration``); the engine base
applies it to every backend right after the output is read, so nothing downstream needs per-AU
knowledge. ``a > 0``: the map is monotonic, rankings (ROC-AUC) are unchanged, and with
``b = -a * logit(t)`` the decision ``p' >= 0.5`` is exactly ``p >= t``.

Card form (``calibration`` at the card's top level; its ``thresholds`` are then all 0.5)::

    {"method": "...", "fitted_on": "validation: <data>", "aus": {"AU01": {"a": 1.0, "b": -5.29}, ...}}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.aus import au_name, au_number
from runtime.errors import CardError

# Ranges (inclusive) a card's numbers may take: a scale beyond them turns every AU into a step or a
# constant, a shift beyond every logit a float32 or int8 engine can give (|logit| < 20) does the same.
SCALE_RANGE = (0.01, 100.0)
SHIFT_RANGE = (-100.0, 100.0)
DECISION = 0.5  # the decision point of every calibrated AU
_BELOW_HALF = np.nextafter(np.float32(DECISION), np.float32(0.0))


@dataclass(frozen=True)
class Calibration:
    """The card's per-AU calibration, in the engine's output order."""

    method: str
    fitted_on: str
    a: np.ndarray  # A scales (> 0)
    b: np.ndarray  # A shifts

    def to_dict(self, aus: list[str]) -> dict[str, Any]:
        return {"method": self.method, "fitted_on": self.fitted_on,
                "aus": {au: {"a": float(a), "b": float(b)} for au, a, b in zip(aus, self.a, self.b)}}

    def thresholds(self) -> np.ndarray:
        """The raw probability each AU's 0.5 stands for: ``sigmoid(-b / a)``."""
        return 1.0 / (1.0 + np.exp(self.b / self.a))

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """N x A raw logits (float64 for full precision; +-inf allowed) -> calibrated float32 probabilities.

        A value lands at or above 0.5 exactly when ``a * z + b >= 0``: float32 rounding would put
        sigmoid of a tiny negative number at 0.5, so those are held just below it.
        """
        x = np.asarray(logits, np.float64) * self.a + self.b
        with np.errstate(over="ignore"):
            p = (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
        return np.where(x < 0, np.minimum(p, _BELOW_HALF), np.maximum(p, np.float32(DECISION)))


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) in float64; 0 and 1 give -inf and +inf (the calibration keeps them there)."""
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def shift_for(threshold: float, scale: float = 1.0) -> float:
    """The shift ``b`` that maps the raw decision threshold ``t`` to 0.5 under scale ``a``."""
    return float(-scale * logit(np.float64(threshold)))


def _number_in(v: Any, lo: float, hi: float) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi
    except OverflowError:  # an int too large for a float
        return False


def _short(v: Any) -> str:
    try:
        text = repr(v)
    except (ValueError, RecursionError):
        text = f"<{type(v).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def parse(raw: Any, aus: list[str], thresholds: dict[str, float], where: str) -> Calibration:
    """Validate a card's ``calibration`` section against its AUs and thresholds.

    Raises:
        CardError: one line naming the card, the bad key or value, and the fix.
    """
    fix = "re-export the model, or remove 'calibration' and keep per-AU thresholds"
    if not isinstance(raw, dict) or not isinstance(raw.get("aus"), dict):
        raise CardError(f"{where}: calibration must be an object with 'method', 'fitted_on' and 'aus' "
                        f"{{AU: {{\"a\": scale, \"b\": shift}}}}, got {_short(raw)}; {fix}")
    for key in ("method", "fitted_on"):
        if not isinstance(raw.get(key), str):
            raise CardError(f"{where}: calibration.{key} must be a string (how / on what data it was fitted), "
                            f"got {_short(raw.get(key))}")
    per_au: dict[str, tuple[float, float]] = {}
    for key, ab in raw["aus"].items():
        try:
            name = au_name(au_number(key))
        except (ValueError, TypeError):
            raise CardError(f"{where}: calibration.aus has {_short(key)}, which is not an AU name (e.g. 'AU12')") \
                from None
        if name not in aus:
            raise CardError(f"{where}: calibration for an AU the engine does not output: {name!r} (it outputs "
                            f"{', '.join(aus)}); {fix}")
        if not isinstance(ab, dict) or set(ab) != {"a", "b"}:
            raise CardError(f"{where}: calibration.aus[{name!r}] must be {{\"a\": scale, \"b\": shift}}, got "
                            f"{_short(ab)}")
        if not _number_in(ab["a"], *SCALE_RANGE):
            raise CardError(f"{where}: calibration.aus[{name!r}].a must be a scale in {list(SCALE_RANGE)} (> 0 keeps "
                            f"the AU's ranking), got {_short(ab['a'])}; {fix}")
        if not _number_in(ab["b"], *SHIFT_RANGE):
            raise CardError(f"{where}: calibration.aus[{name!r}].b must be a shift in {list(SHIFT_RANGE)}, got "
                            f"{_short(ab['b'])}; {fix}")
        per_au[name] = (float(ab["a"]), float(ab["b"]))
    missing = [a for a in aus if a not in per_au]
    if missing:
        raise CardError(f"{where}: calibration.aus lacks {', '.join(missing)} (a calibrated card covers every AU it "
                        f"outputs; an AU left as it is: {{\"a\": 1, \"b\": 0}}); {fix}")
    off = [a for a, t in thresholds.items() if t != DECISION]
    if off:
        raise CardError(f"{where}: a calibrated card decides every AU at 0.5, but thresholds[{off[0]!r}] is "
                        f"{thresholds[off[0]]}; set its thresholds to 0.5 (move the decision with calibration.b)")
    return Calibration(method=raw["method"], fitted_on=raw["fitted_on"],
                       a=np.array([per_au[a][0] for a in aus], np.float64),
                       b=np.array([per_au[a][1] for a in aus], np.float64))


def from_thresholds(thresholds: dict[str, float], aus: list[str], method: str, fitted_on: str,
                    scales: dict[str, float] | None = None) -> Calibration:
    """The calibration that maps each AU's raw threshold to 0.5 (``scales``: per-AU ``a``, default 1).

    Raises:
        ValueError: a threshold not strictly between 0 and 1 (no finite shift maps it to 0.5).
    """
    bad = {au: t for au, t in thresholds.items() if not 0.0 < t < 1.0}
    if bad:
        raise ValueError(f"thresholds {bad} cannot be calibrated: each must lie strictly between 0 and 1")
    a = np.array([float((scales or {}).get(au, 1.0)) for au in aus], np.float64)
    b = np.array([shift_for(thresholds.get(au, DECISION), s) for au, s in zip(aus, a)], np.float64)
    return Calibration(method=method, fitted_on=fitted_on, a=a, b=b)
