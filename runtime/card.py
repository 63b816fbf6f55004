"""Model cards: the JSON sidecar ``<engine>.json`` that makes every engine self-describing.

The card says which AUs the engine outputs and in what order, how to prepare its input (size,
layout, dtype, mean/std, quantisation, colour order), how the face was aligned in training, the
decision thresholds, and where the engine came from. The runtime trusts nothing else; it refuses
an engine whose card is missing, malformed, for another file, or inconsistent with the engine.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.align import TEMPLATES
from runtime.aus import au_name, au_number
from runtime.errors import CardError

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "aus", "input", "output", "thresholds", "alignment", "model",
                 "training", "metrics", "parity", "sha256")
LABEL_KINDS = ("real", "silver", "synthetic")


@dataclass
class InputSpec:
    size: tuple[int, int]  # H, W
    layout: str = "NCHW"  # NCHW | NHWC
    dtype: str = "float32"  # float32 | float16 | uint8 | int8
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    quant: dict[str, float] | None = None  # {"scale": s, "zero_point": z} for integer inputs
    color: str = "RGB"  # RGB | BGR


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
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level keys, kept on write

    # ---- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "aus": list(self.aus),
            "input": {**asdict(self.input), "size": list(self.input.size),
                      "mean": list(self.input.mean), "std": list(self.input.std)},
            "output": {**self.output, "kind": self.output_kind},
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "alignment": dict(self.alignment),
            "model": dict(self.model),
            "training": dict(self.training),
            "metrics": dict(self.metrics),
            "parity": dict(self.parity),
            "sha256": self.sha256,
        }
        d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model card") -> "ModelCard":
        """Parse and validate a card dict. Raises CardError (one line) on any problem."""
        if not isinstance(d, dict):
            raise CardError(f"{where}: not a JSON object; regenerate it with `python -m export`")
        missing = [k for k in REQUIRED_KEYS if k not in d]
        if missing:
            raise CardError(f"{where}: missing keys {missing}; regenerate it with `python -m export`")
        if d["format_version"] != FORMAT_VERSION:
            raise CardError(f"{where}: format_version {d['format_version']!r} is not supported "
                            f"(this runtime reads {FORMAT_VERSION}); upgrade au-edge or re-export")
        try:
            aus = [au_name(au_number(a)) for a in d["aus"]]
        except (ValueError, TypeError) as e:
            raise CardError(f"{where}: bad 'aus' list: {e}") from None
        if not aus or len(set(aus)) != len(aus):
            raise CardError(f"{where}: 'aus' must be a non-empty list of distinct AU names")
        inp = d["input"]
        try:
            size = tuple(int(v) for v in inp["size"])
            spec = InputSpec(
                size=size, layout=str(inp.get("layout", "NCHW")).upper(),
                dtype=str(inp.get("dtype", "float32")), mean=tuple(float(v) for v in inp["mean"]),
                std=tuple(float(v) for v in inp["std"]), quant=inp.get("quant"),
                color=str(inp.get("color", "RGB")).upper(),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CardError(f"{where}: bad 'input' section ({e!r}); expected size [H, W], layout, dtype, "
                            "mean[3], std[3], quant") from None
        _check_input(spec, where)
        output = dict(d["output"]) if isinstance(d["output"], dict) else {}
        kind = output.pop("kind", None)
        if kind not in ("prob", "logit"):
            raise CardError(f"{where}: output.kind must be 'prob' or 'logit', got {kind!r}")
        thresholds = {au_name(au_number(k)): float(v) for k, v in dict(d["thresholds"]).items()}
        unknown = set(thresholds) - set(aus)
        if unknown:
            raise CardError(f"{where}: thresholds for AUs the engine does not output: {sorted(unknown)}")
        align = dict(d["alignment"])
        if align.get("template", "default") not in TEMPLATES:
            raise CardError(f"{where}: alignment.template {align.get('template')!r} is unknown to this "
                            f"runtime (known: {sorted(TEMPLATES)})")
        align.setdefault("template", "default")
        align["crop_size"] = int(align.get("crop_size", max(size)))
        align["scale"] = float(align.get("scale", 1.0))
        kinds = d["training"].get("label_kinds", []) if isinstance(d["training"], dict) else []
        bad_kinds = [k for k in kinds if k not in LABEL_KINDS]
        if bad_kinds:
            raise CardError(f"{where}: training.label_kinds {bad_kinds} not in {LABEL_KINDS}")
        extra = {k: v for k, v in d.items() if k not in REQUIRED_KEYS}
        return cls(aus=aus, input=spec, output_kind=kind, thresholds=thresholds, alignment=align,
                   model=dict(d["model"]), training=dict(d["training"]), metrics=dict(d["metrics"]),
                   parity=dict(d["parity"]), sha256=str(d["sha256"]), output=output, extra=extra)

    # ---- files -------------------------------------------------------------------------------
    def write(self, engine_path: str | os.PathLike, update_sha: bool = True) -> Path:
        """Write the sidecar ``<engine>.json`` (atomically), hashing the engine first."""
        engine_path = Path(engine_path)
        if update_sha:
            self.sha256 = file_sha256(engine_path)
        out = card_path(engine_path)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, out)
        return out

    def threshold(self, au: str) -> float:
        return float(self.thresholds.get(au, 0.5))


def _check_input(spec: InputSpec, where: str) -> None:
    if len(spec.size) != 2 or min(spec.size) <= 0:
        raise CardError(f"{where}: input.size must be [H, W] > 0, got {list(spec.size)}")
    if spec.layout not in ("NCHW", "NHWC"):
        raise CardError(f"{where}: input.layout must be NCHW or NHWC, got {spec.layout!r}")
    if spec.dtype not in ("float32", "float16", "uint8", "int8"):
        raise CardError(f"{where}: input.dtype {spec.dtype!r} unsupported (float32|float16|uint8|int8)")
    if spec.dtype in ("uint8", "int8") and not spec.quant:
        raise CardError(f"{where}: integer input dtype {spec.dtype} needs input.quant "
                        "{{scale, zero_point}}; re-export with the quantised model's parameters")
    if len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0:
        raise CardError(f"{where}: input.mean/std must be 3 values each with std > 0")
    if spec.color not in ("RGB", "BGR"):
        raise CardError(f"{where}: input.color must be RGB or BGR, got {spec.color!r}")


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
        raise CardError(f"model card {path} not found: every engine needs its card beside it "
                        "(export writes both; copy the .json together with the engine)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CardError(f"model card {path} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); "
                        "re-export or restore it") from None
    card = ModelCard.from_dict(data, where=f"model card {path}")
    if check_sha:
        actual = file_sha256(engine_path)
        if card.sha256 != actual:
            raise CardError(f"model card {path} is for another engine file (sha256 {card.sha256[:12]}… != "
                            f"{actual[:12]}… of {engine_path.name}); use the card exported with this engine")
    return card
