"""FP32 ONNX -> INT8 QDQ ONNX (onnxruntime.quantization, static, calibrated on real face crops).

The QDQ form (QuantizeLinear/DequantizeLinear around float ops) is what TensorRT builds an INT8
engine from. TensorRT accepts symmetric quantisation only (zero points must be 0), so activations
and weights are both symmetric int8; weights per output channel. Activation ranges are the moving
average of per-batch min/max (as ai-edge-quantizer does for TFLite): on the smoke teacher, plain
global min/max lost 1.39 mean-F1 points and failed the gate; the moving average lost 0.80.
(Percentile/entropy calibration crash in onnxruntime 1.32 on this graph.)
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class CropReader:
    """onnxruntime's CalibrationDataReader protocol over prepared NCHW float batches."""

    def __init__(self, input_name: str, x: np.ndarray, batch: int = 16):
        self.input_name = input_name
        self._batches: Iterator[np.ndarray] = iter([x[i:i + batch] for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        b = next(self._batches, None)
        return None if b is None else {self.input_name: np.ascontiguousarray(b, np.float32)}


def quantize_onnx_int8(fp32_onnx: str | Path, calibration: np.ndarray, out: str | Path) -> Path:
    """Static INT8 QDQ quantisation.

    Args:
        fp32_onnx: the float model (input ``image``, normalised NCHW float32).
        calibration: N x 3 x H x W float32, normalised as the card says (real aligned crops).
        out: path of the INT8 model.

    Raises:
        ValueError: empty calibration data.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise ValueError("onnx-int8: the calibration set is empty; pass --calib with a cache of aligned faces")
    out = Path(out)
    name = onnx.load(str(fp32_onnx), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), CropReader(name, calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "CalibMovingAverage": True})
    return out


def int8_initializers(path: str | Path) -> int:
    """How many int8 weight tensors the graph stores (a check that weights really are INT8)."""
    import onnx

    m = onnx.load(str(path))
    return sum(1 for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) > 1)
