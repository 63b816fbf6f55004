"""The 3-fold subject-exclusive protocol and the positive-class weights of a training split.

BP4D and DISFA use the published 3-fold partitions the AU literature reports on (JAA-Net,
DRML, ME-GraphAU, ...): fold k tests on part k and trains on the other two, so no person is in
both. Datasets without a published split (gft, affwild2, bp4dplus, manifest, open data, synth) get
a deterministic identity-exclusive 3-way split: the distinct subject ids sorted, then dealt
round-robin (sorted index i -> part i % 3 + 1). Round-robin rather than hashing keeps the parts
within one subject of each other in size, so a small data set never gets an empty test fold.

Fold numbering differs between code bases: ME-GraphAU's BP4D list files call the fold that tests
on part 3 (F004, F006, ...) "fold1". The three folds and their mean are the same; compare single
folds by their test subjects, not by number.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from runtime.errors import AUEdgeError

BP4D_PARTS: tuple[tuple[str, ...], ...] = (
    ("F001", "F002", "F008", "F009", "F010", "F016", "F018", "F023", "M001", "M004", "M007", "M008", "M012", "M014"),
    ("F003", "F005", "F011", "F013", "F020", "F022", "M002", "M005", "M010", "M011", "M013", "M016", "M017", "M018"),
    ("F004", "F006", "F007", "F012", "F014", "F015", "F017", "F019", "F021", "M003", "M006", "M009", "M015"),
)
DISFA_PARTS: tuple[tuple[str, ...], ...] = (
    ("SN001", "SN002", "SN009", "SN010", "SN016", "SN026", "SN027", "SN030", "SN032"),
    ("SN006", "SN011", "SN012", "SN013", "SN018", "SN021", "SN024", "SN028", "SN031"),
    ("SN003", "SN004", "SN005", "SN007", "SN008", "SN017", "SN023", "SN025", "SN029"),
)
PUBLISHED: dict[str, tuple[tuple[str, ...], ...]] = {"bp4d": BP4D_PARTS, "disfa": DISFA_PARTS}
N_FOLDS = 3


class SplitError(AUEdgeError, ValueError):
    """A fold or subject list the protocol cannot split."""


def parts(dataset: str, subjects: Iterable[str] | None = None) -> tuple[tuple[str, ...], ...]:
    """The three subject parts of ``dataset``: published ones, or round-robin over ``subjects``.

    Raises:
        SplitError: an unpublished dataset without ``subjects``.
    """
    if dataset in PUBLISHED:
        return PUBLISHED[dataset]
    if subjects is None:
        raise SplitError(f"{dataset} has no published split; pass its subjects for the round-robin 3-way split")
    ordered = sorted(set(subjects))
    return tuple(tuple(ordered[i::N_FOLDS]) for i in range(N_FOLDS))


def fold_split(dataset: str, k: int, subjects: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """Fold ``k`` (1, 2 or 3): test on part k, train on the other two parts.

    Args:
        dataset: ``bp4d`` / ``disfa`` (published parts) or any other name (round-robin).
        subjects: the subjects present. Required for unpublished datasets; for published ones it
            restricts both lists to them, and a subject outside the published parts is an error
            (BP4D+ subjects are other people than BP4D's: read BP4D+ as ``bp4dplus``).

    Returns:
        (train_subjects, test_subjects), disjoint.

    Raises:
        SplitError: k not in 1..3, or subjects outside a published split.
    """
    if k not in range(1, N_FOLDS + 1):
        raise SplitError(f"fold {k!r} does not exist; use 1, 2 or 3 (fold k tests on part k)")
    split = parts(dataset, subjects)
    if subjects is not None and dataset in PUBLISHED:
        present = set(subjects)
        unknown = sorted(present - {s for p in split for s in p})
        if unknown:
            raise SplitError(f"subjects {unknown[:5]}{'...' if len(unknown) > 5 else ''} are not in the published "
                             f"{dataset} split; check the dataset name (BP4D+ is 'bp4dplus')")
        split = tuple(tuple(s for s in p if s in present) for p in split)
    test = list(split[k - 1])
    train = [s for i, p in enumerate(split) if i != k - 1 for s in p]
    return train, test


def pos_weights(labels: np.ndarray, mask: np.ndarray, max_weight: float = 100.0,
                min_weight: float = 0.01) -> np.ndarray:
    """Per-AU ``neg / pos`` over the known training labels, for BCE's ``pos_weight``.

    Masked entries count as neither. An AU with no positives gets ``max_weight`` (the ratio is
    infinite); one with no known labels at all gets 1 (it never contributes to the loss anyway).
    Weights are clipped to [min_weight, max_weight] so one rare AU cannot dominate the loss.

    Args:
        labels: (N, A) 0/1 labels; mask: (N, A) bool, False = unknown.

    Returns:
        float32 (A,).
    """
    labels, mask = np.asarray(labels), np.asarray(mask, bool)
    if labels.shape != mask.shape or labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} and mask {mask.shape} must be the same (N, A) shape")
    positive = labels > 0.5
    pos = (positive & mask).sum(0).astype(np.float64)
    neg = (~positive & mask).sum(0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pos > 0, neg / np.maximum(pos, 1), max_weight)
    ratio = np.where((pos + neg) == 0, 1.0, ratio)
    return np.clip(ratio, min_weight, max_weight).astype(np.float32)
