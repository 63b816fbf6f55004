"""The INT8 parity gate's statistics (export.int8_gate) and verdict (export.parity.int8_verdict) on
small sets: decision agreement with a one-sided Wilson bound, the F1 delta's paired bootstrap CI."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from export.crops import CropSet
from export.int8_gate import f1_delta_ci, wilson_lower
from export.parity import Gate, failure_line, int8_verdict

AUS = ["AU01", "AU04", "AU12", "AU25", "AU26"]


def test_wilson_lower_bound_of_hand_worked_cases():
    # all n agree: lower bound n / (n + z^2), z = 1.6449 at 95 % one-sided
    assert wilson_lower(np.array([100]), 100, 0.95)[0] == pytest.approx(100 / (100 + 1.6448536 ** 2), abs=1e-6)
    # 5 of 10: (p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n) = 0.26924
    assert wilson_lower(np.array([5]), 10, 0.95)[0] == pytest.approx(0.26924, abs=1e-4)
    assert wilson_lower(np.array([0]), 10, 0.95)[0] == 0.0


def _small_set(n: int = 200, seed: int = 0, flips: int = 0, flip_positives: bool = True):
    """FP32 decisions that are right on 85 % of crops; INT8 the same but with ``flips`` positive
    decisions per AU turned off (or negatives turned on)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(AUS))) < 0.2).astype(np.float32)
    ref = np.where(rng.random((n, len(AUS))) < 0.85, labels > 0.5, labels < 0.5)
    pred = ref.copy()
    for j in range(len(AUS)):
        rows = np.flatnonzero(ref[:, j] & (labels[:, j] > 0.5)) if flip_positives else np.flatnonzero(~ref[:, j])
        pred[rows[:flips], j] = not flip_positives
    data = CropSet(crops=np.zeros((n, 1, 1, 3), np.uint8), labels=labels, mask=np.ones_like(labels, bool))
    return pred, ref, data


def _sklearn_delta(pred, ref, labels) -> float:
    y = labels > 0.5
    return 100 * float(np.mean([f1_score(y[:, j], pred[:, j]) - f1_score(y[:, j], ref[:, j]) for j in range(len(AUS))]))


def test_the_same_decisions_pass_with_a_ci_of_zero():
    pred, ref, data = _small_set()
    v = int8_verdict(pred, ref, data, AUS, Gate())
    assert v["passed"] and v["f1_mean_delta_ci"] == [0.0, 0.0]
    assert v["agreement"] == {a: 1.0 for a in AUS} and v["agreement_min_lower"] > 0.98


def test_a_few_flips_on_a_small_set_fail_the_point_estimate_but_not_the_gate():
    """Two positives per AU flipped on 200 crops: the point estimate drops past 1 F1 point (what
    the old gate failed on), but the CI says the drawn crops cannot tell, and decisions agree."""
    pred, ref, data = _small_set(flips=2)
    ci = f1_delta_ci(pred, ref, data.labels, data.mask, 2000, 0.95, 0)
    assert ci.point == pytest.approx(_sklearn_delta(pred, ref, data.labels), abs=1e-9)
    assert ci.point < -1.0 < ci.high and ci.low < ci.point
    v = int8_verdict(pred, ref, data, AUS, Gate())
    assert v["passed"] and v["checks"] == {"agreement": True, "f1_delta_ci": True}
    assert f1_delta_ci(pred, ref, data.labels, data.mask, 2000, 0.95, 0) == ci  # seeded: reproducible


def test_a_clear_loss_fails_in_one_line_naming_what():
    pred, ref, data = _small_set(n=400, flips=12)
    v = int8_verdict(pred, ref, data, AUS, Gate())
    assert v["f1_mean_delta_ci"][1] < -1.0 and not v["checks"]["f1_delta_ci"]
    assert not v["passed"] and v["checks"]["agreement"]  # 12 of 400 flipped: agreement still 97 %
    entry = {"file": "au_int8.tflite", "precision": "int8", "n_crops": 400,
             "f1_mean_delta_vs_torch": _sklearn_delta(pred, ref, data.labels), **v}
    line = failure_line(entry)
    assert "\n" not in line and "au_int8.tflite" in line and "CI" in line and "limit -1.0" in line


def test_many_changed_decisions_fail_the_agreement_even_where_f1_cannot_tell():
    pred, ref, data = _small_set(n=200, flips=30, flip_positives=False)
    data.labels, data.mask = None, None  # no labels at all: agreement alone can judge
    v = int8_verdict(pred, ref, data, AUS, Gate())
    assert not v["checks"]["agreement"] and not v["passed"] and v["f1_mean_delta_ci"] is None
    entry = {"file": "x.onnx", "precision": "int8", "n_crops": 200, "f1_mean_delta_vs_torch": None, **v}
    line = failure_line(entry)
    assert "decides as FP32 on 85.0% of 200 crops" in line and "< 0.9" in line
