"""Pieces every reader shares: the one-line error, the strict/skip policy, CSV rows with line
numbers, 0/1/unknown parsing, and frame lookups that list a directory once instead of stat-ing
every frame (BP4D alone has ~150k frames).

Policy (the same in every reader, see ``Problems``):
- a file whose *structure* is wrong (no header, required AU columns missing, no label files at
  all) raises ``DatasetError``: the root or format is wrong and skipping would hide it;
- a bad *row* (a value that is not a known code, a ragged row, a duplicate frame) raises under
  ``strict=True`` (the default) and is counted as ``bad_row`` under ``strict=False``;
- a labelled frame that does not exist (no image, past the end of the video, no video) is always
  a counted skip (``missing_image``, ``beyond_video``, ``missing_video``): the real distributions
  have such gaps, and ``skipped`` reaches manifest.json;
- a row with no known AU at all is a counted skip (``unannotated``): it carries no label;
- a read that ends with no records at all raises, naming the skip counts.
Counts are of label rows (frames), each under the first reason that applies: bad_row, then
unannotated, then missing_image / missing_video / beyond_video. DISFA keeps one file per AU, so a
skipped DISFA line only leaves that AU unknown for that frame.
"""
from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from runtime.errors import AUEdgeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetError(AUEdgeError):
    """A dataset file that cannot be read as its published layout says: one line, file:line, fix."""


class Problems:
    """Collects counted skips; raises or counts bad rows depending on ``strict``."""

    def __init__(self, strict: bool = True):
        self.strict = strict
        self.skipped: Counter[str] = Counter()

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] += n

    def bad_row(self, path: Path | str, line: int, problem: str, fix: str) -> None:
        """A malformed row: raise under strict, else count it as ``bad_row``."""
        if self.strict:
            raise DatasetError(f"{path}:{line}: {problem}; {fix} (or read with strict=False to skip such rows)")
        self.skipped["bad_row"] += 1


def fail(path: Path | str, line: int | None, problem: str, fix: str) -> DatasetError:
    """The error for a structural fault, ready to raise."""
    place = f"{path}:{line}" if line else str(path)
    return DatasetError(f"{place}: {problem}; {fix}")


def require_dir(path: Path, what: str, fix: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} not found; {fix}")
    return path


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) for every non-blank row; line numbers are 1-based."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for cells in reader:
            cells = [c.strip() for c in cells]
            if any(cells):
                yield reader.line_num, cells


def parse_occurrence(text: str, unknown: frozenset[float] = frozenset(), blank_unknown: bool = False) -> float:
    """``"0"``/``"1"`` -> 0.0/1.0; an unknown code (or blank, when allowed) -> NaN.

    Raises:
        ValueError: anything else (``"x"``, ``"3"``, ``"nan"``).
    """
    if not text:
        if blank_unknown:
            return math.nan
        raise ValueError("an empty value")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if value in (0.0, 1.0):
        return value
    if value in unknown:
        return math.nan
    raise ValueError(f"{text!r} is not 0, 1 or an unknown code")


def labels_from(values: list[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1/NaN values -> (float32 labels with 0 at unknowns, bool mask of known entries)."""
    v = np.asarray(values, np.float32)
    mask = ~np.isnan(v)
    return np.where(mask, v, 0.0).astype(np.float32), mask


def index_frames(directory: Path) -> dict[int, str]:
    """Frame number -> image path for a directory of numbered images (``0123.jpg`` and
    ``123.jpg`` both map to 123), from one directory listing. Missing directory -> empty."""
    found: dict[int, str] = {}
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit():
            found.setdefault(int(stem), entry.path)
    return found


def video_frame_count(path: Path) -> int | None:
    """The frame count the container declares (OpenCV), or None when the video cannot be opened."""
    import cv2

    from runtime.cv_path import open_video

    if not path.is_file():
        return None
    cap = open_video(path)
    try:
        if not cap.isOpened():
            return None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return n if n >= 0 else None
    finally:
        cap.release()


def check_nonempty(records: list, skipped: Counter[str], where: Path | str) -> None:
    """Raise when a read produced no records: a wrong root usually shows up here."""
    if not records:
        counts = dict(skipped) or "none"
        raise DatasetError(f"{where}: no labelled frames could be read (skipped: {counts}); check the dataset "
                           "root and the image/video folders")


def occurrence_rows(path: Path, rows: Iterator[tuple[int, list[str]]], header_line: int, aus: list[str],
                    columns: list[int], width: int, problems: Problems, *, frame_column: int | None = 0,
                    unknown: frozenset[float] = frozenset(), blank_unknown: bool = False,
                    keep_unannotated: bool = False, codes: str = "0, 1") -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Data rows of a per-frame occurrence table -> ``(line, frame, labels, mask)``.

    Args:
        aus, columns: the reader's AU names and the cell index of each, in the reader's AU order.
        width: the number of cells every row must have (the header's).
        frame_column: the cell holding the frame number; None = frames are numbered by position
            (first data line = frame 1; Aff-Wild2), so a blank line inside the file is a bad row.
        unknown / blank_unknown: the codes meaning "not coded".
        codes: the valid codes, for the message.

    Bad rows (ragged, bad code, bad or duplicate frame number) go to ``problems``; rows with no
    known AU are counted as ``unannotated`` unless ``keep_unannotated``.
    """
    seen: set[int] = set()
    previous = header_line
    for line, cells in rows:
        if frame_column is None and line != previous + 1:
            problems.bad_row(path, previous + 1, "a blank line inside the file shifts the frame numbering",
                             "remove it (line i after the header is frame i)")
        previous = line
        if len(cells) != width:
            problems.bad_row(path, line, f"{len(cells)} values where the header has {width}",
                             "fix the ragged row")
            continue
        if frame_column is None:
            frame = line - header_line
        else:
            text = cells[frame_column]
            if not text.isdigit():
                problems.bad_row(path, line, f"frame number {text!r} is not a non-negative integer",
                                 "fix the frame column")
                continue
            frame = int(text)
        if frame in seen:
            problems.bad_row(path, line, f"frame {frame} appears twice", "remove the duplicate row")
            continue
        values, error = [], ""
        for au, c in zip(aus, columns):
            try:
                values.append(parse_occurrence(cells[c], unknown, blank_unknown))
            except ValueError as e:
                error = f"{au}: {e} (valid: {codes})"
                break
        if error:
            problems.bad_row(path, line, error, "fix the value")
            continue
        seen.add(frame)
        labels, mask = labels_from(values)
        if not mask.any() and not keep_unannotated:
            problems.skip("unannotated")
            continue
        yield line, frame, labels, mask
