"""The LiteRT interpreter, from ai-edge-litert (preferred) or tflite_runtime (Python <= 3.11 boards)."""
from __future__ import annotations

from runtime.errors import MissingDependency


def make_interpreter(model: str | bytes, threads: int | None = None):
    """A LiteRT ``Interpreter`` for a model path or the model's bytes (tensors not yet allocated)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise MissingDependency("LiteRT", "pip install ai-edge-litert (or tflite-runtime on Python <= 3.11)") from None
    kwargs = {"num_threads": int(threads)} if threads else {}
    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model), **kwargs)
    return Interpreter(model_path=str(model), **kwargs)
