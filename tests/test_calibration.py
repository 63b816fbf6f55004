"""The card's per-AU calibration, applied by the engine base to every backend (runtime.calibration).

Expected values come from the engine's own uncalibrated output and the formula written out here
(``sigmoid(a * logit(p) + b)``), not from runtime.calibration.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine_factory import AUS, INT8_CAST, random_crops, reference_probs
from runtime.card import card_path
from runtime.engines import load_engine

KINDS = ["onnx", "onnx_logit", "tflite", "tflite_int8"]  # ONNX Runtime (prob, logit) and LiteRT (FP32, INT8)
SCALES = np.linspace(0.5, 2.5, len(AUS))


def _copy_with(engine: Path, dest: Path, **keys) -> Path:
    """The engine copied to ``dest`` with its card's top-level ``keys`` replaced (None: removed)."""
    shutil.copy(engine, dest)
    card = json.loads(card_path(engine).read_text())
    for k, v in keys.items():
        if v is None:
            card.pop(k, None)
        else:
            card[k] = v
    card_path(dest).write_text(json.dumps(card))
    return dest


def _calibration(thresholds: np.ndarray, scales: np.ndarray) -> dict:
    """Shift so each threshold maps to 0.5: b = -a * log(t / (1 - t))."""
    t = thresholds.astype(np.float64)
    b = -scales * (np.log(t) - np.log1p(-t))
    return {"method": "test", "fitted_on": "validation: none",
            "aus": {au: {"a": float(a), "b": float(x)} for au, a, x in zip(AUS, scales, b)}}


def _crops(kind: str, n: int = 120) -> np.ndarray:
    return random_crops(n, seed=7, **(dict(zip(("lo", "hi"), INT8_CAST)) if kind == "tflite_int8" else {}))


@pytest.mark.parametrize("kind", KINDS)
def test_every_backend_applies_the_card_calibration(tiny_engines, tmp_path, kind):
    crops = _crops(kind)
    with load_engine(tiny_engines[kind], threads=1) as eng:
        raw = eng.infer(crops).astype(np.float64)
    thr = np.clip(np.median(raw, axis=0), 0.02, 0.98)
    cal = _calibration(thr, SCALES)
    path = _copy_with(tiny_engines[kind], tmp_path / tiny_engines[kind].name, calibration=cal)
    with load_engine(path, threads=1) as eng:
        got = eng.infer(crops)
        again = eng.infer(crops, calibrated=False)
    np.testing.assert_array_equal(again, raw.astype(np.float32))  # the engine itself is untouched
    b = np.array([cal["aus"][a]["b"] for a in AUS])
    # a logit engine is calibrated from its logits, which keep what its float32 sigmoid rounds to 1:
    # the model's float64 reference holds them too
    p = reference_probs(crops) if kind == "onnx_logit" else raw
    with np.errstate(divide="ignore"):  # p = 1 (a saturated float32 output): logit inf, calibrated 1
        want = 1 / (1 + np.exp(-(SCALES * (np.log(p) - np.log1p(-p)) + b)))
    assert got.dtype == np.float32 and got.min() >= 0 and got.max() <= 1
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - raw).max() > 0.05  # the calibration did something


@pytest.mark.parametrize("kind", KINDS)
def test_a_calibrated_card_decides_as_the_uncalibrated_one(tiny_engines, tmp_path, kind):
    """Thresholds at the engine's own output values (the hardest case: ties) and between them."""
    crops = _crops(kind)
    with load_engine(tiny_engines[kind], threads=1) as eng:
        raw = eng.infer(crops)
    rng = np.random.default_rng(3)
    for trial in range(3):
        pick = raw[rng.integers(0, len(raw), len(AUS)), np.arange(len(AUS))]
        thr = np.clip(pick if trial < 2 else pick + 1e-4, 0.01, 0.99).astype(np.float32)
        if kind == "onnx_logit":  # its uncalibrated path rounds sigmoid to float32: stay off its values
            thr = np.clip(thr + 1e-4, 0.01, 0.99).astype(np.float32)
        plain = _copy_with(tiny_engines[kind], tmp_path / f"plain{trial}{tiny_engines[kind].suffix}",
                           thresholds={a: float(t) for a, t in zip(AUS, thr)})
        calibrated = _copy_with(tiny_engines[kind], tmp_path / f"cal{trial}{tiny_engines[kind].suffix}",
                                calibration=_calibration(thr.astype(np.float64), SCALES),
                                thresholds={a: 0.5 for a in AUS})
        decisions = []
        for path in (plain, calibrated):
            with load_engine(path, threads=1) as eng:
                t = np.array([eng.card.threshold(a) for a in AUS], np.float32)
                decisions.append(eng.infer(crops) >= t)
        assert decisions[0].any() and not decisions[0].all()
        np.testing.assert_array_equal(decisions[1], decisions[0], err_msg=f"trial {trial}")


# The shipped default model's per-AU thresholds before its cards were calibrated (commit 6fe0cec),
# copied from those cards: the calibration must decide exactly as they did.
# the shipped v3 run's thresholds on its validation split (metrics.json), recorded in both cards
V3_RAW_THRESHOLDS = {"AU01": 0.989, "AU02": 0.95, "AU04": 0.977, "AU06": 0.65, "AU07": 0.8, "AU09": 0.55,
                     "AU10": 0.7, "AU12": 0.15, "AU14": 0.5, "AU15": 0.95, "AU17": 0.85, "AU23": 0.75, "AU24": 0.75,
                     "AU25": 0.5, "AU26": 0.7}


@pytest.fixture(scope="module")
def photos(data_dir) -> list[np.ndarray]:
    """Real faces: London neutral and smiling photos, and one person at every distance and angle."""
    import cv2

    paths = [data_dir / "london" / kind / f"{i:03d}.jpg" for kind in ("neutral", "smiling") for i in range(1, 13)]
    paths += sorted((data_dir / "media" / "people").glob("*.jpg"))
    return [cv2.imread(str(p)) for p in paths if p.is_file()]


def _decide(engine: Path, photos: list[np.ndarray], face_model: str) -> list[list[tuple[dict, set]]]:
    from runtime import AUDetector

    det = AUDetector(str(engine), mode="image", face_model=face_model, threads=1)
    try:
        return [[(f.au_prob, f.au_active) for f in det.process(img).faces] for img in photos]
    finally:
        det.close()


def test_the_default_model_decides_every_au_at_one_half_as_thresholds_would(photos, face_model, tmp_path):
    from runtime.engines.default import DEFAULT_DIR

    for name in ("au_default.onnx", "au_default_int8.tflite"):
        shipped = DEFAULT_DIR / name
        card = json.loads(card_path(shipped).read_text())
        assert card["thresholds"] == {a: 0.5 for a in card["aus"]} and card["metrics"]["raw_thresholds"] == V3_RAW_THRESHOLDS
        cal = card["calibration"]["aus"]
        # where each AU's 0.5 sits on the engine's raw probability: sigmoid(-b / a)
        original = {a: 1.0 / (1.0 + math.exp(cal[a]["b"] / cal[a]["a"])) for a in card["aus"]}
        if name.endswith(".onnx"):  # FP32: exactly the run's thresholds (INT8 maps its logits onto FP32's first)
            assert original == pytest.approx(V3_RAW_THRESHOLDS, abs=1e-9)
        calibrated = _decide(shipped, photos, face_model)
        faces = [f for per_photo in calibrated for f in per_photo]
        assert len(faces) >= len(photos) - 2  # a face in (nearly) every photo
        for prob, active in faces:  # image mode: au_prob >= 0.5 is au_active, for every AU
            assert {a for a, p in prob.items() if p >= 0.5} == active
        lit = {a for _, active in faces for a in active}
        assert len(lit) >= 3 and any(not active for _, active in faces)  # decisions on both sides
        # the same engine with the old card (per-AU thresholds, no calibration) decides the same
        plain = _copy_with(shipped, tmp_path / name, calibration=None, thresholds=original)
        before = _decide(plain, photos, face_model)
        assert [[act for _, act in per] for per in before] == [[act for _, act in per] for per in calibrated], name
