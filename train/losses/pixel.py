"""Dense losses of the auxiliary tasks: inpainting L1 on masked pixels, flow end-point error.

Each divides by a count (masked pixels, valid flow pixels); under DDP that count is the mean over
ranks (``train.distributed.mean_count``), so averaging the ranks' gradients gives the gradient of
the loss over the global batch even when the ranks' counts differ."""
from __future__ import annotations

import torch

from train.distributed import mean_count


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over masked pixels and channels only.

    Args:
        pred, target: ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)`` (or ``(B, C, H, W)``), 1 = scored.

    Returns:
        ``sum |pred - target| * mask / (C * sum mask)`` (0 when nothing is masked).
    """
    mask = mask.to(pred.dtype).expand_as(pred)
    return ((pred - target).abs() * mask).sum() / mean_count(mask.sum())


def flow_epe(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
             eps: float = 1e-6) -> torch.Tensor:
    """Mean end-point error ``||f_pred - f||_2`` over the pixels of the samples with a target.

    Args:
        pred, target: ``(B, 2, h, w)`` flow (same units).
        valid: ``(B,)`` bool, samples with a flow target; the others contribute nothing.
        eps: inside the square root, so the gradient stays finite at zero error.

    Returns:
        Scalar; 0 (with a graph) when no sample is valid.

    Raises:
        ValueError: prediction and target shapes differ.
    """
    if pred.shape != target.shape:
        raise ValueError(f"flow prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    v = valid.bool().view(-1, 1, 1, 1)
    target = torch.where(v, target.to(pred.dtype), pred.detach())  # invalid targets may hold NaN
    epe = torch.sqrt(((pred - target) ** 2).sum(1) + eps)  # (B, h, w)
    w = v[:, 0].expand_as(epe)
    return torch.where(w, epe, torch.zeros_like(epe)).sum() / mean_count(w.sum())
