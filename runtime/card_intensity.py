"""The model card's optional ``output.intensity``: a second engine output with AU intensity 0-5.

```json
"output": {"kind": "prob",
           "intensity": {"aus": ["AU01", "AU12"], "name": "intensity", "range": [0, 5],
                         "label_kinds": {"AU01": ["synthetic"], "AU12": ["real", "synthetic"]}}}
```

``aus``: the AUs whose intensity the engine estimates, in the order of the output's columns (a
subset of the card's ``aus``: those with intensity labels in training); ``name``: the engine's
output tensor that holds them (one row per face); ``label_kinds``: per AU, the kinds of label
(real | silver | synthetic) its intensity was trained on; ``range``: the FACS scale, [0, 5]
(optional; the runtime clips to it); ``quant`` {scale, zero_point}: for an integer output whose
engine file does not carry its own quantisation (optional). A card without ``output.intensity``
declares none: the runtime then reports no intensity, never one derived from a probability.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtime.aus import au_name, au_number
from runtime.errors import CardError

KEYS = ("aus", "label_kinds", "name")
FACS_RANGE = (0.0, 5.0)
REEXPORT = "regenerate it with `python -m export`"


@dataclass(frozen=True)
class IntensityOutput:
    """The parsed ``output.intensity`` of a card."""

    aus: tuple[str, ...]
    name: str
    label_kinds: dict[str, tuple[str, ...]]
    range: tuple[float, float] = FACS_RANGE
    quant: tuple[float, int] | None = None


def _finite(v: Any) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:
        return False


def parse_intensity(raw: Any, card_aus: Sequence[str], kinds: Sequence[str], where: str) -> dict[str, Any]:
    """Validate ``output.intensity`` against the card's AUs; the section as it is written back.

    Raises:
        CardError: one line naming the card, the bad key and the fix.
    """
    key = "output.intensity"
    if not isinstance(raw, dict):
        raise CardError(f"{where}: {key} must be an object with {', '.join(KEYS)}, or absent")
    absent = [k for k in KEYS if k not in raw]
    if absent:
        raise CardError(f"{where}: '{key}' is missing {', '.join(absent)} (it needs {', '.join(KEYS)}); {REEXPORT}")
    aus = raw["aus"]
    if not isinstance(aus, list) or not aus or not all(isinstance(a, str) for a in aus):
        raise CardError(f"{where}: {key}.aus must be a non-empty list of AU names (the columns of the output)")
    try:
        names = [au_name(au_number(a)) for a in aus]
    except (ValueError, TypeError) as e:
        raise CardError(f"{where}: {key}.aus: {e}") from None
    if len(set(names)) != len(names) or not set(names) <= set(card_aus):
        raise CardError(f"{where}: {key}.aus {names} must be distinct AUs of the card's aus {list(card_aus)}; "
                        f"{REEXPORT}")
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise CardError(f"{where}: {key}.name must be the engine's output tensor name, got {raw['name']!r}")
    lk = raw["label_kinds"]
    try:
        lk_aus = sorted(au_name(au_number(a)) for a in lk) if isinstance(lk, dict) else None
    except (ValueError, TypeError):
        lk_aus = None
    if lk_aus != sorted(names):
        raise CardError(f"{where}: {key}.label_kinds must give, for every AU of {key}.aus, the label kinds its "
                        f"intensity was trained on (e.g. {{\"AU12\": [\"synthetic\"]}})")
    for a, v in lk.items():
        if not isinstance(v, list) or not v or any(k not in kinds for k in v):
            raise CardError(f"{where}: {key}.label_kinds[{a!r}] must be a non-empty list of {tuple(kinds)}, got {v!r}")
    out = {**raw, "aus": names, "label_kinds": {au_name(au_number(a)): list(v) for a, v in lk.items()}}
    rng = raw.get("range", list(FACS_RANGE))
    if not (isinstance(rng, list) and len(rng) == 2 and all(_finite(v) for v in rng) and rng[0] < rng[1]):
        raise CardError(f"{where}: {key}.range must be [low, high] (the FACS scale: [0, 5]), got {rng!r}")
    q = raw.get("quant")
    if q is not None and not (isinstance(q, dict) and _finite(q.get("scale")) and q["scale"] > 0
                              and _finite(q.get("zero_point")) and float(q["zero_point"]).is_integer()):
        raise CardError(f"{where}: {key}.quant must be {{\"scale\": s > 0, \"zero_point\": integer}} or null")
    return out


def intensity_output(output: dict[str, Any]) -> IntensityOutput | None:
    """The card's ``output`` section's intensity output (already validated), or None."""
    raw = output.get("intensity")
    if not raw:
        return None
    q = raw.get("quant")
    return IntensityOutput(aus=tuple(raw["aus"]), name=str(raw["name"]),
                           label_kinds={a: tuple(v) for a, v in raw["label_kinds"].items()},
                           range=tuple(float(v) for v in raw.get("range", FACS_RANGE)),
                           quant=(float(q["scale"]), int(q["zero_point"])) if q else None)
