"""Engines chosen by file suffix: ONNX Runtime, LiteRT, TensorRT (see ``BACKENDS``).

Backends are imported only when their suffix is opened, so a Raspberry Pi with LiteRT alone, or a
Jetson with TensorRT alone, never needs the others.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from runtime.card import ModelCard, load_card
from runtime.engines.base import BatchPolicy, Engine, TensorSpec
from runtime.engines.default import (
    DefaultChoice,
    default_engine_choice,
    default_engine_path,
)
from runtime.errors import EngineError

# suffix -> (module, class); a module may define require() to check its dependency up front
BACKENDS: dict[str, tuple[str, str]] = {
    ".onnx": ("runtime.engines.onnx_engine", "OnnxEngine"),
    ".tflite": ("runtime.engines.litert_engine", "LiteRTEngine"),
    ".trt": ("runtime.engines.tensorrt_engine", "TensorRTEngine"),
    ".engine": ("runtime.engines.tensorrt_engine", "TensorRTEngine"),
    ".plan": ("runtime.engines.tensorrt_engine", "TensorRTEngine"),
}


def load_engine(path: str | Path, threads: int | None = None, card: ModelCard | None = None) -> Engine:
    """Open an engine and its model card.

    Args:
        path: engine file; the suffix picks the backend, or ``"default"`` for the shipped model
            (the faster of its shipped engines on this CPU; see ``default_engine_choice``).
        threads: CPU threads for ONNX Runtime / LiteRT (None: ONNX Runtime's default, LiteRT
            ``runtime.litert.default_threads()``).
        card: an already-loaded card (skips reading ``<path>.json``).

    Raises:
        EngineError: missing file, unknown suffix, corrupt engine.
        CardError: missing/mismatched card.
        MissingDependency: the backend's package is not installed.
    """
    if str(path) == "default":
        path = default_engine_path(threads=threads)
    path = Path(path)
    backend = BACKENDS.get(path.suffix.lower())
    if backend is None:
        raise EngineError(f"engine {path}: unknown suffix {path.suffix!r}; use one of "
                          f"{', '.join(sorted(BACKENDS))} or 'default'")
    if not path.is_file():
        raise EngineError(f"engine {path} not found; pass an existing file to --engine (or 'default')")
    if path.stat().st_size == 0:
        raise EngineError(f"engine {path} is empty; re-export it")
    module = importlib.import_module(backend[0])
    if hasattr(module, "require"):  # say "TensorRT is not installed" before anything about the card
        module.require()
    card = card or load_card(path)
    return getattr(module, backend[1])(path, card, threads=threads)


__all__ = ["BACKENDS", "BatchPolicy", "DefaultChoice", "Engine", "TensorSpec", "default_engine_choice",
           "default_engine_path", "load_engine"]
