"""LiteRT backend (ai-edge-litert, or tflite_runtime where that is what is installed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.card import ModelCard
from runtime.engines.base import BatchPolicy, Engine, TensorSpec
from runtime.engines.intensity import split_outputs
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
        outputs = {d["name"]: d for d in self.interp.get_output_details()}
        au, intensity = split_outputs(list(outputs), card, path)
        self._out, self._intensity = outputs[au], (outputs[intensity] if intensity else None)
        self._batch = int(self._in["shape"][0])  # the batch the tensors are allocated for now
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

    def _intensity_width(self) -> int | None:
        return int(np.prod(self._intensity["shape"][1:])) if self._intensity is not None else None

    def _intensity_quant(self) -> tuple[float, int] | None:
        return self._quant(self._intensity) if self._intensity is not None else None

    def _batch_policy(self) -> BatchPolicy:
        # Only a model exported with a dynamic batch (shape_signature -1) may be resized: a static
        # graph can hold batch-B reshapes that give wrong numbers at another batch size.
        batch = self._input_spec().shape[0]
        return BatchPolicy() if batch == -1 else BatchPolicy.static(batch)

    def _run(self, x: np.ndarray) -> np.ndarray:
        self._invoke(x)
        return self.interp.get_tensor(self._out["index"])

    def _run_with_intensity(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._invoke(x)
        return self.interp.get_tensor(self._out["index"]), self.interp.get_tensor(self._intensity["index"])

    def _invoke(self, x: np.ndarray) -> None:
        if len(x) != self._batch:  # only reached for a dynamic batch: the policy pads static ones
            shape = list(self._in["shape"])
            shape[0] = len(x)
            try:
                self.interp.resize_tensor_input(self._in["index"], shape)
                self.interp.allocate_tensors()
            except (ValueError, RuntimeError) as e:
                first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                raise EngineError(f"TFLite engine {self.path.name}: cannot resize its batch to {len(x)}: "
                                  f"{first}; re-export it with a dynamic batch or a static one") from None
            self._batch = len(x)
        self.interp.set_tensor(self._in["index"], x)
        self.interp.invoke()
