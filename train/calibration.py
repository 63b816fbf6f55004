"""Per-AU probability calibration fitted on validation, and how well it holds (ECE, reliability).

The runtime maps each AU's raw probability ``p`` to ``sigmoid(a * logit(p) + b)``
(``runtime.calibration``) so that 0.5 is every AU's decision point. Here ``a`` and ``b`` are fitted:

- the shift is fixed so the validation-chosen threshold ``t`` (``train.metrics.calibrate``: F1,
  raised to the neutral-face budget) maps to 0.5, ``b = -a * logit(t)``: decisions stay exactly the
  ones the run chose, and a second free parameter would be fitted on a dozen real positives for
  some AUs;
- the scale ``a`` is Platt's, by maximum likelihood on the same validation rows the threshold was
  chosen on (real labels where there are enough, else every known label), with a weak
  log-normal prior (``log a ~ N(0, 1)``, one pseudo-observation's worth) and bounded to
  ``SCALE_BOUNDS``, so a handful of labels cannot make an AU a step or a constant. Fewer than
  ``MIN_EACH`` positives or negatives: ``a = 1`` (shift only).

ECE uses equal-mass bins (each bin the same number of validation rows): equal-width bins leave
most bins empty when an AU's probabilities crowd near 0 or 1. The bins are the same rows before
and after (the map is monotonic), so one reliability table shows both.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from runtime.calibration import Calibration, logit, shift_for
from train.metrics import decision_rows

SCALE_BOUNDS = (0.1, 10.0)
PRIOR_SD = 1.0  # of log(a)
MIN_EACH = 3  # positives and negatives needed to fit a scale
BINS = 10
FIT_EPS = 1e-7  # probabilities clipped to [eps, 1 - eps] for the fit only (float32 saturates at 1)
METHOD = ("per-AU logit shift and scale, p' = sigmoid(a*logit(p) + b): b maps the validation-chosen "
          f"threshold to 0.5; a by maximum likelihood on the threshold's validation rows, log(a) ~ N(0, "
          f"{PRIOR_SD:g}) prior, bounded {list(SCALE_BOUNDS)}; a = 1 with fewer than {MIN_EACH} positives or "
          "negatives")


def fit_scale(z: np.ndarray, y: np.ndarray) -> float:
    """The scale ``a`` of ``sigmoid(a * z)`` for centred logits ``z`` (0 = the threshold) and 0/1
    labels ``y``: penalised maximum likelihood on log(a), bounded."""
    from scipy.optimize import minimize_scalar

    sign = np.where(y > 0.5, 1.0, -1.0)

    def loss(log_a: float) -> float:
        return float(np.logaddexp(0.0, -sign * np.exp(log_a) * z).sum() + 0.5 * (log_a / PRIOR_SD) ** 2)

    lo, hi = np.log(SCALE_BOUNDS)
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def fit(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, thresholds: np.ndarray, aus: list[str],
        fitted_on: str, real: np.ndarray | None = None) -> tuple[Calibration, dict[str, str]]:
    """Per-AU (a, b) from validation outputs and the thresholds chosen on them.

    Args:
        probs, labels, mask: N×A validation probabilities (before calibration), labels, known mask.
        thresholds: A raw thresholds (``train.metrics.calibrate``), each mapped to 0.5.
        fitted_on: "validation: <data>" for the card.
        real: N×A, True where a label is of kind "real".
    Returns:
        (calibration, rules): the fit, and per AU how its scale was set.
    """
    rows, use_real = decision_rows(labels, mask, real)
    a = np.ones(len(aus))
    rules = {}
    for j, au in enumerate(aus):
        sel = rows[:, j]
        y = labels[sel, j] > 0.5
        kind = "real labels" if use_real[j] else "all known labels"
        if y.sum() < MIN_EACH or (~y).sum() < MIN_EACH:
            rules[au] = f"scale 1 (only {int(y.sum())} positives, {int((~y).sum())} negatives on {kind})"
            continue
        z = logit(np.clip(probs[sel, j], FIT_EPS, 1 - FIT_EPS)) - logit(np.float64(thresholds[j]))
        a[j] = fit_scale(z, y)
        rules[au] = f"scale fitted on {kind} ({int(y.sum())} positives, {int((~y).sum())} negatives)"
    b = np.array([shift_for(float(t), float(s)) for t, s in zip(thresholds, a)])
    return Calibration(method=METHOD, fitted_on=fitted_on, a=a, b=b), rules


def equal_mass_bins(p: np.ndarray, bins: int = BINS) -> list[np.ndarray]:
    """Row indices of ``bins`` bins of (nearly) equal size, in order of ``p``."""
    order = np.argsort(p, kind="mergesort")
    return [b for b in np.array_split(order, min(bins, len(p))) if len(b)]


def ece(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> float | None:
    """Expected calibration error: the row-weighted mean |mean p - positive rate| over equal-mass bins."""
    if len(p) == 0:
        return None
    return float(sum(len(b) * abs(p[b].mean() - y[b].mean()) for b in equal_mass_bins(p, bins)) / len(p))


def log_loss(p: np.ndarray, y: np.ndarray) -> float | None:
    """Mean negative log-likelihood of 0/1 labels (the proper score the scale is fitted on; steadier
    than ECE on a few dozen rows, where 10 bins hold a handful each)."""
    if len(p) == 0:
        return None
    q = np.clip(p, FIT_EPS, 1 - FIT_EPS)
    return float(-np.mean(np.where(y, np.log(q), np.log1p(-q))))


def report(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, cal: Calibration, aus: list[str],
           real: np.ndarray | None = None, bins: int = BINS) -> dict[str, Any]:
    """ECE and log loss per AU and mean, before and after ``cal``, and the reliability table, on
    the rows the decisions were fitted on (``train.metrics.decision_rows``)."""
    rows, use_real = decision_rows(labels, mask, real)
    after_all = cal.apply(logit(probs))
    scores: dict[str, dict[str, dict[str, float | None]]] = {
        k: {"before": {}, "after": {}} for k in ("ece", "log_loss")}
    table = {}
    for j, au in enumerate(aus):
        sel = rows[:, j]
        p0, p1, y = probs[sel, j].astype(np.float64), after_all[sel, j].astype(np.float64), labels[sel, j] > 0.5
        for name, score in (("ece", lambda p: ece(p, y, bins)), ("log_loss", lambda p: log_loss(p, y))):
            for when, p in (("before", p0), ("after", p1)):
                v = score(p)
                scores[name][when][au] = None if v is None else round(v, 4)
        table[au] = [{"p_before": round(float(p0[b].mean()), 4), "p_after": round(float(p1[b].mean()), 4),
                      "pos_rate": round(float(y[b].mean()), 4), "n": int(len(b))} for b in equal_mass_bins(p0, bins)]
    return {"bins": bins, "binning": "equal-mass",
            "rows": {au: "real labels" if r else "all known labels" for au, r in zip(aus, use_real)},
            **{k: {w: _with_mean(v) for w, v in per.items()} for k, per in scores.items()}, "reliability": table}


def _with_mean(per_au: dict[str, float | None]) -> dict[str, float | None]:
    known = [v for v in per_au.values() if v is not None]
    return {**per_au, "mean": round(float(np.mean(known)), 4) if known else None}


def metrics_section(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, thresholds: np.ndarray,
                    aus: list[str], fitted_on: str, real: np.ndarray | None = None,
                    test: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None = None
                    ) -> dict[str, Any]:
    """metrics.json's ``calibration``: the fit (the card's form: method, fitted_on, aus {a, b}), the
    rule per AU, and ECE / reliability on the validation outputs it was fitted on (``validation``)
    and, given ``test`` (probs, labels, mask, real), on outputs it never saw (``test``)."""
    cal, rules = fit(probs, labels, mask, thresholds, aus, fitted_on, real)
    out = {**cal.to_dict(aus), "scale_rules": rules, "validation": report(probs, labels, mask, cal, aus, real)}
    if test is not None and len(test[0]):
        out["test"] = report(*test[:3], cal, aus, test[3])
    return out
