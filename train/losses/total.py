"""The teacher's objective:

    total = au + λ_inpaint·inpaint + λ_flow·flow + λ_aunce·aunce + λ_ot·ot + λ_mal·mal
                (+ λ_intensity·intensity)

with each term present only when its ``TeacherConfig`` flag is on. ``total_loss`` is the pure
function of the teacher's outputs and the batch; ``TeacherObjective`` is the per-step callable a
training loop uses (MAL meta step when due, forward, total).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from train.losses.aunce import aunce_loss
from train.losses.bce import masked_bce, masked_intensity_l1
from train.losses.mal import MetaAuxLearner, expression_targets, mal_loss, mal_weights
from train.losses.ot_relation import ot_relation_loss
from train.losses.pixel import flow_epe, masked_l1
from train.model.config import TeacherConfig


def total_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: TeacherConfig,
               pos_weight: torch.Tensor | None = None, generator: torch.Generator | None = None,
               mal_weight_net: nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Combine every loss term that ``cfg`` turns on.

    Args:
        out: ``RTATLTeacher.forward`` outputs (training mode).
        batch: the batch (``train/model/teacher.py`` docstring).
        cfg: the teacher's config (flags and λs).
        pos_weight: ``(A,)`` per-AU positive weights for the BCE.
        generator: CPU generator for AUNCE's positive draws.
        mal_weight_net: the teacher's ``mal_weight``; without it MAL weights are 1.

    Returns:
        ``(total, terms)``: the scalar to backpropagate and ``{name: float}`` of each unweighted
        term that was on (``au``, ``inpaint``, ``flow``, ``aunce``, ``ot``, ``mal``, ``intensity``).

    Raises:
        ValueError: a term is on but the outputs or the batch lack what it needs.
    """
    labels, mask = batch["labels"], batch["mask"]
    terms: dict[str, torch.Tensor] = {"au": masked_bce(out["logits"].float(), labels, mask, pos_weight)}
    weighted = {"au": 1.0}
    if cfg.inpaint:
        _need(out, ("inpaint", "inpaint_mask"), "inpaint", "outputs (teacher in training mode?)")
        terms["inpaint"] = masked_l1(out["inpaint"].float(), batch["image"].float(), out["inpaint_mask"])
        weighted["inpaint"] = cfg.lambda_inpaint
    if cfg.flow:
        _need(out, ("flow",), "flow", "outputs (teacher in training mode?)")
        _need(batch, ("flow", "flow_valid"), "flow", "batch")
        terms["flow"] = flow_epe(out["flow"].float(), batch["flow"], batch["flow_valid"])
        weighted["flow"] = cfg.lambda_flow
    if cfg.aunce:
        _need(out, ("embed",), "aunce", "outputs (teacher in training mode?)")
        terms["aunce"] = aunce_loss(out["embed"], labels, mask, out.get("embed2"), cfg.aunce_temperature,
                                    cfg.aunce_beta_present, cfg.aunce_beta_absent, cfg.aunce_p_similar,
                                    cfg.aunce_p_mean, generator)
        weighted["aunce"] = cfg.lambda_aunce
    if cfg.ot:
        terms["ot"] = ot_relation_loss(out["tokens"], labels, mask, out.get("tokens2"), cfg.ot_reg,
                                       cfg.ot_iters)
        weighted["ot"] = cfg.lambda_ot
    if cfg.mal:
        _need(out, ("expression_logits",), "mal", "outputs (teacher in training mode?)")
        targets = expression_targets(batch, cfg.aus)
        w = None
        if mal_weight_net is not None:
            w = mal_weights(mal_weight_net, out["expression_logits"], targets).detach()
        terms["mal"] = mal_loss(out["expression_logits"], targets, w)
        weighted["mal"] = cfg.lambda_mal
    if cfg.intensity_head:  # on means on: a batch without intensities is an error, not a skipped term
        _need(out, ("intensity",), "intensity", "outputs")
        _need(batch, ("intensity",), "intensity", "batch")
        terms["intensity"] = masked_intensity_l1(out["intensity"].float(), batch["intensity"])
        weighted["intensity"] = cfg.lambda_intensity
    total = sum(weighted[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def _need(d: dict, keys: tuple[str, ...], term: str, what: str) -> None:
    missing = [k for k in keys if d.get(k) is None]
    if missing:
        raise ValueError(f"loss term {term!r} is on but the {what} lack {missing}")


class TeacherObjective:
    """The per-step objective of a training loop: ``loss, terms = objective(batch)``.

    Runs the MAL meta step when it is due (``mal_every``; training mode only), then the forward
    (through ``forward``, e.g. the DDP wrapper, else the teacher) and ``total_loss``. ``terms``
    adds ``mal_meta`` (the look-ahead AU loss) on meta steps.

    Args:
        teacher: the ``RTATLTeacher`` (unwrapped).
        pos_weight: ``(A,)`` per-AU positive weights.
        generator: CPU generator for masks and AUNCE draws (seed it for reproducible runs).
    """

    def __init__(self, teacher: nn.Module, pos_weight: torch.Tensor | None = None,
                 generator: torch.Generator | None = None):
        self.teacher, self.cfg = teacher, teacher.cfg
        self.pos_weight, self.generator = pos_weight, generator
        self.mal = (MetaAuxLearner(teacher, self.cfg.mal_lr, self.cfg.mal_inner_lr, self.cfg.mal_lookahead)
                    if self.cfg.mal else None)
        self.steps = 0

    def __call__(self, batch: dict[str, torch.Tensor], forward: Callable[..., Any] | None = None,
                 meta_batch: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        extra: dict[str, float] = {}
        if self.mal is not None and self.teacher.training and self.steps % self.cfg.mal_every == 0:
            meta = self.mal.meta_step(batch, meta_batch, self.pos_weight)
            if meta is not None:
                extra["mal_meta"] = meta
        self.steps += 1
        out = (forward or self.teacher)(batch, generator=self.generator)
        total, terms = total_loss(out, batch, self.cfg, self.pos_weight, self.generator,
                                  getattr(self.teacher, "mal_weight", None))
        return total, {**terms, **extra}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "mal": self.mal.state_dict() if self.mal else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        if self.mal is not None and state.get("mal"):
            self.mal.load_state_dict(state["mal"])
