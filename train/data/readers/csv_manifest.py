"""A generic manifest CSV, for data sets without a reader of their own (and for the open data):

    path,subject[,video][,frame][,label_kind],AU01,AU12,...[,AU12_int|AU12_intensity,...]

``path`` is an image, relative to the CSV's folder (or absolute). AU columns may be spelt ``AU01``,
``AU1`` or ``au_1`` (normalised with ``runtime.aus.au_number``); the reader's AU list is the AU
columns sorted by number. Occurrence cells are 0/1; empty or -1 = unknown -> masked. Intensity
columns (0..5, empty or -1 = unknown) need the matching occurrence column. Without ``video`` the
subject is the video; without ``frame`` the frame is the 0-based data-row index; without
``label_kind`` every row has the ``label_kind`` option. Other columns are ignored.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from runtime.aus import au_name, au_number
from train.data.readers.common import (
    DatasetError,
    Problems,
    check_nonempty,
    csv_rows,
    fail,
    labels_from,
    parse_occurrence,
)
from train.data.records import LABEL_KINDS, FrameRecord, ReadResult

AU_COLUMN = re.compile(r"^au_?\d+$", re.IGNORECASE)
INTENSITY_COLUMN = re.compile(r"^(au_?\d+)_(int|intensity)$", re.IGNORECASE)
REQUIRED = ("path", "subject")


def read(root: str | Path, *, dataset: str = "manifest", label_kind: str = "real", strict: bool = True,
         keep_unannotated: bool = False) -> ReadResult:
    """Read a manifest CSV.

    Args:
        root: the CSV file, or a folder holding exactly one ``*.csv``.
        dataset: the name stored in the records.
        label_kind: the kind of rows without a ``label_kind`` cell (real | silver | synthetic).
        strict: raise on a malformed row (default) instead of counting it as ``bad_row``.
        keep_unannotated: keep rows where every AU is unknown instead of skipping them.

    Returns:
        ReadResult over the CSV's AU columns; skips: missing_image, unannotated, bad_row.

    Raises:
        DatasetError: no CSV, a header without path/subject/AU columns, a duplicate or unknown
            AU column, a bad row under ``strict``, or no frame at all.
    """
    if label_kind not in LABEL_KINDS:
        raise DatasetError(f"label_kind={label_kind!r} is not one of {LABEL_KINDS}")
    path = _csv_path(Path(root))
    rows = csv_rows(path)
    header = next(rows, None)
    if header is None:
        raise fail(path, None, "the file is empty", "add the header path,subject,AU01,...")
    header_line, cells = header
    col = _columns(path, header_line, cells)
    numbers = sorted(col["au"])
    aus = [au_name(n) for n in numbers]
    has_intensity = bool(col["int"])
    problems = Problems(strict)
    listings: dict[str, set[str]] = {}  # one listdir per image folder
    seen: set[str] = set()
    records: list[FrameRecord] = []
    for index, (line, row) in enumerate(rows):
        if len(row) != len(cells):
            problems.bad_row(path, line, f"{len(row)} values where the header has {len(cells)}", "fix the ragged row")
            continue
        parsed = _row(row, col, numbers, index, label_kind)
        if isinstance(parsed, str):
            problems.bad_row(path, line, parsed, "fix the value")
            continue
        image, subject, video, frame, kind, values, intensity = parsed
        image = os.path.normpath(os.path.join(path.parent, image))
        if image in seen:
            problems.bad_row(path, line, f"{row[col['path']]!r} appears twice", "remove the duplicate row")
            continue
        seen.add(image)
        labels, mask = labels_from(values)
        if not mask.any() and not keep_unannotated:
            problems.skip("unannotated")
            continue
        folder, name = os.path.split(image)
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        if name not in listings[folder]:
            problems.skip("missing_image")
            continue
        records.append(FrameRecord(dataset, subject, video, frame, image, None, None, labels, mask,
                                   intensity if has_intensity else None, kind))
    check_nonempty(records, problems.skipped, path)
    return ReadResult(dataset, aus, records, dict(problems.skipped))


def _csv_path(root: Path) -> Path:
    if root.is_file():
        return root
    found = sorted(root.glob("*.csv")) if root.is_dir() else []
    if len(found) != 1:
        raise DatasetError(f"{root}: expected a manifest CSV file or a folder with exactly one .csv (found "
                           f"{len(found)}); pass the CSV file")
    return found[0]


def _columns(path: Path, line: int, cells: list[str]) -> dict:
    """Header -> {"path": i, "subject": i, "video"/"frame"/"label_kind": i or None,
    "au": {number: i}, "int": {number: i}}."""
    lower = [c.lower() for c in cells]
    missing = [name for name in REQUIRED if name not in lower]
    if missing:
        raise fail(path, line, f"the header has no {' or '.join(missing)} column",
                   "the first row must name the columns: path,subject,AU01,...")
    col: dict = {name: (lower.index(name) if name in lower else None)
                 for name in ("path", "subject", "video", "frame", "label_kind")}
    col["au"], col["int"] = {}, {}
    for i, cell in enumerate(cells):
        m = INTENSITY_COLUMN.match(cell)
        key, name = ("int", m.group(1)) if m else ("au", cell) if AU_COLUMN.match(cell) else (None, None)
        if key is None:
            continue
        try:
            number = au_number(name)
        except ValueError as e:
            raise fail(path, line, f"column {cell!r}: {e}", "rename or drop the column") from None
        if number in col[key]:
            raise fail(path, line, f"two columns name {au_name(number)}{'_int' if key == 'int' else ''}",
                       "remove the duplicate column")
        col[key][number] = i
    if not col["au"]:
        raise fail(path, line, "the header has no AU columns", "add occurrence columns such as AU01,AU12")
    orphans = sorted(set(col["int"]) - set(col["au"]))
    if orphans:
        raise fail(path, line, f"intensity columns without an occurrence column: {[au_name(n) for n in orphans]}",
                   "add the occurrence columns")
    return col


def _row(row: list[str], col: dict, numbers: list[int], index: int, default_kind: str):
    """One data row -> (image, subject, video, frame, kind, 0/1/NaN values, intensities), or the
    problem as text."""
    image, subject = row[col["path"]], row[col["subject"]]
    if not image or not subject:
        return "path and subject must not be empty"
    video = row[col["video"]] if col["video"] is not None and row[col["video"]] else subject
    frame = index
    if col["frame"] is not None:
        if not row[col["frame"]].isdigit():
            return f"frame {row[col['frame']]!r} is not a non-negative integer"
        frame = int(row[col["frame"]])
    kind = row[col["label_kind"]] if col["label_kind"] is not None and row[col["label_kind"]] else default_kind
    if kind not in LABEL_KINDS:
        return f"label_kind {kind!r} is not one of {', '.join(LABEL_KINDS)}"
    values, intensity = [], np.full(len(numbers), np.nan, np.float32)
    for j, n in enumerate(numbers):
        try:
            values.append(parse_occurrence(row[col["au"][n]], frozenset({-1.0}), blank_unknown=True))
        except ValueError as e:
            return f"{au_name(n)}: {e} (valid: 0, 1, -1 or empty = unknown)"
        if n in col["int"]:
            text = row[col["int"][n]]
            try:
                value = float(text) if text else -1.0
            except ValueError:
                return f"{au_name(n)} intensity {text!r} is not a number"
            if math.isnan(value) or not (value == -1.0 or 0.0 <= value <= 5.0):
                return f"{au_name(n)} intensity {text!r} is not in 0..5 (or -1/empty = unknown)"
            intensity[j] = value if value >= 0 else np.nan
    return image, subject, video, frame, kind, values, intensity
