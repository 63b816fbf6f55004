"""The table of export formats, the only source of what ``python -m export`` can build (Ultralytics-style).

One row per artifact kind: its file, precision, optional dependency, its builder (a function of
``export.build``, imported when it runs), the options it takes, and what it is built from.
``--formats a,b`` and every option are validated against the table before anything is built
(``parse_formats``, ``validate_options``): an unknown name gets the closest one, a missing optional
dependency its install line, a GPU-only format where to run it instead, and an option no requested
format takes is an error, never silently ignored.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # file name of the artifact in --out
    precision: str  # fp32 | fp16 | int8 (of the engine's arithmetic; an option may change it, e.g. fp16)
    modules: tuple[str, ...]  # importable modules it needs (the optional dependency)
    install: str  # how to get them
    needs_gpu: bool = False
    options: tuple[str, ...] = ()  # CLI options (``Options`` / ``Gate`` fields) it takes
    builder: str = ""  # function of ``export.build``: (em, base, out, opts, calib, fmt, built) -> Artifact
    built_from: tuple[str, ...] = ()  # needs one of these formats in the same run (built before it)

    def build(self) -> Callable[..., Any]:
        """The builder function (``export.build`` is imported here: it needs torch)."""
        return getattr(importlib.import_module("export.build"), self.builder)


EXPORT_EXTRA = "pip install 'au-edge[export]'"
TRT_PARSER = ("allow_trt_unsupported",)  # ONNX artifacts are checked against TensorRT's parser
INT8_GATE = ("int8_max_f1_drop", "int8_min_agreement")  # export.parity.Gate's INT8 limits
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "au_fp32.onnx", "fp32", ("onnx", "onnxsim", "onnxruntime"), EXPORT_EXTRA,
           options=("opset", "simplify", "fp32_tol", *TRT_PARSER), builder="build_onnx"),
    Format("onnx-int8", "au_int8.onnx", "int8", ("onnx", "onnxruntime"), EXPORT_EXTRA,
           options=("opset", "simplify", "calib_size", *INT8_GATE, *TRT_PARSER), builder="build_onnx_int8"),
    Format("tflite", "au_fp32.tflite", "fp32", ("litert_torch", "ai_edge_litert"), EXPORT_EXTRA,
           options=("fp16", "tflite_layout", "fp32_tol", "fp16_tol"), builder="build_tflite"),
    Format("tflite-int8", "au_int8.tflite", "int8", ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"),
           EXPORT_EXTRA, options=("calib_size", "tflite_layout", *INT8_GATE), builder="build_tflite_int8"),
    Format("tensorrt", "au.trt", "fp16", ("tensorrt",), "pip install 'au-edge[tensorrt]' on the NVIDIA target",
           needs_gpu=True, options=("fp16_tol", *INT8_GATE), builder="build_tensorrt",
           built_from=("onnx-int8", "onnx")),
)}


class FormatError(ValueError):
    """A --formats value or option that cannot be exported here (one line: what and the fix)."""


def parse_formats(text: str) -> list[Format]:
    """``"onnx,tflite-int8"`` -> the rows, in the given order (a format built from another after
    it), checked.

    Raises:
        FormatError: unknown name, repeated name, missing dependency, a GPU-only format here, or a
            format without the one it is built from.
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
    for fmt in out:
        if fmt.built_from and not set(fmt.built_from) & set(names):
            raise FormatError(f"format {fmt.name!r} is built from an ONNX artifact: add "
                              f"{' (or '.join(fmt.built_from)}{')' * (len(fmt.built_from) - 1)} to --formats")
    return sorted(out, key=lambda f: bool(f.built_from))


def validate_options(formats: list[Format], given: Mapping[str, Any], flag: Callable[[str], str] = str) -> None:
    """Every option the user set (``given``: option -> value, defaults left out) must be taken
    by at least one of ``formats`` (Ultralytics' ``validate_args``).

    Raises:
        FormatError: naming the option (as ``flag(option)`` spells it), the formats asked for and
            those that take it.
    """
    for option in given:
        if not any(option in f.options for f in formats):
            takers = [f.name for f in FORMATS.values() if option in f.options]
            raise FormatError(f"{flag(option)} does not apply to --formats {','.join(f.name for f in formats)} "
                              f"(it applies to {', '.join(takers) or 'no format'}); drop it or add such a format")


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
