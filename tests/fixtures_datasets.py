"""Write tiny dataset trees in the published layouts (real JPEGs, MJPG AVIs, CSV/TXT labels) and
return what was written, so tests compute the expected counts from the truth, not from the reader.

Each ``make_*`` returns ``{"rows": [...], ...}`` with one dict per label row: its video, subject,
frame, the code written for each AU number and the image path written (None = left out on purpose).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

BP4D_AUS = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
DISFA_CODED = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
ABAW_AUS = [1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26]
GFT_AUS = [1, 2, 4, 6, 10, 12, 14, 15, 23, 24]


def write_jpeg(path: Path, value: int = 128) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 16, 3), value % 256, np.uint8))
    return str(path)


def write_avi(path: Path, n_frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for i in range(n_frames):
        writer.write(np.full((32, 32, 3), (i * 20) % 256, np.uint8))
    writer.release()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# --- BP4D -------------------------------------------------------------------------------------------
# (subject, task, zero-padded image names, first header cell, header AU numbers, first frame)
BP4D_VIDEOS = [
    ("F001", "T1", True, "0", list(range(1, 28)), 200),
    ("M007", "T8", False, "", [24, 23, 17, 15, 14, 12, 10, 7, 6, 4, 2, 1, 50, 99], 10),
    ("F003", "T2", True, "0", list(range(1, 40)), 1),
]
BP4D_ALL_NINE = ("F001_T1", 203)  # every AU 9 -> unannotated
BP4D_NO_IMAGE = {("M007_T8", 12), ("F003_T2", 5)}


def make_bp4d(root: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    for subject, task, padded, first, numbers, start in BP4D_VIDEOS:
        video = f"{subject}_{task}"
        lines = [",".join([first] + [str(n) for n in numbers])]
        for frame in range(start, start + 7):
            cells = {n: int(rng.choice([0, 1, 9], p=[0.5, 0.3, 0.2])) for n in numbers}
            if (video, frame) == BP4D_ALL_NINE:
                cells = {n: 9 for n in numbers}
            lines.append(",".join([str(frame)] + [str(cells[n]) for n in numbers]))
            image = None
            if (video, frame) not in BP4D_NO_IMAGE:
                name = f"{frame:04d}.jpg" if padded else f"{frame}.jpg"
                image = write_jpeg(root / "Sequences" / subject / task / name, frame)
            rows.append({"video": video, "subject": subject, "frame": frame, "codes": cells, "image": image,
                         "line": len(lines)})
        write_jpeg(root / "Sequences" / subject / task / "9999.jpg")  # an uncoded frame: ignored
        write_lines(root / "AUCoding" / "AU_OCC" / f"{video}.csv", lines)
    return {"rows": rows}


# --- DISFA ------------------------------------------------------------------------------------------
# subject -> (labelled frames, left video frames or None, right video frames or None)
DISFA_SUBJECTS = {"SN001": (12, 10, 8), "SN002": (9, 9, None), "SN003": (6, None, None)}
DISFA_GAP = ("SN002", 9, 4)  # SN002_au9.txt has no line for frame 4 -> AU09 unknown there


def make_disfa(root: Path, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    intensity: dict[str, dict[int, dict[int, int]]] = {}
    for subject, (n, left, right) in DISFA_SUBJECTS.items():
        table = intensity.setdefault(subject, {})
        for au in DISFA_CODED:
            lines = []
            for frame in range(1, n + 1):
                if (subject, au, frame) == DISFA_GAP:
                    continue
                value = int(rng.integers(0, 6))
                table.setdefault(frame, {})[au] = value
                lines.append(f"{frame},{value}")
            write_lines(root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt", lines)
        if left:
            write_avi(root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi", left)
        if right:
            write_avi(root / "Video_RightCamera" / f"RightVideo{subject}_comp.avi", right)
    return {"intensity": intensity, "videos": {s: {"left": v[1], "right": v[2]} for s, v in DISFA_SUBJECTS.items()}}


# --- Aff-Wild2 --------------------------------------------------------------------------------------
ABAW_FILES = [  # (set folder, video, lines, header order)
    ("Train_Set", "vidA", 8, ABAW_AUS),
    ("Validation_Set", "vidB_left", 5, ABAW_AUS),
    ("Validation_Set", "vidB_right", 5, [26, 25, 24, 23, 15, 12, 10, 7, 6, 4, 2, 1]),
]
ABAW_ALL_MINUS_ONE = ("vidA", 3)
ABAW_NO_IMAGE = {("vidA", 5), ("vidB_right", 5)}


def make_affwild2(root: Path, seed: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    ann = root / "Third_ABAW_Annotations" / "AU_Detection_Challenge"
    rows = []
    for folder, video, n, order in ABAW_FILES:
        lines = [",".join(f"AU{a}" for a in order)]
        for i in range(n):
            frame = i + 1  # line i after the header <-> image i+1
            codes = {a: int(rng.choice([0, 1, -1], p=[0.55, 0.35, 0.1])) for a in order}
            if (video, frame) == ABAW_ALL_MINUS_ONE:
                codes = {a: -1 for a in order}
            lines.append(",".join(str(codes[a]) for a in order))
            image = None
            if (video, frame) not in ABAW_NO_IMAGE:
                image = write_jpeg(root / "cropped_aligned" / video / f"{frame:05d}.jpg", frame * 10)
            rows.append({"video": video, "subject": video.split("_")[0], "frame": frame, "codes": codes,
                         "image": image})
        write_lines(ann / folder / f"{video}.txt", lines)
    return {"rows": rows, "annotations": ann}


# --- GFT (assumed layout) ---------------------------------------------------------------------------
GFT_FILES = [("001_1", True), ("002_3", False)]  # stem, zero-padded images
GFT_HEADER = [1, 2, 4, 6, 10, 12, 14, 15, 17, 23, 24]  # AU17 is extra: not a GFT AU
GFT_BLANK_ROW = ("002_3", 3)
GFT_NO_IMAGE = {("001_1", 4)}


def make_gft(root: Path, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    for stem, padded in GFT_FILES:
        lines = ["frame," + ",".join(f"AU{a}" for a in GFT_HEADER)]
        for frame in range(1, 7):
            codes = {a: str(rng.choice(["0", "1", "9", ""], p=[0.5, 0.3, 0.1, 0.1])) for a in GFT_HEADER}
            if (stem, frame) == GFT_BLANK_ROW:
                codes = {a: "" for a in GFT_HEADER}
            lines.append(f"{frame}," + ",".join(codes[a] for a in GFT_HEADER))
            image = None
            if (stem, frame) not in GFT_NO_IMAGE:
                name = f"{frame:04d}.jpg" if padded else f"{frame}.jpg"
                image = write_jpeg(root / "Images" / stem / name)
            rows.append({"video": stem, "subject": stem, "frame": frame, "codes": codes, "image": image})
        write_lines(root / "AUs" / f"{stem}.csv", lines)
    return {"rows": rows}


# --- manifest CSV -----------------------------------------------------------------------------------
MANIFEST_HEADER = "path,subject,video,frame,label_kind,AU1,au_12,AU04,AU12_int,notes"
MANIFEST_ROWS = [  # path, subject, video, frame, kind, AU01, AU12, AU04, AU12 intensity, image written
    ("imgs/p1/a.jpg", "p1", "v1", "0", "", "1", "0", "-1", "0", True),
    ("imgs/p1/b.jpg", "p1", "v1", "1", "silver", "0", "1", "", "3.5", True),
    ("imgs/p2/c.jpg", "p2", "", "5", "", "", "1", "1", "", True),
    ("imgs/p2/d.jpg", "p2", "v2", "6", "", "-1", "", "", "-1", True),  # all unknown -> unannotated
    ("imgs/p2/e.jpg", "p2", "v2", "7", "synthetic", "1", "1", "0", "4", False),  # no image
    ("imgs/p3/f.jpg", "p3", "v3", "2", "", "0", "0", "0", "1", True),
]


def make_manifest(root: Path) -> Path:
    lines = [MANIFEST_HEADER]
    for path, subject, video, frame, kind, au1, au12, au4, au12_int, exists in MANIFEST_ROWS:
        lines.append(f"{path},{subject},{video},{frame},{kind},{au1},{au12},{au4},{au12_int},x")
        if exists:
            write_jpeg(root / path)
    return write_lines(root / "labels.csv", lines)
