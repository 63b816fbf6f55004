"""Base photos of the ICT warps and what they already show: a posed neutral face (every AU absent)
or a London ``smiling/`` photo (v3), whose labels are the photo set's real AU12 = 1 and the
two-coder consensus of ``train/data/eye/consensus.csv`` for AU01, AU04, AU25, AU26 (and AU43);
every other AU of a smiling photo is unknown (a posed smile may or may not raise the cheeks).

A render's label is then rendered-present OR base-present: 1 where either shows the AU, 0 where
the render does not and the base is known absent, unknown where the base is unknown and the
render does not set it (``combine``).
"""
from __future__ import annotations

import math
from pathlib import Path

from train.data.eye import CONSENSUS, london_codes

SMILING_FOLDER = "smiling"
SMILE_AU = "AU12"


def is_smiling(photo: Path) -> bool:
    """A London ``smiling/`` photo (by its folder)."""
    return Path(photo).parent.name == SMILING_FOLDER


def base_labels(photo: Path, table: str | Path = CONSENSUS) -> dict[str, int] | None:
    """Known labels of a base photo: None for a neutral one (every AU 0, as the render's own labels
    say); for a smiling one AU12 = 1 plus its consensus row (AUs absent from it are unknown)."""
    if not is_smiling(photo):
        return None
    return {**london_codes(table).get(Path(photo).stem, {}), SMILE_AU: 1}


def combine(rendered: dict[str, int], base: dict[str, int] | None) -> dict[str, int]:
    """Labels of a render on a base (see the module docstring); unknown AUs are left out."""
    if base is None:
        return dict(rendered)
    out = {}
    for au in set(rendered) | set(base):
        if rendered.get(au) == 1 or base.get(au) == 1:
            out[au] = 1
        elif au in base and au in rendered:
            out[au] = 0
    return out


def combine_intensity(intensity: dict[str, float], labels: dict[str, int], base: dict[str, int] | None) -> dict[str, float]:
    """FACS 0-5 intensities that are known: the render's, where the base adds nothing (a neutral
    base, or a smiling base known absent for that AU); NaN-free, unknown ones left out."""
    if base is None:
        return dict(intensity)
    return {au: v for au, v in intensity.items() if au in labels and base.get(au) == 0 and not math.isnan(v)}
