"""Seeded batches of ICT-driven renders over folders of real neutral photos (London neutral,
Canada, ``media/people``).

Sample ``i`` depends only on ``(seed, i)`` (photo, AU mix, appearance draws), so workers can split
the range and reruns match. Each photo's face mesh (``runtime.face.FaceStage``, image mode) and
model fit are computed once and reused. A sample is, with probability ``p_neutral`` (default
0.1), the photo untouched (every AU 0, expression "neutral"); else with ``p_prototype`` (0.45) one
prototypical expression (``facs.PROTOTYPES``) with each of its AUs at intensity C..E, labelled
with that expression for MAL; else one AU alone at a uniformly drawn intensity A..E (expression
-1: none). Photos where the face stage finds no face are skipped and counted in ``skipped``.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from train.data.ict.facs import (
    EXPRESSIONS,
    FACS_BANDS,
    LABELLED_AUS,
    OPTIONAL_AUS,
    PROTOTYPES,
    expression_index,
)
from train.data.ict.model import ICTModel, load_ict
from train.data.ict.projection import Correspondence, correspond
from train.data.ict.render import points68, render_full

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Sample:
    image: np.ndarray          # HxWx3 uint8 BGR
    flow: np.ndarray           # HxWx2 float32, expressive -> neutral (``render`` docstring)
    points: np.ndarray         # the photo's face mesh after the warp (N x 3)
    labels: dict[str, int]     # AU name -> 0/1 for every AU of ``facs.LABELLED_AUS``
    weights: dict[int, float]  # AU -> weight rendered
    expression: int            # index into ``EXPRESSIONS``; -1 = not a prototype
    face_id: str               # "<folder>/<file stem>"
    index: int                 # the sample number i


def list_photos(folders: Sequence[str | Path], keep: Callable[[Path], bool] | None = None) -> list[Path]:
    """Every photo in the folders (those ``keep`` accepts), sorted per folder.

    Raises:
        FileNotFoundError: a folder is missing, or no folder holds a photo.
    """
    photos: list[Path] = []
    for f in map(Path, folders):
        if not f.is_dir():
            raise FileNotFoundError(f"photo folder not found: {f}")
        photos += sorted(p for p in f.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and (keep is None or keep(p)))
    if not photos:
        raise FileNotFoundError(f"no .jpg/.png photos in {', '.join(map(str, folders))}")
    return photos


def draw_mix(rng: np.random.Generator, p_neutral: float = 0.1, p_prototype: float = 0.45,
             aus: Sequence[int] = LABELLED_AUS) -> tuple[dict[int, float], int]:
    """A random AU mix and its expression label (see the module docstring)."""
    u = rng.random()
    if u < p_neutral:
        return {}, expression_index("neutral")
    if u < p_neutral + p_prototype:
        name = list(PROTOTYPES)[int(rng.integers(len(PROTOTYPES)))]
        mix = list(PROTOTYPES[name]) + [a for a in OPTIONAL_AUS.get(name, ()) if rng.random() < 0.5]
        lo, hi = FACS_BANDS["C"][0], FACS_BANDS["E"][1]
        return {a: float(rng.uniform(lo, hi)) for a in mix}, expression_index(name)
    au = int(aus[int(rng.integers(len(aus)))])
    letter = "ABCDE"[int(rng.integers(5))]
    lo, hi = FACS_BANDS[letter]
    return {au: float(rng.uniform(lo, hi))}, -1


class ICTBatch:
    """``n`` seeded renders over the photos of ``folders``; iterate for ``Sample`` objects.

    Args:
        folders: folders of neutral photos. n: samples. seed: the seed.
        model: the ICT model or the path of ``ict_face_model_light.npz``.
        face_model: the runtime face stage's model folder/bundle (see ``FaceStage``).
        p_neutral / p_prototype: the mix of sample kinds (the rest are single AUs).
        keep: which photos may be rendered (e.g. ``train.data.ict.cache.trainable``: no held-out identity).

    Raises:
        FileNotFoundError: no photos / no model. ValueError: bad n or probabilities.
    """

    def __init__(self, folders: Sequence[str | Path], n: int, seed: int, *, model: ICTModel | str | Path,
                 face_model: str | None = None, p_neutral: float = 0.1, p_prototype: float = 0.45,
                 keep: Callable[[Path], bool] | None = None):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not (0 <= p_neutral and 0 <= p_prototype and p_neutral + p_prototype <= 1):
            raise ValueError(f"need p_neutral, p_prototype >= 0 with a sum <= 1, got {p_neutral}, {p_prototype}")
        self.photos = list_photos(folders, keep)
        self.model = model if isinstance(model, ICTModel) else load_ict(model)
        self.n, self.seed = n, seed
        self.face_model = face_model
        self.p_neutral, self.p_prototype = p_neutral, p_prototype
        self.skipped: Counter[str] = Counter()
        self._faces: dict[int, tuple[np.ndarray, np.ndarray, Correspondence] | None] = {}

    def _face(self, k: int, stage) -> tuple[np.ndarray, np.ndarray, Correspondence] | None:
        if k not in self._faces:
            photo = cv2.imread(str(self.photos[k]), cv2.IMREAD_COLOR)
            if photo is None:
                self._faces[k] = None
                self.skipped["unreadable photo"] += 1
                return None
            faces = stage.detect(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
            if not faces:
                self._faces[k] = None
                self.skipped["no face found"] += 1
                return None
            mesh = faces[0].landmarks
            photo.setflags(write=False)
            self._faces[k] = photo, mesh, correspond(self.model, points68(mesh), photo.shape[:2])
        return self._faces[k]

    def __iter__(self) -> Iterator[Sample]:
        from runtime.face import FaceStage

        with FaceStage(face_model=self.face_model, detector="full", max_faces=1) as stage:
            for i in range(self.n):
                rng = np.random.default_rng((self.seed, i))
                k = int(rng.integers(len(self.photos)))
                face = self._face(k, stage)
                if face is None:
                    self.skipped["sample of a photo without face"] += 1
                    continue
                photo, mesh, corr = face
                weights, expression = draw_mix(rng, self.p_neutral, self.p_prototype)
                r = render_full(photo, mesh, weights, rng, model=self.model, correspondence=corr)
                p = self.photos[k]
                yield Sample(r.image, r.flow, r.moved_points, r.labels, r.weights, expression,
                             f"{p.parent.name}/{p.stem}", i)


__all__ = ["EXPRESSIONS", "ICTBatch", "Sample", "draw_mix", "list_photos"]
