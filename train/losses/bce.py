"""AU-level supervised losses with unknown labels masked out."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from train.distributed import mean_count


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
               pos_weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Per-AU weighted binary cross-entropy over the known labels only.

    ``L = sum_{i,a} m_ia * BCE_pw(z_ia, y_ia) / max(1, sum_{i,a} m_ia)`` (under DDP the count is
    the mean over ranks, so the ranks' mean loss is the global batch's) with
    ``BCE_pw(z, y) = -(pw_a * y * log sigmoid(z) + (1 - y) * log(1 - sigmoid(z)))``. A masked entry
    contributes nothing, to the value or to the gradient, whatever its label value (even NaN).

    Args:
        logits: ``(B, A)``.
        labels: ``(B, A)`` 0/1 (any value where masked).
        mask: ``(B, A)`` bool, True = known.
        pos_weight: ``(A,)`` positive-class weight per AU (e.g. neg/pos counts), or None.
        reduction: ``"mean"`` (over known entries) or ``"none"`` (``(B, A)``, zeros where masked).

    Raises:
        ValueError: shape mismatch or unknown reduction.
    """
    if logits.shape != labels.shape or logits.shape != mask.shape:
        raise ValueError(f"logits {tuple(logits.shape)}, labels {tuple(labels.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same shape")
    mask = mask.bool()
    target = torch.where(mask, labels.to(logits.dtype), torch.zeros_like(logits))
    pw = None if pos_weight is None else pos_weight.to(logits)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
    loss = torch.where(mask, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return loss.sum() / mean_count(mask.sum())


def masked_intensity_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute intensity error over the known entries (NaN target = unknown)."""
    known = torch.isfinite(target)
    err = (pred - torch.nan_to_num(target.to(pred.dtype))).abs()
    return torch.where(known, err, torch.zeros_like(err)).sum() / mean_count(known.sum())
