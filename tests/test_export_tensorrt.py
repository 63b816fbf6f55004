"""``python -m export.tensorrt`` without a GPU: every check that runs before TensorRT, the plan for
TensorRT 10.x and 11.x, and the engine's card and parity copy. The TensorRT build itself needs the
target device and is not run here (UNVERIFIED; see the module docstring)."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine_factory import AUS, SIZE, W, base_card, write_onnx
from export.tensorrt import (BuildError, batch_profile, build_plan, inspect_onnx, main, onnx_card,
                             parse_batch, write_outputs)
from runtime.card import card_path, load_card
from runtime.errors import CardError

pytestmark = pytest.mark.export  # onnx, to write the test models

ROOT = Path(__file__).resolve().parent.parent


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def _variant_onnx(path: Path, kind: str) -> Path:
    """The tiny model with Q/DQ on its input ("qdq") or computed in float16 ("fp16")."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if kind == "qdq":
        nodes = [helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["x"])]
        extra = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                 numpy_helper.from_array(np.array(0, np.int8), "z")]
        weights = W
    else:
        nodes = [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT16)]
        extra, weights = [], W.astype(np.float16)
    nodes += [helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[2, 3], keepdims=0),
              helper.make_node("MatMul", ["pooled", "W"], ["mm"])]
    if kind == "fp16":
        nodes.append(helper.make_node("Cast", ["mm"], ["mm32"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Sigmoid", ["mm32" if kind == "fp16" else "mm"], ["au"]))
    graph = helper.make_graph(
        nodes, "tiny_au", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("au", TensorProto.FLOAT, ["batch", len(AUS)])],
        initializer=[numpy_helper.from_array(weights, "W"), *extra])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("trt_export")
    out = {"fp32": write_onnx(d / "au.onnx"), "static4": write_onnx(d / "au_b4.onnx", batch=4),
           "qdq": _variant_onnx(d / "au_int8.onnx", "qdq"), "fp16": _variant_onnx(d / "au_fp16.onnx", "fp16")}
    for p in out.values():
        base_card().write(p)
    return out


def _info(path: Path):
    import onnx

    return inspect_onnx(onnx.load(str(path)))


def _cli(capsys, *args: str) -> tuple[int, str]:
    rc = main(list(args))
    return rc, capsys.readouterr().err.strip()


def test_inspect_onnx_finds_batch_qdq_and_fp16(models):
    fp32, static4, qdq, fp16 = (_info(models[k]) for k in ("fp32", "static4", "qdq", "fp16"))
    assert fp32.input_name == "image" and fp32.static_batch is None and not fp32.has_qdq and not fp32.has_fp16
    assert static4.static_batch == 4
    assert qdq.has_qdq and not qdq.has_fp16
    assert fp16.has_fp16 and not fp16.has_qdq


def test_plan_for_tensorrt_10_and_11(models):
    fp32, qdq, fp16 = (_info(models[k]) for k in ("fp32", "qdq", "fp16"))
    for major in (10, 11):
        plan = build_plan(major, "int8", qdq)
        assert plan.strongly_typed and not plan.fp16_flag and "Q/DQ" in plan.how
        plan = build_plan(major, "fp32", fp32)
        assert plan.strongly_typed and not plan.fp16_flag
        plan = build_plan(major, "fp16", fp16)  # an FP16 ONNX builds strongly typed on both
        assert plan.strongly_typed and not plan.fp16_flag and "FP16 ONNX" in plan.how
    plan = build_plan(10, "fp16", fp32)  # 10.x: the builder flag on a weakly typed network
    assert plan.fp16_flag and not plan.strongly_typed and "BuilderFlag.FP16" in plan.how
    with pytest.raises(BuildError, match="TensorRT 11.x has no FP16 builder flag"):
        build_plan(11, "fp16", fp32)
    with pytest.raises(BuildError, match="needs a QDQ ONNX"):
        build_plan(10, "int8", fp32)
    with pytest.raises(BuildError, match="build it with --int8"):
        build_plan(11, "fp32", qdq)
    with pytest.raises(BuildError, match="build it with --fp16"):
        build_plan(10, "fp32", fp16)
    with pytest.raises(BuildError, match="DLA runs FP16 or INT8 only"):
        build_plan(10, "fp32", fp32, dla=0)
    assert build_plan(10, "int8", qdq, dla=1).strongly_typed


def test_batch_option_and_profile(models):
    assert parse_batch("1,4,8") == (1, 4, 8) and parse_batch(" 2 ") == (2, 2, 2)
    for bad in ("4,2,8", "x", "0,1,2", "1,2", "1,2,3,4", ""):
        with pytest.raises(BuildError, match="MIN,OPT,MAX"):
            parse_batch(bad)
    assert batch_profile(_info(models["fp32"]), None) == (1, 4, 8)
    assert batch_profile(_info(models["fp32"]), (2, 2, 16)) == (2, 2, 16)
    assert batch_profile(_info(models["static4"]), None) is None
    assert batch_profile(_info(models["static4"]), (4, 4, 4)) is None
    with pytest.raises(BuildError, match="static batch of 4"):
        batch_profile(_info(models["static4"]), (1, 4, 8))


@pytest.mark.parametrize("args, match", [
    (["--batch", "4,2,8"], "--batch '4,2,8'"),
    (["--batch", "x"], "--batch 'x'"),
    (["--fp16", "--int8"], "not allowed with argument"),
    (["--int8"], "needs a QDQ ONNX"),
    (["--dla", "0"], "DLA runs FP16 or INT8 only"),
])
def test_bad_options_exit_2_with_one_line(models, tmp_path, capsys, args, match):
    try:
        rc, err = _cli(capsys, "--onnx", str(models["fp32"]), "--out", str(tmp_path / "au.trt"), *args)
    except SystemExit as e:  # argparse's own errors exit from parse_args
        rc, err = e.code, capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and match in err, err
    assert not (tmp_path / "au.trt").exists()


def test_bad_files_exit_2_with_one_line(models, tmp_path, capsys):
    rc, err = _cli(capsys, "--onnx", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "a.trt"))
    assert rc == 2 and "file not found" in err and "\n" not in err
    rc, err = _cli(capsys, "--onnx", str(models["fp32"]), "--out", str(tmp_path / "a.onnx"))
    assert rc == 2 and ".trt, .engine or .plan" in err
    bare = tmp_path / "bare.onnx"
    shutil.copy(models["fp32"], bare)  # no card beside it and none embedded
    rc, err = _cli(capsys, "--onnx", str(bare), "--out", str(tmp_path / "a.trt"))
    assert rc == 2 and "no model card" in err and "\n" not in err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage" * 20)
    rc, err = _cli(capsys, "--onnx", str(junk), "--out", str(tmp_path / "a.trt"))
    assert rc == 2 and "not a readable ONNX" in err


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_without_tensorrt_the_cli_exits_2_with_the_install_hint(models, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "export.tensorrt", "--onnx", str(models["qdq"]),
                           "--out", str(tmp_path / "au.trt"), "--int8", "--batch", "1,4,8"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err and "TensorRT is not installed" in err and "pip install" in err, err


def test_card_from_sidecar_or_embedded_metadata(models, tmp_path):
    import onnx

    from export.to_onnx import embed_card

    assert onnx_card(models["fp32"], onnx.load(str(models["fp32"]))).aus == AUS
    embedded = tmp_path / "embedded.onnx"
    shutil.copy(models["fp32"], embedded)
    embed_card(embedded, base_card())
    assert not card_path(embedded).exists()
    card = onnx_card(embedded, onnx.load(str(embedded)))
    assert card.aus == AUS and card.input.size == (SIZE, SIZE)
    stale = tmp_path / "stale.onnx"
    shutil.copy(models["fp32"], stale)
    shutil.copy(card_path(models["qdq"]), card_path(stale))  # a card for another file
    with pytest.raises(CardError, match="another engine"):
        onnx_card(stale, onnx.load(str(stale)))


def test_engine_card_and_parity_copy(models, tmp_path):
    onnx_path = tmp_path / "au_int8.onnx"
    shutil.copy(models["qdq"], onnx_path)
    shutil.copy(card_path(models["qdq"]), card_path(onnx_path))
    rng = np.random.default_rng(0)
    np.savez(onnx_path.with_name(onnx_path.name + ".parity.npz"),
             crops=rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8),
             expected=rng.random((4, len(AUS)), dtype=np.float32), tolerance=np.float32(0.05),
             aus=np.array(AUS), precision=np.array("int8"))
    engine = tmp_path / "au.trt"
    engine.write_bytes(b"stand-in for a serialized engine " * 7)  # the card only hashes the bytes
    info = {"version": "10.3.0", "device": "Orin", "batch": {"min": 1, "opt": 4, "max": 8}, "dla": None}
    import onnx

    written = write_outputs(onnx_path, engine, onnx_card(onnx_path, onnx.load(str(onnx_path))), "int8", info)
    data = json.loads(written.read_text())
    assert written == card_path(engine)
    assert data["sha256"] == hashlib.sha256(engine.read_bytes()).hexdigest()
    assert data["model"]["precision"] == "int8" and data["tensorrt"] == info and data["aus"] == AUS
    assert load_card(engine).sha256 == data["sha256"]  # the runtime accepts it for this file
    copied = tmp_path / "au.trt.parity.npz"
    assert copied.read_bytes() == onnx_path.with_name(onnx_path.name + ".parity.npz").read_bytes()
