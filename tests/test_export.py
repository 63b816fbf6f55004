"""python -m export: ONNX/TFLite (FP32 and INT8) artifacts from a teacher checkpoint, their cards,
the TensorRT parser op check, the parity gate and its references, the CLI's one-line errors.

One untrained tiny teacher (BatchNorm/LayerNorm scales randomised so no block folds away) and a tiny
cache of real London photos (smiling = AU12) are exported once per session; the tests inspect it.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.export

REPO = Path(__file__).resolve().parents[1]
AUS = ["AU01", "AU04", "AU12", "AU25", "AU26"]
SIZE, CROP = 64, 96
THRESHOLDS = {"AU01": 0.45, "AU04": 0.5, "AU12": 0.4, "AU25": 0.55, "AU26": 0.5}
SCALES = {"AU01": 1.5, "AU04": 1.0, "AU12": 0.7, "AU25": 2.0, "AU26": 1.2}
# the run's per-AU calibration as train.calibration writes it: each threshold maps to 0.5
CALIBRATION = {"method": "test scales", "fitted_on": "validation: london_test",
               "aus": {a: {"a": SCALES[a], "b": -SCALES[a] * float(np.log(t / (1 - t)))} for a, t in THRESHOLDS.items()},
               "validation": {"ece": {"before": {"mean": 0.2}, "after": {"mean": 0.1}}}}
FORMATS = "onnx,onnx-int8,tflite,tflite-int8"
MODEL_CFG = {"backbone": "test_convnext", "pretrained": False, "dim": 32, "relation_depth": 1,
             "relation_heads": 2, "inpaint": False, "flow": False}


def _cache(root: Path, data_dir: Path) -> Path:
    """48 real photos (24 neutral, 24 smiling), centre-cropped to CROP px; AU12 = smiling, other AUs
    random with some unknown: the layout of ``train.data.cache`` written directly (no detector)."""
    from train.data.shards import empty_arrays, write_shard

    rng = np.random.default_rng(0)
    ids = [f"{i:03d}" for i in range(1, 40) if (data_dir / "london" / "smiling" / f"{i:03d}.jpg").is_file()][:24]
    n = 2 * len(ids)
    arrays = empty_arrays(n, len(AUS), CROP)
    for k, (kind, fid) in enumerate((kind, fid) for kind in ("neutral", "smiling") for fid in ids):
        img = cv2.cvtColor(cv2.imread(str(data_dir / "london" / kind / f"{fid}.jpg")), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
        arrays["image"][k] = cv2.resize(img, (CROP, CROP), interpolation=cv2.INTER_AREA)
        arrays["labels"][k] = rng.integers(0, 2, len(AUS))
        arrays["labels"][k, AUS.index("AU12")] = float(kind == "smiling")
        arrays["mask"][k] = rng.random(len(AUS)) > 0.1
        arrays["mask"][k, AUS.index("AU12")] = True
        arrays["subject"][k] = ids.index(fid)
    write_shard(root, 0, arrays, n, {})
    meta = {"dataset": "london_test", "aus": AUS, "crop_size": CROP, "template": "default", "scale": 1.0,
            "subjects": [f"london_{i}" for i in ids], "videos": [], "label_kinds": ["real", "silver", "synthetic"]}
    (root / "meta.json").write_text(json.dumps(meta))
    (root / "manifest.json").write_text(json.dumps({"dataset": "london_test", "frames": n, "label_kind": "real"}))
    return root


def _checkpoint(path: Path, cache: Path) -> Path:
    from train import checkpoint
    from train.task import TeacherTask

    torch.manual_seed(0)
    task = TeacherTask()
    model = task.build_model(MODEL_CFG, AUS, SIZE)
    with torch.no_grad():  # an untrained net has zero-init residual scales; randomise every norm
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if hasattr(m, "gamma") and isinstance(m.gamma, torch.nn.Parameter):
                m.gamma.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path, {"model": model.state_dict(), **task.checkpoint_meta(MODEL_CFG, AUS, SIZE)})
    (path.parent / "metrics.json").write_text(json.dumps({
        "f1": {a: 0.5 for a in AUS} | {"mean": 0.5}, "auc": {"mean": 0.6}, "thresholds": THRESHOLDS,
        "calibration": CALIBRATION, "data": str(cache), "split": "fold1/test", "label_kinds": ["real"]}))
    return path


def run_export(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "export", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


# The `setup` and `exported` fixtures (the tiny teacher, its cache, its export) live in conftest.py, so
# test_default_model.py installs the same export instead of making another.


def _torch_probs(ckpt: Path, crops: np.ndarray) -> np.ndarray:
    """The checkpoint's own model on crops, normalised here (not by export's code)."""
    from train import checkpoint
    from train.task import TeacherTask

    ck = checkpoint.load(ckpt)
    net = TeacherTask().model_from_checkpoint(ck).eval().export_module()
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(ck["mean"]).view(1, 3, 1, 1)) / torch.tensor(ck["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.sigmoid(net(x)).numpy()


def _runtime_crops(cache: Path) -> np.ndarray:
    """Input-size crops as the runtime makes them: the aligned crop shrunk with INTER_AREA."""
    images = np.load(cache / "shards" / "00000" / "image.npy")
    return np.stack([cv2.resize(im, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for im in images])


def test_recipe_names_every_setting_its_preset_does_not_hold():
    """A card's recipe is the command that made the model: the preset plus what differed from it."""
    from export.cards import preset_overrides
    from train.config import TrainConfig

    preset = REPO / "configs" / "default_student.yaml"
    made = ["input_size=96", "seed=1", "aus=[1, 12]", "amp=false", "model.trim=false", "model.w_rel=0.25",
            "threads=2", "data=/x", "run_dir=/y"]
    cfg = TrainConfig.from_yaml(preset, made).to_dict()
    text = preset_overrides(cfg, "default_student")
    assert text == " input_size=96 seed=1 amp=false aus=[1,12] model.trim=false model.w_rel=0.25"
    # the recipe's overrides give back the run's config (where it ran: data and run_dir, named apart)
    assert TrainConfig.from_yaml(preset, text.split() + ["threads=2", "data=/x", "run_dir=/y"]).to_dict() == cfg
    assert preset_overrides(TrainConfig.from_yaml(preset).to_dict(), "default_student") == ""
    assert preset_overrides(cfg, "no_such_preset") == ""  # nothing to compare against



def test_every_artifact_is_written_and_the_cli_prints_how_to_run_it(exported):
    for fmt, path in exported["files"].items():
        assert path.is_file() and (path.parent / (path.name + ".json")).is_file(), fmt
        assert f"python -m runtime.camera --engine {path}" in exported["stdout"]
    assert [a["format"] for a in exported["parity"]["artifacts"]] == FORMATS.split(",")
    assert exported["parity"]["passed"]


def test_float_artifacts_match_pytorch_within_the_gate(setup, exported):
    from runtime import load_engine

    crops = _runtime_crops(setup["cache"])
    ref = _torch_probs(setup["ckpt"], crops)
    assert ref.std() > 1e-3  # a model whose outputs vary, so matching them means something
    want, slope = _calibrated(ref)
    for fmt in ("onnx", "tflite"):
        with load_engine(exported["files"][fmt], threads=1) as eng:
            got = np.concatenate([eng.infer(crops[:3], calibrated=False), eng.infer(crops[3:], calibrated=False)])
            cal = eng.infer(crops)
        np.testing.assert_allclose(got, ref, atol=1e-3, err_msg=fmt)  # odd and large batches
        # the card's calibration survives the export: the runtime's calibrated output is PyTorch's
        # probability through it, within the gate carried through the map's slope
        assert (np.abs(cal - want) <= 1e-3 * slope + 1e-6).all(), fmt
    for fmt in ("onnx-int8", "tflite-int8"):  # INT8 is judged by F1, but must still be the same model
        with load_engine(exported["files"][fmt], threads=1) as eng:
            got = eng.infer(crops, calibrated=False)
            cal = eng.infer(crops)
        assert np.abs(got - ref).mean() < 0.05, fmt
        assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9, fmt
        assert np.abs(cal - want).mean() < 0.05 * slope.mean(), fmt


def _calibrated(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The run's calibration applied to probabilities ``p`` (N x A, AUS order), and its slope dp'/dp."""
    a = np.array([CALIBRATION["aus"][au]["a"] for au in AUS])
    b = np.array([CALIBRATION["aus"][au]["b"] for au in AUS])
    p = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
    q = 1 / (1 + np.exp(-(a * np.log(p / (1 - p)) + b)))
    return q, a * q * (1 - q) / (p * (1 - p))


def test_int8_artifacts_hold_int8_tensors(exported):
    import onnx
    from onnx import numpy_helper

    from runtime.litert import make_interpreter

    m = onnx.load(str(exported["files"]["onnx-int8"]))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") >= 5
    int8_weights = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) >= 5  # conv kernels stored as int8
    per_channel = [n for n in m.graph.node if n.op_type == "DequantizeLinear"
                   and any(a.name == "axis" for a in n.attribute)]
    assert per_channel
    zps = [numpy_helper.to_array(t) for t in m.graph.initializer if "zero_point" in t.name]
    assert zps and all(np.all(z == 0) for z in zps)  # symmetric: TensorRT requires zero points of 0
    assert not any(t.data_type == onnx.TensorProto.INT8 for t in onnx.load(
        str(exported["files"]["onnx"])).graph.initializer)

    interp = make_interpreter(str(exported["files"]["tflite-int8"]), 1)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    # logits over at least +-12, not a quantized sigmoid (whose 1/256 step cannot hold a 0.99
    # threshold) nor the calibration crops' narrower range (which would clip p at ~0.98)
    scale, zp = interp.get_output_details()[0]["quantization"]
    assert scale * (127 - zp) >= 12 - scale and scale * (-128 - zp) <= -12 + scale
    types = [np.dtype(t["dtype"]) for t in interp.get_tensor_details()]
    assert types.count(np.dtype(np.int8)) > types.count(np.dtype(np.float32))
    f32 = make_interpreter(str(exported["files"]["tflite"]), 1)
    assert np.int8 not in {t["dtype"] for t in f32.get_tensor_details()}


def test_cards_are_complete_with_the_right_sha256(setup, exported):
    from runtime.card import REQUIRED_KEYS

    for fmt, path in exported["files"].items():
        card = json.loads((path.parent / (path.name + ".json")).read_text())
        assert set(REQUIRED_KEYS) <= set(card), fmt
        assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), fmt
        assert card["aus"] == AUS and card["thresholds"] == {a: 0.5 for a in AUS}  # calibrated: 0.5 each
        # no validation split in this export: every artifact carries the run's calibration as it is
        assert card["calibration"] == {k: CALIBRATION[k] for k in ("method", "fitted_on", "aus")}, fmt
        assert card["metrics"]["raw_thresholds"] == THRESHOLDS
        assert card["metrics"]["calibration_ece"] == {"validation": CALIBRATION["validation"]["ece"]}
        assert card["input"]["size"] == [SIZE, SIZE]
        assert card["output"]["kind"] == ("logit" if fmt == "tflite-int8" else "prob"), fmt  # int8 logits
        assert card["alignment"] == {"template": "default", "crop_size": CROP, "scale": 1.0}
        assert {"name", "version", "backbone", "params", "precision"} <= set(card["model"])
        assert card["model"]["backbone"] == "test_convnext"
        assert card["model"]["precision"] == ("int8" if fmt.endswith("int8") else "fp32")
        assert card["training"]["label_kinds"] == ["real"] and card["training"]["datasets"] == ["london_test"]
        assert card["training"]["recipe"] and card["metrics"]["f1"]["mean"] == 0.5
        assert card["parity"]["passed"] and card["parity"]["file"] == path.name
        if fmt == "tflite-int8":
            assert card["input"]["dtype"] == "int8" and card["input"]["quant"]["scale"] > 0
            assert card["output"]["quant"]["scale"] > 0
    import onnx

    for fmt in ("onnx", "onnx-int8"):
        path = exported["files"][fmt]
        embedded = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["au_edge.model_card"])
        side = json.loads((path.parent / (path.name + ".json")).read_text())
        assert embedded["aus"] == side["aus"] and embedded["input"] == side["input"]
        assert embedded["calibration"] == side["calibration"]  # export.tensorrt builds from this card
        assert embedded["tensorrt_parser"] == {"supported": True}


def test_runtime_reproduces_the_parity_run(setup, exported):
    from runtime import load_engine

    torch_f1 = exported["parity"]["torch_f1_mean"]
    assert torch_f1 is not None
    for entry in exported["parity"]["artifacts"]:
        path = exported["out"] / entry["file"]
        ref = np.load(path.with_name(path.name + ".parity.npz"))
        assert set(ref.files) == {"crops", "expected", "tolerance", "aus", "precision"}
        assert list(ref["aus"]) == AUS and str(ref["precision"]) == entry["precision"]
        assert ref["crops"].shape[1:] == (SIZE, SIZE, 3) and 16 <= len(ref["crops"]) <= 64
        np.testing.assert_allclose(ref["expected"], _torch_probs(setup["ckpt"], ref["crops"]), atol=1e-5)
        with load_engine(path, threads=1) as eng:
            got = eng.infer(ref["crops"], calibrated=False)  # references are before the calibration
        d = np.abs(got - ref["expected"])
        assert d.max() <= float(ref["tolerance"])
        assert d.max() <= entry["max_abs_dprob"] + 1e-6  # a subset of the parity run's crops
        assert entry["size_bytes"] == path.stat().st_size
        assert abs(entry["f1_mean"] - torch_f1 - entry["f1_mean_delta_vs_torch"]) < 1e-2


def test_parity_gate_fails_loudly(setup, exported, tmp_path):
    out = tmp_path / "strict"
    proc = run_export("--checkpoint", setup["ckpt"], "--formats", "onnx", "--calib", setup["cache"], "--out", out,
                      "--split", "all", "--fp32-tol", "1e-12")
    assert proc.returncode == 1
    failed = [line for line in proc.stderr.splitlines() if line.startswith("parity FAILED")]
    assert len(failed) == 1 and "au_fp32.onnx" in failed[0]
    assert json.loads((out / "parity.json").read_text())["passed"] is False


def _graph(op: str, domain: str = ""):
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def test_trt_op_check_rejects_unsupported_ops(exported, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from export.trt_support import (
        UnsupportedOps,
        check_tensorrt_support,
        unsupported_ops,
    )

    assert unsupported_ops(_graph("Relu")) == []
    assert unsupported_ops(_graph("Unique")) == ["Unique"]  # "N" in onnx-tensorrt's operator matrix
    assert unsupported_ops(_graph("Gelu", "com.microsoft")) == ["com.microsoft::Gelu"]
    # asymmetric Q/DQ: TensorRT needs zero points of 0
    zp = helper.make_tensor("zp", TensorProto.INT8, [], [3])
    sc = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    q = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"])
    g = helper.make_graph([q], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [4])], initializer=[sc, zp])
    assert unsupported_ops(helper.make_model(g)) == ["QuantizeLinear (zero_point != 0)"]
    bad = tmp_path / "bad.onnx"
    onnx.save(_graph("Unique"), str(bad))
    with pytest.raises(UnsupportedOps, match="Unique"):
        check_tensorrt_support(bad)
    for fmt in ("onnx", "onnx-int8"):
        assert unsupported_ops(exported["files"][fmt]) == []


def _main(capsys, *args: str) -> tuple[int, str]:
    from export.__main__ import main

    rc = main(list(map(str, args)))
    return rc, capsys.readouterr().err.strip()


def test_cli_one_line_errors(setup, capsys, tmp_path):
    base = ["--checkpoint", setup["ckpt"], "--calib", setup["cache"], "--out", tmp_path / "o"]
    rc, err = _main(capsys, *base, "--formats", "onnx,tflite-int9")
    assert rc == 2 and err.count("\n") == 0 and "'tflite-int8'" in err
    rc, err = _main(capsys, *base, "--formats", "onnx,tensorrt")
    assert rc == 2 and err.count("\n") == 0 and "python -m export.tensorrt" in err
    rc, err = _main(capsys, "--checkpoint", tmp_path / "none.pt", "--formats", "onnx", "--calib", setup["cache"],
                    "--out", tmp_path / "o")
    assert rc == 2 and err.count("\n") == 0 and "none.pt" in err
    rc, err = _main(capsys, *base, "--formats", "onnx", "--split", "test")  # no run config in this checkpoint
    assert rc == 2 and err.count("\n") == 0 and "--split all" in err
    rc, err = _main(capsys, *base, "--formats", "onnx,onnx")
    assert rc == 2 and "twice" in err
    rc, err = _main(capsys, *base, "--formats", "tflite-int8", "--int8-min-agreement", "1.5")
    assert rc == 2 and err.count("\n") == 0 and "--int8-min-agreement" in err and "1.5" in err


@pytest.mark.parametrize("formats, option, takers", [
    ("onnx", ["--fp16"], "tflite"),
    ("onnx,onnx-int8", ["--tflite-layout", "NCHW"], "tflite, tflite-int8"),
    ("tflite", ["--opset", "18"], "onnx, onnx-int8"),
    ("onnx", ["--calib-size", "64"], "onnx-int8, tflite-int8"),
])
def test_an_option_no_requested_format_takes_is_one_line(formats, option, takers, setup, capsys, tmp_path):
    """Ultralytics' validate_args: an option is checked against the format table, not ignored."""
    out = tmp_path / "o"
    rc, err = _main(capsys, "--checkpoint", setup["ckpt"], "--calib", setup["cache"], "--out", out,
                    "--formats", formats, *option)
    assert rc == 2 and err.count("\n") == 0, err
    assert f"{option[0]} does not apply to --formats {formats} (it applies to {takers})" in err
    assert not out.exists()  # refused before anything was built


@pytest.mark.parametrize("out_size", [64, 112])
def test_export_crops_are_the_runtime_input_within_a_grey_level(out_size, data_dir, face_model):
    """Export resizes the cached 256-px crop (``resize_crop``, as training does); the runtime warps
    the frame straight to the input size. On a real face they agree to under a grey level on
    average (a direct warp without the 2x supersampling would not)."""
    import cv2

    from export.crops import resize_crop
    from runtime.align import align_face
    from runtime.face import FaceStage

    rgb = cv2.cvtColor(cv2.imread(str(data_dir / "london" / "smiling" / "003.jpg")), cv2.COLOR_BGR2RGB)
    with FaceStage(face_model=face_model, max_faces=1) as stage:
        points5 = stage.detect(rgb)[0].points5
    cached, m = align_face(rgb, points5, crop_size=256)  # what the cache stores
    deployed, _ = align_face(rgb, points5, crop_size=256, out_size=out_size)  # what the detector feeds
    diff = np.abs(resize_crop(cached, out_size).astype(int) - deployed.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 10, (diff.mean(), np.percentile(diff, 99))
    naive = cv2.warpAffine(rgb, m * out_size / 256, (out_size, out_size), flags=cv2.INTER_LINEAR)
    assert np.abs(naive.astype(int) - deployed.astype(int)).mean() > 1.5 * diff.mean()


def test_a_missing_dependency_names_its_install_line():
    from export.formats import Format, FormatError, check_available

    fmt = Format("demo", "x.bin", "fp32", ("onnx", "au_edge_no_such_module"), "pip install 'au-edge[demo]'")
    with pytest.raises(FormatError, match=r"au_edge_no_such_module, not installed; pip install 'au-edge\[demo\]'"):
        check_available(fmt)


def test_onnx_int8_cannot_saturate_cpu_int8_kernels_and_keeps_ends_float(setup, exported):
    """ORT on AVX2-only CPUs runs S8S8 convs as u8 x s8 pair sums in int16: weights beyond +-63 can
    saturate them (the distilled student lost 3.3 F1 points that way), so weights use 7 bits; the
    fused int8 kernels must then compute what the unfused QDQ graph (TensorRT's view) computes."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    path = exported["files"]["onnx-int8"]
    m = onnx.load(str(path))
    weights = [numpy_helper.to_array(t) for t in m.graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and len(t.dims) > 1]
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64
    producer = {o: n for n in m.graph.node for o in n.output}
    assert all(producer[o.name].op_type != "DequantizeLinear" for o in m.graph.output)  # no QDQ on the probs
    stem = next(n for n in m.graph.node if n.op_type == "Conv")
    assert producer.get(stem.input[0]) is None or producer[stem.input[0]].op_type != "DequantizeLinear"

    crops = _runtime_crops(setup["cache"])[:16]
    ck_mean, ck_std = (np.array(v, np.float32) for v in (_card_norm(path)))
    x = np.ascontiguousarray(((crops / 255.0 - ck_mean) / ck_std).transpose(0, 3, 1, 2), np.float32)
    outs = []
    for level in (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, ort.GraphOptimizationLevel.ORT_DISABLE_ALL):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.graph_optimization_level = 1, level
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    assert np.abs(outs[0] - outs[1]).max() < 0.05


def _card_norm(path: Path) -> tuple[list[float], list[float]]:
    card = json.loads((path.parent / (path.name + ".json")).read_text())
    return card["input"]["mean"], card["input"]["std"]


@pytest.mark.slow  # its own export of a trained-split run (~17 s each)
@pytest.mark.parametrize("calibrated", [False, True], ids=["thresholds", "calibration"])
def test_int8_decisions_are_fitted_on_its_own_validation_outputs(setup, tmp_path, calibrated):
    """A run with a val split and a neutral budget. Without calibration, the INT8 card's thresholds
    follow the run's rule on the INT8 engine's own val outputs (run here through the runtime) and the
    budget holds there. A calibrated run's INT8 card keeps the run's calibration, composed with the
    least-squares map of the INT8 logits onto FP32's on val (no labels: an AU with few positives gets
    no new operating point), thresholds 0.5, with the ONNX-embedded card alike."""
    from export.crops import load_crops
    from train.data.policy import split_indices_for
    from runtime import load_engine
    from train import checkpoint
    from train.config import TrainConfig
    from train.data.cache import CacheData
    from train.metrics import calibrate

    cfg = TrainConfig(data=str(setup["cache"]), split="deploy", val_fraction=0.25, neutral_fp_budget=0.0)
    ck = checkpoint.load(setup["ckpt"])
    ck["config"] = json.dumps(cfg.to_dict())
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.save(run / "best.pt", ck)
    metrics = json.loads((setup["ckpt"].parent / "metrics.json").read_text())
    if not calibrated:
        metrics.pop("calibration")
    (run / "metrics.json").write_text(json.dumps(metrics))
    formats = "onnx,onnx-int8,tflite-int8" if calibrated else "tflite-int8"
    proc = run_export("--checkpoint", run / "best.pt", "--formats", formats, "--calib", setup["cache"],
                      "--out", tmp_path / "out", "--split", "test")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: an untrained net may fail the INT8 gate
    val = load_crops(setup["cache"], SIZE, split_indices_for(CacheData(setup["cache"]), cfg.to_dict(), "val"),
                     aus=AUS)
    assert len(val) == 12 and val.real.any()  # 6 of the 24 identities, neutral + smiling
    neg = val.real & (val.labels < 0.5)
    for name in ("au_int8.onnx", "au_int8.tflite") if calibrated else ("au_int8.tflite",):
        engine = tmp_path / "out" / name
        card = json.loads(Path(str(engine) + ".json").read_text())
        with load_engine(engine) as e:
            probs = e.infer(val.crops, calibrated=False)
            shown = e.infer(val.crops)
        if not calibrated:
            want, rules = calibrate(probs, val.labels, val.mask, real=val.real, max_fp_rate=0.0)
            assert card["metrics"]["threshold_rules"]["AU12"].startswith("f1 on real labels")
            assert "calibration" not in card
            assert card["thresholds"] == {a: round(float(t), 4) for a, t in zip(AUS, want)} != THRESHOLDS
            assert not (neg & (probs >= np.array([card["thresholds"][a] for a in AUS]))).any()  # budget: none lit
            continue
        assert card["thresholds"] == {a: 0.5 for a in AUS}
        assert card["calibration"]["fitted_on"].startswith(CALIBRATION["fitted_on"] + "; this artifact's logits")
        # the map, refitted here: FP32 logits (the FP32 ONNX, = PyTorch within 1e-5) on INT8 logits, per AU
        with load_engine(tmp_path / "out" / "au_fp32.onnx") as e:
            ref = e.infer(val.crops, calibrated=False)
        z, zr = (np.log(np.clip(q, 1e-6, 1 - 1e-6) / np.clip(1 - q, 1e-6, 1)) for q in (probs, ref))
        fits = [np.polyfit(z[:, j], zr[:, j], 1) for j in range(len(AUS))]
        mapped = card["metrics"]["int8_logit_map"]
        for au, (slope, icpt) in zip(AUS, fits):
            if 0.1 <= slope <= 10:
                np.testing.assert_allclose(mapped[au], [slope, icpt], atol=2e-3, err_msg=au)
        run_a = np.array([CALIBRATION["aus"][au]["a"] for au in AUS])
        run_b = np.array([CALIBRATION["aus"][au]["b"] for au in AUS])
        alpha, beta = np.array([mapped[au] for au in AUS]).T
        a = np.array([card["calibration"]["aus"][au]["a"] for au in AUS])
        b = np.array([card["calibration"]["aus"][au]["b"] for au in AUS])
        np.testing.assert_allclose(a, run_a * alpha, rtol=1e-3)
        np.testing.assert_allclose(b, run_a * beta + run_b, rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(shown >= 0.5, a * z + b >= 0)  # the runtime decides by the card
        assert card["metrics"]["calibration_ece"]["validation"] != CALIBRATION["validation"]["ece"]  # its own
        assert set(card["metrics"]["calibration_ece"]["validation"]["after"]) == set(AUS) | {"mean"}
        if name.endswith(".onnx"):
            import onnx

            props = {p.key: p.value for p in onnx.load(str(engine)).metadata_props}
            assert json.loads(props["au_edge.model_card"])["calibration"] == card["calibration"]
    if calibrated:  # the FP32 ONNX keeps the run's calibration
        fp32 = json.loads((tmp_path / "out" / "au_fp32.onnx.json").read_text())
        assert fp32["calibration"] == {k: CALIBRATION[k] for k in ("method", "fitted_on", "aus")}
