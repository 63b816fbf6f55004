"""Data loaders and batched prediction, the same for 1 and N processes (training, evaluation, eval CLI)."""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class Predictions:
    """A model's outputs on a loader's samples, in sample order, with their labels."""

    probs: np.ndarray  # N×A
    labels: np.ndarray  # N×A
    mask: np.ndarray  # N×A bool, label known
    intensity_target: np.ndarray  # N×A FACS 0-5 labels, NaN unknown
    intensity: np.ndarray | None = None  # N×A model intensities 0-5; None: no intensity head


def _heads(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits and intensities (None without the head) of a model with ``au_heads``, else its logits."""
    m = getattr(model, "module", model)
    if hasattr(m, "au_heads"):
        return m.au_heads(x)
    return m.au_logits(x), None


@torch.no_grad()
def predict_outputs(model, loader, d: distributed.Dist, mean, std) -> Predictions:
    """Probabilities, intensities (when the model has the head), labels and intensity labels over
    a loader (gathered from every rank); ``mean``/``std`` are the model's input normalisation."""
    model.eval()
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("probs", "labels", "mask", "target", "intensity", "order")}
    for batch in loader:
        logits, intensity = _heads(model, normalize(batch["image"].to(d.device), mean, std))
        cols["probs"].append(torch.sigmoid(logits.float()).cpu())
        cols["labels"].append(batch["labels"])
        cols["mask"].append(batch["mask"])
        cols["target"].append(batch["intensity"])
        cols["order"].append(batch["index"])
        if intensity is not None:
            cols["intensity"].append(intensity.float().cpu())
    n = len(loader.dataset.columns)
    has_intensity = bool(cols["intensity"]) or (not cols["probs"] and _model_has_intensity(model))
    names = ["probs", "labels", "mask", "target"] + (["intensity"] if has_intensity else [])
    cat = {k: torch.cat(cols[k]) if cols[k] else torch.zeros((0, n)) for k in names}
    cat["order"] = torch.cat(cols["order"]) if cols["order"] else torch.zeros(0, dtype=torch.long)
    cat = {k: distributed.all_gather_cat(d, v) for k, v in cat.items()}  # every rank, even one with no batch
    keep = np.unique(cat["order"].numpy(), return_index=True)[1]  # DistributedSampler pads with repeats
    out = {k: v.numpy()[keep] for k, v in cat.items()}
    return Predictions(out["probs"], out["labels"], out["mask"].astype(bool), out["target"].astype(np.float32),
                       out.get("intensity"))


def _model_has_intensity(model) -> bool:
    m = getattr(model, "module", model)
    net = getattr(m, "net", m)
    return bool(getattr(net, "has_intensity", False))


def predict(model, loader, d: distributed.Dist, mean, std) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, labels and masks over a loader (gathered from every rank); ``mean``/``std``
    are the model's input normalisation (its checkpoint's)."""
    p = predict_outputs(model, loader, d, mean, std)
    return p.probs, p.labels, p.mask
