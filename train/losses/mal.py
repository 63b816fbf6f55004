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
from train import distributed
from train.losses.bce import masked_bce
from train.model.expression import EXPRESSIONS, WeightNet

__all__ = ["EXPRESSIONS", "PROTOTYPES", "MetaAuxLearner", "WeightNet", "expression_pseudo_labels",
           "expression_targets", "mal_loss", "mal_weights", "per_sample_ce"]
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
    """``sum_i w_i CE_i / #valid`` (weights 1 when None; 0 with a graph when no target is valid);
    under DDP ``#valid`` is the mean over ranks, so the ranks' mean is the global-batch loss."""
    ce = per_sample_ce(expr_logits, targets)
    if weights is not None:
        ce = ce * weights
    return ce.sum() / distributed.mean_count((targets >= 0).sum())


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
        self.skipped = 0  # meta steps whose gradient was not finite

    def _selected(self, name: str) -> bool:
        return self.lookahead == "all" or name.startswith(("net.au_branch.", "expr_head."))

    def meta_step(self, batch: dict[str, torch.Tensor], meta_batch: dict[str, torch.Tensor] | None = None,
                  pos_weight: torch.Tensor | None = None) -> float | None:
        """One meta update of the weighting net; returns the look-ahead AU loss, or None when the
        update was skipped because its gradient was not finite.

        Runs in float32 outside any autocast (second-order gradients overflow in fp16). Under DDP
        every rank runs every collective, in the same order, even with no expression target in
        its batch: the look-ahead uses the ranks' mean gradient (differentiably), and the
        weighting net's gradient is their mean, so all ranks take the same, global-batch step.
        """
        with torch.autocast(batch["image"].device.type, enabled=False):
            return self._meta_step(batch, meta_batch if meta_batch is not None else batch, pos_weight)

    def _meta_step(self, batch: dict[str, torch.Tensor], meta: dict[str, torch.Tensor],
                   pos_weight: torch.Tensor | None) -> float | None:
        from torch.func import functional_call

        targets = expression_targets(batch, self.teacher.cfg.aus)
        model = self.teacher.expression_model()
        params = {n: p for n, p in model.named_parameters() if p.requires_grad and self._selected(n)}
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        _, expr_logits = functional_call(model, (params, buffers), (batch["image"].float(),))
        inner = mal_loss(expr_logits, targets, mal_weights(self.teacher.mal_weight, expr_logits, targets))
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
        grads = distributed.mean_over_ranks_differentiable(grads)
        fast = {n: p - self.inner_lr * g for (n, p), g in zip(params.items(), grads)}
        au_logits, _ = functional_call(model, (fast, buffers), (meta["image"].float(),))
        meta_loss = masked_bce(au_logits.float(), meta["labels"], meta["mask"], pos_weight)
        phi = list(self.teacher.mal_weight.parameters())
        g_phi = torch.autograd.grad(meta_loss, phi, allow_unused=True)
        g_phi = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(phi, g_phi)]
        _all_reduce_mean(g_phi)
        if not all(bool(torch.isfinite(g).all()) for g in g_phi):  # the same verdict on every rank
            self.skipped += 1
            return None
        self.opt.zero_grad(set_to_none=True)
        for p, g in zip(phi, g_phi):
            p.grad = g
        self.opt.step()
        for p in phi:  # never leave a gradient for the task optimiser to apply
            p.grad = None
        return float(meta_loss.detach())

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        self.skipped = int(state.get("skipped", 0))


def _all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    import torch.distributed as dist

    if distributed.active():
        for t in tensors:
            dist.all_reduce(t)
            t /= dist.get_world_size()
