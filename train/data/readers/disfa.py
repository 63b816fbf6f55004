"""DISFA, as distributed:

    ROOT/ActionUnit_Labels/SN001/SN001_au1.txt           lines "frame,intensity" (1-based, 0..5)
    ROOT/Videos_LeftCamera/LeftVideoSN001_comp.avi       camera="left" (default)
    ROOT/Video_RightCamera/RightVideoSN001_comp.avi      camera="right"

12 AUs are coded (1 2 4 5 6 9 12 15 17 20 25 26); the literature evaluates 8 (1 2 4 6 9 12 25 26),
so ``aus="eval"`` (default) reads those and ``aus="all"`` all 12. Occurrence is intensity >=
``threshold`` (2, the usual A-level cut); intensities are kept. Frame f is index f-1 of the video;
the frame count is read from the container once per video.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from runtime.aus import DISFA_AUS, DISFA_CODED_AUS, names
from train.data.readers.common import (
    DatasetError,
    Problems,
    check_nonempty,
    csv_rows,
    fail,
    require_dir,
    video_frame_count,
)
from train.data.records import FrameRecord, ReadResult

AU_SETS = {"eval": DISFA_AUS, "all": DISFA_CODED_AUS}
CAMERAS = {"left": ("Videos_LeftCamera", "LeftVideo{}_comp.avi"),
           "right": ("Video_RightCamera", "RightVideo{}_comp.avi")}


def read(root: str | Path, *, camera: str = "left", aus: str = "eval", threshold: float = 2.0,
         labels_dir: str | Path | None = None, videos_dir: str | Path | None = None,
         strict: bool = True, keep_unannotated: bool = False) -> ReadResult:
    """Read DISFA AU intensities, threshold them, and pair them with video frames.

    Args:
        root: the dataset root (holding ``ActionUnit_Labels`` and the camera folders).
        camera: ``left`` or ``right``.
        aus: ``eval`` (the usual 8) or ``all`` (the 12 coded AUs).
        threshold: occurrence = intensity >= threshold.
        labels_dir / videos_dir: override ``ROOT/ActionUnit_Labels`` / the camera's video folder.
        strict: raise on a malformed line (default) instead of counting it as ``bad_row``; a
            skipped line leaves that AU unknown for that frame.
        keep_unannotated: keep frames no AU file codes (all masked) instead of skipping them.

    Returns:
        ReadResult; skips: missing_video, beyond_video, unannotated, bad_row.

    Raises:
        DatasetError: bad option, missing folder, no SN* subjects, a missing AU file, a bad
            line under ``strict``, or no frame at all.
    """
    if camera not in CAMERAS:
        raise DatasetError(f"camera={camera!r} is not a DISFA camera; use one of {sorted(CAMERAS)}")
    if aus not in AU_SETS:
        raise DatasetError(f"aus={aus!r} is not a DISFA AU set; use one of {sorted(AU_SETS)}")
    root = Path(root)
    labels_dir = require_dir(Path(labels_dir) if labels_dir else root / "ActionUnit_Labels",
                             "DISFA ActionUnit_Labels folder", "pass the DISFA root or labels_dir")
    folder, pattern = CAMERAS[camera]
    videos_dir = Path(videos_dir) if videos_dir else root / folder
    subjects = sorted(p.name for p in labels_dir.iterdir() if p.is_dir() and p.name.startswith("SN"))
    if not subjects:
        raise fail(labels_dir, None, "no SN* subject folders", "point labels_dir at ActionUnit_Labels")
    numbers = AU_SETS[aus]
    problems = Problems(strict)
    records: list[FrameRecord] = []
    for subject in subjects:
        intensity = _subject_intensities(labels_dir / subject, subject, numbers, problems)
        video = videos_dir / pattern.format(subject)
        count = video_frame_count(video)
        for frame in sorted(intensity):
            values = intensity[frame]
            mask = ~np.isnan(values)
            if not mask.any() and not keep_unannotated:
                problems.skip("unannotated")
            elif count is None:
                problems.skip("missing_video")
            elif frame > count:
                problems.skip("beyond_video")
            else:
                labels = np.where(mask, values >= threshold, False).astype(np.float32)
                records.append(FrameRecord("disfa", subject, f"{subject}_{camera}", frame, None, str(video),
                                           frame - 1, labels, mask, values))
    check_nonempty(records, problems.skipped, root)
    return ReadResult("disfa", names(numbers), records, dict(problems.skipped))


def _subject_intensities(folder: Path, subject: str, numbers: tuple[int, ...],
                         problems: Problems) -> dict[int, np.ndarray]:
    """frame -> float32 intensities over ``numbers`` (NaN where an AU file has no such frame)."""
    table: dict[int, np.ndarray] = {}
    for j, number in enumerate(numbers):
        path = folder / f"{subject}_au{number}.txt"
        if not path.is_file():
            raise fail(path, None, f"the AU{number} label file is missing", "restore it from the distribution "
                       "(or read aus='eval' when only the 8 evaluation AUs are present)")
        seen: set[int] = set()
        for line, cells in csv_rows(path):
            parsed = _line(cells)
            if isinstance(parsed, str):
                problems.bad_row(path, line, parsed, "each line must be 'frame,intensity' (1-based frame, 0..5)")
                continue
            frame, value = parsed
            if frame in seen:
                problems.bad_row(path, line, f"frame {frame} appears twice", "remove the duplicate line")
                continue
            seen.add(frame)
            table.setdefault(frame, np.full(len(numbers), np.nan, np.float32))[j] = value
    return table


def _line(cells: list[str]) -> tuple[int, float] | str:
    """``["12", "3"]`` -> (12, 3.0), or the problem as text."""
    if len(cells) != 2:
        return f"{len(cells)} values where 'frame,intensity' has 2"
    frame, value = cells
    if not frame.isdigit() or int(frame) < 1:
        return f"frame {frame!r} is not a 1-based frame number"
    try:
        intensity = float(value)
    except ValueError:
        return f"intensity {value!r} is not a number"
    if math.isnan(intensity) or not 0 <= intensity <= 5 or intensity != int(intensity):
        return f"intensity {value!r} is not an integer 0..5"
    return int(frame), intensity
