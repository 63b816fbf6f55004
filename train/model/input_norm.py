"""Input normalisation of every trained model: ``(x / 255 - mean) / std`` per RGB channel.

One function for training (uint8 NCHW batches on any device) and export (uint8 NHWC crops for
calibration and parity), so the two cannot drift apart; the runtime applies the same rule from
the model card with its own lookup table. The ImageNet statistics live here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 N×3×H×W RGB -> float32 ``(x/255 - mean) / std``: the model card's input convention."""
    m = torch.tensor(tuple(mean), device=images.device, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(tuple(std), device=images.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() / 255.0 - m) / s


def normalize_crops(crops: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 N×H×W×3 RGB crops -> contiguous float32 N×3×H×W, by ``normalize`` (bit-identical to
    the float32 numpy formula for every uint8 value)."""
    x = normalize(torch.from_numpy(np.ascontiguousarray(crops, np.uint8)).permute(0, 3, 1, 2), mean, std)
    return np.ascontiguousarray(x.numpy())
