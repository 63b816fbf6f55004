"""The AU relation embedding: a small pre-norm transformer encoder over the AU tokens.

Each AU token gets a learned AU embedding (which AU it is), then self-attention lets co-occurring
AUs inform each other (AU6 with AU12, AU1 with AU2...). Attention is written with plain matmuls
so the module traces to ONNX without PyTorch's fused transformer fast path.
"""
from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = self.drop(torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1))
        return self.proj((attn @ v).transpose(1, 2).flatten(2))


class RelationBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AURelation(nn.Module):
    """AU tokens ``(B, A, D)`` -> relation-embedded tokens ``(B, A, D)``.

    Args:
        n_aus: number of AU tokens (A).
        dim: token width (D).
        depth: transformer blocks (0 = the AU embeddings and a LayerNorm only).
        heads: attention heads.
        dropout: attention and MLP dropout.
    """

    def __init__(self, n_aus: int, dim: int, depth: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.au_embed = nn.Parameter(torch.randn(1, n_aus, dim) * 0.02)
        self.blocks = nn.ModuleList(RelationBlock(dim, heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens + self.au_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
