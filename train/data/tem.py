"""Webmorph ``.tem`` landmark files and the 189-point FRL template's anatomical index groups.

The Face Research Lab London Set ships 189 hand-placed points per neutral photo in webmorph's
template format: the first line is the point count, then one ``x<TAB>y`` line per point in pixels
of the image; what follows (the template's contour lines) is not needed here and is ignored.

The index groups below were read off ``london/neutral/001.jpg`` with every point drawn and numbered,
and cross-checked against the template's own contour lines (e.g. 87-93 is drawn as the mouth's
upper and lower lip lines, 71-76 and 83-84 as the brow). "R"/"L" are the *subject's* right/left:
on these frontal, unmirrored photos R is on the image's left.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEM189_POINTS = 189

# Anatomical groups of the 189-point FRL template (indices into the point list).
FRL189_GROUPS: dict[str, tuple[int, ...]] = {
    "pupil_R": (0,), "pupil_L": (1,),
    "iris_R": tuple(range(2, 10)), "iris_L": tuple(range(10, 18)),
    "eye_corner_outer_R": (18,), "eye_corner_inner_R": (22,),
    "eye_corner_inner_L": (23,), "eye_corner_outer_L": (27,),
    "upper_lid_R": (19, 20, 21), "upper_lid_L": (24, 25, 26),
    "lower_lid_R": (28, 29, 30), "lower_lid_L": (31, 32, 33),
    "lid_crease_R": (34, 35, 36, 37, 38), "lid_crease_L": (39, 40, 41, 42, 43),
    "infraorbital_R": (44, 45, 46), "infraorbital_L": (47, 48, 49),  # lower-lid / cheek fold
    "brow_outer_R": (71, 72, 83), "brow_mid_R": (73, 74, 84), "brow_inner_R": (75, 76),
    "brow_inner_L": (77, 78), "brow_mid_L": (79, 80, 85), "brow_outer_L": (81, 82, 86),
    "nose_bridge_high_R": (50, 51, 52), "nose_bridge_high_L": (56, 57, 58),
    "nose_bridge_low_R": (53, 54), "nose_bridge_low_L": (59, 60),
    "nose_base": (55,),                      # columella base between the nostrils
    "alar_R": (61, 62, 63), "alar_L": (66, 67, 68),
    "nostril_R": (64, 65, 179, 180), "nostril_L": (69, 70, 181, 182),
    "philtrum_high_R": (170,), "philtrum_high_L": (172,),
    "philtrum_low_R": (171,), "philtrum_low_L": (173,),
    "nasolabial_high_R": (158,), "nasolabial_high_L": (161,),
    "nasolabial_low_R": (159, 160), "nasolabial_low_L": (162, 163),
    "cheek_R": (164, 165, 166), "cheek_L": (167, 168, 169),
    "mouth_corner_R": (87,), "mouth_corner_L": (93,),
    "upper_lip_outer": (88, 89, 90, 91, 92),  # vermilion border, R to L
    "upper_lip_inner": (94, 95, 96, 97, 98),  # lip line of the upper lip
    "lower_lip_inner": (99, 100, 101, 102, 103),
    "lower_lip_outer": (104, 105, 106, 107, 108),
    "labiomental": (176, 177, 178),           # fold between lower lip and chin boss
    "chin": (174, 175),                       # chin boss, midline
    "jaw_angle_R": (125,), "jaw_angle_L": (133,),
    "jaw_upper_R": (126,), "jaw_upper_L": (132,),
    "jaw_mid_R": (127,), "jaw_mid_L": (131,),
    "jaw_chin": (128, 129, 130),              # 129 is the lowest chin point
    "face_side_R": (109, 185, 110, 186, 111), "face_side_L": (112, 187, 113, 188, 114),
    "ear_R": (115, 116, 117, 118, 119), "ear_L": (120, 121, 122, 123, 124),
    "hairline": tuple(range(134, 145)),
    "head_outline": tuple(range(145, 158)),
    "neck": (183, 184),
}

# The 5 alignment points (runtime.landmarks order and meaning) for the 189-point template:
# eye centres as in MESH_FIVE (outer corner, inner corner, upper lid, lower lid), the nose tip as
# the mean of the lower bridge ends and the columella base (the pronasale has no point of its own),
# and the mouth corners.
TEM189_FIVE: tuple[tuple[int, ...], ...] = (
    (18, 22, 20, 29),
    (27, 23, 25, 32),
    (54, 60, 55),
    (87,),
    (93,),
)


def group_indices(name: str) -> tuple[int, ...]:
    """Indices of a group; a name without ``_R``/``_L`` that has both sides means both sides.

    Raises:
        KeyError: the name is neither a group nor the stem of a sided pair.
    """
    if name in FRL189_GROUPS:
        return FRL189_GROUPS[name]
    if f"{name}_R" in FRL189_GROUPS and f"{name}_L" in FRL189_GROUPS:
        return FRL189_GROUPS[f"{name}_R"] + FRL189_GROUPS[f"{name}_L"]
    raise KeyError(f"unknown FRL189 landmark group {name!r}")


def read_tem(path: str | Path) -> np.ndarray:
    """Read a webmorph ``.tem`` file's points as an Nx2 float32 array (pixels).

    Raises:
        ValueError: the file is truncated or malformed.
    """
    lines = Path(path).read_text().splitlines()
    try:
        n = int(lines[0].strip())
        pts = np.array([[float(v) for v in line.split()[:2]] for line in lines[1:1 + n]],
                       dtype=np.float32)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: not a webmorph .tem file ({exc})") from None
    if pts.shape != (n, 2):
        raise ValueError(f"{path}: expected {n} points, read {len(pts)}")
    return pts


def tem_five_points(points: np.ndarray) -> np.ndarray:
    """The 5 alignment points (5x2 float64) of 189 FRL template points.

    Raises:
        ValueError: not 189 points.
    """
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    if len(pts) != TEM189_POINTS:
        raise ValueError(f"expected {TEM189_POINTS} FRL template points, got {len(pts)}")
    return np.stack([pts[list(idx)].mean(axis=0) for idx in TEM189_FIVE])


@dataclass(frozen=True)
class FaceFiles:
    face_id: str
    image: Path
    tem: Path


def list_faces(faces_dir: str | Path) -> list[FaceFiles]:
    """Every ``NNN.jpg`` with a ``NNN.tem`` beside it in ``faces_dir``, sorted by id.

    Raises:
        FileNotFoundError: the folder is missing or holds no image/.tem pair.
    """
    root = Path(faces_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"faces folder not found: {root}")
    faces = [FaceFiles(p.stem, p, p.with_suffix(".tem"))
             for p in sorted(root.glob("*.jpg")) if p.with_suffix(".tem").is_file()]
    if not faces:
        raise FileNotFoundError(f"no .jpg + .tem pairs in {root}")
    return faces


def load_face(face: FaceFiles) -> tuple[np.ndarray, np.ndarray]:
    """``(image BGR uint8, points Nx2 float32)`` of one face.

    Raises:
        FileNotFoundError: the image cannot be read.
    """

    from runtime.cv_path import decode_image

    image = decode_image(face.image)
    if image is None:
        raise FileNotFoundError(f"cannot read image {face.image}")
    return image, read_tem(face.tem)
