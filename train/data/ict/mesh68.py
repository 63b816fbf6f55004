"""MediaPipe face mesh (468/478 points) -> the iBUG 300-W / Multi-PIE 68 points (data table).

Why the mesh and not the London ``.tem`` points: the runtime computes this mesh on every photo and
frame, so any neutral face (London, Canada, ``media/people``, clip frames) can be warped the same
way, and the tests can re-run the same face stage on the warped photo to check the pixels moved.
The 189-point webmorph template has no inner-lip or jaw-contour points in the 68-point sense.

Source of the correspondence: P. Yan, "Mediapipe_2_Dlib_Landmarks" (github.com/PeizhiYan/
Mediapipe_2_Dlib_Landmarks, ``mp2dlib.py``, 2024): one or two mesh vertices per 68-point index,
averaged where two are given. Checked here by drawing both on London faces (the contact sheet).
The 68 jaw points are the mesh's face oval, i.e. the visible cheek/jaw outline as in iBUG.
"""
from __future__ import annotations

import numpy as np

MESH_TO_68: tuple[tuple[int, ...], ...] = (
    # jaw 0-16 (subject's right ear -> chin -> left ear)
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,), (400,), (379,),
    (365,), (397, 288), (361,), (323,), (454,), (356,),
    # brows 17-21 (right), 22-26 (left)
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),
    # nose bridge 27-30, nostrils 31-35
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),
    # eyes 36-41 (right), 42-47 (left)
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 48-59, inner lips 60-67
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)
assert len(MESH_TO_68) == 68


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """The 68 points (68 x 2 float64) of a 468- or 478-point mesh (N x 2 or N x 3).

    Raises:
        ValueError: not a MediaPipe mesh.
    """
    pts = np.asarray(mesh, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478) or pts.shape[1] < 2:
        raise ValueError(f"expected a 468/478-point face mesh (N x 2|3), got shape {pts.shape}")
    return np.stack([pts[list(idx), :2].mean(axis=0) for idx in MESH_TO_68])


def single_vertex_rows() -> tuple[np.ndarray, np.ndarray]:
    """``(rows, mesh_ids)``: the 68-point rows that are one mesh vertex (moved exactly with them)."""
    rows = [i for i, idx in enumerate(MESH_TO_68) if len(idx) == 1]
    return np.array(rows), np.array([MESH_TO_68[i][0] for i in rows])
