"""The eye-coded AU labels (label kind ``eye``): ``consensus.csv`` beside this file, read here.

Two coders read 116 images independently to the criteria in ``CRITERIA.md``; the table keeps an AU
only where Cohen's kappa >= 0.6 and a value only where both coders agreed (README.md here). The
London rows (training identities' smiling photos) may label training data; the clip rows are
validation only (``train.clipcheck``), so the clip never teaches the AUs it is judged on.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

CONSENSUS = Path(__file__).resolve().parent / "consensus.csv"


@lru_cache(maxsize=4)
def read_consensus(path: str | Path = CONSENSUS) -> dict[str, dict[str, int]]:
    """Image name ("london_003.png", "clip_016.png") -> {AU: 0 | 1}; unknown (-1) codes left out.

    Raises:
        FileNotFoundError: no table at ``path``. ValueError: a value other than -1, 0, 1.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"eye-coded consensus table not found: {p} (train/data/eye/consensus.csv)")
    out: dict[str, dict[str, int]] = {}
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        aus = [c for c in reader.fieldnames or () if c.startswith("AU")]
        for row in reader:
            codes = {}
            for au in aus:
                v = int(row[au])
                if v not in (-1, 0, 1):
                    raise ValueError(f"{p}: {row['image']} {au} = {row[au]!r}; expected -1, 0 or 1")
                if v >= 0:
                    codes[au] = v
            out[row["image"]] = codes
    return out


def london_codes(path: str | Path = CONSENSUS) -> dict[str, dict[str, int]]:
    """London face id ("003") -> {AU: 0 | 1} for the coded smiling photos."""
    return {name[len("london_"):].split(".")[0]: codes for name, codes in read_consensus(path).items()
            if name.startswith("london_")}


def clip_codes(path: str | Path = CONSENSUS) -> dict[int, dict[str, int]]:
    """Clip frame index -> {AU: 0 | 1} for the coded frames of the Pexels clip (validation only)."""
    return {int(name[len("clip_"):].split(".")[0]): codes for name, codes in read_consensus(path).items()
            if name.startswith("clip_")}
