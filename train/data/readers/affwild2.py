"""Aff-Wild2, the ABAW AU-detection annotations and the cropped-aligned frames:

    ROOT/Third_ABAW_Annotations/AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt
    ROOT/cropped_aligned/<video>/00001.jpg

Each txt has the header ``AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26`` and one line
per video frame: line i after the header (0-based) is frame i+1, image ``%05d.jpg`` numbered i+1;
-1 = not annotated -> masked. Frames without a face have no image (a counted ``missing_image``).
Later ABAW editions rename the annotation folder, so any ``ROOT/*ABAW*Annotations*/
AU_Detection_Challenge`` (or ``ROOT/AU_Detection_Challenge``) is accepted, and every
``ROOT/cropped_aligned*`` folder is searched for the frames. The subject is the video name less a
trailing ``_left``/``_right`` (two people filmed in one video are two entries of one recording).
"""
from __future__ import annotations

from pathlib import Path

from runtime.aus import AFFWILD2_AUS, au_number, names
from train.data.readers.common import (
    DatasetError,
    Problems,
    check_nonempty,
    csv_rows,
    fail,
    index_frames,
    occurrence_rows,
)
from train.data.records import FrameRecord, ReadResult

AUS = AFFWILD2_AUS
SETS = ("Train_Set", "Validation_Set")


def read(root: str | Path, *, annotations_dir: str | Path | None = None,
         images_dirs: str | Path | list[str | Path] | None = None, sets: tuple[str, ...] | list[str] = SETS,
         strict: bool = True, keep_unannotated: bool = False) -> ReadResult:
    """Read Aff-Wild2 AU annotations and pair each line with its cropped-aligned image.

    Args:
        root: the dataset root.
        annotations_dir: the folder holding the set folders (``Train_Set`` ...) or the txt files.
        images_dirs: one or more folders holding ``<video>/00001.jpg``; default ``ROOT/cropped_aligned*``.
        sets: the set folders to read under ``annotations_dir``.
        strict: raise on a malformed line (default) instead of counting it as ``bad_row``.
        keep_unannotated: keep all -1 lines (ABAW's "no label") instead of skipping them.

    Returns:
        ReadResult over the 12 ABAW AUs; skips: missing_image, unannotated, bad_row.

    Raises:
        DatasetError: no annotation folder or txt files, a header that is not the 12 ABAW AUs,
            a bad line under ``strict``, or no frame at all.
    """
    root = Path(root)
    ann = Path(annotations_dir) if annotations_dir else _find_annotations(root)
    files = _annotation_files(ann, sets)
    image_roots = _image_roots(root, images_dirs)
    aus = names(AUS)
    problems = Problems(strict)
    records: list[FrameRecord] = []
    for path in files:
        video = path.stem
        subject = video.removesuffix("_left").removesuffix("_right")
        frames = next((f for f in (index_frames(r / video) for r in image_roots) if f), {})
        rows = csv_rows(path)
        header_line, columns, width = _header(path, rows)
        for _, frame, labels, mask in occurrence_rows(path, rows, header_line, aus, columns, width, problems,
                                                      frame_column=None, unknown=frozenset({-1.0}),
                                                      keep_unannotated=keep_unannotated, codes="0, 1, -1 = none"):
            image = frames.get(frame)
            if image is None:
                problems.skip("missing_image")
                continue
            records.append(FrameRecord("affwild2", subject, video, frame, image, None, None, labels, mask, None,
                                       sequence=True))
    check_nonempty(records, problems.skipped, root)
    return ReadResult("affwild2", aus, records, dict(problems.skipped))


def _find_annotations(root: Path) -> Path:
    candidates = sorted(root.glob("*ABAW*Annotations*/AU_Detection_Challenge")) + [root / "AU_Detection_Challenge"]
    for c in candidates:
        if c.is_dir():
            return c
    raise DatasetError(f"{root}: no <*ABAW*Annotations*>/AU_Detection_Challenge folder; pass the Aff-Wild2 root "
                       "or annotations_dir")


def _annotation_files(ann: Path, sets) -> list[Path]:
    if not ann.is_dir():
        raise DatasetError(f"{ann}: the annotation folder does not exist; pass annotations_dir")
    set_dirs = [ann / s for s in sets if (ann / s).is_dir()]
    files = sorted(p for d in set_dirs for p in d.glob("*.txt")) if set_dirs else sorted(ann.glob("*.txt"))
    if not files:
        raise fail(ann, None, f"no <video>.txt annotation files (looked in {list(sets)} and the folder itself)",
                   "point annotations_dir at AU_Detection_Challenge")
    return files


def _image_roots(root: Path, images_dirs) -> list[Path]:
    if images_dirs is None:
        roots = sorted(p for p in root.glob("cropped_aligned*") if p.is_dir())
        if not roots:
            raise DatasetError(f"{root}: no cropped_aligned folder; pass the Aff-Wild2 root or images_dirs")
        return roots
    roots = [Path(p) for p in ([images_dirs] if isinstance(images_dirs, (str, Path)) else images_dirs)]
    for p in roots:
        if not p.is_dir():
            raise DatasetError(f"{p}: images_dirs folder does not exist; pass the folder holding <video>/00001.jpg")
    return roots


def _header(path: Path, rows) -> tuple[int, list[int], int]:
    """The ``AU1,AU2,...`` header -> (its line, the cell of each ABAW AU, the row width)."""
    first = next(rows, None)
    if first is None:
        raise fail(path, None, "the file is empty", "restore it from the distribution")
    line, cells = first
    try:
        numbers = [au_number(c) for c in cells]
    except ValueError:
        numbers = []
    expected = ",".join(f"AU{a}" for a in AUS)
    if not cells[0].upper().startswith("AU") or sorted(numbers) != sorted(AUS):
        raise fail(path, line, f"the first line is not the header {expected}", "restore the header line")
    return line, [numbers.index(a) for a in AUS], len(cells)
