"""The 3-fold protocol: the published BP4D and DISFA subject folds, round-robin folds for datasets
without published ones, and positive-class weights.

The expected folds are written out here, never read from the code under test.
"""
from __future__ import annotations

import numpy as np
import pytest

from train.data.splits import SplitError, fold_split, parts, pos_weights

BP4D_PARTS = [
    ["F001", "F002", "F008", "F009", "F010", "F016", "F018", "F023", "M001", "M004", "M007", "M008", "M012", "M014"],
    ["F003", "F005", "F011", "F013", "F020", "F022", "M002", "M005", "M010", "M011", "M013", "M016", "M017", "M018"],
    ["F004", "F006", "F007", "F012", "F014", "F015", "F017", "F019", "F021", "M003", "M006", "M009", "M015"],
]
DISFA_PARTS = [
    ["SN001", "SN002", "SN009", "SN010", "SN016", "SN026", "SN027", "SN030", "SN032"],
    ["SN006", "SN011", "SN012", "SN013", "SN018", "SN021", "SN024", "SN028", "SN031"],
    ["SN003", "SN004", "SN005", "SN007", "SN008", "SN017", "SN023", "SN025", "SN029"],
]


@pytest.mark.parametrize("dataset,published,n", [("bp4d", BP4D_PARTS, 41), ("disfa", DISFA_PARTS, 27)])
def test_published_folds(dataset, published, n):
    assert [list(p) for p in parts(dataset)] == published
    tests = []
    for k in (1, 2, 3):
        train, test = fold_split(dataset, k)
        assert test == published[k - 1]
        assert sorted(train) == sorted(s for i, p in enumerate(published) if i != k - 1 for s in p)
        assert not set(train) & set(test)
        tests += test
    assert sorted(tests) == sorted(set(tests)) and len(tests) == n  # disjoint parts that cover everyone


def test_published_fold_restricted_to_present_subjects():
    train, test = fold_split("bp4d", 2, subjects=["F001", "F003", "M015"])
    assert (train, test) == (["F001", "M015"], ["F003"])
    with pytest.raises(SplitError, match="bp4dplus"):
        fold_split("bp4d", 1, subjects=["F001", "F099"])
    with pytest.raises(SplitError, match="1, 2 or 3"):
        fold_split("bp4d", 0)


def test_round_robin_split_for_unpublished():
    subjects = [f"s{i:02d}" for i in range(10)]
    shuffled = list(reversed(subjects)) + subjects[:3]  # order and duplicates do not matter
    tests = []
    for k in (1, 2, 3):
        train, test = fold_split("gft", k, subjects=shuffled)
        assert test == subjects[k - 1::3]
        assert sorted(train + test) == subjects and not set(train) & set(test)
        tests += test
    assert sorted(tests) == subjects
    with pytest.raises(SplitError, match="subjects"):
        fold_split("affwild2", 1)


def test_pos_weights():
    labels = np.array([[1, 0, 0, 1], [0, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    mask = np.ones_like(labels, bool)
    mask[2, 1] = False  # the only AU02 positive is unknown -> no positives
    mask[4, 0] = False  # masked negative: not counted
    mask[:, 3] = False  # nothing known
    w = pos_weights(labels, mask, max_weight=50.0)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, [2 / 2, 50.0, 3 / 2, 1.0])
