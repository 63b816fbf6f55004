"""Per-AU landmark displacement templates for the synthetic FACS warps (data only).

Each AU is written from its FACS appearance description as moves of named FRL189 landmark groups
(``train.data.tem.FRL189_GROUPS``; a name without ``_R``/``_L`` means both sides). Units and axes:

- Displacements are in inter-ocular distances (IOD, between the eye centres) at intensity 5 (FACS
  E, maximum); intensity ``i`` in [0, 5] scales them by ``i / 5`` (FACS A..E = 1..5), and several
  AUs add up.
- Axes are the face's own: ``up`` is towards the forehead, perpendicular to the eye line; ``out``
  is away from the facial midline, mirrored for the two sides (so one number serves both).
- ``profile`` weights a move along the mouth, by ``s`` = horizontal position from the mouth
  centre in half mouth-widths (0 at the centre, +-1 at the corners): ``uniform`` 1, ``lateral``
  |s|, ``medial`` 1-|s|, ``arc`` 1-s^2. Groups that contain midline points and move ``out``
  must use ``lateral`` so the centre point does not tear in two.
- ``lids`` = (upper lid up, lower lid up) as fractions of the local lid gap, because apertures
  differ more between people than IOD does: the upper lid crease follows the upper lid, and the
  iris/pupil points inside the eye are interpolated between the lids so closing never folds.
- ``wrinkles`` names shading patterns drawn by ``train.data.synth`` (optional).
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_INTENSITY = 5.0
# FACS-style occurrence: an AU is present from trace level A (intensity 1) upwards, as BP4D/GFT
# code occurrence. Renders below 1 exist (clip onsets/offsets) and are labelled absent.
OCCURRENCE_THRESHOLD = 1.0
PROFILES = ("uniform", "lateral", "medial", "arc")
# Total lid closure is capped just short of the full gap so eyelid triangles never invert.
MAX_LID_CLOSURE = 0.97


@dataclass(frozen=True)
class Move:
    group: str
    up: float = 0.0
    out: float = 0.0
    profile: str = "uniform"


@dataclass(frozen=True)
class AUTemplate:
    moves: tuple[Move, ...] = ()
    lids: tuple[float, float] = (0.0, 0.0)
    wrinkles: tuple[str, ...] = ()


_EYES_CLOSED = AUTemplate(
    moves=(Move("infraorbital", up=0.01),),
    lids=(-0.93, 0.04),
)

TEMPLATES: dict[int, AUTemplate] = {
    1: AUTemplate(moves=(  # inner brow raiser: inner brow up, oblique brow
        Move("brow_inner", up=0.13), Move("brow_mid", up=0.07), Move("brow_outer", up=0.02),
        Move("lid_crease", up=0.02),
    )),
    2: AUTemplate(moves=(  # outer brow raiser: lateral brow up, arched
        Move("brow_outer", up=0.13), Move("brow_mid", up=0.08), Move("brow_inner", up=0.02),
        Move("lid_crease", up=0.025),
    )),
    4: AUTemplate(moves=(  # brow lowerer: brows down and pulled together, lids pushed down
        Move("brow_inner", up=-0.065, out=-0.035), Move("brow_mid", up=-0.055, out=-0.025),
        Move("brow_outer", up=-0.03, out=-0.01), Move("lid_crease", up=-0.03, out=-0.01),
        Move("nose_bridge_high", up=-0.025, out=-0.01),
    ), lids=(-0.10, 0.0), wrinkles=("glabella",)),
    5: AUTemplate(moves=(  # upper lid raiser: more sclera above the iris
        Move("brow_inner", up=0.01), Move("brow_mid", up=0.01),
    ), lids=(0.32, -0.04)),
    6: AUTemplate(moves=(  # cheek raiser: cheeks up, eye narrowed from below, crow's feet
        Move("infraorbital", up=0.06), Move("cheek", up=0.05, out=0.01),
        Move("nasolabial_high", up=0.03), Move("nasolabial_low", up=0.02),
        Move("eye_corner_outer", up=0.015), Move("brow_outer", up=-0.02),
    ), lids=(0.0, 0.25), wrinkles=("crows_feet",)),
    7: AUTemplate(moves=(  # lid tightener: lids narrowed, lower lid raised and straightened
        Move("infraorbital", up=0.015),
    ), lids=(-0.12, 0.30)),
    9: AUTemplate(moves=(  # nose wrinkler: nose sides and upper lip up, inner brows down
        Move("alar", up=0.06, out=0.01), Move("nostril", up=0.05), Move("nose_base", up=0.035),
        Move("nose_bridge_low", up=0.03), Move("philtrum_high", up=0.04),
        Move("philtrum_low", up=0.035), Move("upper_lip_outer", up=0.03),
        Move("upper_lip_inner", up=0.015), Move("nasolabial_high", up=0.04, out=0.005),
        Move("nasolabial_low", up=0.025), Move("infraorbital", up=0.03), Move("cheek", up=0.02),
        Move("brow_inner", up=-0.05, out=-0.02), Move("brow_mid", up=-0.02),
        Move("lid_crease", up=-0.01),
    ), lids=(0.0, 0.15), wrinkles=("nose_bridge",)),
    10: AUTemplate(moves=(  # upper lip raiser: upper lip up (lips part at the centre), furrow deepened
        Move("upper_lip_outer", up=0.06), Move("upper_lip_inner", up=0.05),
        Move("philtrum_low", up=0.05), Move("philtrum_high", up=0.02),
        Move("nasolabial_low", up=0.035, out=0.01), Move("nasolabial_high", up=0.02),
        Move("alar", up=0.02), Move("nostril", up=0.02), Move("mouth_corner", up=0.02),
    ), wrinkles=("nasolabial",)),
    12: AUTemplate(moves=(  # lip corner puller: corners up and out, cheeks lifted
        Move("mouth_corner", up=0.12, out=0.08),
        Move("upper_lip_outer", up=0.065, out=0.055, profile="lateral"),
        Move("upper_lip_inner", up=0.08, out=0.06, profile="lateral"),
        Move("lower_lip_inner", up=0.08, out=0.06, profile="lateral"),
        Move("lower_lip_outer", up=0.06, out=0.05, profile="lateral"),
        Move("labiomental", up=0.025, out=0.02, profile="lateral"),
        Move("nasolabial_low", up=0.05, out=0.03), Move("nasolabial_high", up=0.02),
        Move("cheek", up=0.04, out=0.012), Move("infraorbital", up=0.025),
    ), lids=(0.0, 0.08), wrinkles=("nasolabial",)),
    14: AUTemplate(moves=(  # dimpler: corners pulled in and tightened, dimple beside them
        Move("mouth_corner", up=0.005, out=-0.035),
        Move("upper_lip_inner", out=-0.02, profile="lateral"),
        Move("lower_lip_inner", out=-0.02, profile="lateral"),
        Move("upper_lip_outer", up=-0.008, out=-0.02, profile="lateral"),
        Move("lower_lip_outer", up=0.008, out=-0.02, profile="lateral"),
        Move("nasolabial_low", out=-0.008),
    ), wrinkles=("dimple",)),
    15: AUTemplate(moves=(  # lip corner depressor: corners down, lower lip lateral down
        Move("mouth_corner", up=-0.07),
        Move("upper_lip_inner", up=-0.045, profile="lateral"),
        Move("upper_lip_outer", up=-0.04, profile="lateral"),
        Move("lower_lip_inner", up=-0.045, profile="lateral"),
        Move("lower_lip_outer", up=-0.05, profile="lateral"),
        Move("labiomental", up=-0.03, profile="lateral"), Move("nasolabial_low", up=-0.025),
    )),
    17: AUTemplate(moves=(  # chin raiser: chin boss and lower lip pushed up
        Move("chin", up=0.06), Move("labiomental", up=0.06),
        Move("lower_lip_outer", up=0.06, profile="medial"),
        Move("lower_lip_inner", up=0.035, profile="medial"),
        Move("upper_lip_inner", up=0.035, profile="medial"),
        Move("upper_lip_outer", up=0.025, profile="medial"),
        Move("jaw_chin", up=0.02), Move("mouth_corner", up=-0.005),
    )),
    20: AUTemplate(moves=(  # lip stretcher: lips pulled horizontally, flattened
        Move("mouth_corner", up=-0.01, out=0.09),
        Move("upper_lip_inner", out=0.07, profile="lateral"),
        Move("lower_lip_inner", out=0.07, profile="lateral"),
        Move("upper_lip_outer", up=-0.01, out=0.07, profile="lateral"),
        Move("lower_lip_outer", up=0.01, out=0.07, profile="lateral"),
        Move("labiomental", out=0.02, profile="lateral"), Move("nasolabial_low", out=0.02),
    )),
    23: AUTemplate(moves=(  # lip tightener: red of the lips narrowed, mouth narrower
        Move("mouth_corner", out=-0.04),
        Move("upper_lip_inner", out=-0.03, profile="lateral"),
        Move("lower_lip_inner", out=-0.03, profile="lateral"),
        Move("upper_lip_outer", up=-0.02, out=-0.03, profile="lateral"),
        Move("lower_lip_outer", up=0.02, out=-0.03, profile="lateral"),
    )),
    24: AUTemplate(moves=(  # lip pressor: lips pressed together, thinned vertically
        Move("upper_lip_outer", up=-0.03, profile="medial"),
        Move("lower_lip_outer", up=0.035, profile="medial"),
        Move("mouth_corner", out=-0.01), Move("labiomental", up=0.015),
    )),
    25: AUTemplate(moves=(  # lips part (jaw unchanged)
        Move("upper_lip_inner", up=0.035, profile="arc"), Move("upper_lip_outer", up=0.035, profile="arc"),
        Move("philtrum_low", up=0.01),
        Move("lower_lip_inner", up=-0.08, profile="arc"), Move("lower_lip_outer", up=-0.06, profile="arc"),
        Move("labiomental", up=-0.03, profile="arc"), Move("chin", up=-0.01),
    )),
    26: AUTemplate(moves=(  # jaw drop: chin, jaw and lower lip down (lips part)
        Move("jaw_chin", up=-0.22), Move("jaw_mid", up=-0.16, out=-0.005),
        Move("jaw_upper", up=-0.09), Move("jaw_angle", up=-0.03),
        Move("chin", up=-0.21), Move("labiomental", up=-0.19),
        Move("lower_lip_outer", up=-0.17, profile="arc"),
        Move("lower_lip_inner", up=-0.18, profile="arc"),
        Move("mouth_corner", up=-0.04, out=-0.01), Move("nasolabial_low", up=-0.01),
        Move("neck", up=-0.05),
    )),
    43: _EYES_CLOSED,  # eyes closed
    45: _EYES_CLOSED,  # blink: the same appearance, brief (use in clips)
}

# AUs whose template necessarily shows another AU: that one is labelled with at least this
# intensity too (AU26's lowered lower lip parts the lips, which is AU25).
IMPLIES: dict[int, tuple[int, ...]] = {26: (25,)}

# AUs that the random sampler never combines: contradictory or invisible together.
EXCLUSIVE: tuple[frozenset[int], ...] = (
    frozenset({5, 43, 45}), frozenset({7, 43, 45}), frozenset({24, 25, 26}),
    frozenset({17, 26}), frozenset({20, 23}), frozenset({12, 15}), frozenset({14, 20}),
)

SYNTH_AUS: tuple[int, ...] = tuple(sorted(TEMPLATES))

# Darkening of each wrinkle's 1-px core line at intensity 5, before the blur (which spreads it
# to about half as much over ~2 px); the highlight beside it gets half of it.
WRINKLE_DEPTH: dict[str, float] = {
    "glabella": 0.35, "crows_feet": 0.3, "nose_bridge": 0.3, "nasolabial": 0.22, "dimple": 0.3,
}
