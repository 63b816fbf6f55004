r"""MAL: meta auxiliary learning with an expression task whose per-sample weights are meta-learned.

Auxiliary task. An expression head predicts one of ``EXPRESSIONS`` (neutral + six basic
emotions). Targets are the batch's ``expression`` where given (>= 0), else pseudo-labels from the
AU labels by EMFACS-style prototypes (Friesen & Ekman 1983, as usually tabulated): happiness 6+12,
sadness 1+4+15, surprise 1+2+5+26, fear 1+2+4+5+7+20+26, anger 4+5+7+23, disgust 9+15+16. Each
prototype is restricted to the model's AUs and used only if at least two of its AUs remain. A
sample gets class ``c`` when all of ``c``'s AUs are known and present and no other matching
prototype is a superset of it (the most specific match wins; two unrelated matches = ambiguous,
-1); "neutral" when at least half of the AUs are known and none is present; else -1 (ignored).

Weighting. A small network ``w_phi`` maps each sample's detached auxiliary statistics
``(CE_i, entropy_i, one-hot target_i)`` to a weight in (0, 2) (1 at initialisation). The task
loss uses the weights detached:

    L_mal(theta) = sum_i w_phi(i) CE_i(theta) / #{i : target_i >= 0}

Meta step (one-step look-ahead, Meta-Weight-Net style, every ``mal_every`` steps): with the
look-ahead parameters ``theta`` (all of backbone + AU branch + expression head, or the AU branch
and expression head only),

    theta'(phi) = theta - alpha * grad_theta L_mal(theta; phi)        (create_graph=True)
    phi <- phi - beta * grad_phi L_AU(theta'(phi); meta batch)         (Adam, lr = mal_lr)

where ``L_AU`` is the masked, pos-weighted AU BCE (``bce.masked_bce``) of the look-ahead model,
evaluated with ``torch.func.functional_call`` (BatchNorm buffers are cloned, so the look-ahead
leaves the real running statistics alone). The meta batch is the next AU batch when the caller
passes one, else the same batch. ``phi`` receives gradients only here; under DDP they are
averaged over ranks.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from runtime.aus import au_number
from train.losses.bce import masked_bce

EXPRESSIONS = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust")
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 7, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15, 16),
}


def expression_pseudo_labels(labels: torch.Tensor, mask: torch.Tensor, aus: Sequence[str | int],
                             min_aus: int = 2) -> torch.Tensor:
    """Expression classes from AU labels (see the module docstring); ``(B,)`` long, -1 = none."""
    col = {au_number(a): j for j, a in enumerate(aus)}
    y, k = labels.bool() & mask.bool(), mask.bool()
    b = labels.shape[0]
    sets, matches = [], []
    for name, proto in PROTOTYPES.items():
        idx = [col[n] for n in proto if n in col]
        if len(idx) < min_aus:
            continue
        sets.append((EXPRESSIONS.index(name), frozenset(idx)))
        matches.append(y[:, idx].all(1))
    out = torch.full((b,), -1, dtype=torch.long, device=labels.device)
    if sets:
        hit = torch.stack(matches, 1)  # (B, C)
        # a match dominated by a matching superset (e.g. surprise inside fear) does not count
        dominated = torch.zeros_like(hit)
        for c, (_, s) in enumerate(sets):
            for d, (_, t) in enumerate(sets):
                if c != d and s < t:
                    dominated[:, c] |= hit[:, d]
        top = hit & ~dominated
        ids = torch.tensor([c for c, _ in sets], device=labels.device)
        single = top.sum(1) == 1
        out = torch.where(single, ids[top.float().argmax(1)], out)
    neutral = (k.sum(1) * 2 >= k.shape[1]) & ~y.any(1)
    return torch.where(neutral, torch.zeros_like(out), out)


def expression_targets(batch: dict[str, torch.Tensor], aus: Sequence[str | int]) -> torch.Tensor:
    """The batch's ``expression`` where >= 0, else AU pseudo-labels; ``(B,)`` long, -1 = none."""
    pseudo = expression_pseudo_labels(batch["labels"], batch["mask"], aus)
    given = batch.get("expression")
    if given is None:
        return pseudo
    given = given.to(pseudo)
    return torch.where(given >= 0, given, pseudo)


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


def per_sample_ce(expr_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample, 0 where the target is -1."""
    logits = expr_logits.float()
    ce = F.cross_entropy(logits, targets.clamp_min(0), reduction="none")
    return torch.where(targets >= 0, ce, torch.zeros_like(ce))


def mal_weights(weight_net: WeightNet, expr_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``w_phi`` for each sample from its detached CE and prediction entropy (graph to ``phi`` kept)."""
    logp = torch.log_softmax(expr_logits.detach().float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return weight_net(per_sample_ce(expr_logits.detach(), targets), entropy, targets)


def mal_loss(expr_logits: torch.Tensor, targets: torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_i w_i CE_i / #valid`` (weights 1 when None; 0 with a graph when no target is valid)."""
    ce = per_sample_ce(expr_logits, targets)
    if weights is not None:
        ce = ce * weights
    return ce.sum() / (targets >= 0).sum().clamp_min(1)


class MetaAuxLearner:
    """Owns the meta optimiser of the teacher's weighting net and runs the look-ahead meta step.

    Args:
        teacher: an ``RTATLTeacher`` with ``mal`` on (its ``mal_weight`` net is trained here).
        lr: meta learning rate (Adam) of the weighting net.
        inner_lr: look-ahead step ``alpha``.
        lookahead: ``"all"`` (backbone + AU branch + expression head) or ``"au_branch"`` (cheaper:
            the AU branch and expression head only).
    """

    def __init__(self, teacher: nn.Module, lr: float = 1e-3, inner_lr: float = 0.05, lookahead: str = "all"):
        if getattr(teacher, "mal_weight", None) is None:
            raise ValueError("MetaAuxLearner needs a teacher built with TeacherConfig.mal=True")
        if lookahead not in ("all", "au_branch"):
            raise ValueError(f"lookahead must be 'all' or 'au_branch', got {lookahead!r}")
        spec = teacher.net.backbone.spec
        if lookahead == "all" and not spec.double_backward:
            raise ValueError(f"backbone {spec.name!r} has ops without a second derivative, which the full "
                             "MAL look-ahead needs; set mal_lookahead=au_branch")
        self.teacher, self.inner_lr, self.lookahead = teacher, inner_lr, lookahead
        self.opt = torch.optim.Adam(teacher.mal_weight.parameters(), lr=lr)

    def _selected(self, name: str) -> bool:
        return self.lookahead == "all" or name.startswith(("net.au_branch.", "expr_head."))

    def meta_step(self, batch: dict[str, torch.Tensor], meta_batch: dict[str, torch.Tensor] | None = None,
                  pos_weight: torch.Tensor | None = None) -> float | None:
        """One meta update of the weighting net; returns the look-ahead AU loss (None if skipped:
        no sample of ``batch`` has an expression target)."""
        from torch.func import functional_call

        aus = self.teacher.cfg.aus
        targets = expression_targets(batch, aus)
        if not bool((targets >= 0).any()):
            return None
        model = self.teacher.expression_model()
        params = {n: p for n, p in model.named_parameters() if p.requires_grad and self._selected(n)}
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        _, expr_logits = functional_call(model, (params, buffers), (batch["image"],))
        weights = mal_weights(self.teacher.mal_weight, expr_logits, targets)
        inner = mal_loss(expr_logits, targets, weights)
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True, allow_unused=True)
        fast = {n: p if g is None else p - self.inner_lr * g for (n, p), g in zip(params.items(), grads)}
        meta = meta_batch if meta_batch is not None else batch
        au_logits, _ = functional_call(model, (fast, buffers), (meta["image"],))
        meta_loss = masked_bce(au_logits.float(), meta["labels"], meta["mask"], pos_weight)
        phi = list(self.teacher.mal_weight.parameters())
        g_phi = torch.autograd.grad(meta_loss, phi, allow_unused=True)
        self.opt.zero_grad(set_to_none=True)
        for p, g in zip(phi, g_phi):
            p.grad = torch.zeros_like(p) if g is None else g.detach()
        _all_reduce_mean([p.grad for p in phi])
        self.opt.step()
        for p in phi:  # never leave a gradient for the task optimiser to apply
            p.grad = None
        return float(meta_loss.detach())

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])


def _all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in tensors:
            dist.all_reduce(t)
            t /= dist.get_world_size()
