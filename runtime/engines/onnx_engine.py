"""ONNX Runtime backend (CPU everywhere; CUDA/TensorRT execution providers when installed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.card import ModelCard
from runtime.engines.base import BatchPolicy, Engine, TensorSpec
from runtime.engines.intensity import split_outputs
from runtime.errors import EngineError, MissingDependency

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
              "tensor(int8)": "int8"}


class OnnxEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, path: str | Path, card: ModelCard, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependency("onnxruntime", "pip install onnxruntime (or onnxruntime-gpu)") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise EngineError(f"cannot load ONNX engine {path}: {first}; re-export it") from None
        self._in = self.session.get_inputs()[0]
        outputs = {o.name: o for o in self.session.get_outputs()}
        au, intensity = split_outputs(list(outputs), card, path)
        self._out, self._intensity = outputs[au], (outputs[intensity] if intensity else None)
        super().__init__(path, card)

    def _input_spec(self) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in self._in.shape)
        return TensorSpec(shape, _ORT_TYPES.get(self._in.type, self._in.type))

    def _output_width(self) -> int | None:
        return _width(self._out)

    def _intensity_width(self) -> int | None:
        return _width(self._intensity) if self._intensity is not None else None

    def _batch_policy(self) -> BatchPolicy:
        batch = self._in.shape[0]  # an int when exported with a fixed batch, else a name or None
        return BatchPolicy.static(batch) if isinstance(batch, int) and batch > 0 else BatchPolicy()

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self._out.name], {self._in.name: x})[0]

    def _run_with_intensity(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        au, intensity = self.session.run([self._out.name, self._intensity.name], {self._in.name: x})
        return au, intensity


def _width(out) -> int | None:
    """Values per sample of an ONNX Runtime output (None when a dimension is dynamic)."""
    dims = out.shape[1:]
    if not dims or not all(isinstance(d, int) for d in dims):
        return None
    return int(np.prod(dims))
