"""AU metrics against scikit-learn on random data."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from train.metrics import au_report, auc_per_au, calibrate_thresholds, f1_per_au


@pytest.mark.parametrize("seed", range(4))
def test_f1_and_auc_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, a = 300, 6
    labels = (rng.random((n, a)) < rng.uniform(0.05, 0.6, a)).astype(np.float32)
    probs = np.clip(labels * 0.3 + rng.random((n, a)) * 0.7, 0, 1)
    probs[:20, 0] = 0.5  # ties
    mask = rng.random((n, a)) > 0.2
    f1 = f1_per_au(probs, labels, mask, 0.5)
    auc = auc_per_au(probs, labels, mask)
    for j in range(a):
        m = mask[:, j]
        assert f1[j] == pytest.approx(f1_score(labels[m, j], probs[m, j] >= 0.5, zero_division=0))
        assert auc[j] == pytest.approx(roc_auc_score(labels[m, j], probs[m, j]))


def test_masked_labels_are_not_negatives():
    labels = np.array([[1.0], [0.0], [1.0]])
    probs = np.array([[0.9], [0.1], [0.9]])
    mask = np.array([[True], [True], [False]])
    flipped = labels.copy()
    flipped[2, 0] = 0.0  # an unknown label's value must not matter
    assert f1_per_au(probs, labels, mask)[0] == f1_per_au(probs, flipped, mask)[0] == 1.0


def test_calibrated_thresholds_do_not_lose_to_half():
    rng = np.random.default_rng(5)
    labels = (rng.random((400, 3)) < 0.2).astype(np.float32)
    probs = np.clip(labels * 0.25 + rng.random((400, 3)) * 0.5, 0, 1)  # everything under 0.75
    mask = np.ones_like(labels, bool)
    thr = calibrate_thresholds(probs, labels, mask)
    assert (f1_per_au(probs, labels, mask, thr) >= f1_per_au(probs, labels, mask, 0.5) - 1e-12).all()
    rep = au_report(probs, labels, mask, ["AU01", "AU02", "AU04"], thr)
    assert set(rep["f1"]) == {"AU01", "AU02", "AU04", "mean"}
