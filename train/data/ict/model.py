"""The ICT-FaceKit light face model (MIT): neutral face skin, the 53 ARKit-named expression
shapes, and the vertices of the 68 Multi-PIE landmarks.

Why: its shapes are sculpted from scans of real expressions, so the 3D displacement each AU causes
at every skin point is physically grounded, not hand-written. Only the face skin (vertices
0..9408, see ``$AU_DATA_DIR/README.md``) is kept: eyeballs, teeth and the mouth socket would
project onto the photo where the photo shows skin.

Coordinates: centimetres, y up, the face looking along +z; ``_L`` shapes act on the subject's left
(+x, the image right of a frontal photo).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = "ict_face_model_light.npz"
FACE_SKIN_VERTICES = 9409  # vertices 0..9408 are the face skin


@dataclass(frozen=True)
class ICTModel:
    """The face-skin part of the ICT light model."""

    neutral: np.ndarray            # (V, 3) float32 cm
    deltas: dict[str, np.ndarray]  # shape name -> (V, 3) float32, shape minus neutral
    landmarks68: np.ndarray        # (68,) vertex ids, iBUG/Multi-PIE order
    triangles: np.ndarray          # (T, 3) vertex ids of the skin triangles (quads split)

    def normals(self) -> np.ndarray:
        """Unit vertex normals (V, 3) of the neutral skin, pointing out of the face."""
        v = self.neutral.astype(np.float64)
        a, b, c = (v[self.triangles[:, k]] for k in range(3))
        fn = np.cross(b - a, c - a)
        n = np.zeros_like(v)
        for k in range(3):
            np.add.at(n, self.triangles[:, k], fn)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        # Orientation of the upstream winding is not documented: make the nose tip face +z.
        tip = int(self.landmarks68[30])
        return n if n[tip, 2] > 0 else -n


def _triangles(polygons: np.ndarray, n_vertices: int) -> np.ndarray:
    quads = polygons[(polygons < n_vertices).all(axis=1)]
    tri = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]


def load_ict(path: str | Path) -> ICTModel:
    """Load ``ict_face_model_light.npz`` (a file, or the folder holding it).

    Raises:
        FileNotFoundError: no such file (names the path and where the open data keeps it).
        ValueError: the file lacks a key of the light model.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise FileNotFoundError(f"ICT-FaceKit model not found: {p}; pass $AU_DATA_DIR/ict_facekit/{MODEL_FILE}")
    return _load(str(p.resolve()))


@lru_cache(maxsize=2)
def _load(path: str) -> ICTModel:
    with np.load(path, allow_pickle=False) as z:
        missing = {"neutral", "expression_names", "expression_deltas", "polygons",
                   "landmarks_multipie68"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: not the ICT-FaceKit light model (missing {sorted(missing)})")
        v = FACE_SKIN_VERTICES
        neutral = z["neutral"][:v].astype(np.float32)
        deltas = {str(n): d[:v].astype(np.float32) for n, d in zip(z["expression_names"], z["expression_deltas"])}
        lm = z["landmarks_multipie68"].astype(np.int64)
        tri = _triangles(z["polygons"], v)
    for a in [neutral, lm, tri, *deltas.values()]:
        a.setflags(write=False)
    return ICTModel(neutral, deltas, lm, tri)
