"""The expression task's model parts: the class list and MAL's per-sample weighting net ``w_phi``.

They belong to the model (the teacher builds both), so ``train.model`` never imports
``train.losses``; ``train.losses.mal`` uses them from here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EXPRESSIONS = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust")


class WeightNet(nn.Module):
    """``w_phi``: per-sample auxiliary statistics -> weight in (0, 2), exactly 1 at initialisation."""

    def __init__(self, n_classes: int, hidden: int = 32):
        super().__init__()
        self.n_classes = n_classes
        self.mlp = nn.Sequential(nn.Linear(2 + n_classes, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, ce: torch.Tensor, entropy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(target.clamp_min(0), self.n_classes).to(ce.dtype)
        x = torch.cat([ce[:, None], entropy[:, None], onehot], dim=1)
        return 2.0 * torch.sigmoid(self.mlp(x)[:, 0])
