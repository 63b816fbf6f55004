"""The real check's numbers as small pure functions, so a test can recompute them independently.

ROC-AUC comes from scikit-learn when it is installed, else from the rank formula (Mann-Whitney U
with mid-ranks for ties), which gives the same value.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _midranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def roc_auc(y: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC-AUC of ``scores`` for binary ``y``; ``None`` when one class is missing (undefined)."""
    y, s = np.asarray(y, int), np.asarray(scores, np.float64)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        ranks = _midranks(s)
        return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
    return float(roc_auc_score(y, s))


def accuracy(y: Sequence[int], pred: Sequence[bool]) -> float | None:
    """Share of ``pred`` equal to ``y``; ``None`` on no samples."""
    y, p = np.asarray(y, int), np.asarray(pred, int)
    return float((y == p).mean()) if len(y) else None


def f1(y: Sequence[int], pred: Sequence[bool]) -> float | None:
    """F1 of the positive class; ``None`` when neither ``y`` nor ``pred`` has a positive."""
    y, p = np.asarray(y, bool), np.asarray(pred, bool)
    tp, fp, fn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())
    return 2.0 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None


def binary_row(y: Sequence[int], scores: Sequence[float], threshold: float) -> dict:
    """ROC-AUC and accuracy at ``threshold`` (score >= threshold is positive)."""
    s = np.asarray(scores, np.float64)
    return {"n": len(s), "pos": int(np.sum(np.asarray(y) == 1)), "neg": int(np.sum(np.asarray(y) == 0)),
            "threshold": float(threshold), "roc_auc": roc_auc(y, s), "accuracy": accuracy(y, s >= threshold)}


def lit_row(probs: Sequence[Mapping[str, float]], thresholds: Mapping[str, float]) -> dict:
    """AUs at or above threshold per neutral face: mean count, and how often each AU was lit.

    Only AUs in ``thresholds`` count (the AUs this system can output)."""
    per_au = {a: 0 for a in thresholds}
    counts = []
    for p in probs:
        lit = [a for a, t in thresholds.items() if a in p and p[a] >= t]
        counts.append(len(lit))
        for a in lit:
            per_au[a] += 1
    return {"faces": len(counts), "mean_lit": float(np.mean(counts)) if counts else None,
            "faces_with_any": int(sum(c > 0 for c in counts)), "per_au": per_au}


def agreement(silver: Sequence[float | None], probs: Sequence[float | None], threshold: float) -> dict:
    """Per-frame agreement with silver labels on frames where silver is known and a prob exists.

    Args:
        silver: per frame 1.0 / 0.0 / None (unknown: dead zone, no face, or distrusted negative).
        probs: per frame probability, None where this system found no face.
        threshold: prob >= threshold is a positive prediction.
    """
    pairs = [(int(s), p >= threshold) for s, p in zip(silver, probs) if s is not None and p is not None]
    y = [a for a, _ in pairs]
    pred = [b for _, b in pairs]
    return {"frames": len(pairs), "silver_pos": int(sum(y)), "predicted_pos": int(sum(pred)),
            "accuracy": accuracy(y, pred), "f1": f1(y, pred)}


def mean_defined(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are defined (not None); None if none are."""
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None
