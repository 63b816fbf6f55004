"""Tiny conforming AU engines for tests: a few known operations, so expected outputs are computed
independently in numpy (``reference_probs``) rather than by the code under test.

Model: global mean of the normalised input per channel -> x @ W + b -> sigmoid (or logits).
ONNX models are written node by node with onnx.helper; TFLite models go through the same tools as
the export stage (litert-torch, ai-edge-quantizer), except the dynamic-batch one: litert-torch 0.10
cannot lower a mean/conv over a dynamic batch here, so ``write_tflite`` writes that flatbuffer
directly with LiteRT's own schema (the same three ops litert-torch emits: MEAN, FULLY_CONNECTED,
LOGISTIC), and the test checks that its shape_signature really is -1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.aus import DEFAULT_MODEL_AUS, names
from runtime.card import InputSpec, ModelCard

AUS = names(DEFAULT_MODEL_AUS)
SIZE = 64
RNG = np.random.default_rng(1234)
W = RNG.normal(0, 2.0, (3, len(AUS))).astype(np.float32)
B = RNG.normal(0, 0.5, len(AUS)).astype(np.float32)
INT8_CAST = (64, 192)
MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.2, 0.22)


def base_card(**input_overrides) -> ModelCard:
    spec = InputSpec(size=(SIZE, SIZE), layout="NCHW", dtype="float32", mean=MEAN, std=STD)
    for k, v in input_overrides.items():
        setattr(spec, k, v)
    return ModelCard(
        aus=list(AUS), input=spec, output_kind="prob", thresholds={a: 0.5 for a in AUS},
        alignment={"template": "default", "crop_size": 128, "scale": 1.0},
        model={"name": "tiny-test", "version": "0", "backbone": "mean-linear", "params": W.size + B.size},
        training={"datasets": [], "label_kinds": ["synthetic"], "recipe": "tests/engine_factory.py"},
        metrics={}, parity={},
    )


def reference_probs(crops_rgb: np.ndarray, color: str = "RGB") -> np.ndarray:
    x = crops_rgb[..., ::-1] if color == "BGR" else crops_rgb
    x = (x.astype(np.float64) / 255.0 - np.array(MEAN)) / np.array(STD)
    z = x.mean(axis=(1, 2)) @ W.astype(np.float64) + B
    return 1.0 / (1.0 + np.exp(-z))


def write_onnx(path: Path, logits: bool = False, batch: int | str = "batch", bias: np.ndarray | None = None) -> Path:
    """The tiny model as ONNX; ``batch`` an int for a static batch, a name for a dynamic one; ``bias``
    replaces ``B`` (e.g. ``B + offset``: a constant logit offset on some AUs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "W"], ["mm"]),
             helper.make_node("Add", ["mm", "B"], ["logits" if not logits else "au"])]
    if not logits:
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["au"]))
    graph = helper.make_graph(
        nodes, "tiny_au",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("au", TensorProto.FLOAT, [batch, len(AUS)])],
        initializer=[numpy_helper.from_array(W, "W"),
                     numpy_helper.from_array(np.asarray(B if bias is None else bias, np.float32), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_tflite(path: Path, batch: int = -1) -> Path:
    """The tiny model (NCHW float) as a .tflite flatbuffer; ``batch=-1`` gives a dynamic batch."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    def buffer(a: np.ndarray | None = None):
        b = fb.BufferT()
        b.data = None if a is None else np.ascontiguousarray(a).view(np.uint8).ravel().tolist()
        return b

    def tensor(name: str, shape: list[int], batched: bool = True, buf: int = 0, dtype=fb.TensorType.FLOAT32):
        t = fb.TensorT()
        t.name, t.type, t.buffer = name, dtype, buf
        t.shape = [max(batch, 1)] + shape if batched else shape
        t.shapeSignature = [batch] + shape if batched else shape
        return t

    def operator(code: int, inputs: list[int], outputs: list[int], options_type: int = 0, options=None):
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        return o

    codes = []
    for op in (fb.BuiltinOperator.MEAN, fb.BuiltinOperator.FULLY_CONNECTED, fb.BuiltinOperator.LOGISTIC):
        c = fb.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = op, op, 1
        codes.append(c)
    mean, fc = fb.ReducerOptionsT(), fb.FullyConnectedOptionsT()
    mean.keepDims = fc.keepNumDims = False
    graph = fb.SubGraphT()
    graph.name, graph.inputs, graph.outputs = "main", [0], [6]
    graph.tensors = [tensor("image", [3, SIZE, SIZE]), tensor("axes", [2], False, 1, fb.TensorType.INT32),
                     tensor("pooled", [3]), tensor("w", [len(AUS), 3], False, 2),
                     tensor("b", [len(AUS)], False, 3), tensor("logits", [len(AUS)]), tensor("au", [len(AUS)])]
    graph.operators = [operator(0, [0, 1], [2], fb.BuiltinOptions.ReducerOptions, mean),
                       operator(1, [2, 3, 4], [5], fb.BuiltinOptions.FullyConnectedOptions, fc),
                       operator(2, [5], [6])]
    model = fb.ModelT()
    model.version, model.description, model.operatorCodes, model.subgraphs = 3, "tiny_au", codes, [graph]
    model.buffers = [buffer(), buffer(np.array([2, 3], np.int32)), buffer(W.T.astype(np.float32)),
                     buffer(B.astype(np.float32))]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(path).write_bytes(bytes(builder.Output()))
    return Path(path)


def torch_module(nhwc: bool = False):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, len(AUS))
            with torch.no_grad():
                self.lin.weight.copy_(torch.from_numpy(W.T.copy()))
                self.lin.bias.copy_(torch.from_numpy(B))

        def forward(self, x):
            dims = (1, 2) if nhwc else (2, 3)
            return torch.sigmoid(self.lin(x.mean(dim=dims)))

    return Tiny().eval()


def random_crops(n: int, seed: int = 0, lo: int = 0, hi: int = 256) -> np.ndarray:
    """Crops with per-image colour casts in [lo, hi), so channel order and normalisation matter."""
    rng = np.random.default_rng(seed)
    base = rng.integers(lo, hi, (n, 1, 1, 3))
    noise = rng.integers(-40, 40, (n, SIZE, SIZE, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def build_all(out: Path) -> dict[str, Path]:
    import torch

    from export.to_tflite import card_for_tflite, quantize_int8, to_tflite

    engines: dict[str, Path] = {}
    p = write_onnx(out / "tiny_prob.onnx")
    base_card().write(p)
    engines["onnx"] = p
    p = write_onnx(out / "tiny_logit.onnx", logits=True)
    card = base_card()
    card.output_kind = "logit"
    card.write(p)
    engines["onnx_logit"] = p
    p = write_onnx(out / "tiny_bgr.onnx")
    base_card(color="BGR").write(p)
    engines["onnx_bgr"] = p

    sample = torch.zeros(1, 3, SIZE, SIZE)
    p = to_tflite(torch_module(), sample, out / "tiny.tflite")
    base_card().write(p)
    engines["tflite"] = p
    p = to_tflite(torch_module(nhwc=True), sample.permute(0, 2, 3, 1), out / "tiny_nhwc.tflite")
    base_card(layout="NHWC").write(p)
    engines["tflite_nhwc"] = p

    # ai-edge-quantizer calibrates activations with a moving average of per-sample min/max; the
    # pooled vector has only 3 values, so each calibration crop has one black and one white
    # channel (its min/max then span the whole range) and INT8 is tested on moderate casts.
    rng = np.random.default_rng(99)
    casts = np.stack([rng.permutation([0, 255, int(rng.integers(0, 256))]) for _ in range(64)])
    crops = np.broadcast_to(casts[:, None, None, :], (64, SIZE, SIZE, 3)).astype(np.uint8)
    x = ((crops / 255.0 - np.array(MEAN)) / np.array(STD)).astype(np.float32).transpose(0, 3, 1, 2)
    p = quantize_int8(engines["tflite"], [x], out / "tiny_int8.tflite")
    card_for_tflite(p, base_card()).write(p)
    engines["tflite_int8"] = p
    return engines


def build_batch_variants(out: Path, tflite_static1: Path) -> dict[tuple[str, str], Path]:
    """(backend, "static1" | "static4" | "dynamic") -> engine with its card, for the batch tests.

    LiteRT static 1 is the litert-torch export of ``build_all``; static 4 is litert-torch traced at
    batch 4 (the export that made the old LiteRT backend recurse forever).
    """
    import torch

    from export.to_tflite import to_tflite

    engines: dict[tuple[str, str], Path] = {}
    for kind, batch in (("static1", 1), ("static4", 4), ("dynamic", "batch")):
        p = write_onnx(out / f"batch_{kind}.onnx", batch=batch)
        base_card().write(p)
        engines[("onnx", kind)] = p
    engines[("litert", "static1")] = tflite_static1
    p = to_tflite(torch_module(), torch.zeros(4, 3, SIZE, SIZE), out / "batch_static4.tflite")
    base_card().write(p)
    engines[("litert", "static4")] = p
    p = write_tflite(out / "batch_dynamic.tflite", batch=-1)
    base_card().write(p)
    engines[("litert", "dynamic")] = p
    return engines
