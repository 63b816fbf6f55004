r"""Optimal-transport AU relation loss: the feature-driven transport between samples should only
move mass between samples whose AU configurations agree.

Formulation. For each sample ``i`` let ``h_i = (1/sqrt(A)) [z_{i,1}/|z_{i,1}|; ...; z_{i,A}/|z_{i,A}|]``
be its concatenated, normalised, relation-embedded AU tokens, so ``<h_i, h_j>`` is the mean over AUs
of the per-AU cosine similarity. Between the batch in view 1 (``h``) and in view 2 (``h'``; the
same view when there is only one) the ground cost is

    C_ij = 1 - <h_i, h'_j>            (C_ii += 10: an image may not be matched to itself)

and the label-relation distance is the disagreement of the two AU configurations over the AUs
known for both (co-occurrence patterns are compared as a whole, not AU by AU):

    D_ij = sum_a m_ia m_ja |y_ia - y_ja| / sum_a m_ia m_ja      (0.5 when no AU is known for both)

With uniform marginals ``mu = nu = 1/n`` the entropic plan is
``P = argmin_{P in U(mu, nu)} <P, C> - eps H(P)`` (``ot.sinkhorn``, log-domain, ``eps = reg``),
and the loss is the expected label disagreement under that plan:

    L_OT = <P(C), D> = sum_ij P_ij D_ij  in [0, 1]

Gradients flow through the Sinkhorn iterations into ``C`` and so into the tokens and the
backbone. ``L_OT`` is low when every sample's features transport it (softly, one-to-one by the
marginal constraints) onto other samples with the same AU configuration, i.e. when the feature
geometry reflects the joint AU label structure; collapsed or label-agnostic features give a
near-uniform plan and ``L_OT`` near the batch's mean disagreement. Unlike a pairwise pull it
cannot be lowered by view invariance alone (self-matches are excluded) nor by collapse. Samples
without any known label are left out.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def label_distance(labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` fraction of commonly known AUs on which two samples disagree (0.5 if none)."""
    k = mask.to(torch.float32)
    y = torch.where(mask.bool(), labels.to(torch.float32), torch.zeros_like(k))
    common = k @ k.T
    # |y_i - y_j| over commonly known AUs = y_i(1 - y_j) + (1 - y_i) y_j, restricted by the masks
    diff = (y * k) @ ((1 - y) * k).T + ((1 - y) * k) @ (y * k).T
    return torch.where(common > 0, diff / common.clamp_min(1), torch.full_like(common, 0.5))


def ot_relation_loss(tokens1: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                     tokens2: torch.Tensor | None = None, reg: float = 0.1,
                     n_iter: int = 100) -> torch.Tensor:
    """``L_OT`` (see the module docstring).

    Args:
        tokens1: ``(B, A, D)`` AU tokens of view 1.
        labels: ``(B, A)`` 0/1.
        mask: ``(B, A)`` bool, known labels.
        tokens2: ``(B, A, D)`` the same images in view 2, or None.
        reg: entropic regularisation (costs lie in [0, 2]).
        n_iter: Sinkhorn iterations.

    Returns:
        Scalar in [0, 1] (0 with a graph when fewer than two samples have a known label).
    """
    import ot  # POT; a train extra

    keep = mask.bool().any(1)
    zero = tokens1.sum() * 0.0
    if int(keep.sum()) < 2:
        return zero
    a = tokens1.shape[1]
    h1 = F.normalize(tokens1[keep].float(), dim=-1).flatten(1) / math.sqrt(a)
    h2 = h1 if tokens2 is None else F.normalize(tokens2[keep].float(), dim=-1).flatten(1) / math.sqrt(a)
    n = h1.shape[0]
    cost = 1.0 - h1 @ h2.T + 10.0 * torch.eye(n, device=h1.device)
    dist = label_distance(labels[keep], mask[keep])
    marg = torch.full((n,), 1.0 / n, device=h1.device)
    plan = ot.sinkhorn(marg, marg, cost, reg, method="sinkhorn_log", numItermax=n_iter, stopThr=1e-6,
                       warn=False)
    return (plan * dist).sum() + zero
