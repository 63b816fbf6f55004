"""OpenFace-style CSV: one row per face per frame, and one ``success=0`` row for a frame without faces.

Columns: ``frame, timestamp, face_id, confidence, success, AU01_p, …, AU01_c, …`` (``_p`` probability,
``_c`` 0/1 active), then ``AU01_r, …`` (intensity 0-5) only for a model that estimates intensity, then
the head pose ``pitch, yaw, roll`` (degrees) and ``tx, ty, tz`` (canonical-face centimetres; see
``runtime.head_pose``), empty where the face has none. New columns go at the end, so readers that
take columns by position keep working. ``frame`` is the JSONL frame number (0-based, the source's
numbering), ``timestamp`` the source time in seconds; ``confidence`` is the face's ``score`` and
``success`` is ``score >= 0.5`` (``runtime.face.quality``). A no-face row leaves ``face_id`` and the AU
columns empty (confidence 0), so every processed frame appears and a missing face is never mistaken
for AU absence. For image files and folders a last column ``file`` names the photo of each row (quoted
as CSV quotes). Plain commas (no OpenFace ", " padding); ``pandas.read_csv`` and OpenFace readers with
``skipinitialspace`` read both.
For OpenFace 2's own column order and conventions use ``OpenFaceCsvOutput`` (``--csv-format openface``).
A file is written under a partial name and renamed into place when the run ends well (``outputs.base``).
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.aus import au_name, au_number
from runtime.face.quality import success
from runtime.outputs.base import TextOutput
from runtime.results import FrameResult, shown_prob

FIXED_COLUMNS = ("frame", "timestamp", "face_id", "confidence", "success")
POSE_COLUMNS = ("pitch", "yaw", "roll", "tx", "ty", "tz")


class CsvOutput(TextOutput):
    """Args: path (or ``-`` for stdout), aus: the AU columns in order (e.g. ``AUDetector.output_aus``),
    intensity_aus: AUs with an intensity output (``_r`` columns from ``FaceAU.au_intensity``).
    image_source: add the ``file`` column (image files and folders).

    Raises:
        ValueError: an AU name that is not in the catalog.
        OutputError: the file cannot be created.
    """

    def __init__(self, path: str | Path, aus: Sequence[str], intensity_aus: Sequence[str] = (), *,
                 image_source: bool = False):
        self.aus = [au_name(au_number(a)) for a in aus]
        if not self.aus:
            raise ValueError("CsvOutput needs at least one AU column (aus=[...] is empty)")
        self.intensity_aus = [au_name(au_number(a)) for a in intensity_aus]
        self.columns = (list(FIXED_COLUMNS) + [f"{a}_p" for a in self.aus] + [f"{a}_c" for a in self.aus]
                        + [f"{a}_r" for a in self.intensity_aus] + list(POSE_COLUMNS)
                        + (["file"] if image_source else []))
        self.image_source = image_source
        self._open(path, "CSV", newline="")
        self._w = csv.writer(self._f, lineterminator="\n")
        with self._writing():
            self._w.writerow(self.columns)

    def rows(self, result: FrameResult) -> list[list]:
        """The rows for one frame (exposed so tests and tools can use them without a file)."""
        head = [int(result.frame), f"{result.time_s:.3f}"]
        tail = [result.source] if self.image_source else []
        if not result.faces:
            return [head + ["", 0, 0] + [""] * (len(self.columns) - len(FIXED_COLUMNS) - len(tail)) + tail]
        out = []
        for face in result.faces:
            probs = [f"{shown_prob(face.au_prob[a]):.4f}" if a in face.au_prob else "" for a in self.aus]
            active = [int(a in face.au_active) if a in face.au_prob else "" for a in self.aus]
            intensity = face.au_intensity or {}
            r = [f"{intensity[a]:.3f}" if a in intensity else "" for a in self.intensity_aus]
            pose = face.head_pose or {}
            p = [f"{pose[k]:.2f}" if k in pose else "" for k in POSE_COLUMNS]
            out.append(head + [int(face.track_id), f"{face.score:.4f}", int(success(face.score))] + probs + active + r
                       + p + tail)
        return out

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if self._f is None:
            return
        with self._writing():
            self._w.writerows(self.rows(result))
            self._f.flush()
