"""Post-processing: clamped hysteresis, One Euro filters, per-person neutral calibration."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.neutral import NeutralCalibration
from runtime.smoothing import Hysteresis, LandmarkSmoother, OneEuroFilter, TrackSmoother


@pytest.mark.parametrize("thr", [0.05, 0.95])
def test_hysteresis_switches_on_and_off_at_extreme_thresholds(thr):
    """With the default 0.05 margin, an unclamped band would be [0.0, 0.1] (never off: p < 0 is
    impossible) or [0.9, 1.0] (on only at exactly 1.0); the clamped band is thr -/+ thr/2 or
    (1 - thr)/2, so a clear excursion each way switches it."""
    h = Hysteresis(np.array([thr], np.float32))
    lo, hi = thr / 4, thr + (1 - thr) * 0.75   # clearly below / clearly above the threshold
    states = [bool(h(np.array([p], np.float32))[0]) for p in (lo, hi, thr, lo, hi)]
    assert states == [False, True, True, False, True]
    assert 0.0 < h.off[0] < thr < h.on[0] < 1.0


def test_hysteresis_keeps_its_state_inside_the_band():
    h = Hysteresis(np.array([0.5], np.float32), margin=0.05)
    seq = [0.52, 0.56, 0.52, 0.47, 0.44, 0.52]
    assert [bool(h(np.array([p], np.float32))[0]) for p in seq] == [False, True, True, True, False, False]


def test_track_smoother_without_smoothing_is_the_plain_threshold():
    s = TrackSmoother(np.array([0.05, 0.95], np.float32), enabled=False)
    p = np.array([0.06, 0.94], np.float32)
    out, active = s(1, p, 0.0)
    assert np.array_equal(out, p) and active.tolist() == [True, False]


def test_one_euro_steadies_noise_and_follows_a_step():
    rng = np.random.default_rng(0)
    f = OneEuroFilter()
    t = np.arange(200) / 30.0
    x = 0.3 + rng.normal(0, 0.05, 200)
    x[100:] += 0.5
    y = np.array([f(np.array([v]), tt)[0] for v, tt in zip(x, t)])
    assert np.abs(np.diff(y[20:100])).mean() < 0.5 * np.abs(np.diff(x[20:100])).mean()
    assert abs(y[130:].mean() - 0.8) < 0.03  # it got there within a second


def test_landmark_smoother_is_scale_free_and_per_track():
    """The same relative jitter on a face 10x larger is smoothed by the same factor."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, (468, 3)).astype(np.float32)
    noise = rng.normal(0, 0.004, (60, 468, 3)).astype(np.float32)
    ratios = []
    for size in (50.0, 500.0):
        sm = LandmarkSmoother()
        out = np.stack([sm(7, (base + n) * size, i / 30.0) for i, n in enumerate(noise)])
        raw = (base + noise) * size
        ratios.append(np.abs(np.diff(out, axis=0)).mean() / np.abs(np.diff(raw, axis=0)).mean())
    assert ratios[0] < 0.8 and abs(ratios[0] - ratios[1]) < 0.02
    sm = LandmarkSmoother()
    a = sm(1, base * 100, 0.0)
    b = sm(2, base * 200, 0.0)  # another track starts fresh, not pulled towards track 1
    assert np.allclose(a, base * 100) and np.allclose(b, base * 200)


def test_neutral_calibration_subtracts_the_first_seconds_median():
    """A person whose resting face reads 0.3 on AU a and 0.1 on AU b: after the 1-s window the
    baseline (median of the window) is removed; another person keeps their own baseline."""
    rng = np.random.default_rng(2)
    cal = NeutralCalibration(1.0)
    offset = np.array([0.3, 0.1], np.float32)
    outs = []
    for i in range(60):
        t = i / 30.0
        p = np.clip(offset + rng.normal(0, 0.01, 2), 0, 1).astype(np.float32)
        outs.append((t, p, cal(1, p, t)))
        cal(2, np.array([0.0, 0.6], np.float32), t)
    during = [o for t, p, o in outs if t < 1.0]
    after = [o for t, p, o in outs if t >= 1.0]
    assert np.allclose(during, [p for t, p, _ in outs if t < 1.0])   # passed through while measuring
    assert np.allclose(cal.baseline(1), offset, atol=0.01)
    assert np.abs(np.mean(after, axis=0)).max() < 0.01            # the offset is gone
    assert np.allclose(cal.baseline(2), [0.0, 0.6])
    smile = cal(1, np.array([0.9, 0.1], np.float32), 2.0)
    assert np.allclose(smile, [0.9 - cal.baseline(1)[0], max(0.1 - cal.baseline(1)[1], 0)], atol=1e-6)
    cal.forget_stale(10.0)
    assert cal.baseline(1) is None  # gone for long: measured afresh if the id comes back
    with pytest.raises(ValueError, match="calibrate_neutral_s"):
        NeutralCalibration(-1.0)
    off = NeutralCalibration(0.0)
    assert not off.enabled and off(1, offset, 5.0) is offset
