"""What a v3 sample shows: the AU mix, its sides, expression-free motion, and the expression label.

Kinds (``ICTOptions`` gives their shares): the base photo untouched; a negative (the face moves
without any AU: a glance, a pucker (AU18), lips rolled in (AU28) or funnelled (AU22), the jaw or
lips pushed sideways, a puffed cheek, or a trace (A-level) AU that FACS scores absent; none of them
labelled, the render's head pose does the rest); a prototype variant (``facs.V3_VARIANTS``, each
AU at C..E, one side weaker in ``p_asymmetric`` of them); a single AU at A..E (unilateral in
``p_unilateral`` of them, asymmetric in ``p_asymmetric`` of the rest). A smiling base draws only
what does not undo its smile (no AU15 / sadness) and no negatives (its AU12 is present).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from train.data.ict.facs import FACS_BANDS, PRESENT_AT, SIDED_AUS, V2_AUS, V3_VARIANTS, expression_index
from train.data.ict.options import ICTOptions

SINGLE_AUS: tuple[int, ...] = V2_AUS
SMILING_SINGLE_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 25, 26)
SMILING_VARIANTS: tuple[str, ...] = ("smile", "laugh", "surprise")
# Shapes that move the face without a labelled AU: (shape names moved together, max weight).
NEGATIVE_MOTIONS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("eyeLookUp_L", "eyeLookUp_R"), 0.8), (("eyeLookDown_L", "eyeLookDown_R"), 0.8),
    (("eyeLookOut_L", "eyeLookIn_R"), 0.9), (("eyeLookIn_L", "eyeLookOut_R"), 0.9),
    (("mouthPucker",), 0.7), (("mouthFunnel",), 0.5), (("mouthRollLower",), 0.6), (("mouthRollUpper",), 0.5),
    (("mouthLeft",), 0.5), (("mouthRight",), 0.5), (("jawLeft",), 0.6), (("jawRight",), 0.6),
    (("cheekPuff_L", "cheekPuff_R"), 0.7),
)
TRACE = (0.04, PRESENT_AT - 0.06)  # a trace AU weight: visible to nobody, scored absent


@dataclass
class Mix:
    """One v3 sample's content."""

    weights: dict[int, float] = field(default_factory=dict)
    sides: dict[int, tuple[float, float]] = field(default_factory=dict)
    motion: dict[str, float] = field(default_factory=dict)
    expression: int = -1
    kind: str = "single"   # neutral | negative | prototype | single | unilateral


def _band(rng: np.random.Generator, lo: str, hi: str) -> float:
    return float(rng.uniform(FACS_BANDS[lo][0], FACS_BANDS[hi][1]))


def _weaker_side(rng: np.random.Generator, lo: float) -> tuple[float, float]:
    k = float(rng.uniform(lo, 0.8))
    return (1.0, k) if rng.random() < 0.5 else (k, 1.0)


def _negative(rng: np.random.Generator) -> Mix:
    mix = Mix(kind="negative", expression=-1)
    for _ in range(int(rng.integers(1, 3))):
        shapes, top = NEGATIVE_MOTIONS[int(rng.integers(len(NEGATIVE_MOTIONS)))]
        w = float(rng.uniform(0.15, top))
        for s in shapes:
            mix.motion[s] = max(mix.motion.get(s, 0.0), w)
    if rng.random() < 0.35:
        mix.weights[int(SINGLE_AUS[int(rng.integers(len(SINGLE_AUS)))])] = float(rng.uniform(*TRACE))
    return mix


def draw_v3(rng: np.random.Generator, opts: ICTOptions, smiling: bool) -> Mix:
    """A random v3 mix for a neutral (``smiling`` False) or a smiling base photo."""
    u = rng.random()
    if u < opts.p_neutral:
        return Mix(kind="neutral", expression=expression_index("happiness" if smiling else "neutral"))
    u -= opts.p_neutral
    if u < opts.p_negative:
        if smiling:
            return Mix(kind="neutral", expression=expression_index("happiness"))
        return _negative(rng)
    u -= opts.p_negative
    if u < opts.p_prototype:
        names = SMILING_VARIANTS if smiling else tuple(V3_VARIANTS)
        name = names[int(rng.integers(len(names)))]
        expression, always, optional = V3_VARIANTS[name]
        aus = list(always) + [a for a in optional if rng.random() < 0.5]
        weights = {a: (1.0 if a == 43 else _band(rng, "C", "E")) for a in aus}
        if name in ("laugh", "smile"):
            weights[12] = _band(rng, "D", "E")  # the clip's laugh: a full smile
        sides = {}
        if rng.random() < opts.p_asymmetric:
            lr = _weaker_side(rng, 0.45)
            sides = {a: lr for a in aus if a in SIDED_AUS}
        label = -1 if smiling and name == "surprise" else expression_index(expression)  # smile + brows: no prototype
        return Mix(weights, sides, {}, label, "prototype")
    pool = SMILING_SINGLE_AUS if smiling else SINGLE_AUS
    au = int(pool[int(rng.integers(len(pool)))])
    if au in SIDED_AUS and rng.random() < opts.p_unilateral:  # one side only, at B..E: present
        side = (1.0, 0.0) if rng.random() < 0.5 else (0.0, 1.0)
        return Mix({au: _band(rng, "B", "E")}, {au: side}, {}, -1, "unilateral")
    letter = "ABCDE"[int(rng.integers(5))]
    w = float(rng.uniform(*FACS_BANDS[letter]))
    sides = {au: _weaker_side(rng, 0.3)} if au in SIDED_AUS and rng.random() < opts.p_asymmetric else {}
    return Mix({au: w}, sides, {}, -1, "single")
