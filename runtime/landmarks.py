"""Landmark index tables: which points of each landmark scheme give the 5 alignment points.

The 5 points are, in this order (InsightFace/ArcFace convention): the subject's right eye centre
(image left on a frontal, unmirrored face), the subject's left eye centre, the nose tip, the
subject's right mouth corner, the subject's left mouth corner. Each entry is a tuple of point
indices whose mean is that point.
"""
from __future__ import annotations

FivePointIndices = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]

# MediaPipe face mesh (468 points; the 478-point v2 mesh adds irises 468-477 and keeps these).
MESH_FIVE: FivePointIndices = (
    (33, 133, 159, 145),    # right eye: outer corner, inner corner, upper lid, lower lid
    (263, 362, 386, 374),   # left eye
    (1,),                   # nose tip
    (61,),                  # right mouth corner
    (291,),                 # left mouth corner
)
# iBUG 300-W 68 points (BP4D/DISFA/GFT landmark files, dlib, OpenFace).
IBUG68_FIVE: FivePointIndices = (
    tuple(range(36, 42)),
    tuple(range(42, 48)),
    (30,),
    (48,),
    (54,),
)

# Webmorph FRL 189-point template (London set .tem files). It has no nose-tip point: the mean of
# the two lower bridge ends and the point between the nostrils stands in for it.
TEM189_FIVE: FivePointIndices = ((18, 22, 20, 29), (27, 23, 25, 32), (54, 60, 55), (87,), (93,))

SCHEMES: dict[int, FivePointIndices] = {468: MESH_FIVE, 478: MESH_FIVE, 68: IBUG68_FIVE, 189: TEM189_FIVE}
