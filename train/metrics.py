"""AU metrics as the literature reports them: per-AU F1 (at 0.5 and at calibrated thresholds),
mean F1, ROC-AUC. Unknown labels (mask False) are excluded per AU, never counted as negatives.
"""
from __future__ import annotations

import numpy as np


def f1_per_au(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, thresholds: np.ndarray | float = 0.5
              ) -> np.ndarray:
    """F1 of the positive class per AU column (NaN where an AU has no known labels)."""
    pred = probs >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), probs.shape[1:])
    pos = labels > 0.5
    tp = (pred & pos & mask).sum(0)
    fp = (pred & ~pos & mask).sum(0)
    fn = (~pred & pos & mask).sum(0)
    denom = 2 * tp + fp + fn
    out = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).astype(np.float64)
    return np.where(mask.sum(0) > 0, out, np.nan)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties get average ranks); NaN if one class."""
    labels = labels.astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_per_au(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array([roc_auc(probs[mask[:, j], j], labels[mask[:, j], j] > 0.5) for j in range(probs.shape[1])])


GRID = np.linspace(0.05, 0.95, 19)  # candidate thresholds of the F1 search


def budget_rate(neutral_fp_budget: float, n_aus: int) -> float | None:
    """A run's ``neutral_fp_budget`` (AUs lit per neutral face, in total; negative: off) as the
    per-AU ``max_fp_rate`` of ``calibrate``."""
    return neutral_fp_budget / n_aus if neutral_fp_budget >= 0 else None


NEUTRAL_RULES = ("count", "normal")  # how calibrate holds the neutral budget (TrainConfig.neutral_fp_rule)


def neutral_tail_bound(neg: np.ndarray, max_fp_rate: float) -> float | None:
    """The score a NEW neutral face stays below with probability ``1 - max_fp_rate``: the upper
    prediction bound of a normal fitted to the neutral faces' logits (Student t, n-1 degrees of
    freedom), exact for normal logits at any n. Counting lit faces alone cannot hold a rate below
    1/n: with 12 validation faces and a 1/150 rate it only puts the cut above the highest of them,
    which a new person's resting face passes far more often. None below 3 faces."""
    from scipy import stats

    n = len(neg)
    if n < 3 or max_fp_rate <= 0:
        return None if n < 3 else 1.0
    p = np.clip(np.asarray(neg, np.float64), 1e-6, 1 - 1e-6)
    z = np.log(p / (1 - p))
    bound = z.mean() + stats.t.ppf(1 - max_fp_rate, n - 1) * z.std(ddof=1) * np.sqrt(1 + 1 / n)
    return float(1 / (1 + np.exp(-bound)))


def decision_rows(labels: np.ndarray, mask: np.ndarray, real: np.ndarray | None, min_real: int = 3
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per AU, the labels a decision is fitted on: the real ones where validation has at least
    ``min_real`` real positives and negatives for it, else every known label.

    Returns:
        (rows, use_real): N×A row mask, and A bools (True: the AU's rows are its real labels).
    """
    real = np.zeros_like(mask) if real is None else (real & mask)
    pos = labels > 0.5
    use_real = ((real & pos).sum(0) >= min_real) & ((real & ~pos).sum(0) >= min_real)
    return np.where(use_real, real, mask), use_real


def calibrate(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, *, real: np.ndarray | None = None,
              max_fp_rate: float | None = None, min_real: int = 3, neutral_rule: str = "count",
              grid: np.ndarray = GRID) -> tuple[np.ndarray, list[str]]:
    """Per-AU thresholds for a model people deploy, and the rule that set each one.

    F1 is maximised on the real labels where validation has at least ``min_real`` real positives
    and negatives for that AU (smiling vs neutral faces for AU12), else on every known label (mostly
    synthetic and silver). With ``max_fp_rate``, a threshold is then raised until at most that
    fraction of the real negatives (posed neutral faces) reach it: on neutral faces no AU should
    light, and F1 on warped photos says little about what a new person's resting face does.

    Args:
        probs, labels, mask: N×A validation outputs, labels and known-label mask.
        real: N×A, True where a label is of kind "real" (None: no real labels).
        max_fp_rate: the largest fraction of real negatives allowed at or above threshold.
        neutral_rule: "count": at most that fraction of the validation neutral faces lit;
            "normal": also below ``neutral_tail_bound`` (the rate for new faces, not these).
    Returns:
        (thresholds, rules): A thresholds and, per AU, how it was chosen.
    """
    real = np.zeros_like(mask) if real is None else (real & mask)
    pos = labels > 0.5
    rows, use_real = decision_rows(labels, mask, real, min_real)
    f1 = np.stack([f1_per_au(probs, labels, rows, t) for t in grid])  # grid x A
    has_pos = (rows & pos).any(0)
    thr = np.where(has_pos, grid[np.argmax(np.nan_to_num(f1, nan=-1.0), axis=0)], 0.5)
    rules = [("f1 on real labels" if r else "f1 on all labels") if p else "no positives: 0.5"
             for r, p in zip(use_real, has_pos)]
    if max_fp_rate is None:
        return thr, rules
    if neutral_rule not in NEUTRAL_RULES:
        raise ValueError(f"neutral_rule {neutral_rule!r}: use one of {NEUTRAL_RULES}")
    for j in range(probs.shape[1]):
        neg = np.sort(probs[real[:, j] & ~pos[:, j], j].astype(np.float64))[::-1]  # float32 + 1e-6 rounds away
        allowed = int(np.floor(max_fp_rate * len(neg) + 1e-9))
        if allowed >= len(neg):
            continue
        # the (allowed+1)-th highest neutral score must fall below the threshold
        t_fp, how = neg[allowed], ""
        tail = neutral_tail_bound(neg, max_fp_rate) if neutral_rule == "normal" else None
        if tail is not None and tail > t_fp:
            t_fp, how = tail, "normal bound on their logits, "
        t_fp = min(float(np.ceil(t_fp * 1000 + 1e-6) / 1000), 0.999)
        if t_fp > thr[j]:
            thr[j] = t_fp
            rules[j] += f", raised to the neutral budget ({how}{int((neg >= t_fp).sum())} of {len(neg)} real negatives lit)"
    return thr, rules


def neutral_lit(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, real: np.ndarray, aus: list[str],
                thresholds: np.ndarray) -> dict | None:
    """AUs at or above threshold per neutral face (every AU a known real negative: a posed neutral
    photo on the open data), the split's own version of ``train.realcheck``'s neutral row."""
    neutral = (mask & real & (labels < 0.5)).all(1)
    if not neutral.any():
        return None
    lit = probs[neutral] >= np.asarray(thresholds)[None, :]
    return {"faces": int(neutral.sum()), "lit_per_face": round(float(lit.sum(1).mean()), 4),
            "by_au": {a: int(n) for a, n in zip(aus, lit.sum(0)) if n}}


def _named(values: np.ndarray, aus: list[str], with_mean: bool = True) -> dict[str, float | None]:
    out = {a: (None if np.isnan(v) else round(float(v), 4)) for a, v in zip(aus, values)}
    if with_mean:
        known = values[~np.isnan(values)]
        out["mean"] = round(float(known.mean()), 4) if len(known) else None
    return out


def au_report(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, aus: list[str],
              thresholds: np.ndarray | None = None) -> dict:
    """The metrics.json core: f1 (at ``thresholds`` or 0.5), f1_at_0.5, auc, thresholds."""
    thr = np.full(len(aus), 0.5) if thresholds is None else np.asarray(thresholds, np.float64)
    return {"f1": _named(f1_per_au(probs, labels, mask, thr), aus),
            "f1_at_0.5": _named(f1_per_au(probs, labels, mask, 0.5), aus),
            "auc": _named(auc_per_au(probs, labels, mask), aus),
            "thresholds": {a: round(float(t), 4) for a, t in zip(aus, thr)},
            "counts": {a: {"pos": int(((labels[:, j] > 0.5) & mask[:, j]).sum()),
                           "known": int(mask[:, j].sum())} for j, a in enumerate(aus)}}
