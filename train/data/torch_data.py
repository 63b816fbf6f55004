"""PyTorch view of the aligned-face cache: augmentation, normalisation and the teacher's batch dict.

Augmentation is seeded per (seed, epoch, sample), so a resumed run sees the same pixels as an
uninterrupted one, whatever the worker count.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from train.data.cache import CacheData


class CacheDataset(Dataset):
    """Samples of a cache as the teacher's batch dict (see ``train/model/teacher.py``).

    Args:
        cache: the opened cache.
        indices: which samples (e.g. a fold's subjects).
        input_size: model input side; crops are resized from the cache's crop size.
        train: random affine/colour augmentation (and a second view when ``two_views``).
        seed: base seed of the augmentation.
    """

    def __init__(self, cache: CacheData, indices: np.ndarray, input_size: int, train: bool = False,
                 two_views: bool = False, seed: int = 0, columns: np.ndarray | None = None):
        self.cache, self.indices = cache, np.asarray(indices, np.int64)
        self.columns = np.arange(len(cache.aus)) if columns is None else np.asarray(columns)
        self.size, self.train, self.two_views, self.seed = input_size, train, two_views, seed
        self.epoch = 0
        self.crop = int(cache.meta["crop_size"])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def _affine(self, rng: np.random.Generator | None) -> np.ndarray:
        """crop pixels -> input pixels: resize, plus a small random similarity when training."""
        s = self.size / self.crop
        if rng is None:
            return np.array([[s, 0, 0], [0, s, 0]], np.float64)
        angle = np.deg2rad(rng.uniform(-8, 8))
        scale = s * rng.uniform(0.93, 1.07)
        c = (self.size - 1) / 2
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        tx, ty = rng.uniform(-0.04, 0.04, 2) * self.size
        m = np.array([[cos, -sin, 0], [sin, cos, 0]], np.float64)
        m[:, 2] = np.array([c + tx, c + ty]) - m[:, :2] @ np.array([(self.crop - 1) / 2] * 2)
        return m

    def _view(self, image: np.ndarray, m: np.ndarray | None, rng: np.random.Generator | None) -> torch.Tensor:
        """3 x S x S uint8. Evaluation resizes the cached crop exactly as the runtime's
        ``align_face(out_size=...)`` does (area interpolation); training warps with jitter.
        Images stay uint8 until ``train.task.normalize`` on the training device: 4x less to move between
        DataLoader workers and the trainer."""
        if m is None:
            out = image if image.shape[0] == self.size else cv2.resize(image, (self.size, self.size),
                                                                       interpolation=cv2.INTER_AREA)
        else:
            out = cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT)
        if rng is not None:  # contrast and brightness jitter as a lookup table on the 8-bit values
            v = np.arange(256, dtype=np.float32) / 255.0
            lut = np.clip((v - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08), 0, 1)
            out = cv2.LUT(out, np.rint(lut * 255).astype(np.uint8))
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        idx = int(self.indices[i])
        s = self.cache.sample(idx)
        rng = np.random.default_rng((self.seed, self.epoch, idx)) if self.train else None
        m = self._affine(rng)
        lm = s["landmarks"].astype(np.float32)
        lm = lm @ m[:, :2].T.astype(np.float32) + m[:, 2].astype(np.float32)
        item = {"image": self._view(s["image"], m if rng is not None else None, rng),
                "labels": torch.from_numpy(s["labels"][self.columns].astype(np.float32)),
                "mask": torch.from_numpy(s["mask"][self.columns].astype(bool)),
                "landmarks": torch.from_numpy(np.nan_to_num(lm, nan=-1.0)),
                "index": torch.tensor(idx)}
        flow, valid = _flow_field(s, m, self.size)
        item["flow"], item["flow_valid"] = flow, torch.tensor(valid)
        if self.two_views:
            rng2 = rng if rng is not None else np.random.default_rng((self.seed, self.epoch, idx, 1))
            item["image2"] = self._view(s["image"], self._affine(rng2), rng2)
        return item


def _flow_field(s: dict[str, np.ndarray], m: np.ndarray, size: int) -> tuple[torch.Tensor, bool]:
    """The stored flow mapped into the model input's quarter-resolution grid.

    Stored: (2, crop/4, crop/4), vectors in pixels of that quarter grid. ``m`` maps crop -> input
    pixels (p' = A p + t), so quarter grids map by [A | t/4] and vectors by A. Returned vectors
    are in pixels of the input's quarter-resolution grid, the unit the flow head predicts.
    """
    out = size // 4
    flow = s.get("flow")
    if flow is None or not bool(s.get("flow_valid", False)):
        return torch.zeros(2, out, out), False
    f = flow.astype(np.float32).transpose(1, 2, 0)
    grid_m = np.concatenate([m[:, :2], m[:, 2:] / 4.0], axis=1)
    f = cv2.warpAffine(f, grid_m, (out, out), flags=cv2.INTER_LINEAR)
    f = (f.reshape(-1, 2) @ m[:, :2].T.astype(np.float32)).reshape(out, out, 2)
    return torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))), True
