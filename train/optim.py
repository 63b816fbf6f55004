"""The task optimiser: parameter groups with and without weight decay, and the LR schedule.

Weight decay pulls a weight towards zero. That regularises convolution and linear weights, but on
a norm's scale or shift, a bias, an AU attention prior (``au_branch...prior``: the anatomical
prior would decay towards a flat map) or a learned embedding (``au_embed``, timm's ``pos_embed``
and ``cls_token``) it only moves the parameter away from what it encodes, so those get none.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from train.config import TrainConfig

NO_DECAY_NAMES = ("prior", "au_embed", "pos_embed", "cls_token", "dist_token", "mask_token",
                  "relative_position_bias_table")
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.Embedding)


def decay_groups(model: nn.Module, params: Iterable[nn.Parameter], weight_decay: float) -> list[dict]:
    """``params`` (a subset of ``model``'s) split into a decayed and a non-decayed group."""
    wanted = {id(p) for p in params}
    exempt = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False)}
    decay, keep = [], []
    for name, p in model.named_parameters():
        if id(p) not in wanted or not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        no = p.ndim <= 1 or id(p) in exempt or leaf in NO_DECAY_NAMES
        (keep if no else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``model.main_parameters()`` (the MAL weighting net has its own)."""
    groups = decay_groups(model, model.main_parameters(), cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
