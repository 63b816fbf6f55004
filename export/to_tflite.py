"""PyTorch -> TFLite (litert-torch) and full-INT8 TFLite (ai-edge-quantizer), with model cards.

litert-torch and ai-edge-quantizer are imported inside the functions: they are export-time
dependencies (the ``export`` extra), never needed by the runtime.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from runtime.card import ModelCard
from runtime.errors import MissingDependency


def to_tflite(module, sample, out: str | Path) -> Path:
    """Convert an eval-mode ``torch.nn.Module`` taking one NCHW float tensor to ``out`` (.tflite)."""
    try:
        import litert_torch
    except ImportError:
        raise MissingDependency("litert-torch", "pip install 'au-edge[export]'") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    litert_torch.convert(module.eval(), (sample,)).export(str(out))
    return out


def quantize_int8(float_tflite: str | Path, calibration: Iterable[np.ndarray], out: str | Path,
                  output_range: tuple[float, float] | None = None) -> Path:
    """Static INT8 (int8 weights and activations, int8 I/O) with ai-edge-quantizer.

    Args:
        float_tflite: the float model from ``to_tflite``.
        calibration: prepared input tensors (N x C x H x W float32, normalised as the card says),
            e.g. aligned crops from the training cache; a few hundred faces are plenty.
        out: path of the INT8 model.
        output_range: the output's quantisation range is widened to at least this (logits: the
            calibration crops' range, e.g. -6.6..3.9, would clip every p > 0.98 to 0.98).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise MissingDependency("ai-edge-quantizer", "pip install 'au-edge[export]'") from None
    float_interp = Interpreter(str(float_tflite))
    sig = float_interp.get_signature_list()
    key = next(iter(sig))
    name = sig[key]["inputs"][0]
    samples = [{name: np.asarray(x[i:i + 1], np.float32)} for x in calibration for i in range(len(x))]
    if not samples:
        raise ValueError("quantize_int8: the calibration data is empty; pass some aligned face crops")
    qt = quantizer.Quantizer(str(float_tflite))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    stats = qt.calibrate({key: samples})
    if output_range is not None:
        out_name = float_interp.get_output_details()[0]["name"]
        lo, hi = stats[out_name]["min"], stats[out_name]["max"]
        stats[out_name] = {**stats[out_name], "min": np.minimum(lo, np.float32(output_range[0])),
                           "max": np.maximum(hi, np.float32(output_range[1]))}
    result = qt.quantize(stats)
    out = Path(out)
    result.export_model(str(out), overwrite=True)
    return out


def to_fp16_weights(float_tflite: str | Path, out: str | Path) -> Path:
    """FP16 weights (float compute; a GPU delegate runs them in half precision) with ai-edge-quantizer."""
    try:
        from ai_edge_quantizer import qtyping, quantizer
        from ai_edge_quantizer.recipe import AlgorithmName, TFLOperationName
    except ImportError:
        raise MissingDependency("ai-edge-quantizer", "pip install 'au-edge[export]'") from None
    qt = quantizer.Quantizer(str(float_tflite))
    qt.update_quantization_recipe(
        regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
        op_config=qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
            compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True),
        algorithm_key=AlgorithmName.FLOAT_CASTING)
    out = Path(out)
    qt.quantize().export_model(str(out), overwrite=True)
    return out


def card_for_tflite(path: str | Path, card: ModelCard) -> ModelCard:
    """A copy of ``card`` whose input dtype/quant and output quant are read from the .tflite itself."""
    from runtime.litert import make_interpreter

    interp = make_interpreter(str(path), 1)
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    new = copy.deepcopy(card)
    new.input.dtype = np.dtype(inp["dtype"]).name
    scale, zp = inp["quantization"]
    new.input.quant = {"scale": float(scale), "zero_point": int(zp)} if scale else None
    o_scale, o_zp = outp["quantization"]
    new.output = {**new.output, "quant": {"scale": float(o_scale), "zero_point": int(o_zp)}} if o_scale else \
        {k: v for k, v in new.output.items() if k != "quant"}
    return new
