"""AU intensity from the checkpoint to the outputs: ``python -m export`` writes the second output in
every format (declared for the AUs the run had intensity labels for, with their label kinds), the
parity gate covers it, every CPU backend returns it through ``infer_with_intensity`` within parity
of PyTorch, and ``AUDetector`` puts it in ``FaceAU.au_intensity``, the JSONL and the CSV ``AUxx_r``.

The model is test_export.py's tiny untrained teacher with its intensity head on (norms and the
intensity read-out randomised so outputs vary), on test_export.py's London photo cache with
intensity labels added for two AUs: the card must declare exactly those two (a Gather in the graph).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_export import AUS, MODEL_CFG, SIZE, _cache, _runtime_crops, run_export

pytestmark = [pytest.mark.export, pytest.mark.slow]

FORMATS = "onnx,onnx-int8,tflite,tflite-int8"
FILES = {"onnx": "au_fp32.onnx", "onnx-int8": "au_int8.onnx", "tflite": "au_fp32.tflite",
         "tflite-int8": "au_int8.tflite"}
LABELLED = ["AU12", "AU25"]  # the AUs with intensity labels: the declared subset
KINDS = {"AU12": ["real"], "AU25": ["synthetic"]}


def _intensity_cache(root: Path, data_dir: Path) -> Path:
    """test_export's cache, with AU12 intensity 3 on smiling photos (0 neutral) and AU25 graded 0-5
    on half of them, NaN elsewhere."""
    _cache(root, data_dir)
    shard = root / "shards" / "00000"
    labels = np.load(shard / "labels.npy")
    intensity = np.full(labels.shape, np.nan, np.float16)
    intensity[:, AUS.index("AU12")] = 3.0 * labels[:, AUS.index("AU12")]
    rng = np.random.default_rng(1)
    half = np.arange(len(labels)) % 2 == 0
    intensity[half, AUS.index("AU25")] = rng.integers(0, 6, half.sum())
    np.save(shard / "intensity.npy", intensity)
    return root


def _checkpoint(path: Path, cache: Path) -> Path:
    """test_export's tiny teacher (the same weights, run metrics and calibration, so its
    probabilities pass the same gate) with an intensity head added, and ``intensity_labels`` in its
    metrics.json as evaluate_run records them."""
    from test_export import _checkpoint as plain_checkpoint

    from train import checkpoint
    from train.task import TeacherTask

    plain = checkpoint.load(plain_checkpoint(path, cache))
    cfg = {**MODEL_CFG, "intensity_head": True}
    task = TeacherTask()
    model = task.build_model(cfg, AUS, SIZE)
    missing, unexpected = model.load_state_dict(plain["model"], strict=False)
    assert not unexpected and all(k.startswith("net.au_branch.intensity.") for k in missing)
    head = model.net.au_branch.intensity
    with torch.no_grad():  # intensities spread over the scale, so matching them means something
        dim = head.weight.shape[1]  # logits of spread ~2: sigmoids that neither saturate nor stay flat
        head.weight.copy_(2 * dim ** -0.5 * torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(5)))
    checkpoint.save(path, {"model": model.state_dict(), **task.checkpoint_meta(cfg, AUS, SIZE)})
    metrics = json.loads((path.parent / "metrics.json").read_text())
    metrics["intensity_labels"] = {a: {"known": 24, "label_kinds": KINDS[a]} for a in LABELLED}
    (path.parent / "metrics.json").write_text(json.dumps(metrics))
    return path


def torch_outputs(ckpt: Path, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's own model on crops (normalised here, not by export's code): probabilities of
    every AU and intensities of the LABELLED AUs."""
    from train import checkpoint
    from train.task import TeacherTask

    ck = checkpoint.load(ckpt)
    net = TeacherTask().model_from_checkpoint(ck).eval().export_module()
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(ck["mean"]).view(1, 3, 1, 1)) / torch.tensor(ck["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = net.forward_features(x)
        probs = torch.sigmoid(net.forward_head(tokens)).numpy()
        intensity = (5 * torch.sigmoid(net.au_branch.intensity(tokens))).numpy()
    return probs, intensity[:, [AUS.index(a) for a in LABELLED]]


@pytest.fixture(scope="module")
def exported_intensity(data_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("intensity_export")
    cache = _intensity_cache(root / "cache", data_dir)
    ckpt = _checkpoint(root / "run" / "best.pt", cache)
    out = root / "out"
    proc = run_export("--checkpoint", ckpt, "--formats", FORMATS, "--calib", cache, "--out", out, "--split", "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "cache": cache, "ckpt": ckpt, "parity": json.loads((out / "parity.json").read_text()),
            "files": {f: out / name for f, name in FILES.items()}}


def test_every_format_declares_the_intensity_output_in_its_card(exported_intensity):
    from runtime.card import load_card

    for fmt, path in exported_intensity["files"].items():
        card = load_card(path)
        raw = json.loads((path.parent / (path.name + ".json")).read_text())["output"]["intensity"]
        assert raw["aus"] == LABELLED and raw["label_kinds"] == KINDS and raw["range"] == [0, 5], fmt
        assert card.intensity is not None and card.intensity.aus == tuple(LABELLED), fmt
        if fmt.startswith("onnx"):
            assert raw["name"] == "intensity", fmt
        if fmt == "tflite-int8":  # int8 I/O: the card carries the output's own quantisation, and it spans
            q = raw["quant"]  # the whole FACS scale (the calibration's moving-average range stopped at 2.4)
            assert q["scale"] * (-128 - q["zero_point"]) <= 0.0 and q["scale"] * (127 - q["zero_point"]) >= 4.99, q
    import onnx

    names = [o.name for o in onnx.load(str(exported_intensity["files"]["onnx"])).graph.output]
    assert names == ["au", "intensity"]


def test_parity_report_gates_the_intensity_output(exported_intensity):
    report = exported_intensity["parity"]
    assert report["passed"]
    for entry in report["artifacts"]:
        assert entry["intensity_passed"] and "max_abs_dintensity" in entry and "mean_abs_dintensity" in entry
        assert "intensity_mae" in entry and "intensity_mae_delta_vs_torch" in entry  # the cache has labels
        if entry["precision"] == "fp32":
            assert entry["max_abs_dintensity"] <= 5e-3, entry
        ref = np.load(exported_intensity["out"] / entry["reference"])
        assert list(ref["intensity_aus"]) == LABELLED and ref["expected_intensity"].shape[1] == len(LABELLED)
        assert float(ref["intensity_tolerance"]) > 0


def test_every_backend_returns_intensity_within_parity_of_pytorch(exported_intensity):
    from runtime import load_engine

    crops = _runtime_crops(exported_intensity["cache"])
    probs_ref, ref = torch_outputs(exported_intensity["ckpt"], crops)
    assert ref.std() > 0.1  # intensities that vary, so matching them means something
    for fmt, path in exported_intensity["files"].items():
        with load_engine(path, threads=1) as eng:
            assert eng.intensity_aus == LABELLED
            p1, i1 = eng.infer_with_intensity(crops[:3], calibrated=False)  # odd and large batches
            p2, i2 = eng.infer_with_intensity(crops[3:], calibrated=False)
            got_p, got = np.concatenate([p1, p2]), np.concatenate([i1, i2])
            np.testing.assert_array_equal(got_p, eng.infer(crops, calibrated=False))  # the probabilities are infer's
            np.testing.assert_array_equal(eng.infer_with_intensity(crops)[0], eng.infer(crops))  # calibrated too
        assert got.shape == ref.shape and got.min() >= 0 and got.max() <= 5, fmt
        if fmt in ("onnx", "tflite"):  # probabilities before the card's calibration, as PyTorch's
            np.testing.assert_allclose(got, ref, atol=5e-3, err_msg=fmt)
            np.testing.assert_allclose(got_p, probs_ref, atol=1e-3, err_msg=fmt)
        else:  # INT8: the parity gate's mean |Δ| on the 0-5 scale, and the same ordering of faces
            assert np.abs(got - ref).mean() <= 0.25, fmt
            assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9, fmt


def test_device_parity_checks_the_intensity_too(exported_intensity, tmp_path):
    from device_tests.parity import check

    path = exported_intensity["files"]["tflite-int8"]
    res = check(path, threads=1)
    assert res["passed"] and res["max_abs_dintensity"] <= res["intensity_tolerance"]
    ref = dict(np.load(path.with_name(path.name + ".parity.npz")))
    ref["expected_intensity"] = 5.0 - ref["expected_intensity"]  # an engine whose intensities moved
    bad = tmp_path / "bad.npz"
    np.savez(bad, **ref)
    res = check(path, reference=bad, threads=1)
    assert not res["passed"] and res["max_abs_dintensity"] > res["intensity_tolerance"]


def test_detector_fills_au_intensity_and_the_outputs_write_it(exported_intensity, face_model, media, tmp_path):
    """The card's intensity AUs reach FaceAU.au_intensity (image mode: the engine's values for that
    crop), the JSONL au_intensity and the CSV AUxx_r columns; the other AUs get none."""
    import csv

    from runtime import AUDetector
    from runtime.outputs import build_outputs

    path = exported_intensity["files"]["tflite-int8"]
    image = cv2.imread(str(media / "multi_face.jpg"))
    with AUDetector(path, mode="image", face_model=face_model, threads=1) as det:
        assert det.intensity_aus == LABELLED
        result = det.process(image, 0.0)
        assert result.faces
        face = result.faces[0]
        assert set(face.au_intensity) == set(LABELLED) and all(0 <= v <= 5 for v in face.au_intensity.values())
        jsonl, csv_path = tmp_path / "r.jsonl", tmp_path / "r.csv"
        with build_outputs(aus=det.output_aus, jsonl=str(jsonl), csv=str(csv_path), intensity_aus=det.intensity_aus) as out:
            out.write(result)
    rec = json.loads(jsonl.read_text().splitlines()[0])["faces"][0]
    assert set(rec["au_intensity"]) == set(LABELLED)
    rows = list(csv.DictReader(csv_path.open()))
    assert {f"{a}_r" for a in LABELLED} <= set(rows[0]) and not {"AU01_r", "AU04_r"} & set(rows[0])
    assert float(rows[0]["AU12_r"]) == pytest.approx(face.au_intensity["AU12"], abs=1e-3)
