"""PyTorch -> TFLite (litert-torch) and full-INT8 TFLite (ai-edge-quantizer), with model cards.

litert-torch and ai-edge-quantizer are imported inside the functions: they are export-time
dependencies (the ``export`` extra), never needed by the runtime.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
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
                  output_range: tuple[float, float] | None = None,
                  output_ranges: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """Static INT8 (int8 weights and activations, int8 I/O) with ai-edge-quantizer.

    Args:
        float_tflite: the float model from ``to_tflite``.
        calibration: prepared input tensors (N x C x H x W float32, normalised as the card says),
            e.g. aligned crops from the training cache; a few hundred faces are plenty.
        out: path of the INT8 model.
        output_range: the first output's quantisation range is widened to at least this (logits:
            the calibration crops' range, e.g. -6.6..3.9, would clip every p > 0.98 to 0.98).
        output_ranges: the same per output, by signature output name (``"output_1": (0, 5)``:
            the intensity output spans the whole FACS scale, not just the calibration faces').
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
    ranges = dict(output_ranges or {})
    if output_range is not None:
        ranges.setdefault(sig[key]["outputs"][0], output_range)
    tensors = signature_outputs(float_interp)
    for output, wanted in ranges.items():
        for name, (lo_min, hi_min) in head_ranges(Path(float_tflite), tensors[output], wanted).items():
            lo, hi = stats[name]["min"], stats[name]["max"]
            stats[name] = {**stats[name], "min": np.minimum(lo, np.float32(lo_min)),
                           "max": np.maximum(hi, np.float32(hi_min))}
    result = qt.quantize(stats)
    out = Path(out)
    result.export_model(str(out), overwrite=True)
    return out


# A sigmoid's input is widened to this when an output after it is (the logits' range, as the AU output's)
SIGMOID_INPUT_RANGE = 12.0
# ops between a head's sigmoid and its output: a scale (MUL by a constant) and range-copying ones
HEAD_OPS = ("MUL", "GATHER", "GATHER_ND", "SLICE", "STRIDED_SLICE", "TRANSPOSE", "RESHAPE", "SQUEEZE",
            "EXPAND_DIMS")


def head_ranges(float_tflite: Path, output: str, wanted: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """The tensors to widen so that ``output`` spans ``wanted``: the output itself and, when it ends a
    bounded sigmoid head (``5 · sigmoid(linear)``, then a column Gather/Slice or reshapes: ops that copy
    their input's range), every tensor of that chain back to the sigmoid, whose input gets
    ``±SIGMOID_INPUT_RANGE``. Why: the quantizer's calibration keeps a moving average of each
    tensor's min/max, so a head whose calibration faces rarely go high clips there (the intensity
    output stopped at 2.4 of 5), and widening the output alone does not reach the tensors before
    it. The walk follows one chain of those ops (``HEAD_OPS``) only: any other op (a linear layer)
    ends it, and then only the output is widened."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(float_tflite)
    graph = model.subgraphs[0]
    names = [t.name.decode("utf-8") for t in graph.tensors]
    producer = {t: op for op in graph.operators for t in op.outputs}
    chain: dict[str, tuple[float, float]] = {output: wanted}
    t = names.index(output)
    for _ in range(len(graph.operators)):
        op = producer.get(t)
        kind = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode) if op else None
        if kind == "LOGISTIC":  # its own output's range is fixed by TFLite (1/256 steps)
            chain[names[op.inputs[0]]] = (-SIGMOID_INPUT_RANGE, SIGMOID_INPUT_RANGE)
            return chain
        computed = [i for i in (op.inputs if op else []) if i >= 0 and i in producer]  # not constants
        if kind not in HEAD_OPS or len(computed) != 1:
            break
        chain[names[t]] = wanted
        t = computed[0]
    return {output: wanted}  # not a sigmoid head: only the output itself


def signature_outputs(interp) -> dict[str, str]:
    """Signature output name (``output_0``, ``output_1``: the module's return order) -> tensor name."""
    runner = interp.get_signature_runner()
    return {k: d["name"] for k, d in runner.get_output_details().items()}


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
    """A copy of ``card`` whose input dtype/quant and output quant are read from the .tflite itself
    (with an intensity output: its tensor name and quantisation in ``output.intensity``)."""
    from runtime.litert import make_interpreter

    interp = make_interpreter(str(path), 1)
    details = {d["name"]: d for d in interp.get_output_details()}
    names = signature_outputs(interp)
    inp, outp = interp.get_input_details()[0], details[names["output_0"]]
    new = copy.deepcopy(card)
    new.input.dtype = np.dtype(inp["dtype"]).name
    scale, zp = inp["quantization"]
    new.input.quant = {"scale": float(scale), "zero_point": int(zp)} if scale else None
    new.output = {**new.output, "quant": _quant(outp)} if _quant(outp) else \
        {k: v for k, v in new.output.items() if k != "quant"}
    if new.output.get("intensity"):
        intensity = details[names["output_1"]]
        section = {k: v for k, v in new.output["intensity"].items() if k != "quant"}
        section["name"] = intensity["name"]
        if _quant(intensity):
            section["quant"] = _quant(intensity)
        new.output["intensity"] = section
    return new


def _quant(detail: dict) -> dict[str, float] | None:
    scale, zp = detail["quantization"]
    return {"scale": float(scale), "zero_point": int(zp)} if scale else None
