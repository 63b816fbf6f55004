"""Read a run's results back: ``read_results(path)`` for JSONL, the default CSV or the OpenFace CSV.

```python
from runtime import read_results
df = read_results("run.jsonl").to_dataframe()      # or run.csv (either --csv-format)
df[df.AU12_c == 1].groupby("face_id").size()
```
One row per face per frame, and one row (``success`` 0, the rest empty) for a frame without a face,
as the CSV outputs write them (a JSONL ``skipped`` record, a file that was not processed, gives none).
A face's ``success`` is its ``score >= 0.5`` in every format; a face below that (half hidden by a
hand) keeps its values (an OpenFace CSV row with confidence 0.00 reads as no face, as OpenFace
writes a failed frame).
Columns, py-feat's names where py-feat has the quantity:
``frame`` (0-based), ``face_id`` (the track id; OpenFace CSV: its face_id), ``timestamp`` (s),
``source`` (JSONL ``source``; CSV ``file`` column), ``success``, ``FaceRectX/Y/Width/Height``,
``FaceScore``, ``x_0..x_4``/``y_0..y_4`` (the five points, JSONL only), ``Pitch, Roll, Yaw``
(degrees) and ``Tx, Ty, Tz`` (canonical-face cm; ``runtime.head_pose``), ``AU01...`` (probability),
``AU01_c...`` (0/1 active), ``AU01_r...`` (intensity 0-5). A column is there when the file has it.
pandas is needed only by ``to_dataframe`` (``pip install pandas``); reading needs only the standard library.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import AUEdgeError, MissingDependency
from runtime.face_success import success

FORMATS = ("jsonl", "csv", "openface")
ID_COLUMNS = ("frame", "face_id", "timestamp", "source", "success")
BOX_COLUMNS = ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore")
POINT_COLUMNS = tuple(f"x_{i}" for i in range(5)) + tuple(f"y_{i}" for i in range(5))
# head_pose key -> column (py-feat's Pitch/Roll/Yaw; translation alike)
POSE_COLUMNS = {"pitch": "Pitch", "roll": "Roll", "yaw": "Yaw", "tx": "Tx", "ty": "Ty", "tz": "Tz"}
_NULLABLE_INT = ("face_id",)


class ResultsFileError(AUEdgeError):
    """A results file that cannot be read (missing, or not one of the formats au-edge writes)."""


@dataclass
class Results:
    """The rows of one results file (dicts of column -> value; NaN where empty)."""

    path: Path
    format: str
    rows: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    @property
    def columns(self) -> list[str]:
        """Every column some row has, in the documented order (identity, box, points, pose, AUs)."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        fixed = [*ID_COLUMNS, *BOX_COLUMNS, *POINT_COLUMNS, *POSE_COLUMNS.values()]
        aus = sorted(c for c in seen if c.startswith("AU") and "_" not in c)
        order = fixed + aus + [f"{a}_c" for a in aus] + sorted(c for c in seen if c.endswith("_r"))
        return [c for c in order if c in seen] + [c for c in seen if c not in order]

    def to_dataframe(self):
        """A pandas DataFrame, one row per face per frame (see the module docstring for the columns).

        Raises:
            MissingDependency: pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependency("pandas", "pip install pandas (only read_results(...).to_dataframe() "
                                    "needs it)") from None
        cols = self.columns
        df = pd.DataFrame.from_records(self.rows, columns=cols)
        for c in cols:
            if c in ("frame", "success"):
                df[c] = df[c].astype("int64")
            elif c in _NULLABLE_INT or c.endswith("_c"):
                df[c] = df[c].astype("Int64")
            elif c != "source":
                df[c] = df[c].astype("float64")
        return df


def read_results(path: str | Path) -> Results:
    """Read a JSONL or CSV (default or ``--csv-format openface``, also OpenFace 2's own) results file.

    Raises:
        ResultsFileError: the file is missing, empty, or in none of those formats (one line naming it).
    """
    p = Path(path)
    try:
        with p.open(encoding="utf-8") as f:
            first = f.readline()
    except OSError as e:
        raise ResultsFileError(f"cannot read results file {str(p)!r}: {e.strerror or e}; pass a .jsonl or .csv "
                               "that au-edge wrote") from None
    if first.lstrip().startswith("{"):
        return Results(p, "jsonl", _jsonl_rows(p))
    header = [c.strip() for c in first.strip().split(",")]
    if header[:3] == ["frame", "timestamp", "face_id"]:
        return Results(p, "csv", _csv_rows(p, _from_default_csv))
    if header[:1] == ["frame"] and "success" in header and "timestamp" in header:
        return Results(p, "openface", _csv_rows(p, _from_openface_csv))
    raise ResultsFileError(f"{str(p)!r} is not an au-edge results file (JSONL, or a CSV whose header starts "
                           f"'frame, timestamp, face_id' or OpenFace's 'frame, face_id, timestamp'); "
                           f"its first line starts {first[:40]!r}")


def _jsonl_rows(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResultsFileError(f"{path}: line {n} is not JSON ({e.msg}); a run cut short leaves a "
                                       "partial last line: drop it") from None
            if "skipped" in rec:  # a file of an image folder that was not processed: no frame, no row
                continue
            head = {"frame": int(rec["frame"]), "timestamp": float(rec.get("time_s", math.nan)),
                    "source": rec.get("source", "")}
            if not rec.get("faces"):
                rows.append({**head, "success": 0})
            # as the CSVs write it (runtime.face.quality): a face half hidden (score < 0.5) is not a success
            rows.extend({**head, "success": int(success(face["score"])), **_face_columns(face)}
                        for face in rec.get("faces", []))
    return rows


def _face_columns(face: dict) -> dict:
    x, y, w, h = face["bbox"]
    row = {"face_id": int(face["track_id"]), "FaceRectX": x, "FaceRectY": y, "FaceRectWidth": w,
           "FaceRectHeight": h, "FaceScore": face["score"]}
    for i, (px, py) in enumerate(face.get("landmarks5", [])[:5]):
        row[f"x_{i}"], row[f"y_{i}"] = px, py
    for key, col in POSE_COLUMNS.items():
        if key in (face.get("head_pose") or {}):
            row[col] = face["head_pose"][key]
    active = set(face.get("au_active", []))
    for au, p in face.get("au_prob", {}).items():
        row[au], row[f"{au}_c"] = p, int(au in active)
    for au, r in (face.get("au_intensity") or {}).items():
        row[f"{au}_r"] = r
    return row


def _csv_rows(path: Path, convert) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, skipinitialspace=True)
        header = [c.strip() for c in next(reader)]
        return [convert(dict(zip(header, values))) for values in reader if values]


def _num(value: str | None) -> float:
    if value is None or value == "":
        return math.nan
    return float(value)


def _from_default_csv(raw: dict[str, str]) -> dict:
    row = {"frame": int(raw["frame"]), "timestamp": _num(raw["timestamp"]), "success": int(raw["success"])}
    if "file" in raw:
        row["source"] = raw["file"]
    if raw.get("face_id", "") == "":  # a frame without a face (a face scored below 0.5 keeps its values)
        return row
    row["face_id"] = int(raw["face_id"])
    row["FaceScore"] = _num(raw["confidence"])
    for key, col in POSE_COLUMNS.items():
        if raw.get(key, "") != "":
            row[col] = float(raw[key])
    _au_columns(raw, row, prob_suffix="_p")
    return row


def _from_openface_csv(raw: dict[str, str]) -> dict:
    # OpenFace counts frames from 1 and writes zeros on a failed frame: those stay empty here.
    row = {"frame": int(float(raw["frame"])) - 1, "timestamp": _num(raw["timestamp"]),
           "success": int(float(raw["success"]))}
    if "file" in raw:
        row["source"] = raw["file"]
    if not row["success"] and not _num(raw.get("confidence")) > 0:  # no face: zeros (a weak face keeps its values)
        return row
    if "face_id" in raw:
        row["face_id"] = int(float(raw["face_id"]))
    row["FaceScore"] = _num(raw.get("confidence"))
    if raw.get("pose_Rx", "") != "":
        for key, col in (("pitch", "pose_Rx"), ("yaw", "pose_Ry"), ("roll", "pose_Rz")):
            row[POSE_COLUMNS[key]] = math.degrees(float(raw[col]))
        for key, col in (("tx", "pose_Tx"), ("ty", "pose_Ty"), ("tz", "pose_Tz")):
            row[POSE_COLUMNS[key]] = float(raw[col]) / 10.0  # mm -> cm
    _au_columns(raw, row, prob_suffix="_p")
    return row


def _au_columns(raw: dict[str, str], row: dict, prob_suffix: str) -> None:
    """AUxx (probability), AUxx_c and AUxx_r from a CSV row; empty cells stay out (NaN)."""
    for col, value in raw.items():
        if not col.startswith("AU") or value == "":
            continue
        au, _, kind = col.partition("_")
        if kind == prob_suffix[1:]:
            row[au] = float(value)
        elif kind == "c":
            row[col] = int(float(value))
        elif kind == "r":
            row[col] = float(value)
