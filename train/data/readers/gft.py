"""GFT (Sayette Group Formation Task). ASSUMED layout: the per-frame occurrence CSVs as we expect
them distributed; no copy was available to check, so change ``read``'s defaults if yours differ:

    ROOT/AUs/<session>_<subject>.csv            header "frame,AU1,AU2,...", one row per frame
    ROOT/Images/<session>_<subject>/<frame>.jpg (zero-padded or not)

Cells are 0/1; 9 or blank = not coded -> masked. Columns for AUs outside the 10 GFT AUs
(1 2 4 6 10 12 14 15 23 24) are ignored. Participants are unique to a session, so the subject is
the whole ``<session>_<subject>`` stem, which is also the video name.
"""
from __future__ import annotations

from pathlib import Path

from runtime.aus import GFT_AUS, au_name, au_number, names
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

AUS = GFT_AUS


def read(root: str | Path, *, labels_dir: str | Path | None = None, images_dir: str | Path | None = None,
         strict: bool = True, keep_unannotated: bool = False) -> ReadResult:
    """Read GFT AU occurrence CSVs (assumed layout, see the module docstring) and their frames.

    Args:
        root: the dataset root.
        labels_dir / images_dir: override ``ROOT/AUs`` / ``ROOT/Images``.
        strict: raise on a malformed row (default) instead of counting it as ``bad_row``.
        keep_unannotated: keep rows where no AU is coded instead of skipping them.

    Returns:
        ReadResult over the 10 GFT AUs; skips: missing_image, unannotated, bad_row.

    Raises:
        DatasetError: a missing folder, no CSVs, a file without the ``frame,AU1,...`` header or
            without a GFT AU column, a bad row under ``strict``, or no frame at all.
    """
    root = Path(root)
    labels_dir = require_dir(Path(labels_dir) if labels_dir else root / "AUs", "GFT AUs folder",
                             "pass the GFT root (holding AUs/) or labels_dir")
    images_dir = require_dir(Path(images_dir) if images_dir else root / "Images", "GFT Images folder",
                             "pass the GFT root (holding Images/) or images_dir")
    files = sorted(labels_dir.glob("*.csv"))
    if not files:
        raise fail(labels_dir, None, "no <session>_<subject>.csv files", "point labels_dir at the AU CSVs")
    aus = names(AUS)
    problems = Problems(strict)
    records: list[FrameRecord] = []
    for path in files:
        frames = index_frames(images_dir / path.stem)
        rows = csv_rows(path)
        header_line, columns, width = _header(path, rows)
        for _, frame, labels, mask in occurrence_rows(path, rows, header_line, aus, columns, width, problems,
                                                      unknown=frozenset({9.0}), blank_unknown=True,
                                                      keep_unannotated=keep_unannotated,
                                                      codes="0, 1, 9 or blank = not coded"):
            image = frames.get(frame)
            if image is None:
                problems.skip("missing_image")
                continue
            records.append(FrameRecord("gft", path.stem, path.stem, frame, image, None, None, labels, mask, None,
                                       sequence=True))
    check_nonempty(records, problems.skipped, root)
    return ReadResult("gft", aus, records, dict(problems.skipped))


def _header(path: Path, rows) -> tuple[int, list[int], int]:
    """The ``frame,AU1,...`` header -> (its line, the cell of each GFT AU, the row width)."""
    first = next(rows, None)
    if first is None:
        raise fail(path, None, "the file is empty", "restore it from the distribution")
    line, cells = first
    numbers: dict[int, int] = {}
    for i, cell in enumerate(cells[1:], start=1):
        if cell.upper().startswith("AU"):
            try:
                number = au_number(cell)
            except ValueError:
                continue  # an AU outside the catalog: not one of the 10 read here
            if number in numbers:
                raise fail(path, line, f"two columns name {au_name(number)}", "remove the duplicate column")
            numbers[number] = i
    if cells[0].lower() != "frame" or not numbers:
        raise fail(path, line, "the first row is not the header frame,AU1,AU2,...", "add the header row")
    missing = [a for a in AUS if a not in numbers]
    if missing:
        raise fail(path, line, f"the header has no column for {', '.join(au_name(a) for a in missing)}",
                   "add the missing AU columns (blank = not coded)")
    return line, [numbers[a] for a in AUS], len(cells)
