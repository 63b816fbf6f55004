"""What a face's ``score`` means: a confidence read from the face mesh's face flag.

The face mesh has a second output, a logit that its crop holds a face. MediaPipe thresholds its
sigmoid at 0.5 to decide that a track is lost; we do the same (``presence``). As a confidence that
sigmoid is useless: sharp faces give logits of 19-36 (468-point mesh), so it reads 1.00 on a sharp
face and on the same face half hidden by a hand (logit ~9) alike. ``score`` is the same logit
rescaled so that its range lies where faces go bad::

    score = sigmoid((logit - mid) / scale)

with, per mesh model, ``mid`` the median logit of faces half covered by a grey patch (so a face
half hidden scores ~0.5) and ``scale`` such that 95 % of sharp faces score >= 0.9
(``scale = (P5(sharp) - mid) / ln 9``). Measured on 140 shared photos (82 London neutral, 20 London
smiling, 30 Canada, 8 ``people/``), the mesh run on each face's own ROI; logits:

==========================  =====================  ==================
face                        468-point mesh (PyPI)  478-point (.task)
==========================  =====================  ==================
sharp: min / P5 / median    19.4 / 22.9 / 27.5      4.67 / 4.85 / 5.64
lower half grey: median     12.0                    4.47
left half grey: median      14.0                    4.39
Gaussian blur sigma 12      10.3                    3.35
all grey                    -8.1                    1.40
==========================  =====================  ==================

On the demo clip (WolfgangLanger_Pexels.mp4) the 468-point mesh's score is below 0.5 only where a
hand is on the face (frames 58-220 by eye): on 93-134 (AVX-512 EPYC) or 92-134 (AVX2 EPYC), where
it covers nose and mouth. ``RELIABLE`` (0.5) is the
cut the OpenFace CSV's ``success`` uses and below which the tracker looks for the face again.
"""
from __future__ import annotations

import math

from runtime.face_success import RELIABLE, success  # noqa: F401 - the cut lives there (the reader needs it light)

# (mid, scale) of the logit -> score map, per mesh model (told apart by its landmark count).
CALIBRATION: dict[int, tuple[float, float]] = {468: (13.0, 4.5), 478: (4.4, 0.2)}


def presence(logit: float) -> float:
    """The mesh's own face probability (MediaPipe's tracking test: >= 0.5 keeps a track)."""
    return 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, logit))))


def logit_of(p: float) -> float:
    """The logit whose presence is ``p`` (+-inf at 1 and 0)."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p) - math.log1p(-p)


def confidence(logit: float, num_points: int) -> float:
    """``score`` in [0, 1] for a mesh logit of the model with ``num_points`` landmarks."""
    mid, scale = CALIBRATION[num_points]
    return presence((logit - mid) / scale)
