"""How a cache is written: its fields, its shards and its ``meta.json``, for every cache builder.

``ShardWriter`` takes one aligned face at a time (``add``) and writes shards of up to
``shard_size`` faces, each under a temporary name renamed when complete (a killed build resumes
by skipping finished shards); ``cache_meta`` + ``write_meta`` write ``meta.json``. The builders
(``train.data.cache.build_cache``: benchmark and video frames through the face stage;
``train.data.synth_cache``: warps of the London neutral faces; ``train.data.ict.cache``: ICT-FaceKit
warps) differ only in where the face comes from. The layout is described in ``train.data.cache``.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from train.data.flow import downsample_flow
from train.data.records import LABEL_KINDS

FIELDS = ("image", "points5", "landmarks", "labels", "mask", "intensity", "kind", "subject", "frame", "video",
          "flow", "flow_valid")
N_LANDMARKS = 478  # 468-point meshes are padded with NaN rows


def shard_dir(out: Path, i: int) -> Path:
    return out / "shards" / f"{i:05d}"


def empty_arrays(n: int, n_aus: int, s: int) -> dict[str, np.ndarray]:
    return {"image": np.zeros((n, s, s, 3), np.uint8), "points5": np.zeros((n, 5, 2), np.float32),
            "landmarks": np.full((n, N_LANDMARKS, 2), np.nan, np.float16),
            "labels": np.zeros((n, n_aus), np.float32), "mask": np.zeros((n, n_aus), bool),
            "intensity": np.full((n, n_aus), np.nan, np.float16), "kind": np.zeros((n, n_aus), np.uint8),
            "subject": np.zeros(n, np.int32), "frame": np.zeros(n, np.int32), "video": np.zeros(n, np.int32),
            "flow": np.zeros((n, 2, s // 4, s // 4), np.float16), "flow_valid": np.zeros(n, bool)}


def quarter_flow(flow: np.ndarray) -> np.ndarray:
    """HxWx2 flow (pixels) -> the stored 2 x H/4 x W/4 float16 (see ``train.data.cache``)."""
    return downsample_flow(flow, 4).transpose(2, 0, 1)


def write_shard(out: Path, index: int, arrays: dict[str, np.ndarray], n: int, skipped: Mapping[str, int]) -> None:
    """Write the first ``n`` rows of every field under a temporary name, then rename (atomic)."""
    final = shard_dir(out, index)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr[:n])
    (tmp / "skipped.json").write_text(json.dumps(dict(skipped)))
    os.replace(tmp, final)


class ShardWriter:
    """Faces in, shards of up to ``shard_size`` out (numbered from ``first``).

    Args:
        out: the cache (or cache part) folder.
        n_aus, crop_size: the row shape.
        shard_size: faces per shard.
        first: number of the first shard (a worker building shard k of a larger cache).
        skip_existing: leave a finished shard on disk as it is (a resumed build).
        single: write one shard only, at ``flush`` (a worker's shard, with its skip counts).
    """

    def __init__(self, out: str | Path, n_aus: int, crop_size: int, shard_size: int, first: int = 0,
                 skip_existing: bool = False, single: bool = False):
        self.out, self.n_aus, self.crop_size, self.shard_size = Path(out), n_aus, crop_size, shard_size
        self.shard, self.skip_existing, self.single = first, skip_existing, single
        self.count, self.total = 0, 0
        self.arrays = empty_arrays(shard_size, n_aus, crop_size)
        self._labels: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []

    def add(self, *, image: np.ndarray, points5: np.ndarray, labels: Any, mask: Any, kind: Any, subject: int,
            frame: int, landmarks: np.ndarray | None = None, intensity: Any = None, video: int = 0,
            flow: np.ndarray | None = None) -> None:
        """One aligned face: RGB crop, its 5 points and mesh in crop pixels, per-AU labels, mask,
        label-kind codes (one per AU or one for all), intensities (None: unknown), and its flow
        target at crop resolution (H×W×2 pixels, to the earlier frame; None: none)."""
        a, j = self.arrays, self.count
        a["image"][j] = image
        a["points5"][j] = points5
        if landmarks is not None:
            a["landmarks"][j, :len(landmarks)] = landmarks[:N_LANDMARKS]
        a["labels"][j], a["mask"][j] = labels, mask
        if intensity is not None:
            a["intensity"][j] = intensity
        a["kind"][j] = kind
        a["subject"][j], a["frame"][j], a["video"][j] = subject, frame, video
        if flow is not None:
            a["flow"][j] = quarter_flow(flow)
            a["flow_valid"][j] = True
        self.count += 1
        if self.count == self.shard_size and not self.single:
            self.flush()

    def flush(self, skipped: Mapping[str, int] | None = None, always: bool = False) -> None:
        """Write the faces added since the last shard (nothing when there are none, unless ``always``:
        a worker's shard where no face was found still records its skips)."""
        if not self.count and not always:
            return
        if not (self.skip_existing and shard_dir(self.out, self.shard).is_dir()):
            write_shard(self.out, self.shard, self.arrays, self.count, skipped or {})
        self._labels.append(self.arrays["labels"][:self.count].copy())
        self._masks.append(self.arrays["mask"][:self.count].copy())
        self.total += self.count
        self.shard, self.count = self.shard + 1, 0
        self.arrays = empty_arrays(self.shard_size, self.n_aus, self.crop_size)

    def labels_and_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """Every written face's labels and masks (for the manifest's label counts)."""
        if not self._labels:
            return np.zeros((0, self.n_aus)), np.zeros((0, self.n_aus), bool)
        return np.concatenate(self._labels), np.concatenate(self._masks)


def cache_meta(dataset: str, aus: Sequence[str], crop_size: int, subjects: Sequence[str],
               videos: Sequence[str] | None = None, *, template: str = "default", scale: float = 1.0,
               parts: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A cache's ``meta.json``: its AUs, crop size, alignment, subjects, videos and label kinds
    (plus ``extra``: a builder's seed and counts). A ``parts`` cache (the open dataset) reads its
    rows from its parts' folders and lists no videos or landmarks of its own."""
    meta: dict[str, Any] = {"dataset": dataset}
    if parts is not None:
        meta["parts"] = list(parts)
    meta.update({"aus": list(aus), "crop_size": int(crop_size), "template": template, "scale": float(scale),
                 "subjects": list(subjects)})
    if videos is not None:
        meta["videos"] = list(videos)
    meta["label_kinds"] = list(LABEL_KINDS)
    if parts is None:
        meta["n_landmarks"] = N_LANDMARKS
    return {**meta, **extra}


def write_meta(out: str | Path, meta: Mapping[str, Any], must_match: bool = False) -> None:
    """Write ``out/meta.json``; with ``must_match``, refuse a folder whose meta.json differs (a
    resumed build must continue the same cache).

    Raises:
        ValueError: ``must_match`` and ``out`` holds another cache.
    """
    path = Path(out) / "meta.json"
    if must_match and path.is_file() and json.loads(path.read_text()) != dict(meta):
        raise ValueError(f"{out} holds a cache built from other records or settings; use a new --out "
                         "or delete it")
    path.write_text(json.dumps(dict(meta), indent=1))
