"""PyTorch view of the aligned-face cache: augmentation and the teacher's batch dict.

Augmentation (and the inpainting mask draws) are seeded per (seed, epoch, sample), so a resumed
run, any DataLoader worker count and any number of DDP processes see the same pixels and masks.

Train/serve parity: the runtime warps the camera frame into a crop at the card's crop size, then
resizes it to the input size with area interpolation (``runtime.align.align_face``). Training
does the same: the random similarity is applied to the cached crop at crop resolution, then the
crop is resized to the input size exactly as the runtime resizes (``to_input``).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from runtime.align import resize_crop
from train.data.cache import CacheData


def to_input(crop: np.ndarray, jitter: np.ndarray | None, size: int) -> np.ndarray:
    """An S×S model input from a cached crop: the optional crop->crop similarity ``jitter``
    (2×3) at crop resolution, then ``runtime.align.resize_crop`` (as export does)."""
    c = crop.shape[0]
    if jitter is not None:
        crop = cv2.warpAffine(crop, jitter, (c, c), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return resize_crop(crop, size)


class CacheDataset(Dataset):
    """Samples of a cache as the teacher's batch dict (see ``train/model/teacher.py``).

    Args:
        cache: the opened cache.
        indices: which samples (e.g. a fold's subjects).
        input_size: model input side; crops are resized from the cache's crop size.
        train: random affine/colour augmentation (and a second view when ``two_views``) and the
            inpainting mask draws ``mask_noise``.
        seed: base seed of the augmentation.
        columns: the cache's AU columns the run uses.
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

    def jitter(self, rng: np.random.Generator) -> np.ndarray:
        """A random similarity of the crop about its centre (crop pixels -> crop pixels):
        rotation +-8 deg, scale 0.93-1.07, shift +-4% of the side."""
        angle = np.deg2rad(rng.uniform(-8, 8))
        scale = rng.uniform(0.93, 1.07)
        c = (self.crop - 1) / 2
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        tx, ty = rng.uniform(-0.04, 0.04, 2) * self.crop
        m = np.array([[cos, -sin, 0], [sin, cos, 0]], np.float64)
        m[:, 2] = np.array([c + tx, c + ty]) - m[:, :2] @ np.array([c, c])
        return m

    def input_matrix(self, jitter: np.ndarray | None) -> np.ndarray:
        """Crop pixels -> input pixels of ``to_input`` (the resize scales pixel edges by size/crop)."""
        j = np.eye(3)[:2] if jitter is None else jitter
        s = self.size / self.crop
        m = j * s
        m[:, 2] += 0.5 * s - 0.5  # pixel centres: resize maps x -> (x + 0.5) * s - 0.5
        return m

    def _view(self, image: np.ndarray, jitter: np.ndarray | None, rng: np.random.Generator | None) -> torch.Tensor:
        """3 x S x S uint8; colour jitter when training. Images stay uint8 until
        ``train.task.normalize`` on the training device: 4x less to move between workers and the trainer."""
        out = to_input(image, jitter, self.size)
        if rng is not None:  # contrast and brightness jitter as a lookup table on the 8-bit values
            v = np.arange(256, dtype=np.float32) / 255.0
            lut = np.clip((v - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08), 0, 1)
            out = cv2.LUT(out, np.rint(lut * 255).astype(np.uint8))
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        idx = int(self.indices[i])
        s = self.cache.sample(idx)
        rng = np.random.default_rng((self.seed, self.epoch, idx)) if self.train else None
        jitter = self.jitter(rng) if rng is not None else None
        m = self.input_matrix(jitter)
        lm = s["landmarks"].astype(np.float32)
        lm = lm @ m[:, :2].T.astype(np.float32) + m[:, 2].astype(np.float32)
        item = {"image": self._view(s["image"], jitter, rng),
                "labels": torch.from_numpy(s["labels"][self.columns].astype(np.float32)),
                "mask": torch.from_numpy(s["mask"][self.columns].astype(bool)),
                # FACS 0-5 where the cache knows it (DISFA, synthetic warps), NaN elsewhere: the
                # intensity loss and metrics take the finite entries only
                "intensity": torch.from_numpy(s["intensity"][self.columns].astype(np.float32)),
                "landmarks": torch.from_numpy(np.nan_to_num(lm, nan=-1.0)),
                "index": torch.tensor(idx)}
        flow, valid = _flow_field(s, m, self.size)
        item["flow"], item["flow_valid"] = flow, torch.tensor(valid)
        if self.train:  # the inpainting masks' draws, one per AU, from this sample's own stream
            noise = np.random.default_rng((self.seed, self.epoch, idx, 2)).random(len(self.columns))
            item["mask_noise"] = torch.from_numpy(noise.astype(np.float32))
        if self.two_views:
            rng2 = rng if rng is not None else np.random.default_rng((self.seed, self.epoch, idx, 1))
            jitter2 = self.jitter(rng2)
            item["image2"] = self._view(s["image"], jitter2, rng2)
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

