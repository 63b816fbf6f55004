"""Calibration and evaluation crops from an aligned-face cache, prepared as the runtime does.

The cache stores aligned crops at ``alignment.crop_size``; they are resized to the card's
``input.size`` by ``runtime.align.resize_crop``, the resize training uses, so calibration and
parity see the pixels the model was trained on (the runtime's one-step warp to the input size is
within ~0.6 grey levels of them on faces). Which crops (a run's split) is ``train.data.policy``'s
``split_indices_for``; their normalisation is training's (``train.model.input_norm``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.align import resize_crop


@dataclass
class CropSet:
    crops: np.ndarray  # N x S x S x 3 uint8 RGB at the model input size
    labels: np.ndarray | None = None  # N x A float (1 = active), None when the cache lacks the AUs
    mask: np.ndarray | None = None  # N x A bool (label known)
    real: np.ndarray | None = None  # N x A bool (label known and of kind "real")
    source: str = ""  # "CACHE (split, n of m)"

    def __len__(self) -> int:
        return len(self.crops)


def load_crops(cache_dir: str | Path, input_size: int, indices: np.ndarray | None = None,
               limit: int | None = None, aus: list[str] | None = None) -> CropSet:
    """Crops at ``input_size`` (evenly spaced over ``indices`` when ``limit`` is smaller).

    Args:
        cache_dir: a ``train.data`` cache.
        input_size: the model's input side.
        indices: which samples (default all).
        limit: at most this many, spread evenly so every subject/video contributes.
        aus: when given, labels and masks for these AUs (ValueError if the cache lacks one).
    """
    from train.data.cache import CacheData

    cache = CacheData(cache_dir)
    if len(cache) == 0:
        raise ValueError(f"cache {cache_dir} holds no faces; rebuild it with `python -m train.data`")
    idx = np.arange(len(cache)) if indices is None else np.asarray(indices)
    total = len(idx)
    if limit is not None and len(idx) > limit:
        idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
    crops = np.stack([resize_crop(_image(cache, int(i)), input_size) for i in idx])
    labels = mask = real = None
    if aus is not None:
        from train.data.policy import select_aus
        from train.data.records import LABEL_KINDS

        _, cols = select_aus(cache, aus)
        labels = cache.field("labels")[idx][:, cols].astype(np.float32)
        mask = cache.field("mask")[idx][:, cols].astype(bool)
        real = mask & (cache.field("kind")[idx][:, cols] == LABEL_KINDS.index("real"))
    return CropSet(crops=crops, labels=labels, mask=mask, real=real, source=f"{cache_dir} ({len(idx)} of {total})")


def _image(cache, i: int) -> np.ndarray:
    s, j = cache.locate(i)
    return np.asarray(cache.arrays["image"][s][j])
