"""The AU branch: pyramid neck -> per-AU spatial attention -> AU tokens -> relation -> logits.

The exported model sees only the aligned crop, so AU regions are learned attention maps rather
than landmark crops. Because alignment puts the five points on a fixed template, each AU acts at a
roughly fixed place in the crop: each AU's attention logits are a learnable map initialised to a
Gaussian mixture at its canonical anchors (``au_centres``), plus a content term (1x1 conv of the
features, zero at initialisation) that lets the map follow the face within the crop.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from train.model.relation import AURelation


def conv_bn_act(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class PyramidNeck(nn.Module):
    """Strides 8/16/32 -> one ``dim``-channel map at stride 8 (top-down sum, FPN-style)."""

    def __init__(self, in_channels: tuple[int, ...], dim: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)
        self.out = conv_bn_act(dim, dim)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            x = lat(f) + F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(x)


def gaussian_prior(points: np.ndarray, grid: int, sigma: float) -> torch.Tensor:
    """Log of a Gaussian mixture (one component per anchor point) on a ``grid`` x ``grid`` map.

    Args:
        points: ``(A, K, 2)`` unit-square (x, y) anchors.
        grid: cells per side; cell centres at ``(i + 0.5) / grid``.
        sigma: standard deviation in unit-square coordinates.

    Returns:
        ``(A, grid, grid)`` logits (up to a constant).
    """
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    p = torch.as_tensor(points, dtype=torch.float32)
    d2 = (xx[None, None] - p[..., 0, None, None]) ** 2 + (yy[None, None] - p[..., 1, None, None]) ** 2
    return torch.logsumexp(-d2 / (2 * sigma**2), dim=1)


class AUAttention(nn.Module):
    """Per-AU spatial attention (softmax over positions) on the neck map.

    Args:
        dim: feature channels.
        points: ``(A, K, 2)`` canonical anchors in the unit square.
        grid: resolution of the learnable prior (input_size / 8); resized to the map's size.
        sigma: Gaussian width of the initial prior.
    """

    def __init__(self, dim: int, points: np.ndarray, grid: int, sigma: float):
        super().__init__()
        self.prior = nn.Parameter(gaussian_prior(points, grid, sigma))
        self.content = nn.Conv2d(dim, len(points), 1)
        nn.init.zeros_(self.content.weight)
        nn.init.zeros_(self.content.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """A prior saved at another input size (another grid) is resized to this one's, as ``forward``
        resizes it to the map: a run may start from weights trained at another size (``init=``)."""
        saved = state_dict.get(prefix + "prior")
        if saved is not None and saved.ndim == 3 and saved.shape[0] == self.prior.shape[0] \
                and saved.shape != self.prior.shape:
            state_dict[prefix + "prior"] = F.interpolate(saved[None].float(), size=tuple(self.prior.shape[-2:]),
                                                         mode="bilinear", align_corners=False)[0].to(saved.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prior = F.interpolate(self.prior[None], size=x.shape[-2:], mode="bilinear", align_corners=False)
        logits = prior + self.content(x)
        b, a, h, w = logits.shape
        return torch.softmax(logits.flatten(2), dim=-1).view(b, a, h, w)


class PerAULinear(nn.Module):
    """One linear read-out per AU token: ``(B, A, D) -> (B, A)``."""

    def __init__(self, n_aus: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_aus, dim) * dim**-0.5)
        self.bias = nn.Parameter(torch.zeros(n_aus))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens * self.weight).sum(-1) + self.bias


class AUBranch(nn.Module):
    """Backbone pyramid -> AU logits, keeping every intermediate for the auxiliary heads.

    Args:
        in_channels: channels of the backbone's stride-8/16/32 maps.
        points: ``(A, K, 2)`` canonical AU anchors (unit square).
        input_size: model input side (sets the prior's grid).
        dim: neck and token width.
        depth, heads: relation transformer size.
        sigma: initial attention width.
        dropout: dropout in the relation and before the read-out.
        intensity_head: add a per-AU intensity regressor (0..5).
    """

    def __init__(self, in_channels: tuple[int, ...], points: np.ndarray, input_size: int, dim: int = 256,
                 depth: int = 2, heads: int = 4, sigma: float = 0.07, dropout: float = 0.1,
                 intensity_head: bool = False):
        super().__init__()
        n_aus = len(points)
        self.neck = PyramidNeck(in_channels, dim)
        self.attention = AUAttention(dim, points, max(4, input_size // 8), sigma)
        self.value = nn.Conv2d(dim, dim, 1)
        self.token_norm = nn.LayerNorm(dim)
        self.relation = AURelation(n_aus, dim, depth, heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.classifier = PerAULinear(n_aus, dim)
        self.intensity = PerAULinear(n_aus, dim) if intensity_head else None

    def forward_tokens(self, feats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"map": B×D×h×w (stride 8), "attn": B×A×h×w, "tokens_local": B×A×D, "tokens": B×A×D}``."""
        m = self.neck(feats)
        attn = self.attention(m)
        pooled = torch.einsum("bahw,bdhw->bad", attn, self.value(m))
        local = self.token_norm(pooled)
        return {"map": m, "attn": attn, "tokens_local": local, "tokens": self.relation(local)}

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(tokens))

    def intensity_out(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.intensity is None:
            raise RuntimeError("this AU branch has no intensity head (intensity_head=False)")
        return 5.0 * torch.sigmoid(self.intensity(tokens))
