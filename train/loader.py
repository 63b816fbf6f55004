"""Data loaders and batched prediction, the same for 1 and N processes (training, evaluation, eval CLI)."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from train import distributed
from train.config import TrainConfig
from train.model.input_norm import normalize


def _worker_threads(_: int) -> None:
    """DataLoader workers decode and warp one sample at a time: one thread each."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def make_loader(ds, cfg: TrainConfig, d: distributed.Dist, shuffle: bool) -> DataLoader:
    """One sampler for 1 and N processes: the same seeded permutation, rank r taking every N-th
    sample, so N processes with batch B see the same global batches as 1 process with N*B."""
    sampler = DistributedSampler(ds, d.world, d.rank, shuffle=shuffle, seed=cfg.seed, drop_last=shuffle)
    # Its own generator: without one, each new iterator draws a seed from the global RNG, which
    # would shift dropout after a resume.
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      drop_last=shuffle, persistent_workers=False, pin_memory=d.device.type == "cuda",
                      worker_init_fn=_worker_threads, generator=torch.Generator().manual_seed(cfg.seed))


@torch.no_grad()
def predict(model, loader, d: distributed.Dist, mean, std) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, labels and masks over a loader (gathered from every rank); ``mean``/``std``
    are the model's input normalisation (its checkpoint's)."""
    model.eval()
    probs, labels, masks, order = [], [], [], []
    for batch in loader:
        logits = getattr(model, "module", model).au_logits(normalize(batch["image"].to(d.device), mean, std))
        probs.append(torch.sigmoid(logits.float()).cpu())
        labels.append(batch["labels"])
        masks.append(batch["mask"])
        order.append(batch["index"])
    n = len(loader.dataset.columns)
    cat = [torch.cat(x) if x else torch.zeros((0, n)) for x in (probs, labels, masks)]
    cat.append(torch.cat(order) if order else torch.zeros(0, dtype=torch.long))
    cat = [distributed.all_gather_cat(d, x) for x in cat]  # every rank, even one with no batch
    keep = np.unique(cat[3].numpy(), return_index=True)[1]  # DistributedSampler pads with repeats
    return cat[0].numpy()[keep], cat[1].numpy()[keep], cat[2].numpy()[keep].astype(bool)
