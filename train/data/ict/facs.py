"""AU -> ICT shapes, FACS intensity letters -> weights, the label rule and the expression AU sets
(data and small pure functions only).

Shapes: the model's own FACS table (``facs_table.md`` beside the model) for every AU it lists.
Three AUs of the contract set have no shape of their own there, so they are composed here:

- AU26 (jaw drop) = 0.30 x ``jawOpen``: the model's ``jawOpen`` is AU27 (mouth stretch, chin
  about 3.5 cm down); a jaw drop lets the jaw fall with the muscles relaxed, roughly a third of
  that (about 1 cm at the chin). The lips part with it, so AU26 also labels AU25 (``IMPLIES``).
- AU25 (lips part) = 0.70 x ``mouthLowerDown`` (lower lip down 2-3 mm) + 0.25 x
  ``mouthUpperUp`` (upper lip up 1 mm) + 0.03 x ``jawOpen`` (the jaw follows a little):
  the lips separate with the jaw nearly still, as FACS describes AU25 without AU26.
- AU23 (lip tightener) = 0.70 x ``mouthPress`` (lips tightened against each other) + 0.20 x
  ``mouthPucker`` (mouth narrowed) + 0.15 x ``mouthRollUpper`` / ``mouthRollLower`` (the red of
  the lips thinned): FACS's narrowed, thinned, tense lips. ``mouthFunnel`` was tried first but it
  opens the lips at the centre (upper +0.6 cm, lower -0.9 cm), which AU23 does not.

- AU43 (eyes closed) = ``eyeBlink_L`` + ``eyeBlink_R``; rendered (v3) only fully closed, with the
  lids painted over the eye (``look``): a warp alone cannot hide the iris.

Weights and the FACS 0-5 scale: an AU weight ``w`` in [0, 1] multiplies the AU's shape mix; FACS
intensities A..E are the bands of width 0.2 centred on 0.2, 0.4, ..., 1.0 (``FACS_BANDS``;
``FACS_WEIGHT`` the centres). The cache stores ``intensity = 5 * w`` (``fac_intensity``), so the
letters land on the 0-5 scale of DISFA / BP4D as A = 1 (trace), B = 2 (slight), C = 3 (marked),
D = 4 (severe), E = 5 (maximum); 0 = not rendered. Synthetic v3 renders a weight through a
per-AU gain (``V3_GAIN``, shapes capped at ``V3_SHAPE_CAP`` instead of 1): ICT's sculpted shapes
at full weight are milder than the maximum a real face shows (a closed-lips smile, brows 1 cm),
so v3's E is the strongest real expression (the clip's laugh and grief), while the label keeps
the letter: the gain changes how an E looks, not which letter it is.
Labels: an AU is present (1) when ``w >= PRESENT_AT`` = 0.3, the lower edge of band B,
i.e. at intensity B or above, else absent (0): trace (A-level) renders count as absent, the
occurrence rule of DISFA (intensity >= 2), because a trace warp of a pixel or two is not
visible at the crop sizes the models see.

Sides: ``sides`` {AU: (left, right)} scales an AU's ``_L`` shapes (the subject's left, image right
of a frontal photo) and ``_R`` shapes separately (unsided shapes by the mean): (1, 0) is a
unilateral left action, (1, 0.5) an asymmetric one. FACS scores an asymmetric AU by its stronger
side, so the label and intensity stay those of ``w``.
"""
from __future__ import annotations

from collections.abc import Mapping

from runtime.aus import au_name

# AU -> ((shape, weight at AU weight 1), ...).
AU_SHAPES: dict[int, tuple[tuple[str, float], ...]] = {
    1: (("browInnerUp_L", 1.0), ("browInnerUp_R", 1.0)),
    2: (("browOuterUp_L", 1.0), ("browOuterUp_R", 1.0)),
    4: (("browDown_L", 1.0), ("browDown_R", 1.0)),
    5: (("eyeWide_L", 1.0), ("eyeWide_R", 1.0)),
    6: (("cheekSquint_L", 1.0), ("cheekSquint_R", 1.0)),
    7: (("eyeSquint_L", 1.0), ("eyeSquint_R", 1.0)),
    9: (("noseSneer_L", 1.0), ("noseSneer_R", 1.0)),
    10: (("mouthShrugUpper", 1.0),),
    12: (("mouthSmile_L", 1.0), ("mouthSmile_R", 1.0)),
    14: (("mouthDimple_L", 1.0), ("mouthDimple_R", 1.0)),
    15: (("mouthFrown_L", 1.0), ("mouthFrown_R", 1.0)),
    17: (("mouthShrugLower", 1.0),),
    20: (("mouthStretch_L", 1.0), ("mouthStretch_R", 1.0)),
    23: (("mouthPress_L", 0.70), ("mouthPress_R", 0.70), ("mouthPucker", 0.20),
         ("mouthRollUpper", 0.15), ("mouthRollLower", 0.15)),
    24: (("mouthPress_L", 1.0), ("mouthPress_R", 1.0)),
    25: (("mouthLowerDown_L", 0.70), ("mouthLowerDown_R", 0.70), ("mouthUpperUp_L", 0.25),
         ("mouthUpperUp_R", 0.25), ("jawOpen", 0.03)),
    26: (("jawOpen", 0.30),),
    43: (("eyeBlink_L", 1.0), ("eyeBlink_R", 1.0)),
}

# The AUs every render labels (the contract's 15 plus AU5 and AU20, which the fear, surprise and
# anger prototypes need).
CONTRACT_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)
LABELLED_AUS: tuple[int, ...] = tuple(sorted(AU_SHAPES))
# The single-AU pool of synthetic v2 (frozen: v2 renders stay what they were before AU43 came in).
V2_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
# AUs with a left and a right shape for every part that matters (unilateral renders).
SIDED_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 9, 12, 14, 15, 20)

# v3: gain on each AU's shape mix at weight 1 (1 = as sculpted), and the cap on a shape's summed
# weight. Chosen by looking at contact sheets next to the clip's grief and laugh frames
# (``python -m train.data.ict.sheet --version 3``).
V3_GAIN: dict[int, float] = {1: 1.7, 2: 1.4, 4: 1.6, 6: 1.6, 7: 1.3, 9: 1.3, 10: 1.3, 12: 1.5, 14: 1.4,
                             15: 1.7, 17: 1.4, 20: 1.4, 23: 1.2, 24: 1.3}
V3_SHAPE_CAP = 1.8
# v3: shapes an AU moves beside its own (FACS: the raised cheek pushes the lower lid up and bags
# it, narrowing the eye from below; ICT's cheekSquint alone moves the lid 0.04 IOD).
V3_EXTRA: dict[int, tuple[tuple[str, float], ...]] = {6: (("eyeSquint_L", 0.3), ("eyeSquint_R", 0.3))}

FACS_WEIGHT: dict[str, float] = {"A": 0.2, "B": 0.4, "C": 0.6, "D": 0.8, "E": 1.0}
FACS_BANDS: dict[str, tuple[float, float]] = {
    k: (round(max(v - 0.1, 0.1), 6), round(min(v + 0.1, 1.0), 6)) for k, v in FACS_WEIGHT.items()}
PRESENT_AT = FACS_BANDS["B"][0]  # 0.3

# Inner lips this far apart (beyond the neutral photo's gap), in inter-ocular distances (about
# 5 px on the London photos), show AU25 (lips part) whichever AU parted them.
LIPS_APART_IOD = 0.05

# An AU whose shape necessarily shows another AU labels that one too (at its own weight).
IMPLIES: dict[int, tuple[int, ...]] = {26: (25,)}

# Expression classes in the order of ``train.losses.mal.EXPRESSIONS`` (checked by the tests) and
# their prototypical AU sets (Ekman & Friesen's EMFACS prototypes as listed in the issue; the
# disgust set adds AU17 in half of its renders).
EXPRESSIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust")
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 10),
}
OPTIONAL_AUS: dict[str, tuple[int, ...]] = {"disgust": (17,)}
# v3 variants: (expression, AUs always, AUs each with probability 1/2). The laugh opens the mouth
# (the clip's frames 312-456: AU6+12+25+26); crying adds the chin raiser and closed eyes (frames
# 0-60: grief brows 1+4, lips pressed, chin up, eyes shut); surprise may keep the mouth closed.
V3_VARIANTS: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    "smile": ("happiness", (6, 12), (25,)),
    "laugh": ("happiness", (6, 12, 25, 26), ()),
    "sadness": ("sadness", (1, 4, 15), (17,)),
    "crying": ("sadness", (1, 4, 15, 17, 43), (24,)),
    "surprise": ("surprise", (1, 2, 5), (26,)),
    "fear": ("fear", (1, 2, 4, 5, 20), (26,)),
    "anger": ("anger", (4, 5, 7, 23), (24,)),
    "disgust": ("disgust", (9, 10), (17,)),
}


def check_weights(aus: Mapping[int, float]) -> dict[int, float]:
    """``{AU: weight}`` validated: known AUs (numbers), weights in [0, 1].

    Raises:
        ValueError: an AU without a shape mix, or a weight outside [0, 1] (names both).
    """
    out: dict[int, float] = {}
    for au, w in aus.items():
        if au not in AU_SHAPES:
            raise ValueError(f"no ICT shape mix for {au_name(int(au))}; have "
                             f"{', '.join(au_name(a) for a in LABELLED_AUS)}")
        if not 0.0 <= float(w) <= 1.0:
            raise ValueError(f"{au_name(au)} weight {w!r} not in [0, 1] (FACS A..E = 0.2..1.0)")
        out[int(au)] = float(w)
    return out


Sides = Mapping[int, tuple[float, float]]


def side_factor(shape: str, lr: tuple[float, float]) -> float:
    """How much of ``shape`` a (left, right) side pair keeps."""
    if shape.endswith("_L"):
        return lr[0]
    if shape.endswith("_R"):
        return lr[1]
    return (lr[0] + lr[1]) / 2


def shape_weights(aus: Mapping[int, float], sides: Sides | None = None, version: int = 2) -> dict[str, float]:
    """ICT shape name -> summed weight for AU weights (AUs that share a shape add up, capped at 1
    so no shape is pushed past what was sculpted; v3: ``V3_GAIN``, ``V3_EXTRA``, ``V3_SHAPE_CAP``).

    Args:
        sides: AU -> (left, right) factors in [0, 1] (absent: both 1).
        version: 2 (shapes as sculpted) or 3.
    """
    mix: dict[str, float] = {}
    sides = sides or {}
    for au, w in check_weights(aus).items():
        gain = V3_GAIN.get(au, 1.0) if version >= 3 else 1.0
        parts = AU_SHAPES[au] + (V3_EXTRA.get(au, ()) if version >= 3 else ())
        for shape, k in parts:
            f = side_factor(shape, sides[au]) if au in sides else 1.0
            mix[shape] = mix.get(shape, 0.0) + w * k * gain * f
    cap = V3_SHAPE_CAP if version >= 3 else 1.0
    return {s: min(v, cap) for s, v in mix.items() if v > 0}


def fac_intensity(w: float) -> float:
    """An AU weight on the FACS 0-5 scale (A = 1 ... E = 5; see the module docstring)."""
    return 5.0 * float(w)


def labels_for(aus: Mapping[int, float], lips_apart: bool = False) -> dict[str, int]:
    """Occurrence labels for every AU of ``LABELLED_AUS``: 1 where its weight (or that of an AU
    implying it) is >= ``PRESENT_AT``, else 0. ``lips_apart``: the render's inner lips separate by
    at least ``LIPS_APART_IOD`` (e.g. a strong AU10 lifting the upper lip off the lower one), which
    FACS codes as AU25 whatever caused it, so AU25 is then 1."""
    w = check_weights(aus)
    eff = {a: w.get(a, 0.0) for a in LABELLED_AUS}
    for src, implied in IMPLIES.items():
        for a in implied:
            eff[a] = max(eff[a], w.get(src, 0.0))
    out = {au_name(a): int(eff[a] >= PRESENT_AT) for a in LABELLED_AUS}
    if lips_apart:
        out[au_name(25)] = 1
    return out


def expression_index(name: str) -> int:
    """Index of an expression in ``EXPRESSIONS``.

    Raises:
        ValueError: unknown name.
    """
    if name not in EXPRESSIONS:
        raise ValueError(f"unknown expression {name!r}; known: {', '.join(EXPRESSIONS)}")
    return EXPRESSIONS.index(name)
