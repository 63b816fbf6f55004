"""Model cards: the JSON sidecar ``<engine>.json`` that makes every engine self-describing.

The card says which AUs the engine outputs and in what order, how to prepare its input (size,
layout, dtype, mean/std, quantisation, colour order), how the face was aligned in training, the
decision thresholds (or, with ``calibration``, the per-AU map that puts every decision at 0.5:
``runtime.calibration``), and where the engine came from. The runtime trusts nothing else; it refuses
an engine whose card is missing, malformed, for another file, or inconsistent with the engine.

Every field is checked for type and range (``LIMITS``): finite numbers, a positive and not vanishing
``std``, sizes and scales a face crop can have, and the file itself is read as strict JSON
(``runtime.strict_json``: limited size and nesting, no NaN/Infinity, 64-bit numbers), so a card can
neither crash the runtime nor make its numbers non-finite.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime import calibration as calib
from runtime import strict_json
from runtime.align import TEMPLATES
from runtime.atomic import atomic_write
from runtime.aus import au_name, au_number
from runtime.card_intensity import IntensityOutput, intensity_output, parse_intensity
from runtime.errors import CardError
from runtime.shown import quoted

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "aus", "input", "output", "thresholds", "alignment", "model",
                 "training", "metrics", "parity", "sha256")
# The nested keys CONTRACTS.md requires in each section (``training.recipe``: the command that made it).
REQUIRED_NESTED = {
    "input": ("size", "layout", "dtype", "mean", "std", "quant"),
    "output": ("kind",),
    "alignment": ("template", "crop_size", "scale"),
    "model": ("name", "version", "backbone", "params"),
    "training": ("datasets", "label_kinds", "recipe"),
}
LABEL_KINDS = ("real", "silver", "synthetic", "eye")  # codes in caches: append only
FLOAT_DTYPES = ("float32", "float16")
INT_DTYPES = ("uint8", "int8")
# TensorRT can build engines with these I/O types; the runtime feeds and reads only the ones above.
UNSUPPORTED_IO = {"bfloat16": "BF16", "bf16": "BF16", "fp8": "FP8", "float8": "FP8", "float8_e4m3fn": "FP8",
                  "e4m3": "FP8", "int4": "INT4", "fp4": "FP4"}
REEXPORT = "regenerate it with `python -m export`"
# Ranges of the card's numbers (inclusive): what a face crop, its normalisation of RGB values in [0, 1]
# and a quantisation can mean. Beyond them the arithmetic loses every digit or overflows (std 1e-300 made
# NaN probabilities; crop_size 10**400 overflowed at the first face).
LIMITS = {
    "input.size": (8, 4096),
    "input.mean": (-10.0, 10.0),
    "input.std": (1e-4, 1e4),
    "quant.scale": (1e-10, 1e10),
    "alignment.crop_size": (8, 4096),
    "alignment.scale": (0.1, 10.0),
    "input.landmarks.points": (5, 100_000),
    "model.params": (0, 10 ** 13),
}
ZERO_POINTS = {"int8": (-128, 127), "uint8": (0, 255)}


@dataclass
class LandmarkSpec:
    """The optional second input: the face mesh in crop coordinates (CONTRACTS ``input.landmarks``)."""

    name: str
    points: int  # e.g. 468 or 478
    coords: str = "crop_unit"  # x, y in [0, 1] of the aligned crop, z scaled like x
    dtype: str = "float32"
    quant: dict[str, float] | None = None


@dataclass
class InputSpec:
    size: tuple[int, int]  # H, W
    layout: str = "NCHW"  # NCHW | NHWC
    dtype: str = "float32"  # float32 | float16 | uint8 | int8
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    quant: dict[str, float] | None = None  # {"scale": s, "zero_point": z} for integer inputs
    color: str = "RGB"  # RGB | BGR
    landmarks: LandmarkSpec | None = None  # a second input, the mesh (engines feeding it come later)


@dataclass
class ModelCard:
    aus: list[str]
    input: InputSpec
    output_kind: str = "prob"  # prob | logit
    thresholds: dict[str, float] = field(default_factory=dict)
    alignment: dict[str, Any] = field(default_factory=lambda: {"template": "default", "crop_size": 256,
                                                               "scale": 1.0})
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    output: dict[str, Any] = field(default_factory=dict)  # extra output keys (e.g. quant) kept as given
    calibration: calib.Calibration | None = None  # per-AU logit scale/shift (thresholds then 0.5)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level keys, kept on write

    # ---- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        inp = {**asdict(self.input), "size": list(self.input.size),
               "mean": list(self.input.mean), "std": list(self.input.std)}
        if self.input.landmarks is None:
            inp.pop("landmarks")
        d: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "aus": list(self.aus),
            "input": inp,
            "output": {**self.output, "kind": self.output_kind},
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "alignment": dict(self.alignment),
            "model": dict(self.model),
            "training": dict(self.training),
            "metrics": dict(self.metrics),
            "parity": dict(self.parity),
            "sha256": self.sha256,
        }
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_dict(self.aus)
        d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)  # what load_card reads

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model card") -> ModelCard:
        """Parse and validate a card dict against CONTRACTS.md.

        Raises:
            CardError: one line naming the card, the bad key or value, and the fix.
        """
        if not isinstance(d, dict):
            raise CardError(f"{where}: not a JSON object; {REEXPORT}")
        missing = [k for k in REQUIRED_KEYS if k not in d]
        if missing:
            raise CardError(f"{where}: missing keys {missing}; {REEXPORT}")
        if isinstance(d["format_version"], bool) or d["format_version"] != FORMAT_VERSION:
            raise CardError(f"{where}: format_version {d['format_version']!r} is not supported "
                            f"(this runtime reads {FORMAT_VERSION}); upgrade au-edge or re-export")
        for key in ("input", "output", "thresholds", "alignment", "model", "training", "metrics", "parity"):
            if not isinstance(d[key], dict):
                raise CardError(f"{where}: '{key}' must be a JSON object, got {type(d[key]).__name__}; {REEXPORT}")
        aus = _parse_aus(d["aus"], where)
        template = d["alignment"].get("template", "default")
        if not isinstance(template, str) or template not in TEMPLATES:  # the most likely hand edit: say it first
            raise CardError(f"{where}: alignment.template {_short(template)} is unknown to this runtime (a "
                            f"template name: one of {sorted(TEMPLATES)})")
        for section, keys in REQUIRED_NESTED.items():
            absent = [k for k in keys if k not in d[section]]
            if absent:
                raise CardError(f"{where}: '{section}' is missing {', '.join(absent)} (it needs "
                                f"{', '.join(keys)}); {REEXPORT}")
        spec = _parse_input(d["input"], where)
        output = dict(d["output"])
        kind = output.pop("kind")
        if kind not in ("prob", "logit"):
            raise CardError(f"{where}: output.kind must be 'prob' or 'logit', got {kind!r}")
        _check_io_dtype(output.get("dtype"), "output.dtype", where)
        if output.get("quant") is not None:
            _parse_quant(output["quant"], "output.quant", where)
        if output.get("intensity") is not None:  # the optional second output (runtime.card_intensity)
            output["intensity"] = parse_intensity(output["intensity"], aus, LABEL_KINDS, where)
        thresholds = _parse_thresholds(d["thresholds"], aus, where)
        align = _parse_alignment(d["alignment"], where)
        _check_model(d["model"], where)
        _check_training(d["training"], where)
        if not isinstance(d["sha256"], str):
            raise CardError(f"{where}: sha256 must be a hex string, got {d['sha256']!r}; {REEXPORT}")
        cal = None if d.get("calibration") is None else calib.parse(d["calibration"], aus, thresholds, where)
        extra = {k: v for k, v in d.items() if k not in REQUIRED_KEYS and k != "calibration"}
        return cls(aus=aus, input=spec, output_kind=kind, thresholds=thresholds, alignment=align,
                   model=dict(d["model"]), training=dict(d["training"]), metrics=dict(d["metrics"]),
                   parity=dict(d["parity"]), sha256=d["sha256"], output=output, calibration=cal, extra=extra)

    # ---- files -------------------------------------------------------------------------------
    def write(self, engine_path: str | os.PathLike, update_sha: bool = True) -> Path:
        """Write the sidecar ``<engine>.json`` (atomically), hashing the engine first."""
        engine_path = Path(engine_path)
        if update_sha:
            self.sha256 = file_sha256(engine_path)
        out = card_path(engine_path)
        with atomic_write(out, "model card", mode="w") as f:
            f.write(self.to_json())
        return out

    def threshold(self, au: str) -> float:
        return float(self.thresholds.get(au, 0.5))

    @property
    def intensity(self) -> IntensityOutput | None:
        """The declared AU-intensity output (``output.intensity``), or None."""
        return intensity_output(self.output)


# ---- section parsers: each raises CardError with the card's name and the fix -----------------------

def _is_number(v: Any) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an int too large for a float (10**400)
        return False


def _in_range(v: Any, key: str) -> bool:
    lo, hi = LIMITS[key]
    return _is_number(v) and lo <= v <= hi


def _short(v: Any) -> str:
    """A value for a message: its repr, cut to 60 characters (a hostile card may hold huge values)."""
    try:
        text = repr(v)
    except (ValueError, RecursionError):  # ints beyond the digit limit, deep nesting
        text = f"<{type(v).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_aus(value: Any, where: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(a, str) for a in value):
        raise CardError(f"{where}: bad 'aus' list {value!r}: expected AU names in output order, e.g. "
                        f"[\"AU01\", \"AU12\"]; {REEXPORT}")
    try:
        aus = [au_name(au_number(a)) for a in value]
    except (ValueError, TypeError) as e:
        raise CardError(f"{where}: bad 'aus' list: {e}") from None
    if len(set(aus)) != len(aus):
        raise CardError(f"{where}: bad 'aus' list: names repeat ({value}); each output is one distinct AU")
    return aus


def _check_io_dtype(dtype: Any, key: str, where: str) -> None:
    if dtype is None:
        return
    text = str(dtype).lower()
    if text in UNSUPPORTED_IO:
        raise CardError(f"{where}: {key} {dtype!r}: {UNSUPPORTED_IO[text]} engine I/O is not supported by the "
                        f"runtime; keep FP16/FP32 (or INT8) I/O when building (e.g. `python -m export.tensorrt "
                        f"--fp16`, or trtexec --inputIOFormats=fp16:chw) and compute in {UNSUPPORTED_IO[text]} inside")
    if text not in FLOAT_DTYPES + INT_DTYPES:
        raise CardError(f"{where}: {key} {dtype!r} unsupported (float32|float16|uint8|int8)")


def _parse_quant(q: Any, key: str, where: str) -> dict[str, float]:
    if not isinstance(q, dict) or "scale" not in q or "zero_point" not in q:
        raise CardError(f"{where}: {key} must be {{\"scale\": s, \"zero_point\": z}}, got {q!r}; re-export with "
                        "the quantised model's parameters")
    if not _in_range(q["scale"], "quant.scale"):
        raise CardError(f"{where}: {key}.scale must be a number in {LIMITS['quant.scale']}, got {_short(q['scale'])}")
    zp = q["zero_point"]
    if not _is_number(zp) or not float(zp).is_integer() or not -2 ** 31 <= zp < 2 ** 31:
        raise CardError(f"{where}: {key}.zero_point must be an integer, got {_short(zp)}")
    return {**q, "scale": float(q["scale"]), "zero_point": int(zp)}


def _check_dtype_quant(dtype: str, quant: Any, key: str, where: str) -> dict[str, float] | None:
    """Integer tensors need their quantisation; float tensors must not claim one."""
    if dtype in INT_DTYPES:
        if not quant:
            raise CardError(f"{where}: integer {key}.dtype {dtype} needs {key}.quant "
                            "{scale, zero_point}; re-export with the quantised model's parameters")
        parsed = _parse_quant(quant, f"{key}.quant", where)
        lo, hi = ZERO_POINTS[dtype]
        if not lo <= parsed["zero_point"] <= hi:
            raise CardError(f"{where}: {key}.quant.zero_point {parsed['zero_point']} is outside {dtype}'s range "
                            f"[{lo}, {hi}]")
        return parsed
    if quant is not None:
        raise CardError(f"{where}: {key}.quant is set but {key}.dtype is {dtype} (float inputs take no "
                        f"quantisation); set {key}.quant to null, or the dtype to the engine's integer type")
    return None


def _parse_input(inp: dict[str, Any], where: str) -> InputSpec:
    size = inp["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(v) and v > 0 for v in size):
        raise CardError(f"{where}: input.size must be [H, W] of positive integers, got {_short(size)}")
    if not all(_in_range(v, "input.size") for v in size):
        raise CardError(f"{where}: input.size {_short(size)} is out of range: each side in "
                        f"{LIMITS['input.size']} pixels")
    if size[0] != size[1]:
        raise CardError(f"{where}: input.size {size} is not square; the runtime's aligned face crop is "
                        f"square, so re-export the model with input size [S, S] (e.g. [{max(size)}, {max(size)}])")
    for key in ("mean", "std"):
        v = inp[key]
        if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(_is_number(x) for x in v):
            raise CardError(f"{where}: input.{key} must be 3 numbers (per RGB channel, of values in [0, 1]), "
                            f"got {_short(v)}")
    if min(inp["std"]) <= 0:
        raise CardError(f"{where}: input.std must be > 0 per channel, got {inp['std']}")
    for key in ("mean", "std"):
        if not all(_in_range(x, f"input.{key}") for x in inp[key]):
            raise CardError(f"{where}: input.{key} {_short(inp[key])} is out of range: each in "
                            f"{LIMITS[f'input.{key}']} (it applies to RGB values scaled to [0, 1])")
    for key in ("layout", "dtype"):
        if not isinstance(inp[key], str):
            raise CardError(f"{where}: input.{key} must be a string, got {inp[key]!r}")
    layout, dtype = inp["layout"].upper(), inp["dtype"].lower()
    if layout not in ("NCHW", "NHWC"):
        raise CardError(f"{where}: input.layout must be NCHW or NHWC, got {inp['layout']!r}")
    _check_io_dtype(dtype, "input.dtype", where)
    quant = _check_dtype_quant(dtype, inp["quant"], "input", where)
    color = inp.get("color", "RGB")
    if not isinstance(color, str) or color.upper() not in ("RGB", "BGR"):
        raise CardError(f"{where}: input.color must be RGB or BGR, got {color!r}")
    landmarks = _parse_landmarks(inp["landmarks"], where) if inp.get("landmarks") is not None else None
    return InputSpec(size=(size[0], size[1]), layout=layout, dtype=dtype, mean=tuple(float(x) for x in inp["mean"]),
                     std=tuple(float(x) for x in inp["std"]), quant=quant, color=color.upper(), landmarks=landmarks)


def _parse_landmarks(lm: Any, where: str) -> LandmarkSpec:
    keys = ("name", "points", "coords", "dtype", "quant")
    if not isinstance(lm, dict):
        raise CardError(f"{where}: input.landmarks must be an object with {', '.join(keys)}, or absent")
    absent = [k for k in keys if k not in lm]
    if absent:
        raise CardError(f"{where}: 'input.landmarks' is missing {', '.join(absent)} (it needs {', '.join(keys)}); "
                        f"{REEXPORT}")
    if not isinstance(lm["name"], str) or not lm["name"]:
        raise CardError(f"{where}: input.landmarks.name must be the engine's input name, got {lm['name']!r}")
    if not _is_int(lm["points"]) or not _in_range(lm["points"], "input.landmarks.points"):
        raise CardError(f"{where}: input.landmarks.points must be an integer in "
                        f"{LIMITS['input.landmarks.points']} (e.g. 468), got {_short(lm['points'])}")
    if lm["coords"] != "crop_unit":
        raise CardError(f"{where}: input.landmarks.coords {lm['coords']!r} unsupported; the runtime feeds "
                        "'crop_unit' (x, y in [0, 1] of the aligned crop, z scaled like x)")
    if not isinstance(lm["dtype"], str):
        raise CardError(f"{where}: input.landmarks.dtype must be a string, got {lm['dtype']!r}")
    dtype = lm["dtype"].lower()
    _check_io_dtype(dtype, "input.landmarks.dtype", where)
    quant = _check_dtype_quant(dtype, lm["quant"], "input.landmarks", where)
    return LandmarkSpec(name=lm["name"], points=lm["points"], coords="crop_unit", dtype=dtype, quant=quant)


def _parse_thresholds(raw: dict[str, Any], aus: list[str], where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in raw.items():
        try:
            name = au_name(au_number(k))
        except (ValueError, TypeError):
            raise CardError(f"{where}: thresholds has {k!r}, which is not an AU name (e.g. 'AU12')") from None
        if name not in aus:
            raise CardError(f"{where}: thresholds for AUs the engine does not output: [{name!r}] (it outputs "
                            f"{', '.join(aus)}); remove it or re-export")
        if not _is_number(v) or not 0.0 <= v <= 1.0:
            raise CardError(f"{where}: thresholds[{name!r}] must be a probability in [0, 1], got {_short(v)}")
        out[name] = float(v)
    return out


def _parse_alignment(align: dict[str, Any], where: str) -> dict[str, Any]:
    crop, scale = align["crop_size"], align["scale"]
    if not _is_int(crop) or not _in_range(crop, "alignment.crop_size"):
        raise CardError(f"{where}: alignment.crop_size must be an integer number of pixels in "
                        f"{LIMITS['alignment.crop_size']}, got {_short(crop)}")
    if not _in_range(scale, "alignment.scale"):
        raise CardError(f"{where}: alignment.scale must be a number in {LIMITS['alignment.scale']} (1.0 = the "
                        f"template's face size), got {_short(scale)}")
    return {**align, "crop_size": int(crop), "scale": float(scale)}


def _check_model(model: dict[str, Any], where: str) -> None:
    for key in ("name", "version", "backbone"):
        if not isinstance(model[key], (str, int, float)) or isinstance(model[key], bool):
            raise CardError(f"{where}: model.{key} must be a string, got {model[key]!r}")
    if not _is_int(model["params"]) or not _in_range(model["params"], "model.params"):
        raise CardError(f"{where}: model.params must be the parameter count (an integer in "
                        f"{LIMITS['model.params']}), got {_short(model['params'])}")


def _check_training(training: dict[str, Any], where: str) -> None:
    if not isinstance(training["datasets"], list):
        raise CardError(f"{where}: training.datasets must be a list, got {training['datasets']!r}")
    kinds = training["label_kinds"]
    if not isinstance(kinds, list):
        raise CardError(f"{where}: training.label_kinds must be a list of {LABEL_KINDS}, got {kinds!r}")
    bad_kinds = [k for k in kinds if k not in LABEL_KINDS]
    if bad_kinds:
        raise CardError(f"{where}: training.label_kinds {bad_kinds} not in {LABEL_KINDS}")
    if not isinstance(training["recipe"], str):
        raise CardError(f"{where}: training.recipe must be the command that made the model, "
                        f"got {training['recipe']!r}")


def card_path(engine_path: str | os.PathLike) -> Path:
    """``au.tflite`` -> ``au.tflite.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_card(engine_path: str | os.PathLike, check_sha: bool = True) -> ModelCard:
    """Read and validate the card beside ``engine_path``.

    Raises:
        CardError: the card is missing, not JSON, malformed, or for another engine file.
    """
    engine_path = Path(engine_path)
    path = card_path(engine_path)
    if not path.is_file():
        raise CardError(f"model card {quoted(path)} not found: every engine needs its card beside it "
                        "(export writes both; copy the .json together with the engine)")
    try:
        with open(path, "rb") as f:
            data = strict_json.loads(f.read(strict_json.MAX_BYTES + 1))
    except OSError as e:
        raise CardError(f"model card {quoted(path)} cannot be read: {e.strerror or e}") from None
    except ValueError as e:  # UnicodeDecodeError included
        raise CardError(f"model card {quoted(path)}: {e}; re-export or restore it") from None
    card = ModelCard.from_dict(data, where=f"model card {quoted(path)}")
    if check_sha:
        actual = file_sha256(engine_path)
        if card.sha256 != actual:
            raise CardError(f"model card {path} is for another engine file (sha256 {card.sha256[:12]}… != "
                            f"{actual[:12]}… of {engine_path.name}); use the card exported with this engine")
    return card
