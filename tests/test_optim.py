"""Weight decay: convolution and linear weights decay; norms, biases, the AU attention priors and
the AU embeddings do not (a decayed prior would drift towards a flat map)."""
from __future__ import annotations

import torch

from train.config import TrainConfig
from train.model import create_teacher
from train.optim import build_optimizer


def test_decay_skips_norms_biases_priors_and_embeddings():
    torch.manual_seed(0)
    teacher = create_teacher(backbone="resnet10t", input_size=64, dim=32, relation_heads=2, relation_depth=1,
                             inpaint=True, flow=True, mal=True)
    opt = build_optimizer(teacher, TrainConfig(weight_decay=0.5, lr=0.1))
    named = dict(teacher.named_parameters())
    prior, embed = named["net.au_branch.attention.prior"], named["net.au_branch.relation.au_embed"]
    norm = next(m for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)).weight
    conv = next(m for m in teacher.modules() if isinstance(m, torch.nn.Conv2d)).weight
    bias = next(p for n, p in named.items() if n.endswith(".bias"))
    before = {k: p.detach().clone() for k, p in {"prior": prior, "embed": embed, "norm": norm, "bias": bias,
                                                   "conv": conv}.items()}
    for p in teacher.parameters():
        p.grad = torch.zeros_like(p)  # only weight decay moves anything
    opt.step()
    after = {"prior": prior, "embed": embed, "norm": norm, "bias": bias, "conv": conv}
    for k in ("prior", "embed", "norm", "bias"):
        assert torch.equal(after[k].detach(), before[k]), k
    assert torch.allclose(conv.detach(), before["conv"] * (1 - 0.1 * 0.5))  # AdamW: w <- w (1 - lr wd)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in teacher.mal_weight.parameters()}  # MAL's net has its own optimiser
