"""Engines and model cards: real ONNX Runtime and LiteRT sessions on tiny conforming engines."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from engine_factory import AUS, INT8_CAST, base_card, random_crops, reference_probs
from runtime.card import card_path, load_card
from runtime.engines import load_engine
from runtime.errors import CardError, EngineError, MissingDependency

TOL = {"onnx": 1e-5, "onnx_logit": 1e-5, "onnx_bgr": 1e-5, "tflite": 1e-4, "tflite_nhwc": 1e-4,
       "tflite_int8": 0.06}


@pytest.mark.parametrize("kind", list(TOL))
@pytest.mark.parametrize("batch", [1, 3])
def test_engine_matches_numpy_reference(tiny_engines, kind, batch):
    crops = random_crops(batch, seed=batch, **(dict(zip(("lo", "hi"), INT8_CAST)) if kind == "tflite_int8" else {}))
    with load_engine(tiny_engines[kind], threads=1) as eng:
        probs = eng.infer(crops)
        assert probs.shape == (batch, len(AUS)) and probs.dtype == np.float32
        assert eng.aus == AUS
    want = reference_probs(crops, color="BGR" if kind == "onnx_bgr" else "RGB")
    assert np.abs(probs - want).max() <= TOL[kind]
    assert probs.min() >= 0 and probs.max() <= 1


def test_int8_engine_has_integer_io(tiny_engines):
    card = load_card(tiny_engines["tflite_int8"])
    assert card.input.dtype == "int8" and card.input.quant["scale"] > 0
    assert "quant" in card.output


def test_empty_batch(tiny_engines):
    with load_engine(tiny_engines["onnx"]) as eng:
        assert eng.infer(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, len(AUS))


def test_wrong_crop_shape_is_a_clear_error(tiny_engines):
    with load_engine(tiny_engines["onnx"]) as eng, pytest.raises(ValueError, match="64 x 64 x 3 uint8"):
        eng.infer(np.zeros((1, 32, 32, 3), np.uint8))


def _copy(src, dst):
    shutil.copy(src, dst)
    shutil.copy(card_path(src), card_path(dst))
    return dst


def test_missing_and_bad_engine_files(tmp_path, tiny_engines):
    with pytest.raises(EngineError, match="not found"):
        load_engine(tmp_path / "nope.onnx")
    with pytest.raises(EngineError, match="unknown suffix"):
        load_engine(tmp_path / "model.pt")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(EngineError, match="empty"):
        load_engine(tmp_path / "empty.tflite")
    for kind, suffix in (("onnx", ".onnx"), ("tflite", ".tflite")):
        bad = tmp_path / f"corrupt{suffix}"
        data = bytearray(tiny_engines[kind].read_bytes())
        bad.write_bytes(bytes(data[: len(data) // 3]) + b"\x00garbage" * 10)
        base_card().write(bad)  # the card is right for these bytes: the engine itself is corrupt
        with pytest.raises(EngineError, match="cannot load"):
            load_engine(bad)


def test_card_missing_mismatched_or_for_another_engine(tmp_path, tiny_engines):
    eng = _copy(tiny_engines["onnx"], tmp_path / "a.onnx")
    card_path(eng).unlink()
    with pytest.raises(CardError, match="not found"):
        load_engine(eng)
    # The card of another engine file: sha256 differs.
    shutil.copy(card_path(tiny_engines["tflite"]), card_path(eng))
    with pytest.raises(CardError, match="another engine"):
        load_engine(eng)
    # Right file, wrong declared input size / layout / AU count / dtype.
    for change, match in ((dict(size=(32, 32)), "input is"), (dict(layout="NHWC"), "input is"),
                          (dict(dtype="float16"), "dtype")):
        base_card(**change).write(eng)
        with pytest.raises(CardError, match=match):
            load_engine(eng)
    card = base_card()
    card.aus = AUS[:5]
    card.thresholds = {a: 0.5 for a in card.aus}
    card.write(eng)
    with pytest.raises(CardError, match="outputs 15 values"):
        load_engine(eng)


def test_malformed_cards(tmp_path, tiny_engines):
    eng = _copy(tiny_engines["onnx"], tmp_path / "m.onnx")
    card_path(eng).write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        load_engine(eng)
    good = json.loads(card_path(tiny_engines["onnx"]).read_text())
    cases = [("aus", ["AU99"], "bad 'aus'"), ("output", {"kind": "softmax"}, "output.kind"),
             ("input", {**good["input"], "layout": "CHW"}, "layout"),
             ("input", {**good["input"], "dtype": "int8", "quant": None}, "needs input.quant"),
             ("alignment", {"template": "mystery"}, "template")]
    for key, value, match in cases:
        card_path(eng).write_text(json.dumps({**good, key: value}))
        with pytest.raises(CardError, match=match):
            load_engine(eng)
    card_path(eng).write_text(json.dumps({k: v for k, v in good.items() if k != "thresholds"}))
    with pytest.raises(CardError, match="missing keys"):
        load_engine(eng)


def test_tensorrt_without_tensorrt_is_one_line(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    eng = tmp_path / "au.trt"
    eng.write_bytes(b"not really an engine")
    with pytest.raises(MissingDependency, match="TensorRT is not installed"):
        load_engine(eng)
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--engine", str(eng), "--source", "x.mp4",
                           "--no-show"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "TensorRT is not installed" in proc.stderr


def test_onnx_export_embeds_the_card(tmp_path):
    """export.to_onnx: dynamic batch, onnxsim, the card in metadata_props; the runtime loads it."""
    import onnx
    import torch

    from engine_factory import torch_module
    from export.to_onnx import embed_card, to_onnx

    path = to_onnx(torch_module(), torch.zeros(1, 3, 64, 64), tmp_path / "exp.onnx")
    card = base_card()
    embed_card(path, card)
    card.write(path)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["au_edge.model_card"])["aus"] == AUS
    crops = random_crops(5, seed=3)
    with load_engine(path) as eng:
        assert np.abs(eng.infer(crops) - reference_probs(crops)).max() < 1e-5


def test_cuda_errors_are_one_line():
    """cuda-python's (err, value) results: the TensorRT backend turns an error into one line."""
    cudart = pytest.importorskip("cuda.bindings.runtime")
    from runtime.engines.tensorrt_engine import cuda_check

    assert cuda_check((cudart.cudaError_t.cudaSuccess, 7), "x") == 7
    with pytest.raises(EngineError, match="CUDA stream creation failed with cudaErrorNoDevice; check the GPU"):
        cuda_check((cudart.cudaError_t.cudaErrorNoDevice, None), "stream creation")
