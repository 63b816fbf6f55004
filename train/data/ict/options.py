"""Options of the ICT synthetic data: which version, and how often each v3 variation is drawn.

``ict_options({"version": 3, "p_hand": 0.2})`` validates a plain dict (the form a CLI flag or a
YAML config passes) into ``ICTOptions``; unknown keys and out-of-range values are refused with
the key named. Version 2 is the synthetic data as it was (neutral photos, sculpted shape
strength, the v2 look, no pose, camera or occluders: renders equal to before this module);
version 3 draws everything below. ``DEFAULT_VERSION`` is what ``python -m train.data open``
builds when no version is asked for.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

VERSIONS = (2, 3)
DEFAULT_VERSION = 2  # v2 renders several times faster (tests, quick builds); make default-model asks for 3


@dataclass(frozen=True)
class ICTOptions:
    """Probabilities are per sample; ranges are (low, high) of a uniform draw.

    Sample kinds (v3): ``p_neutral`` untouched base photo, ``p_negative`` a face that moves without
    any AU (head pose and expression-free motions: glances, pucker, lips rolled, jaw sideways),
    ``p_prototype`` an expression (``facs.V3_VARIANTS``), the rest single AUs; of the single AUs
    ``p_unilateral`` act on one side only, of the rest ``p_asymmetric`` are stronger on one side.
    """

    version: int = DEFAULT_VERSION
    p_neutral: float = 0.1
    p_prototype: float = 0.45
    p_negative: float = 0.0
    p_unilateral: float = 0.0
    p_asymmetric: float = 0.0
    p_smiling_base: float = 0.0   # base photo from london/smiling (real AU12) instead of a neutral one
    p_pose: float = 0.0           # yaw / pitch of the fitted 3D face
    max_yaw: float = 0.0
    max_pitch: float = 0.0
    p_roll: float = 0.0           # in-plane roll and scale of the whole frame
    max_roll: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)   # face resolution factor (<1: a face further away)
    p_camera: float = 0.0         # lighting, colour cast, exposure, blur, noise, JPEG
    p_hand: float = 0.0           # a hand over the mouth / nose or the eyes
    p_glasses: float = 0.0

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"ICT option version={self.version!r}: use one of {VERSIONS}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= v <= 1.0:
                raise ValueError(f"ICT option {f.name}={v!r} must be a probability in [0, 1]")
        if self.p_neutral + self.p_negative + self.p_prototype > 1.0:
            raise ValueError(f"ICT options p_neutral + p_negative + p_prototype = "
                             f"{self.p_neutral + self.p_negative + self.p_prototype:.3f} > 1")
        from train.data.ict.pose import MAX_PITCH, MAX_YAW

        if not (0 <= self.max_yaw <= MAX_YAW and 0 <= self.max_pitch <= MAX_PITCH and 0 <= self.max_roll <= 45):
            raise ValueError(f"ICT options max_yaw={self.max_yaw}, max_pitch={self.max_pitch}, max_roll="
                             f"{self.max_roll}: need 0..{MAX_YAW}, 0..{MAX_PITCH}, 0..45 degrees")
        lo, hi = self.scale
        if not 0.2 <= lo <= hi <= 1.0:
            raise ValueError(f"ICT option scale={self.scale!r}: need 0.2 <= low <= high <= 1")
        if self.version == 2:
            v3_only = [f.name for f in fields(self) if f.name not in ("version", "p_neutral", "p_prototype")
                       and getattr(self, f.name) != f.default]
            if v3_only:
                raise ValueError(f"ICT version 2 takes only p_neutral and p_prototype; {', '.join(v3_only)} "
                                 "are version 3 options")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["scale"] = list(self.scale)
        return d


V2 = ICTOptions(version=2)
V3 = ICTOptions(version=3, p_neutral=0.06, p_prototype=0.42, p_negative=0.12, p_unilateral=0.15,
                p_asymmetric=0.2, p_smiling_base=0.3, p_pose=0.6, max_yaw=12.0, max_pitch=7.0, p_roll=0.6,
                max_roll=20.0, scale=(0.35, 1.0), p_camera=0.85, p_hand=0.1, p_glasses=0.12)


def ict_options(options: ICTOptions | Mapping | None = None) -> ICTOptions:
    """Options from a dict (``version`` picks the defaults the other keys override) or None
    (``DEFAULT_VERSION``'s defaults).

    Raises:
        ValueError: an unknown key or a bad value (names it and the range).
    """
    if isinstance(options, ICTOptions):
        return options
    opts = dict(options or {})
    version = opts.pop("version", DEFAULT_VERSION)
    base = {2: V2, 3: V3}.get(version)
    if base is None:
        raise ValueError(f"ICT option version={version!r}: use one of {VERSIONS}")
    known = {f.name for f in fields(ICTOptions)} - {"version"}
    bad = sorted(set(opts) - known)
    if bad:
        raise ValueError(f"unknown ICT option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    if "scale" in opts:
        opts["scale"] = tuple(float(x) for x in opts["scale"])
    return replace(base, **opts)
