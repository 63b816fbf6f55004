"""AU metrics against scikit-learn on random data."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from train.metrics import (
    au_report,
    auc_per_au,
    calibrate,
    f1_per_au,
    neutral_lit,
    neutral_tail_bound,
)


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
    thr = calibrate(probs, labels, mask)[0]
    assert (f1_per_au(probs, labels, mask, thr) >= f1_per_au(probs, labels, mask, 0.5) - 1e-12).all()
    rep = au_report(probs, labels, mask, ["AU01", "AU02", "AU04"], thr)
    assert set(rep["f1"]) == {"AU01", "AU02", "AU04", "mean"}


def _val_set(rng: np.random.Generator):
    """One AU: 200 synthetic rows separable at ~0.3, then 10 real smiles (0.75-0.95) and 20 real
    neutral faces (0.05-0.6)."""
    syn_y = (rng.random(200) < 0.3).astype(np.float32)
    syn_p = np.where(syn_y > 0, rng.uniform(0.32, 1.0, 200), rng.uniform(0.0, 0.28, 200))
    real_y = np.r_[np.ones(10), np.zeros(20)].astype(np.float32)
    real_p = np.r_[rng.uniform(0.75, 0.95, 10), rng.uniform(0.05, 0.6, 20)]
    probs, labels = np.r_[syn_p, real_p][:, None], np.r_[syn_y, real_y][:, None]
    real = np.r_[np.zeros(200, bool), np.ones(30, bool)][:, None]
    return probs, labels, np.ones_like(real), real


def test_real_labels_set_the_threshold_when_validation_has_enough():
    probs, labels, mask, real = _val_set(np.random.default_rng(0))
    thr_all, rules_all = calibrate(probs, labels, mask)
    thr, rules = calibrate(probs, labels, mask, real=real)
    assert rules_all == ["f1 on all labels"] and rules == ["f1 on real labels"]
    assert thr_all[0] <= 0.35  # the synthetic rows' cut lights most neutral faces
    r = real[:, 0]
    lit = probs[r & (labels[:, 0] == 0), 0] >= thr[0]
    hit = probs[r & (labels[:, 0] == 1), 0] >= thr[0]
    assert not lit.any() and hit.all()  # separable on the real rows: the cut separates them
    few = real.copy()
    few[200:209, 0] = False  # 1 real positive left: too few, back to every label
    assert calibrate(probs, labels, mask, real=few)[1] == ["f1 on all labels"]


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25])
def test_the_neutral_budget_bounds_real_false_positives(rate):
    rng = np.random.default_rng(1)
    probs, labels, mask, real = _val_set(rng)
    probs[200 + 10:, 0] = rng.uniform(0.5, 0.97, 20)  # neutral faces that look like the AU
    thr, rules = calibrate(probs, labels, mask, real=real, max_fp_rate=rate)
    neutral = probs[200 + 10:, 0]
    assert (neutral >= thr[0]).sum() <= int(rate * 20)
    assert (neutral >= thr[0] - 0.002).sum() > int(rate * 20) or thr[0] == 0.5  # not raised further than needed
    assert rules[0].startswith("f1 on real labels, raised to the neutral budget")
    no_budget = calibrate(probs, labels, mask, real=real)[0]
    assert thr[0] >= no_budget[0]


def test_a_float32_neutral_score_on_a_grid_value_is_still_below_the_threshold():
    probs = np.array([[0.5], [0.25], [0.9], [0.8], [0.85]], np.float32)  # 0.5: exact in float32
    labels = np.array([[0], [0], [1], [1], [1]], np.float32)
    mask = np.ones_like(labels, bool)
    thr, _ = calibrate(probs, labels, mask, real=mask, max_fp_rate=0.0, min_real=1)
    assert thr[0] > 0.5 and (probs[labels == 1] >= thr[0]).all()


def test_the_normal_tail_bound_holds_the_rate_for_new_faces_where_counting_cannot():
    """Normal neutral logits, 12 validation faces: the bound lets a NEW face through at the asked
    rate (a Student-t prediction bound is exact here); the count rule, at 0 of 12 lit, lets 1/13."""
    rng = np.random.default_rng(3)
    rate, n, trials = 0.05, 12, 4000
    z = rng.normal(-3.0, 1.5, (trials, n + 1))  # n validation faces and one new face per trial
    p = 1 / (1 + np.exp(-z))
    bound = np.array([neutral_tail_bound(row[:n], rate) for row in p])
    tail_rate = float((p[:, n] >= bound).mean())
    count_rate = float((p[:, n] >= p[:, :n].max(1)).mean())
    assert abs(tail_rate - rate) < 4 * np.sqrt(rate * (1 - rate) / trials)
    assert abs(count_rate - 1 / (n + 1)) < 4 * np.sqrt(1 / (n + 1) / trials)
    assert neutral_tail_bound(p[0, :2], rate) is None  # too few faces to fit


def test_calibrate_normal_rule_raises_at_least_as_far_as_counting_and_says_so():
    rng = np.random.default_rng(4)
    probs, labels, mask, real = _val_set(rng)
    probs[210:, 0] = 1 / (1 + np.exp(-rng.normal(-1.0, 1.0, 20)))  # 20 neutral faces
    thr_count, rules_count = calibrate(probs, labels, mask, real=real, max_fp_rate=0.01)
    thr, rules = calibrate(probs, labels, mask, real=real, max_fp_rate=0.01, neutral_rule="normal")
    want = neutral_tail_bound(probs[210:, 0], 0.01)
    assert thr[0] == pytest.approx(min(np.ceil(want * 1000) / 1000, 0.999)) and thr[0] > thr_count[0]
    assert "normal bound" in rules[0] and "normal bound" not in rules_count[0]
    assert rules[0].endswith(f"({'normal bound on their logits, '}0 of 20 real negatives lit)")
    with pytest.raises(ValueError, match="neutral_rule"):
        calibrate(probs, labels, mask, real=real, max_fp_rate=0.01, neutral_rule="gauss")


def test_neutral_lit_counts_only_faces_with_every_au_a_real_negative():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.9, 0.9], [0.1, 0.1]])
    labels = np.array([[0, 0], [0, 0], [1, 0], [0, 0]], np.float32)
    mask = np.array([[1, 1], [1, 1], [1, 1], [1, 0]], bool)  # row 3: one AU unknown
    real = np.ones_like(mask)
    out = neutral_lit(probs, labels, mask, real, ["AU01", "AU02"], np.array([0.5, 0.5]))
    assert out == {"faces": 2, "lit_per_face": 1.0, "by_au": {"AU01": 1, "AU02": 1}}
    assert neutral_lit(probs, labels, mask, np.zeros_like(mask), ["AU01", "AU02"], np.array([0.5, 0.5])) is None
