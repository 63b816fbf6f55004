"""Silver AU labels from MediaPipe's blendshape model (training-time only; never in the runtime).

Blendshape -> AU follows the table in the open data README ($AU_DATA_DIR/README.md) (py-feat / ICT-FaceKit agree on
these rows; L and R are averaged). Labels made this way are model-made: every one is stored with
label_kind "silver" and never reported as ground truth. Rules:
- score >= POS -> 1, score <= NEG -> 0, in between -> unknown (masked): a dead zone instead of a
  guess;
- AU6 (cheekSquint) and AU9 (noseSneer) almost never fire on real faces, so their negatives are
  not trusted: only their positives are kept;
- AU23 and AU25 have no blendshape: always unknown.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

BLENDSHAPES_FOR_AU: dict[int, tuple[str, ...]] = {
    1: ("browInnerUp",),
    2: ("browOuterUpLeft", "browOuterUpRight"),
    4: ("browDownLeft", "browDownRight"),
    5: ("eyeWideLeft", "eyeWideRight"),
    6: ("cheekSquintLeft", "cheekSquintRight"),
    7: ("eyeSquintLeft", "eyeSquintRight"),
    9: ("noseSneerLeft", "noseSneerRight"),
    10: ("mouthUpperUpLeft", "mouthUpperUpRight"),
    12: ("mouthSmileLeft", "mouthSmileRight"),
    14: ("mouthDimpleLeft", "mouthDimpleRight"),
    15: ("mouthFrownLeft", "mouthFrownRight"),
    16: ("mouthLowerDownLeft", "mouthLowerDownRight"),
    17: ("mouthShrugLower",),
    18: ("mouthPucker",),
    20: ("mouthStretchLeft", "mouthStretchRight"),
    22: ("mouthFunnel",),
    24: ("mouthPressLeft", "mouthPressRight"),
    26: ("jawOpen",),
    28: ("mouthRollLower", "mouthRollUpper"),
    45: ("eyeBlinkLeft", "eyeBlinkRight"),
}
POS, NEG = 0.4, 0.15
POSITIVES_ONLY = {6, 9}


def blendshapes_to_au(scores: dict[str, float], aus: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, mask) for ``aus`` from one face's blendshape scores."""
    labels = np.zeros(len(aus), np.float32)
    mask = np.zeros(len(aus), bool)
    for j, au in enumerate(aus):
        names = BLENDSHAPES_FOR_AU.get(au)
        if not names:
            continue
        s = float(np.mean([scores.get(n, 0.0) for n in names]))
        if s >= POS:
            labels[j], mask[j] = 1.0, True
        elif s <= NEG and au not in POSITIVES_ONLY:
            mask[j] = True
    return labels, mask


class SilverLabeler:
    """Silver labels of BGR frames: MediaPipe's blendshapes (IMAGE mode, ``train.data.landmarker``)
    through ``blendshapes_to_au``."""

    def __init__(self, task_path: str | Path):
        from train.data.landmarker import FaceLandmarker

        self._lm = FaceLandmarker(task_path, "IMAGE")

    def scores(self, bgr: np.ndarray) -> dict[str, float] | None:
        return self._lm.scores(bgr)

    def label(self, bgr: np.ndarray, aus: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
        s = self.scores(bgr)
        return None if s is None else blendshapes_to_au(s, aus)

    def close(self) -> None:
        self._lm.close()

    def __enter__(self) -> SilverLabeler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_video(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    from runtime.cv_path import open_video

    cap = open_video(path)
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        yield i, frame
        i += 1
    cap.release()
