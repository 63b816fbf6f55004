"""Statistics for the INT8 parity gate that hold on a few hundred crops.

A mean F1 over a few hundred crops moves by points when a handful of crops change sides (an AU
with 20 positives loses 2.5 F1 points per flipped positive), so the old gate (INT8's mean F1 no more
than 1 point below FP32's) failed a sound INT8 model by chance on small sets. Two statistics
replace the point estimate:

- decision agreement: per AU, the share of crops where INT8 decides as FP32 (each at its own card's
  decision point), with a one-sided Wilson lower bound; it needs no labels and its noise shrinks
  with the disagreements themselves, so it catches a broken quantisation on any set;
- the F1 delta with a paired bootstrap CI: both models are scored on the same resampled crops, so
  the noise of which crops were drawn cancels and only the flipped crops vary. The F1 check fails
  only when the whole CI lies below -limit (the loss is real, not the draw).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


@dataclass(frozen=True)
class BootstrapCI:
    point: float | None  # mean-F1 delta (points) on the crops as drawn
    low: float | None
    high: float | None


def wilson_lower(successes: np.ndarray, n: int, confidence: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a binomial proportion at ``confidence`` (per entry)."""
    if n <= 0:
        return np.zeros_like(np.asarray(successes, np.float64))
    z = float(norm.ppf(confidence))
    p = np.asarray(successes, np.float64) / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip((centre - half) / (1 + z * z / n), 0.0, 1.0)


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-AU count of crops where two N×A decision arrays agree, and N."""
    return (np.asarray(a, bool) == np.asarray(b, bool)).sum(0), int(len(a))


def _mean_f1(pred: np.ndarray, pos: np.ndarray, known: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over AUs of F1 for each row of ``weights`` (B×N crop counts of a resample): B values, NaN
    where no AU has a known label in that resample."""
    tp = weights @ (pred & pos & known).astype(np.float64)
    fp = weights @ (pred & ~pos & known).astype(np.float64)
    fn = weights @ (~pred & pos & known).astype(np.float64)
    n_known = weights @ known.astype(np.float64)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)
    f1 = np.where(n_known > 0, f1, np.nan)
    with warnings.catch_warnings():  # a resample without any known label: NaN, dropped by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(f1, axis=1)


def f1_delta_ci(pred: np.ndarray, ref: np.ndarray, labels: np.ndarray, mask: np.ndarray, resamples: int,
                confidence: float, seed: int) -> BootstrapCI:
    """Mean-F1 delta (``pred`` minus ``ref``, in points) and its paired percentile-bootstrap CI.

    Args:
        pred, ref: N×A decisions of the two models on the same crops.
        labels, mask: N×A labels and known-label mask.
        resamples: bootstrap resamples of the crops (with replacement).
        confidence: two-sided coverage of the CI (0.95: the 2.5th to 97.5th percentile).
        seed: of the resampling, so a report can be reproduced.
    """
    pos, known = labels > 0.5, mask.astype(bool)
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    n = len(pred)
    if n == 0 or not known.any():
        return BootstrapCI(None, None, None)
    ones = np.ones((1, n))
    point = 100.0 * float(_mean_f1(pred, pos, known, ones)[0] - _mean_f1(ref, pos, known, ones)[0])
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    deltas = 100.0 * (_mean_f1(pred, pos, known, weights) - _mean_f1(ref, pos, known, weights))
    deltas = deltas[np.isfinite(deltas)]
    if not len(deltas):
        return BootstrapCI(point, None, None)
    tail = 100.0 * (1 - confidence) / 2
    low, high = np.percentile(deltas, [tail, 100.0 - tail])
    return BootstrapCI(point, float(low), float(high))
