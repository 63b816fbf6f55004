"""``--csv-format openface``: a CSV that tools written for OpenFace 2's FeatureExtraction read as is.

OpenFace 2 (``RecorderCSV``) writes, for a sequence, ``frame, face_id, timestamp, confidence, success``,
then its optional blocks (gaze, pose, landmarks, ...), then ``AUxx_r`` (intensity, sorted by AU) and
``AUxx_c`` (presence 0/1, sorted), every value after ", " (comma and space). Of its optional blocks we
write the head pose (gaze and its 68 landmarks we do not have, so they are left out, as OpenFace does
when they are not requested). Its conventions, kept here:

- ``frame`` counts from 1; ``face_id`` from 0; ``timestamp`` in seconds (3 decimals); ``confidence``
  (2 decimals: the face's ``score``) and ``success`` (0/1: ``score >= 0.5``, ``runtime.face.quality``);
- ``pose_Tx, pose_Ty, pose_Tz`` in millimetres and ``pose_Rx, pose_Ry, pose_Rz`` in radians
  (``R = Rx Ry Rz``, OpenCV camera axes: ``runtime.head_pose`` uses OpenFace's convention, so these
  are its pitch, yaw, roll); as the camera is unknown, the translation is in millimetres of
  MediaPipe's canonical face (10 x ``tx, ty, tz``), not a measured distance. ``pose=False`` leaves
  the block out (as OpenFace without ``-pose``); a face the mesh gave no pose for gets zeros (every
  cell stays a number: py-feat's ``read_openface`` reads without ``skipinitialspace``);
- ``AUxx_c`` is written ``0``/``1`` (integers, as OpenFace prints them);
- a frame where no face was found still has a row: ``face_id`` 0, ``success`` 0, zeros everywhere;
- ``AUxx_r`` only when the model estimates intensity (``intensity_aus``); ours are occurrence models,
  so by default there are none, and no intensity is invented from a probability.

Beyond OpenFace: ``AUxx_p`` (our probability, sorted) after its columns, and for image files and
folders a last column ``file`` with the image's file name (OpenFace's readers select columns by name,
so extra columns at the end do not disturb them). ``face_id`` keeps one number per track in the order
tracks appear (image sources: the face's index in its image, like OpenFace's ``face`` column).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.aus import au_name, au_number
from runtime.face.quality import success
from runtime.outputs.base import TextOutput
from runtime.results import FrameResult, shown_prob

SEQUENCE_COLUMNS = ("frame", "face_id", "timestamp", "confidence", "success")
POSE_COLUMNS = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
SEP = ", "


class OpenFaceCsvOutput(TextOutput):
    """OpenFace 2 FeatureExtraction-style CSV.

    Args:
        path: the CSV file (``-`` for stdout).
        aus: the engine's AUs; every one gets ``_c`` and ``_p`` columns (sorted, as OpenFace sorts).
        intensity_aus: AUs the model estimates intensity for (``_r`` columns, values from
            ``FaceAU.au_intensity``); empty for occurrence-only models.
        pose: write the ``pose_*`` columns (``FaceAU.head_pose``; ``AUDetector(head_pose=True)``).
        image_source: add the ``file`` column (image files and folders).

    Raises:
        ValueError: an AU name not in the catalog, or no AUs.
        OutputError: the file cannot be created.
    """

    def __init__(self, path: str | Path, aus: Sequence[str], *, intensity_aus: Sequence[str] = (),
                 image_source: bool = False, pose: bool = True):
        self.aus = sorted(au_name(au_number(a)) for a in aus)
        if not self.aus:
            raise ValueError("OpenFaceCsvOutput needs at least one AU column (aus=[...] is empty)")
        self.intensity_aus = sorted(au_name(au_number(a)) for a in intensity_aus)
        self.image_source = image_source
        self.pose_columns = list(POSE_COLUMNS) if pose else []
        self.columns = (list(SEQUENCE_COLUMNS) + self.pose_columns + [f"{a}_r" for a in self.intensity_aus]
                        + [f"{a}_c" for a in self.aus] + [f"{a}_p" for a in self.aus]
                        + (["file"] if image_source else []))
        self._ids: dict[int, int] = {}
        self._open(path, "CSV", newline="")
        with self._writing():
            self._f.write(SEP.join(self.columns) + "\n")

    def _face_id(self, track_id: int, index: int) -> int:
        if self.image_source:
            return index
        return self._ids.setdefault(int(track_id), len(self._ids))

    def rows(self, result: FrameResult) -> list[list[str]]:
        """The rows of one frame as strings, in column order."""
        head = [str(int(result.frame) + 1)]
        tail = [_safe_name(result.source)] if self.image_source else []
        ts = f"{float(result.time_s):.3f}"
        if not result.faces:
            zeros = ["0"] * (len(self.pose_columns) + len(self.intensity_aus) + 2 * len(self.aus))
            return [head + ["0", ts, "0.00", "0"] + zeros + tail]
        out = []
        for i, face in enumerate(result.faces):
            intensity = getattr(face, "au_intensity", None) or {}
            r = [f"{float(intensity.get(a, 0.0)):.2f}" for a in self.intensity_aus]
            c = ["1" if a in face.au_active else "0" for a in self.aus]
            p = [f"{shown_prob(face.au_prob.get(a, 0.0)):.4f}" for a in self.aus]
            ok = str(int(success(face.score)))
            out.append(head + [str(self._face_id(face.track_id, i)), ts, f"{float(face.score):.2f}", ok]
                       + (_pose(face.head_pose) if self.pose_columns else []) + r + c + p + tail)
        return out

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if self._f is None:
            return
        with self._writing():
            self._f.writelines(SEP.join(row) + "\n" for row in self.rows(result))
            self._f.flush()


def _pose(pose: dict[str, float] | None) -> list[str]:
    """OpenFace's pose columns of a ``head_pose`` (mm of the canonical face, radians); zeros without one."""
    if not pose:
        return ["0"] * len(POSE_COLUMNS)
    t = [f"{10.0 * float(pose[k]):.1f}" for k in ("tx", "ty", "tz")]
    return t + [f"{math.radians(float(pose[k])):.3f}" for k in ("pitch", "yaw", "roll")]


def _safe_name(name: str) -> str:
    """A file name as one CSV field: OpenFace's readers split on commas and do not unquote."""
    return str(name).replace(",", "_").replace("\n", " ") or "-"
