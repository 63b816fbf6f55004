"""When a face counts as found well: ``score >= RELIABLE`` (what ``score`` is: ``runtime.face.quality``).

Its own module, outside ``runtime.face``, so that the result-file reader, which needs only the
standard library, writes the same ``success`` as the CSV writers without importing the face stage.
"""
from __future__ import annotations

RELIABLE = 0.5  # score at and above which a face counts as a success (OpenFace CSV) and is trusted


def success(score: float) -> bool:
    """Whether a face with this ``score`` counts as found well (the outputs' ``success`` column)."""
    return float(score) >= RELIABLE
