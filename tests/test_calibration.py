"""The card's per-AU calibration, applied by the engine base to every backend (runtime.calibration).

Expected values come from the engine's own uncalibrated output and the formula written out here
(``sigmoid(a * logit(p) + b)``), not from runtime.calibration.
"""
from __future__ import annotations

import json
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
