"""TensorRT 10 backend for Jetson / NVIDIA GPUs.

Written to the TensorRT 10 Python API (named I/O tensors, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) with device memory through cuda-python. Imported
only when a ``.trt``/``.engine``/``.plan`` file is opened. NOT verified on hardware in this
repository's CI (no GPU, no TensorRT there): see the README's verified/unverified table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.card import ModelCard
from runtime.engines.base import Engine, TensorSpec
from runtime.errors import EngineError, MissingDependency


def _import_trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependency("TensorRT", "on a Jetson it comes with JetPack (python3-libnvinfer); "
                                "on x86 `pip install au-edge[tensorrt]`; or use a .onnx/.tflite engine") from None
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise MissingDependency("cuda-python", "pip install cuda-python (matching your CUDA major)") from None
    return trt, cudart


def require() -> None:
    """Fail early, in one line, when TensorRT or cuda-python is missing."""
    _import_trt()


def _check(result):
    """cuda-python returns (err, *values); raise on error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EngineError(f"CUDA call failed with {err}; check the GPU and driver (nvidia-smi / tegrastats)")
    return values[0] if len(values) == 1 else values


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, path: str | Path, card: ModelCard, threads: int | None = None):
        trt, self._cudart = _import_trt()
        self._trt = trt
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if engine is None:
            raise EngineError(f"cannot deserialize TensorRT engine {path}: it was built for another "
                              "TensorRT version or GPU; rebuild it on this device with `python -m export.tensorrt`")
        self.engine, self.context = engine, engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineError(f"TensorRT engine {path} has inputs {inputs} and outputs {outputs}; "
                              "expected one of each (an au-edge export)")
        self._in, self._out = inputs[0], outputs[0]
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._in)))
        self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._out)))
        shape = tuple(engine.get_tensor_shape(self._in))
        # Largest batch the optimisation profile allows (static engines: their own batch).
        self._max_batch = (int(engine.get_tensor_profile_shape(self._in, 0)[2][0]) if shape[0] == -1
                           else int(shape[0]))
        self._stream = _check(self._cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        super().__init__(path, card)

    def _input_spec(self) -> TensorSpec:
        return TensorSpec(tuple(int(d) for d in self.engine.get_tensor_shape(self._in)), self._in_dtype.name)

    def _output_width(self) -> int | None:
        dims = tuple(self.engine.get_tensor_shape(self._out))[1:]
        return None if any(d < 0 for d in dims) else int(np.prod(dims))

    def _device(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:  # grow only: frames with more faces reuse the larger buffer
            if ptr:
                _check(self._cudart.cudaFree(ptr))
            ptr = int(_check(self._cudart.cudaMalloc(nbytes)))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def _run(self, x: np.ndarray) -> np.ndarray:
        if len(x) > self._max_batch:
            return np.concatenate([self._run(x[i:i + self._max_batch])
                                   for i in range(0, len(x), self._max_batch)])
        cudart = self._cudart
        x = np.ascontiguousarray(x, dtype=self._in_dtype)
        self.context.set_input_shape(self._in, x.shape)
        out = np.empty(tuple(self.context.get_tensor_shape(self._out)), dtype=self._out_dtype)
        d_in, d_out = self._device(self._in, x.nbytes), self._device(self._out, out.nbytes)
        self.context.set_tensor_address(self._in, d_in)
        self.context.set_tensor_address(self._out, d_out)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, h2d, self._stream))
        if not self.context.execute_async_v3(self._stream):
            raise EngineError(f"TensorRT execution failed for {self.path.name}")
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self._stream))
        _check(cudart.cudaStreamSynchronize(self._stream))
        return out

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None
