"""Distillation loss terms, each a plain function of student and (detached) teacher outputs."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_bce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Temperature-scaled BCE on teacher soft targets: ``T² · BCE(z_s/T, σ(z_t/T))``, the
    multi-label (sigmoid) analogue of Hinton's softmax KD; ``T²`` keeps gradients comparable
    across temperatures. Mean over every AU of every sample (no mask: the teacher always answers)."""
    t = float(temperature)
    target = torch.sigmoid(teacher_logits.detach().float() / t)
    return F.binary_cross_entropy_with_logits(student_logits.float() / t, target) * t * t


def pseudo_label_bce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                     confidence: float = 0.7) -> torch.Tensor:
    """BCE on the teacher's hard pseudo-labels where the label is unknown (``mask`` False) and the
    teacher is confident (``max(p, 1-p) >= confidence``). Zero when no entry qualifies."""
    p = torch.sigmoid(teacher_logits.detach().float())
    use = (~mask.bool()) & (torch.maximum(p, 1 - p) >= confidence)
    target = (p > 0.5).float()
    loss = F.binary_cross_entropy_with_logits(student_logits.float(), target, reduction="none")
    return torch.where(use, loss, torch.zeros_like(loss)).sum() / use.sum().clamp_min(1)


def _unit(tokens: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(tokens.float(), tokens.shape[-1:])


def feature_distill(student_tokens: torch.Tensor, teacher_tokens: torch.Tensor) -> torch.Tensor:
    """MSE between layer-normalised projected student tokens and teacher AU tokens (``B×A×D``):
    normalising both sides makes the term independent of the teacher's feature scale."""
    if student_tokens.shape != teacher_tokens.shape:
        raise ValueError(f"student tokens {tuple(student_tokens.shape)} vs teacher tokens "
                         f"{tuple(teacher_tokens.shape)}: set model.distill_dim to the teacher's D")
    return F.mse_loss(_unit(student_tokens), _unit(teacher_tokens.detach()))


def relation_matrix(tokens: torch.Tensor) -> torch.Tensor:
    """Per-sample AU×AU cosine similarities ``B×A×A`` of ``B×A×D`` tokens."""
    z = F.normalize(tokens.float(), dim=-1)
    return z @ z.transpose(1, 2)


def relation_distill(student_tokens: torch.Tensor, teacher_tokens: torch.Tensor) -> torch.Tensor:
    """MSE between the student's and the teacher's AU×AU similarity matrices: the student keeps
    which AUs the teacher sees as alike (co-occurring) without copying its features exactly."""
    return F.mse_loss(relation_matrix(student_tokens), relation_matrix(teacher_tokens.detach()))
