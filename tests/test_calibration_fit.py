"""Fitting the per-AU calibration on validation outputs (train.calibration) and measuring it (ECE)."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.calibration import logit
from train.calibration import MIN_EACH, ece, fit, log_loss, metrics_section

AUS = ["AU01", "AU12"]


def _overconfident(n: int, seed: int = 0, temperature: float = 3.0, t: float = 0.8):
    """Labels drawn from sigmoid(z), scores sigmoid(temperature * z) shifted so that z = 0 sits at
    the threshold ``t``: the honest scale is 1 / temperature, by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, (n, len(AUS)))
    y = (rng.random((n, len(AUS))) < 1 / (1 + np.exp(-z))).astype(np.float32)
    s = temperature * z + np.log(t / (1 - t))
    return 1 / (1 + np.exp(-s)), y, np.ones_like(y, bool), np.full(len(AUS), t)


def test_the_scale_undoes_overconfidence_and_lowers_ece():
    probs, y, mask, thr = _overconfident(4000)
    cal, rules = fit(probs, y, mask, thr, AUS, fitted_on="validation: synthetic")
    np.testing.assert_allclose(cal.a, 1 / 3, rtol=0.1)
    np.testing.assert_allclose(cal.thresholds(), thr, rtol=1e-9)  # the threshold maps to 0.5
    assert all(r.startswith("scale fitted on all known labels") for r in rules.values())
    after = cal.apply(logit(probs))
    for j in range(len(AUS)):
        assert ece(after[:, j], y[:, j] > 0.5) < 0.5 * ece(probs[:, j], y[:, j] > 0.5)
    np.testing.assert_array_equal(after >= 0.5, probs >= thr)  # decisions are the thresholds'


def test_few_labels_keep_scale_one_and_real_labels_are_preferred():
    probs, y, mask, thr = _overconfident(400, seed=1)
    y[:, 0] = 0.0
    y[: MIN_EACH - 1, 0] = 1.0  # too few positives for AU01
    real = np.zeros_like(mask)
    real[:200, 1] = True  # enough real AU12 labels: the fit uses those
    cal, rules = fit(probs, y, mask, thr, AUS, fitted_on="validation: synthetic", real=real)
    assert cal.a[0] == 1.0 and rules["AU01"].startswith(f"scale 1 (only {MIN_EACH - 1} positives")
    assert rules["AU12"].startswith("scale fitted on real labels")
    pos, neg = (int(w) for w in rules["AU12"].split("(")[1].replace(",", "").split()[::2][:2])
    assert pos + neg == 200  # the real rows only
    assert cal.b[0] == pytest.approx(-np.log(0.8 / 0.2))


def test_ece_of_a_hand_worked_example():
    # two equal-mass bins: {0.1, 0.1} with 1 of 2 positive (|0.1 - 0.5| = 0.4), {0.9, 0.9} all
    # positive (|0.9 - 1| = 0.1): ECE = (2 * 0.4 + 2 * 0.1) / 4 = 0.25
    assert ece(np.array([0.1, 0.9, 0.1, 0.9]), np.array([False, True, True, True]), bins=2) == pytest.approx(0.25)
    assert ece(np.array([]), np.array([], bool)) is None
    # log loss: -(log 0.9 + log 0.9 + log 0.5) / 3
    assert log_loss(np.array([0.9, 0.1, 0.5]), np.array([True, False, True])) == pytest.approx(
        -(2 * np.log(0.9) + np.log(0.5)) / 3)


def test_metrics_section_is_the_card_form_with_validation_and_test_reports():
    probs, y, mask, thr = _overconfident(600, seed=2)
    test = _overconfident(300, seed=3)
    sec = metrics_section(probs, y, mask, thr, AUS, fitted_on="validation: x", test=(*test[:3], None))
    assert set(sec["aus"]) == set(AUS) and set(sec["aus"]["AU12"]) == {"a", "b"}
    assert sec["fitted_on"] == "validation: x" and sec["method"]
    for part, n in (("validation", 600), ("test", 300)):
        rep = sec[part]
        assert rep["bins"] == 10 and rep["binning"] == "equal-mass"
        assert set(rep["ece"]["before"]) == set(AUS) | {"mean"}
        assert rep["ece"]["after"]["mean"] < rep["ece"]["before"]["mean"]
        assert rep["log_loss"]["after"]["mean"] < rep["log_loss"]["before"]["mean"]
        table = rep["reliability"]["AU12"]
        assert len(table) == 10 and sum(b["n"] for b in table) == n
        assert [b["p_before"] for b in table] == sorted(b["p_before"] for b in table)
        assert [b["p_after"] for b in table] == sorted(b["p_after"] for b in table)  # the same bins, monotonic
