"""``frame.png``: one annotated frame of the demo video, the moment the shown face has the most AUs
active (a README picture, a thumbnail for an issue). Read back from the written video, so it is
exactly what a viewer sees."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from demo.series import Series
from runtime.cv_path import for_reading, for_writing
from runtime.errors import OutputError


def pick_frame(series: Series) -> int | None:
    """The first frame with the most AUs active on the shown track; the middle frame with that
    face when none is active; None when no face was seen."""
    seen = np.flatnonzero(~np.isnan(series.prob[:, 0])) if series.frames else np.zeros(0, int)
    if not len(seen):
        return None
    counts = series.active[seen].sum(axis=1)
    return int(seen[int(np.argmax(counts))]) if counts.max() > 0 else int(seen[len(seen) // 2])


def write_still(video: Path, index: int, out: Path, width: int = 640) -> Path:
    """Frame ``index`` of ``video`` as a PNG at most ``width`` pixels wide.

    Raises:
        ValueError: the video has fewer frames than ``index + 1``.
    """
    with for_reading(video, "demo video", OutputError) as name:  # any folder name (runtime.cv_path)
        cap = cv2.VideoCapture(name)
    frame = None
    try:
        for _ in range(index + 1):  # decode in order: seeking is not frame-exact for every codec
            ok, frame = cap.read()
            if not ok:
                raise ValueError(f"{video} has no frame {index}; the demo video is incomplete")
    finally:
        cap.release()
    return _png(frame, out, width)


def write_image(image: Path, out: Path, width: int = 640) -> Path:
    """An annotated photo (``photos/NAME``) as the PNG still, at most ``width`` pixels wide.

    Raises:
        ValueError: the photo cannot be read back.
    """
    frame = cv2.imread(str(image))
    if frame is None:
        raise ValueError(f"{image} cannot be read back; the demo's photos are incomplete")
    return _png(frame, out, width)


def _png(frame: np.ndarray, out: Path, width: int) -> Path:
    if frame.shape[1] > width:
        frame = cv2.resize(frame, (width, round(frame.shape[0] * width / frame.shape[1])),
                           interpolation=cv2.INTER_AREA)
    with for_writing(out, "still", OutputError) as name:
        cv2.imwrite(name, frame)
    return out
