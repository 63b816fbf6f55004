"""The held-out identities: real faces that no training set may contain (issue 8, the real-face check).

An identity-exclusive part of the open London (82 ids) and Canada (30 ids) sets, plus every
``media/people/`` photo (one CC0 person, used only as extra real neutral faces). The lists are
literal so they never move; they were drawn once by ``draw(sorted ids, seed=SEED)`` (a quarter of
each set, rounded up, from a seeded permutation of the sorted ids) and a test checks that the
literal lists still equal that draw over the ids in ``info.csv``.

Builders of training data call ``is_held_out(dataset, id)`` (or ``is_held_out_subject`` on a
cache subject name such as ``"london_001"``) and drop every match; ``python -m train.realcheck``
evaluates on ``held_out_files(data_dir)``. Both photos of a London identity (neutral and
smiling) are held out together.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 8  # issue 8
FRACTION = 0.25

HELD_OUT: dict[str, frozenset[str]] = {
    "london": frozenset({"001", "002", "006", "019", "024", "063", "066", "067", "096", "097", "103",
                         "107", "108", "113", "118", "122", "124", "130", "137", "140", "143"}),
    "canada": frozenset({"049f", "095m", "098m", "100m", "108m", "114m", "148m", "151m"}),
}
PEOPLE = "people"  # media/people/: held out entirely (every id)
DATASETS = ("london", "canada", PEOPLE)


def draw(ids: Sequence[str], seed: int = SEED, fraction: float = FRACTION) -> list[str]:
    """How the literal lists were drawn: ``ceil(fraction * n)`` ids from a seeded permutation of
    the sorted ids (kept so the lists can be checked, never called to make them)."""
    ids = sorted(ids)
    k = math.ceil(fraction * len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    return sorted(ids[i] for i in order[:k])


def is_held_out(dataset: str, face_id: str) -> bool:
    """True when ``face_id`` of ``dataset`` ("london" | "canada" | "people") must stay out of training.

    ``face_id`` is the file stem (``"001"`` for ``london/neutral/001.jpg``, ``"049f"`` for
    ``canada/049f.jpg``, ``"lisa1"`` for ``media/people/lisa1.jpg``).

    Raises:
        ValueError: an unknown dataset name (a typo would otherwise hold nothing out).
    """
    if dataset == PEOPLE:
        return True
    if dataset not in HELD_OUT:
        raise ValueError(f"unknown dataset {dataset!r} for the held-out identities; use one of {DATASETS}")
    return str(face_id) in HELD_OUT[dataset]


def is_held_out_subject(subject: str) -> bool:
    """The same for a cache subject name ``"<dataset>_<id>"`` (``"london_001"``, ``"canada_049f"``);
    subjects of other datasets (``"pexels_wolfganglanger"``, benchmark subjects) are not held out."""
    dataset, _, face_id = str(subject).partition("_")
    return dataset in DATASETS and bool(face_id) and is_held_out(dataset, face_id)


@dataclass(frozen=True)
class HeldOutFace:
    """One held-out photo and its real label kind."""

    dataset: str  # london | canada | people
    face_id: str
    expression: str  # "smiling" (AU12 present) | "neutral" (posed neutral: no AU)
    path: Path


def held_out_files(data_dir: str | Path) -> list[HeldOutFace]:
    """Every held-out photo under the open data folder, in a fixed order (London neutral, London
    smiling, Canada, people).

    Raises:
        FileNotFoundError: a listed photo is missing (the open data folder is wrong or incomplete).
    """
    root = Path(data_dir)
    faces = [HeldOutFace("london", i, e, root / "london" / e / f"{i}.jpg")
             for e in ("neutral", "smiling") for i in sorted(HELD_OUT["london"])]
    faces += [HeldOutFace("canada", i, "neutral", root / "canada" / f"{i}.jpg")
              for i in sorted(HELD_OUT["canada"])]
    people = root / "media" / "people"
    faces += [HeldOutFace(PEOPLE, p.stem, "neutral", p) for p in sorted(people.glob("*.jpg"))]
    missing = [str(f.path) for f in faces if not f.path.is_file()]
    if missing or not people.is_dir():
        first = missing[0] if missing else str(people)
        raise FileNotFoundError(f"{first} not found ({max(len(missing), 1)} missing): --data must be the open "
                                "data folder (AU_DATA_DIR) with london/, canada/ and media/people/")
    return faces
