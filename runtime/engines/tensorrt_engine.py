"""TensorRT backend (10.x and 11.x) for Jetson and NVIDIA GPUs.

Uses only the API that TensorRT 10 and 11 share: named I/O tensors, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``, ``get_tensor_profile_shape``; nothing of the weakly
typed builder flags that 11.x removed (those matter to ``export.tensorrt`` only). Host buffers are
pinned (cudaMallocHost) so the copies are real DMA; device memory through cuda-python. TensorRT
and cuda-python are imported only when a ``.trt``/``.engine``/``.plan`` file is opened.

UNVERIFIED: no GPU and no TensorRT where this was written; nothing here has run on hardware yet
(see the README's verified/unverified table). The batching it relies on (``BatchPolicy``) is
tested on CPU backends.
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

from runtime.card import ModelCard
from runtime.engines.base import BatchPolicy, Engine, TensorSpec
from runtime.engines.intensity import split_outputs
from runtime.errors import EngineError, MissingDependency

INSTALL_HINT = ("on a Jetson it comes with JetPack (python3-libnvinfer); on x86 "
                "`pip install 'au-edge[tensorrt]'`; or use a .onnx/.tflite engine")


def import_tensorrt():
    """``(tensorrt, cudart)``, or MissingDependency with the install hint (one line)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependency("TensorRT", INSTALL_HINT) from None
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
    import_tensorrt()


def make_logger(trt, echo_warnings: bool = False):
    """A TensorRT logger that keeps the last error line (so failures become one EngineError line)
    instead of printing TensorRT's multi-line reports; warnings are printed only when asked."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.last_error = ""
            self.warnings: list[str] = []

        def log(self, severity, msg) -> None:
            line = " ".join(str(msg).split())[:300]
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.last_error = line
            elif severity == trt.ILogger.WARNING:
                self.warnings.append(line)
                del self.warnings[:-20]
                if echo_warnings:
                    print(f"TensorRT warning: {line}", file=sys.stderr)

        def detail(self) -> str:
            return self.last_error or "TensorRT gave no error message"

    return _Logger()


def cuda_check(result, what: str):
    """cuda-python returns ``(err, *values)``: raise one EngineError line on error, else the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EngineError(f"CUDA {what} failed with {getattr(err, 'name', err)}; check the GPU and driver "
                          "(nvidia-smi, or tegrastats on a Jetson)")
    return values[0] if len(values) == 1 else values


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, path: str | Path, card: ModelCard, threads: int | None = None):
        trt, self._cudart = import_tensorrt()
        self._trt = trt
        self._stream = None
        self._host: dict[str, tuple[int, int]] = {}  # name -> (pinned pointer, bytes)
        self._device: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        # The runtime and logger must outlive the engine and context that TensorRT made with them.
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if engine is None:
            raise EngineError(f"cannot load TensorRT engine {path}: {self._logger.detail()}; an engine only "
                              "runs with the TensorRT version and GPU it was built on: rebuild it on this "
                              "device with `python -m export.tensorrt`")
        self.engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        wanted = 2 if card.intensity is not None else 1  # AU probabilities (+ intensity: card output.intensity)
        if len(inputs) != 1 or len(outputs) != wanted:
            raise EngineError(f"TensorRT engine {path} has inputs {inputs} and outputs {outputs}; expected one "
                              f"input and {wanted} output{'s' if wanted > 1 else ''} (an au-edge export and its card)")
        self._in = inputs[0]
        self._out, self._intensity = split_outputs(outputs, card, path)
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._in)))
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in outputs}
        super().__init__(path, card)  # card check first: nothing to free if it fails
        self.context = engine.create_execution_context()
        if self.context is None:
            raise EngineError(f"cannot create a TensorRT execution context for {path}: {self._logger.detail()}; "
                              "free GPU memory or rebuild the engine")
        try:
            self._stream = cuda_check(self._cudart.cudaStreamCreate(), "stream creation")
        except EngineError:
            self.close()
            raise

    def _input_spec(self) -> TensorSpec:
        return TensorSpec(tuple(int(d) for d in self.engine.get_tensor_shape(self._in)), self._in_dtype.name)

    def _output_width(self) -> int | None:
        return self._width(self._out)

    def _intensity_width(self) -> int | None:
        return self._width(self._intensity) if self._intensity else None

    def _width(self, name: str) -> int | None:
        dims = tuple(self.engine.get_tensor_shape(name))[1:]
        return None if any(d < 0 for d in dims) else int(np.prod(dims))

    def _batch_policy(self) -> BatchPolicy:
        batch = int(self.engine.get_tensor_shape(self._in)[0])
        if batch > 0:
            return BatchPolicy.static(batch)
        # Dynamic batch: optimisation profile 0 (the one a fresh context uses) gives min/opt/max.
        lo, opt, hi = (int(s[0]) for s in self.engine.get_tensor_profile_shape(self._in, 0))
        return BatchPolicy(lo, hi, opt)

    # ---- buffers -----------------------------------------------------------------------------
    def _buffer(self, table: dict[str, tuple[int, int]], name: str, nbytes: int, pinned: bool) -> int:
        """Grow-only buffer: frames with more faces reuse the larger allocation."""
        cudart = self._cudart
        ptr, size = table.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                cuda_check((cudart.cudaFreeHost if pinned else cudart.cudaFree)(ptr), "free")
                table.pop(name)
            what = "pinned host allocation" if pinned else "device allocation"
            ptr = int(cuda_check((cudart.cudaMallocHost if pinned else cudart.cudaMalloc)(nbytes), what))
            table[name] = (ptr, nbytes)
            if not pinned and not self.context.set_tensor_address(name, ptr):
                raise EngineError(f"TensorRT rejected the buffer for tensor {name!r} of {self.path.name}: "
                                  f"{self._logger.detail()}")
        return ptr

    @staticmethod
    def _host_view(ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * dtype.itemsize
        return np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr), dtype=dtype).reshape(shape)

    # ---- one legal batch ---------------------------------------------------------------------
    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._execute(x)[self._out]

    def _run_with_intensity(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._execute(x)
        return out[self._out], out[self._intensity]

    def _execute(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch; every output (TensorRT needs an address for each) as views of pinned buffers."""
        cudart = self._cudart
        if not self.context.set_input_shape(self._in, tuple(x.shape)):
            raise EngineError(f"TensorRT engine {self.path.name} rejected input shape {list(x.shape)}: "
                              f"{self._logger.detail()}")
        shapes = {n: tuple(int(d) for d in self.context.get_tensor_shape(n)) for n in self._dtypes}
        for n, shape in shapes.items():
            if any(d < 0 for d in shape):
                raise EngineError(f"TensorRT engine {self.path.name}: output {n!r} shape {list(shape)} unresolved "
                                  f"for input {list(x.shape)}: {self._logger.detail()}")
        in_bytes = x.size * self._in_dtype.itemsize
        h_in = self._buffer(self._host, self._in, in_bytes, pinned=True)
        d_in = self._buffer(self._device, self._in, in_bytes, pinned=False)
        outs = {}
        for n, shape in shapes.items():
            nbytes = int(np.prod(shape)) * self._dtypes[n].itemsize
            outs[n] = (self._buffer(self._host, n, nbytes, pinned=True),
                       self._buffer(self._device, n, nbytes, pinned=False), nbytes)
        np.copyto(self._host_view(h_in, x.shape, self._in_dtype), x, casting="same_kind")
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_check(cudart.cudaMemcpyAsync(d_in, h_in, in_bytes, h2d, self._stream), "copy to the GPU")
        if not self.context.execute_async_v3(int(self._stream)):
            raise EngineError(f"TensorRT execution failed for {self.path.name}: {self._logger.detail()}")
        for h_out, d_out, nbytes in outs.values():
            cuda_check(cudart.cudaMemcpyAsync(h_out, d_out, nbytes, d2h, self._stream), "copy from the GPU")
        cuda_check(cudart.cudaStreamSynchronize(self._stream), "stream synchronisation")
        # views of the pinned buffers: the base copies them before the next run reuses them
        return {n: self._host_view(outs[n][0], shape, self._dtypes[n]) for n, shape in shapes.items()}

    def __del__(self) -> None:  # a forgotten close() must not leak the stream and pinned memory
        try:
            self.close()
        except Exception:  # interpreter shutdown: cuda-python may already be gone
            pass

    def close(self) -> None:
        """Free buffers and the stream; safe to call twice and after a failed __init__."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr, _ in getattr(self, "_device", {}).values():
            cudart.cudaFree(ptr)
        for ptr, _ in getattr(self, "_host", {}).values():
            cudart.cudaFreeHost(ptr)
        self._device, self._host = {}, {}
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        for name in ("context", "engine", "_runtime"):  # release in reverse order of creation
            if getattr(self, name, None) is not None:
                setattr(self, name, None)
