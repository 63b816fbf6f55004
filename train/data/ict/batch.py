"""Seeded batches of ICT-driven renders over folders of real photos (London neutral, Canada,
``media/people``; v3 also London smiling).

Sample ``i`` depends only on ``(seed, i)`` (photo, AU mix, appearance draws), so workers can split
the range and reruns match. Each photo's face mesh (``runtime.face.FaceStage``, image mode) and
model fit are computed once and reused. A sample is, with probability ``p_neutral`` (default
0.1), the photo untouched (every AU 0, expression "neutral"); else with ``p_prototype`` (0.45) one
prototypical expression (``facs.PROTOTYPES``) with each of its AUs at intensity C..E, labelled
with that expression for MAL; else one AU alone at a uniformly drawn intensity A..E (expression
-1: none). Photos where the face stage finds no face are skipped and counted in ``skipped``.

That is version 2. ``options`` (``train.data.ict.options``) with version 3 draws a base photo
(smiling with ``p_smiling_base`` when the folders hold London ``smiling/`` photos) and then one
``compose.compose_v3`` sample: the v3 kinds, pose, look, light, occluders and camera; its labels
hold only the known AUs (an AU left out is unknown).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from runtime.aus import au_name
from runtime.cv_path import decode_image
from train.data.ict.facs import (
    EXPRESSIONS,
    FACS_BANDS,
    LABELLED_AUS,
    OPTIONAL_AUS,
    PROTOTYPES,
    V2_AUS,
    expression_index,
    fac_intensity,
)
from train.data.ict.model import ICTModel, load_ict
from train.data.ict.options import ICTOptions, ict_options
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
    intensity: dict[str, float] = field(default_factory=dict)  # AU name -> FACS 0-5, where known
    info: dict = field(default_factory=dict)  # v3: kind, pose, occluders, hidden AUs (to look at)


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
             aus: Sequence[int] = V2_AUS) -> tuple[dict[int, float], int]:
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
        p_neutral / p_prototype: the mix of sample kinds (the rest are single AUs; version 2).
        keep: which photos may be rendered (e.g. ``train.data.ict.cache.trainable``: no held-out identity).
        options: ``ICTOptions`` or a dict (``ict_options``); version 3 ignores p_neutral / p_prototype
            given here and takes the options' own.

    Raises:
        FileNotFoundError: no photos / no model. ValueError: bad n, probabilities or options, or
        smiling photos given to version 2.
    """

    def __init__(self, folders: Sequence[str | Path], n: int, seed: int, *, model: ICTModel | str | Path,
                 face_model: str | None = None, p_neutral: float = 0.1, p_prototype: float = 0.45,
                 keep: Callable[[Path], bool] | None = None, options: ICTOptions | dict | None = None):
        from train.data.ict.bases import is_smiling

        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not (0 <= p_neutral and 0 <= p_prototype and p_neutral + p_prototype <= 1):
            raise ValueError(f"need p_neutral, p_prototype >= 0 with a sum <= 1, got {p_neutral}, {p_prototype}")
        self.options = ict_options(options if options is not None else {"version": 2})
        self.photos = list_photos(folders, keep)
        self.smiling = [k for k, p in enumerate(self.photos) if is_smiling(p)]
        self.neutral = [k for k, p in enumerate(self.photos) if not is_smiling(p)]
        if self.options.version == 2 and self.smiling:
            raise ValueError(f"ICT version 2 renders neutral photos only; {self.photos[self.smiling[0]].parent} "
                             "holds smiling ones (use version 3)")
        if not self.neutral:
            raise FileNotFoundError(f"no neutral photos in {', '.join(map(str, folders))}")
        self.model = model if isinstance(model, ICTModel) else load_ict(model)
        self.n, self.seed = n, seed
        self.face_model = face_model
        self.p_neutral, self.p_prototype = p_neutral, p_prototype
        self.skipped: Counter[str] = Counter()
        self._faces: dict[int, tuple[np.ndarray, np.ndarray, Correspondence] | None] = {}
        self._bases: dict = {}  # v3: photo index -> compose.BaseFace

    def _face(self, k: int, stage) -> tuple[np.ndarray, np.ndarray, Correspondence] | None:
        if k not in self._faces:
            photo = decode_image(self.photos[k])
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

    def _pick(self, rng: np.random.Generator) -> int:
        if self.options.version == 2:
            return int(rng.integers(len(self.photos)))
        pool = self.smiling if self.smiling and rng.random() < self.options.p_smiling_base else self.neutral
        return pool[int(rng.integers(len(pool)))]

    def __iter__(self) -> Iterator[Sample]:
        from runtime.face import FaceStage

        with FaceStage(face_model=self.face_model, detector="full", max_faces=1) as stage:
            for i in range(self.n):
                rng = np.random.default_rng((self.seed, i))
                k = self._pick(rng)
                face = self._face(k, stage)
                if face is None:
                    self.skipped["sample of a photo without face"] += 1
                    continue
                p = self.photos[k]
                face_id = f"{p.parent.name}/{p.stem}"
                if self.options.version >= 3:
                    yield self._v3(k, face, rng, face_id, i)
                    continue
                photo, mesh, corr = face
                weights, expression = draw_mix(rng, self.p_neutral, self.p_prototype)
                r = render_full(photo, mesh, weights, rng, model=self.model, correspondence=corr)
                intensity = {au_name(a): fac_intensity(weights.get(a, 0.0)) for a in LABELLED_AUS}
                yield Sample(r.image, r.flow, r.moved_points, r.labels, r.weights, expression, face_id, i, intensity)

    def _v3(self, k: int, face: tuple[np.ndarray, np.ndarray, Correspondence], rng: np.random.Generator,
            face_id: str, i: int) -> Sample:
        from train.data.ict.compose import BaseFace, compose_v3

        if k not in self._bases:
            self._bases[k] = BaseFace.of(self.photos[k], *face)
        c = compose_v3(self._bases[k], rng, self.options, self.model)
        info = {"kind": c.mix.kind, "pose": c.pose, "occluders": c.occluders, "hidden": c.hidden,
                "sides": dict(c.mix.sides), "motion": dict(c.mix.motion)}
        return Sample(c.image, c.flow, c.points, c.labels, dict(c.mix.weights), c.mix.expression, face_id, i,
                      c.intensity, info)


__all__ = ["EXPRESSIONS", "ICTBatch", "Sample", "draw_mix", "list_photos"]
