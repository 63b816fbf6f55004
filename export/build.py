"""One builder per format (the ``builder`` of its row in ``export.formats.FORMATS``): the model in,
an artifact with its card beside it out.

Every builder is ``builder(em, base, out, opts, calib, fmt, built)`` -> ``Artifact``: ``calib`` the
normalised NCHW calibration crops, ``fmt`` its row (file, precision), ``built`` the artifacts of
this run so far by format (TensorRT is built from the ONNX; the QDQ ONNX reuses the FP32 one).
The card's sha256 is written after the file is final (and after the ONNX card is embedded, since
embedding changes the file).
"""
from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.formats import Format
from export.model import ExportModel
from runtime.card import ModelCard, load_card


@dataclass
class Options:
    """How the artifacts are built; which format takes which is its row's ``options``."""

    opset: int = 17
    simplify: bool = True
    fp16: bool = False  # tflite: FP16 weights instead of FP32
    tflite_layout: str = "NHWC"  # input layout of the .tflite artifacts
    calib_size: int = 256
    allow_trt_unsupported: bool = False

    def __post_init__(self) -> None:
        if self.opset < 17:
            raise ValueError(f"--opset {self.opset}: use 17 or later")
        if self.calib_size < 1:
            raise ValueError(f"--calib-size must be >= 1, got {self.calib_size}")
        if self.tflite_layout not in ("NHWC", "NCHW"):
            raise ValueError(f"--tflite-layout {self.tflite_layout!r}; one of NHWC, NCHW")


@dataclass
class Artifact:
    path: Path
    format: str
    precision: str
    card: ModelCard
    warnings: list[str] = field(default_factory=list)


def _card(base: ModelCard, precision: str, layout: str = "NCHW") -> ModelCard:
    card = copy.deepcopy(base)
    card.model["precision"] = precision
    card.input.layout = layout
    return card


def _onnx_card_and_check(path: Path, card: ModelCard, opts: Options) -> list[str]:
    """Embed the card, then the TensorRT parser check (an error unless allowed)."""
    from export.to_onnx import embed_card
    from export.trt_support import UnsupportedOps, check_tensorrt_support, opset_problem

    warnings = []
    try:
        check_tensorrt_support(path)
        card.extra["tensorrt_parser"] = {"supported": True}
    except UnsupportedOps as e:
        if not opts.allow_trt_unsupported:
            raise
        warnings.append(str(e))
        card.extra["tensorrt_parser"] = {"supported": False, "problem": str(e)}
    problem = opset_problem(path)
    if problem:
        warnings.append(f"{path.name}: {problem}")
    embed_card(path, card)
    card.write(path)
    return warnings


def build_onnx(em: ExportModel, base: ModelCard, out: Path, opts: Options, calib: np.ndarray, fmt: Format,
               built: dict[str, Artifact]) -> Artifact:
    import torch

    from export.to_onnx import to_onnx

    sample = torch.zeros(2, 3, em.ck.input_size, em.ck.input_size)
    path = to_onnx(em.prob_module(), sample, out, simplify=opts.simplify, opset=opts.opset)
    card = _card(base, fmt.precision)
    warnings = _onnx_card_and_check(path, card, opts)
    return Artifact(path, fmt.name, fmt.precision, card, warnings)


def build_onnx_int8(em: ExportModel, base: ModelCard, out: Path, opts: Options, calib: np.ndarray, fmt: Format,
                    built: dict[str, Artifact]) -> Artifact:
    """Static QDQ INT8 of the FP32 ONNX (this run's, when built before it)."""
    import tempfile

    import torch

    from export.onnx_int8 import quantize_onnx_int8
    from export.to_onnx import to_onnx

    with tempfile.TemporaryDirectory() as tmp:
        src = built["onnx"].path if "onnx" in built else None
        if src is None:
            src = to_onnx(em.prob_module(), torch.zeros(2, 3, em.ck.input_size, em.ck.input_size),
                          Path(tmp) / "fp32.onnx", simplify=opts.simplify, opset=opts.opset)
        quantize_onnx_int8(src, calib, out)
    card = _card(base, fmt.precision)
    card.extra["quantization"] = {"method": "onnxruntime.quantization static QDQ, moving-average MinMax, "
                                            "symmetric int8, per-channel 7-bit weights (reduce_range), first conv and "
                                            "head in float", "calibration_crops": len(calib)}
    warnings = _onnx_card_and_check(out, card, opts)
    return Artifact(out, fmt.name, fmt.precision, card, warnings)


def _sample(em: ExportModel, layout: str):
    import torch

    s = em.ck.input_size
    return torch.zeros(1, s, s, 3) if layout == "NHWC" else torch.zeros(1, 3, s, s)


def _float_tflite(em: ExportModel, out: Path, layout: str, sigmoid: bool = True) -> Path:
    from export.to_tflite import to_tflite

    return to_tflite(em.prob_module(nhwc=layout == "NHWC", sigmoid=sigmoid), _sample(em, layout), out)


def build_tflite(em: ExportModel, base: ModelCard, out: Path, opts: Options, calib: np.ndarray, fmt: Format,
                 built: dict[str, Artifact]) -> Artifact:
    from export.to_tflite import to_fp16_weights

    layout = opts.tflite_layout
    if opts.fp16:
        tmp = out.with_name(out.stem + ".fp32.tmp.tflite")
        _float_tflite(em, tmp, layout)
        to_fp16_weights(tmp, out)
        tmp.unlink()
    else:
        _float_tflite(em, out, layout)
    precision = "fp16" if opts.fp16 else fmt.precision
    card = _card(base, precision, layout)
    card.write(out)
    return Artifact(out, fmt.name, precision, card)


# The int8 logits span at least +-12 (p from 6e-6 to 1 - 6e-6) in steps of 0.094: near p = 0.99 a
# step moves p by about 0.001.
LOGIT_RANGE = 12.0


def build_tflite_int8(em: ExportModel, base: ModelCard, out: Path, opts: Options, calib: np.ndarray,
                      fmt: Format, built: dict[str, Artifact]) -> Artifact:
    """Full-integer TFLite that outputs int8 logits (card ``output.kind: logit``; the runtime applies
    the sigmoid). Int8 probabilities step by 1/256, too coarse for the thresholds of 0.95-0.995
    that a neutral-face budget calibrates; int8 logits over ``LOGIT_RANGE`` keep ~0.001 there."""
    from export.to_tflite import card_for_tflite, quantize_int8

    layout = opts.tflite_layout
    tmp = out.with_name(out.stem + ".float.tmp.tflite")
    x = calib.transpose(0, 2, 3, 1) if layout == "NHWC" else calib
    try:
        quantize_int8(_float_tflite(em, tmp, layout, sigmoid=False), [np.ascontiguousarray(x)], out,
                      output_range=(-LOGIT_RANGE, LOGIT_RANGE))
    finally:
        tmp.unlink(missing_ok=True)
    card = _card(base, fmt.precision, layout)
    card.output_kind = "logit"
    card = card_for_tflite(out, card)
    card.extra["quantization"] = {"method": "ai-edge-quantizer static_wi8_ai8 (int8 weights, activations, I/O; "
                                            "the output is the logits)", "calibration_crops": len(calib)}
    card.write(out)
    return Artifact(out, fmt.name, fmt.precision, card)


def build_tensorrt(em: ExportModel, base: ModelCard, out: Path, opts: Options, calib: np.ndarray, fmt: Format,
                   built: dict[str, Artifact]) -> Artifact:
    """On a GPU machine: ``python -m export.tensorrt`` (the TensorRT builder module) on this run's
    QDQ ONNX (INT8) or else its FP32 ONNX (FP16); the card is the ONNX's with the engine's precision."""
    src = built.get("onnx-int8") or built["onnx"]
    precision = "int8" if "onnx-int8" in built else fmt.precision
    cmd = [sys.executable, "-m", "export.tensorrt", "--onnx", str(src.path), "--out", str(out), f"--{precision}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"tensorrt: `{' '.join(cmd)}` failed: {last}")
    card = load_card(src.path)
    card.model["precision"] = precision
    card.write(out)
    return Artifact(out, fmt.name, precision, card)


def artifact_name(fmt: Format, opts: Options) -> str:
    if fmt.name == "tflite" and opts.fp16:
        return "au_fp16.tflite"
    return fmt.suffix
