"""Strict model cards: every CONTRACTS key checked, every fault one CardError line naming card and fix."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from engine_factory import AUS

from runtime.card import ModelCard, card_path, load_card
from runtime.errors import CardError


@pytest.fixture
def good(tiny_engines) -> dict:
    return json.loads(card_path(tiny_engines["onnx"]).read_text())


def _with(card: dict, path: str, value) -> dict:
    """A copy of ``card`` with ``a.b.c`` set to ``value`` (``...`` deletes the key)."""
    out = copy.deepcopy(card)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


LANDMARKS = {"name": "mesh", "points": 468, "coords": "crop_unit", "dtype": "float32", "quant": None}
CAL = {"method": "test", "fitted_on": "validation: none", "aus": {a: {"a": 1.0, "b": 0.0} for a in AUS}}


def _cal(au: str, ab) -> dict:
    """CAL with AU ``au``'s entry replaced by ``ab`` (``...`` removes it)."""
    aus = {k: v for k, v in CAL["aus"].items() if k != au}
    return {**CAL, "aus": aus if ab is ... else {**aus, au: ab}}


BAD = [  # (key path, value, words the message must hold)
    ("input.quant", {"scale": 0.02, "zero_point": 0}, ["input.quant", "float32", "null"]),
    ("input.dtype", "int8", ["needs input.quant"]),  # quant stays null
    ("input.size", [64, 48], ["not square", "[S, S]"]),
    ("input.size", [64, "64"], ["input.size"]),
    ("input.size", [64.5, 64.5], ["input.size"]),
    ("input.dtype", "bfloat16", ["BF16", "--fp16"]),
    ("input.dtype", "fp8", ["FP8", "not supported"]),
    ("input.mean", [0.5, 0.5], ["input.mean", "3 numbers"]),
    ("input.std", [0.2, 0.0, 0.2], ["input.std", "> 0"]),
    ("input.layout", 3, ["input.layout"]),
    ("input.color", "YUV", ["input.color"]),
    ("input.quant", ..., ["'input' is missing quant"]),
    ("input.layout", ..., ["'input' is missing layout"]),
    ("output", {"kind": "prob", "dtype": "bf16"}, ["output.dtype", "BF16"]),
    ("output.kind", ..., ["'output' is missing kind"]),
    ("output", [], ["'output' must be a JSON object"]),
    ("thresholds", {"AU99": 0.5}, ["thresholds", "AU99"]),
    ("thresholds", {"AU05": 0.5}, ["does not output", "AU05"]),
    ("thresholds", {"AU12": "0.5"}, ["thresholds['AU12']", "[0, 1]"]),
    ("thresholds", {"AU12": 1.5}, ["thresholds['AU12']"]),
    ("alignment.crop_size", "128", ["alignment.crop_size"]),
    ("alignment.scale", 0, ["alignment.scale"]),
    ("alignment.scale", ..., ["'alignment' is missing scale"]),
    ("model.params", ..., ["'model' is missing params"]),
    ("model.params", "tiny", ["model.params"]),
    ("model.name", None, ["model.name"]),
    ("training.recipe", ..., ["'training' is missing recipe"]),
    ("training.datasets", "open", ["training.datasets"]),
    ("training.label_kinds", ["gold"], ["label_kinds", "gold"]),
    ("metrics", None, ["'metrics' must be a JSON object"]),
    ("sha256", 12, ["sha256"]),
    ("format_version", True, ["format_version"]),
    ("aus", "AU01,AU02", ["bad 'aus'"]),
    ("aus", ["AU01", "AU1"] + AUS[2:], ["repeat"]),
    ("input.landmarks", {**LANDMARKS, "coords": "pixels"}, ["input.landmarks.coords", "crop_unit"]),
    ("input.landmarks", {**LANDMARKS, "dtype": "int8"}, ["input.landmarks.quant"]),
    ("input.landmarks", {**LANDMARKS, "quant": {"scale": 0.1, "zero_point": 0}}, ["input.landmarks.quant", "float32"]),
    ("input.landmarks", {**LANDMARKS, "dtype": "int8", "quant": {"zero_point": 3}}, ["scale"]),
    ("input.landmarks", {k: v for k, v in LANDMARKS.items() if k != "points"}, ["missing points"]),
    ("input.landmarks", {**LANDMARKS, "points": 0}, ["points"]),
    # hostile calibrations: every one a single line naming the value (runtime.calibration)
    ("calibration", [], ["calibration must be an object"]),
    ("calibration", {**CAL, "method": 3}, ["calibration.method"]),
    ("calibration", _cal("AU12", {"a": 0, "b": 0.0}), ["calibration.aus['AU12'].a", "> 0"]),
    NEGATIVE_SCALE := ("calibration", _cal("AU12", {"a": -1.0, "b": 0.0}), ["calibration.aus['AU12'].a"]),
    ("calibration", _cal("AU12", {"a": 1e9, "b": 0.0}), ["calibration.aus['AU12'].a", "[0.01, 100.0]"]),
    ("calibration", _cal("AU12", {"a": True, "b": 0.0}), ["calibration.aus['AU12'].a"]),
    ("calibration", _cal("AU12", {"a": 1.0, "b": float("inf")}), ["calibration.aus['AU12'].b"]),
    ("calibration", _cal("AU12", {"a": 1.0, "b": 10 ** 400}), ["calibration.aus['AU12'].b"]),
    ("calibration", _cal("AU12", {"a": 1.0, "b": -1e6}), ["calibration.aus['AU12'].b", "[-100.0, 100.0]"]),
    ("calibration", _cal("AU12", {"a": 1.0, "b": "0"}), ["calibration.aus['AU12'].b"]),
    ("calibration", _cal("AU12", {"a": 1.0}), ["calibration.aus['AU12'] must be"]),
    ("calibration", _cal("AU12", [1.0, 0.0]), ["calibration.aus['AU12'] must be"]),
    ("calibration", _cal("AU12", ...), ["calibration.aus lacks AU12"]),
    ("calibration", _cal("AU99", {"a": 1.0, "b": 0.0}), ["calibration.aus", "AU99"]),
    ("calibration", _cal("AU05", {"a": 1.0, "b": 0.0}), ["does not output", "AU05"]),
]


@pytest.mark.parametrize("path, value, words", BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_every_bad_card_is_one_card_error_naming_it(good, path, value, words):
    with pytest.raises(CardError) as err:
        ModelCard.from_dict(_with(good, path, value), where="model card X.onnx.json")
    msg = str(err.value)
    assert msg.startswith("model card X.onnx.json: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_calibration_parses_round_trips_and_needs_thresholds_of_one_half(good):
    cal = _cal("AU12", {"a": 1.5, "b": -2.25})
    card = ModelCard.from_dict(_with(good, "calibration", cal))
    assert card.calibration is not None and "calibration" not in card.extra
    j = AUS.index("AU12")
    assert (card.calibration.a[j], card.calibration.b[j]) == (1.5, -2.25)
    assert card.calibration.thresholds()[j] == pytest.approx(1 / (1 + np.exp(-1.5)))  # sigmoid(2.25 / 1.5)
    assert json.loads(card.to_json())["calibration"] == cal
    assert ModelCard.from_dict(_with(good, "calibration", None)).calibration is None  # null: none
    assert ModelCard.from_dict(good).calibration is None and "calibration" not in ModelCard.from_dict(good).to_dict()
    with pytest.raises(CardError) as err:
        ModelCard.from_dict(_with(_with(good, "calibration", cal), "thresholds", {"AU12": 0.7}), where="card C")
    msg = str(err.value)
    assert "\n" not in msg and "thresholds['AU12']" in msg and "0.5" in msg, msg


def test_quant_without_scale_and_int_input(good):
    card = _with(_with(good, "input.dtype", "uint8"), "input.quant", {"zero_point": 0})
    with pytest.raises(CardError, match=r"input\.quant must be .*scale"):
        ModelCard.from_dict(card)
    card = _with(card, "input.quant", {"scale": 0.5, "zero_point": 128})
    spec = ModelCard.from_dict(card).input
    assert spec.dtype == "uint8" and spec.quant == {"scale": 0.5, "zero_point": 128}


def test_landmarks_section_parses_and_round_trips(good):
    card = ModelCard.from_dict(_with(good, "input.landmarks", LANDMARKS))
    lm = card.input.landmarks
    assert (lm.name, lm.points, lm.coords, lm.dtype, lm.quant) == ("mesh", 468, "crop_unit", "float32", None)
    again = ModelCard.from_dict(json.loads(card.to_json()))
    assert again.input.landmarks == lm
    plain = ModelCard.from_dict(good)
    assert plain.input.landmarks is None and "landmarks" not in plain.to_dict()["input"]
    int8 = {**LANDMARKS, "dtype": "int8", "quant": {"scale": 0.004, "zero_point": -128}}
    assert ModelCard.from_dict(_with(good, "input.landmarks", int8)).input.landmarks.quant["zero_point"] == -128


def test_extra_keys_are_kept_and_ignored(good):
    card = ModelCard.from_dict(_with(_with(good, "notes", "hi"), "model.trained", False))
    assert card.extra == {"notes": "hi"} and card.model["trained"] is False
    assert card.to_dict()["notes"] == "hi"


def test_a_factory_card_parses(tiny_engines):
    for kind in ("onnx", "tflite", "tflite_int8"):
        assert load_card(tiny_engines[kind]).aus == AUS


@pytest.mark.parametrize("path, value, words", [BAD[0], BAD[2], BAD[5], BAD[16], BAD[26], NEGATIVE_SCALE],
                         ids=["quant-on-float", "non-square", "bf16", "unknown-au", "no-recipe", "negative-scale"])
def test_cli_bad_card_exits_2_with_one_line(tiny_engines, tmp_path, good, path, value, words, media):
    eng = tmp_path / "e.onnx"
    shutil.copy(tiny_engines["onnx"], eng)
    card_path(eng).write_text(json.dumps(_with(good, path, value)))
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--engine", str(eng), "--source",
                           str(media / "multi_face.jpg"), "--no-show"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0 and "e.onnx.json" in err, err
    for w in words:
        assert w in err, err
