"""LiteRT backend (ai-edge-litert, or tflite_runtime where that is what is installed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.card import ModelCard
from runtime.engines.base import Engine, TensorSpec
from runtime.errors import EngineError
from runtime.litert import make_interpreter


class LiteRTEngine(Engine):
    backend = "litert"

    def __init__(self, path: str | Path, card: ModelCard, threads: int | None = None):
        try:
            self.interp = make_interpreter(str(path), threads)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise EngineError(f"cannot load TFLite engine {path}: {first}; re-export it") from None
        self._in = self.interp.get_input_details()[0]
        self._out = self.interp.get_output_details()[0]
        self._batch = int(self._in["shape"][0])
        sig = self._in.get("shape_signature")
        # Only a model exported with a dynamic batch may be resized: a static graph can hold
        # batch-1 reshapes that silently give wrong numbers at another batch size.
        self._dynamic = sig is not None and len(sig) > 0 and int(sig[0]) == -1
        super().__init__(path, card)

    @staticmethod
    def _quant(detail: dict) -> tuple[float, int] | None:
        scale, zp = detail.get("quantization", (0.0, 0))
        return (float(scale), int(zp)) if scale else None

    def _input_spec(self) -> TensorSpec:
        sig = self._in.get("shape_signature")
        shape = tuple(int(d) for d in (sig if sig is not None and len(sig) else self._in["shape"]))
        return TensorSpec(shape, np.dtype(self._in["dtype"]).name, self._quant(self._in))

    def _output_width(self) -> int | None:
        return int(np.prod(self._out["shape"][1:]))

    def _output_quant(self) -> tuple[float, int] | None:
        return self._quant(self._out)

    def _try_resize(self, n: int) -> bool:
        """Set the batch dimension; False for models whose batch is fixed."""
        if not self._dynamic:
            return False
        shape = list(self._in["shape"])
        shape[0] = n
        try:
            self.interp.resize_tensor_input(self._in["index"], shape)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError):
            return False
        self._batch = n
        return True

    def _run(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self._batch and not self._try_resize(len(x)):
            return np.concatenate([self._run(x[i:i + 1]) for i in range(len(x))])
        return self._invoke(x)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self.interp.set_tensor(self._in["index"], x)
        self.interp.invoke()
        return self.interp.get_tensor(self._out["index"]).copy()
