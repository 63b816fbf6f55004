"""A model's pooled features over cache rows: what heads fitted on a frozen network read.

Why one home: the student's intensity head (``distill.intensity_head``) is fitted on them, and the
geometry check (``train.geometrycheck``) asks whether the mesh adds evidence beyond them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Features:
    """Pooled features of one split's crops with their intensity labels (NaN unknown) and label kinds."""

    x: torch.Tensor  # N×C
    target: torch.Tensor  # N×A
    kinds: np.ndarray  # N×A label-kind codes


@torch.no_grad()
def pooled_features(model, cache, indices: np.ndarray, input_size: int, columns: np.ndarray, mean, std,
                    views: int = 0, seed: int = 0, batch_size: int = 64) -> Features:
    """The model's pooled features of ``indices`` (in sorted order): the plain crop and
    ``views`` augmented views of it (the training jitter, seeded), each row with its labels."""
    from torch.utils.data import DataLoader

    from train.data.torch_data import CacheDataset
    from train.model.input_norm import normalize

    order = np.sort(indices)
    xs, ts, ks = [], [], []
    for view in range(views + 1):
        ds = CacheDataset(cache, order, input_size, train=view > 0, seed=seed, columns=columns)
        ds.set_epoch(view)
        for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0):
            xs.append(model.forward_features(normalize(batch["image"], mean, std)).float())
            ts.append(batch["intensity"].float())
        ks.append(cache.field("kind")[order][:, columns])
    return Features(torch.cat(xs), torch.cat(ts), np.concatenate(ks))
