"""The table of export formats: one row per artifact kind (Ultralytics-style), checked up front.

``python -m export --formats a,b`` is validated against this table before anything is built: an
unknown name gets the closest one, a missing optional dependency gets its install line, and a
format that needs a GPU says where to run it instead.
"""
from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # file name of the artifact in --out
    precision: str  # fp32 | fp16 | int8 (of the engine's arithmetic)
    modules: tuple[str, ...]  # importable modules it needs (the optional dependency)
    install: str  # how to get them
    needs_gpu: bool = False
    options: tuple[str, ...] = ()  # CLI options that apply to it


EXPORT_EXTRA = "pip install 'au-edge[export]'"
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "au_fp32.onnx", "fp32", ("onnx", "onnxsim", "onnxruntime"), EXPORT_EXTRA,
           options=("opset", "no_simplify")),
    Format("onnx-int8", "au_int8.onnx", "int8", ("onnx", "onnxruntime"), EXPORT_EXTRA,
           options=("opset", "calib_size")),
    Format("tflite", "au_fp32.tflite", "fp32", ("litert_torch", "ai_edge_litert"), EXPORT_EXTRA,
           options=("fp16", "tflite_layout")),
    Format("tflite-int8", "au_int8.tflite", "int8", ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"),
           EXPORT_EXTRA, options=("calib_size", "tflite_layout")),
    Format("tensorrt", "au.trt", "fp16", ("tensorrt",), "pip install 'au-edge[tensorrt]' on the NVIDIA target",
           needs_gpu=True),
)}


class FormatError(ValueError):
    """A --formats value that cannot be exported here (one line: what and the fix)."""


def parse_formats(text: str) -> list[Format]:
    """``"onnx,tflite-int8"`` -> the rows, in the given order, checked.

    Raises:
        FormatError: unknown name, repeated name, missing dependency, or a GPU-only format here.
    """
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise FormatError(f"--formats is empty; choose from {','.join(FORMATS)}")
    out: list[Format] = []
    for name in names:
        fmt = FORMATS.get(name)
        if fmt is None:
            close = difflib.get_close_matches(name, FORMATS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FormatError(f"unknown format {name!r}{hint}; choose from {','.join(FORMATS)}")
        if fmt in out:
            raise FormatError(f"format {name!r} is listed twice in --formats")
        check_available(fmt)
        out.append(fmt)
    return out


def check_available(fmt: Format) -> None:
    """Raise FormatError when ``fmt`` cannot be built on this machine."""
    if fmt.needs_gpu and not gpu_available():
        raise FormatError(f"format {fmt.name!r} needs an NVIDIA GPU with TensorRT and none is usable here; "
                          "an engine is tied to its GPU and TensorRT version, so export 'onnx-int8' (or "
                          "'onnx') here and run `python -m export.tensorrt --onnx au_int8.onnx --out au.trt "
                          "--int8` on the target")
    if fmt.name == "tensorrt" and importlib.util.find_spec("export.tensorrt") is None:
        raise FormatError("format 'tensorrt' needs export/tensorrt.py (the TensorRT builder), missing from this "
                          "install; update au-edge")
    missing = [m for m in fmt.modules if importlib.util.find_spec(m) is None]
    if missing:
        raise FormatError(f"format {fmt.name!r} needs {', '.join(missing)}, not installed; {fmt.install}")


def gpu_available() -> bool:
    """TensorRT importable and a CUDA device visible (torch's view of it, as export runs torch)."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - export always has torch
        return False
