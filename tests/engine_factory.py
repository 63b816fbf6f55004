"""Tiny conforming AU engines for tests: a few known operations, so expected outputs are computed
independently in numpy (``reference_probs``) rather than by the code under test.

Model: global mean of the normalised input per channel -> x @ W + b -> sigmoid (or logits).
ONNX models are written node by node with onnx.helper; TFLite models go through the same tools as
the export stage (litert-torch, ai-edge-quantizer).
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


def write_onnx(path: Path, logits: bool = False) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "W"], ["mm"]),
             helper.make_node("Add", ["mm", "B"], ["logits" if not logits else "au"])]
    if not logits:
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["au"]))
    graph = helper.make_graph(
        nodes, "tiny_au",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("au", TensorProto.FLOAT, ["batch", len(AUS)])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


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
