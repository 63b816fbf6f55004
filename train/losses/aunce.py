r"""AUNCE: a per-AU contrastive loss over two augmented views.

Notation. ``z^v_{i,a}`` is the L2-normalised embedding of AU ``a`` of image ``i`` in view ``v``
(the N = V·B rows of both views are pooled), ``y_{i,a}`` its label, ``m_{i,a}`` its mask,
``s(p, q) = <z_p, z_q>`` the cosine similarity and ``tau`` the temperature (0.5).

For every AU ``a`` one draw ``u_a ~ U(0, 1)`` per batch picks the kind of positive for all of that
AU's anchors:
    u_a <  p_sim                  the most similar same-label sample: ``max_{q in P(p)} s(p, q)``
    p_sim <= u_a < p_sim + p_mean the mean of the same-label samples: ``s(p, normalise(sum_{q in P(p)} z_q))``
    otherwise                     the other view of the same image: ``s(p, p')``
(defaults p_sim = 0.2, p_mean = 0.6, i.e. thresholds 0.2 and 0.8), where ``P(p)`` are the rows
of OTHER images with a known label equal to the anchor's; when ``P(p)`` is empty, or there is one
view only, the fallback is the other view, or the mean, whichever exists.

Negatives ``N(p)``: rows with a known label opposite to the anchor's (either view). Each negative's
``exp(s/tau)`` is raised to ``beta = 1.2`` when the anchor's AU is present and ``0.8`` when it is
absent (hard negatives of an active AU count more):

    l(p) = -log( exp(s_pos/tau) / (exp(s_pos/tau) + sum_{n in N(p)} exp(s(p, n)/tau)^beta_{y_p}) )

    AUNCE = mean of l(p) over anchors p = (i, a, v) with m_{i,a} = 1, a positive and >= 1 negative.

Masked labels are never anchors, positives or negatives. With a fixed ``generator`` the loss is
deterministic (the draws ``u_a`` are its only randomness).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def aunce_loss(z1: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, z2: torch.Tensor | None = None,
               temperature: float = 0.5, beta_present: float = 1.2, beta_absent: float = 0.8,
               p_similar: float = 0.2, p_mean: float = 0.6,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """AUNCE (see the module docstring).

    Args:
        z1: ``(B, A, E)`` per-AU embeddings of view 1 (normalised here again, harmlessly).
        labels: ``(B, A)`` 0/1.
        mask: ``(B, A)`` bool, known labels.
        z2: ``(B, A, E)`` view 2, or None (single view: no "other view" positives).
        temperature, beta_present, beta_absent, p_similar, p_mean: as in the formula.
        generator: CPU generator for the per-AU positive draws.

    Returns:
        Scalar loss (0 with a graph when no anchor qualifies).
    """
    views = [z1] if z2 is None else [z1, z2]
    v, (b, a, _) = len(views), z1.shape
    z = F.normalize(torch.cat(views).float(), dim=-1).transpose(0, 1)  # (A, N, E)
    n = v * b
    y = labels.bool().repeat(v, 1).T  # (A, N)
    k = mask.bool().repeat(v, 1).T
    img = torch.arange(b, device=z.device).repeat(v)
    sim = z @ z.transpose(1, 2)  # (A, N, N)
    both = k[:, :, None] & k[:, None, :]
    agree = y[:, :, None] == y[:, None, :]
    same = both & agree & (img[:, None] != img[None, :])[None]
    neg = both & ~agree

    has_same = same.any(-1)
    s_sim = sim.masked_fill(~same, -2.0).amax(-1)
    s_sim = torch.where(has_same, s_sim, torch.zeros_like(s_sim))
    proto = F.normalize(torch.einsum("aij,aje->aie", same.to(z.dtype), z), dim=-1)
    s_mean = (z * proto).sum(-1)
    if v == 2:
        partner = (torch.arange(n, device=z.device) + b) % n
        s_view = sim[:, torch.arange(n, device=z.device), partner]
    else:
        s_view = torch.zeros_like(s_mean)

    u = torch.rand(a, generator=generator).to(z.device)[:, None].expand(a, n)
    want_sim, want_mean = u < p_similar, (u >= p_similar) & (u < p_similar + p_mean)
    want_view = ~(want_sim | want_mean)
    if v == 1:  # no other view: the mean stands in
        want_mean, want_view = want_mean | want_view, torch.zeros_like(want_view)
    use_view = want_view | (~has_same & torch.tensor(v == 2, device=z.device))
    s_pos = torch.where(use_view, s_view, torch.where(want_sim, s_sim, s_mean))
    has_pos = use_view | has_same

    beta = torch.where(y, torch.full_like(s_pos, beta_present), torch.full_like(s_pos, beta_absent))
    neg_logits = (beta[..., None] * sim / temperature).masked_fill(~neg, float("-inf"))
    pos_logit = s_pos / temperature
    denom = torch.logsumexp(torch.cat([pos_logit[..., None], neg_logits], dim=-1), dim=-1)
    valid = k & has_pos & neg.any(-1)
    loss = torch.where(valid, denom - pos_logit, torch.zeros_like(denom))
    return loss.sum() / valid.sum().clamp_min(1)
