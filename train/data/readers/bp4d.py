"""BP4D-Spontaneous and BP4D+ (same layout), the AU occurrence coding as distributed:

    ROOT/AUCoding/AU_OCC/<Subject>_<Task>.csv     e.g. F001_T1.csv
    ROOT/Sequences/<Subject>/<Task>/<frame>.jpg   e.g. 0123.jpg or 123.jpg

Each CSV starts with a header naming columns by number: the first cell (``0`` or empty) heads the
frame-number column, the others are AU numbers (the files code up to ~35 of AUs 1..99; only the 12
benchmark AUs are read). Cells are 0/1, and 9 = not coded -> masked for that AU only. Only the
coded segment of each task has rows, and the frame numbers are the image names. BP4D+ uses other
subjects than BP4D, so read it as ``bp4dplus``: it has no published 3-fold split.
"""
from __future__ import annotations

from pathlib import Path

from runtime.aus import BP4D_AUS, au_name, names
from train.data.readers.common import (
    Problems,
    check_nonempty,
    csv_rows,
    fail,
    index_frames,
    occurrence_rows,
    require_dir,
)
from train.data.records import FrameRecord, ReadResult

AUS = BP4D_AUS


def read(root: str | Path, *, labels_dir: str | Path | None = None, images_dir: str | Path | None = None,
         strict: bool = True, keep_unannotated: bool = False, dataset: str = "bp4d") -> ReadResult:
    """Read BP4D (or BP4D+) AU occurrence labels and pair them with their frame images.

    Args:
        root: the dataset root (holding ``AUCoding`` and ``Sequences``).
        labels_dir / images_dir: override ``ROOT/AUCoding/AU_OCC`` / ``ROOT/Sequences``.
        strict: raise on a malformed row (default) instead of counting it as ``bad_row``.
        keep_unannotated: keep rows where every AU is 9 (all masked) instead of skipping them.
        dataset: the name stored in the records (``bp4d`` or ``bp4dplus``).

    Returns:
        ReadResult over the 12 BP4D AUs; skips: missing_image, unannotated, bad_row.

    Raises:
        DatasetError: a missing folder, no CSVs, a file without the AU-number header or without a
            benchmark AU column, a file name that is not ``<Subject>_<Task>.csv``, a bad row
            under ``strict``, or no frame at all.
    """
    root = Path(root)
    labels_dir = require_dir(Path(labels_dir) if labels_dir else root / "AUCoding" / "AU_OCC",
                             "BP4D AU_OCC folder", "pass the BP4D root (holding AUCoding/AU_OCC) or labels_dir")
    images_dir = require_dir(Path(images_dir) if images_dir else root / "Sequences",
                             "BP4D Sequences folder", "pass the BP4D root (holding Sequences) or images_dir")
    files = sorted(labels_dir.glob("*.csv"))
    if not files:
        raise fail(labels_dir, None, "no <Subject>_<Task>.csv files", "point labels_dir at AUCoding/AU_OCC")
    aus = names(AUS)
    problems = Problems(strict)
    records: list[FrameRecord] = []
    for path in files:
        subject, _, task = path.stem.partition("_")
        if not subject or not task:
            raise fail(path, None, "the file name is not <Subject>_<Task>.csv", "rename it as distributed "
                       "(e.g. F001_T1.csv)")
        frames = index_frames(images_dir / subject / task)
        rows = csv_rows(path)
        header_line, columns, width = _header(path, rows)
        for _, frame, labels, mask in occurrence_rows(path, rows, header_line, aus, columns, width, problems,
                                                      unknown=frozenset({9.0}), keep_unannotated=keep_unannotated,
                                                      codes="0, 1, 9 = not coded"):
            image = frames.get(frame)
            if image is None:
                problems.skip("missing_image")
                continue
            records.append(FrameRecord(dataset, subject, path.stem, frame, image, None, None, labels, mask, None,
                                       sequence=True))
    check_nonempty(records, problems.skipped, root)
    return ReadResult(dataset, aus, records, dict(problems.skipped))


def _header(path: Path, rows) -> tuple[int, list[int], int]:
    """The AU-number header -> (its line, the cell of each BP4D AU, the row width)."""
    first = next(rows, None)
    if first is None:
        raise fail(path, None, "the file is empty", "restore it from the distribution")
    line, cells = first
    numbers = []
    for cell in cells[1:]:
        text = cell.upper().removeprefix("AU")
        numbers.append(int(text) if text.isdigit() else None)
    if None in numbers or len(set(numbers)) != len(numbers) or not numbers:
        raise fail(path, line, "the first row is not the AU-number header (',1,2,4,...' as distributed)",
                   "restore the header row")
    missing = [a for a in AUS if a not in numbers]
    if missing:
        raise fail(path, line, f"the header has no column for {', '.join(au_name(a) for a in missing)}",
                   "use the AU_OCC files as distributed")
    return line, [numbers.index(a) + 1 for a in AUS], len(cells)
