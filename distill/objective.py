"""The per-step distillation objective: ``loss, terms = objective(batch, forward=ddp_student)``.

Terms (weights in the ``model:`` section, see ``distill.config.StudentConfig``):
``hard`` masked BCE on labeled AUs; ``soft`` temperature BCE on teacher probabilities; ``pseudo``
teacher hard labels where the label is unknown; ``feat`` projected student vs teacher AU tokens;
``rel`` AU×AU similarity matrices. Optionally ``unlabeled_batch`` frames of an extra cache join
every step with every AU unknown, so they are taught by the teacher only.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from distill.losses import feature_distill, pseudo_label_bce, relation_distill, soft_bce
from distill.config import StudentConfig
from distill.teacher import FrozenTeacher
from train.losses.bce import masked_bce
from train.model.input_norm import normalize


class UnlabeledFrames:
    """Seeded draws of uint8 crops from an extra cache. Draw ``k`` depends only on (seed, rank,
    k), so a resumed run draws the same frames (the state is ``k``)."""

    def __init__(self, root: str, input_size: int, batch: int, seed: int = 0, rank: int = 0):
        from train.data.cache import CacheData
        from train.data.torch_data import CacheDataset

        cache = CacheData(root)
        self.ds = CacheDataset(cache, np.arange(len(cache)), input_size, train=True, seed=seed)
        if len(self.ds) == 0:
            raise ValueError(f"unlabeled cache {root} has no samples")
        self.batch, self.seed, self.rank, self.draws = batch, seed, rank, 0

    def next(self) -> torch.Tensor:
        rng = np.random.default_rng((self.seed, self.rank, self.draws))
        self.ds.set_epoch(self.draws)
        idx = rng.choice(len(self.ds), self.batch, replace=len(self.ds) < self.batch)
        self.draws += 1
        return torch.stack([self.ds[int(i)]["image"] for i in idx])


class DistillObjective:
    """Student loss against a frozen teacher.

    Args:
        student: the ``AUStudent`` (unwrapped; ``forward`` may be its DDP wrapper).
        teacher: the ``FrozenTeacher`` for the student's AUs.
        cfg: weights and options.
        mean, std: the student's input normalisation (for unlabeled frames).
        pos_weight: ``(A,)`` per-AU positive weights of the hard term.
        unlabeled: optional extra frames.
    """

    def __init__(self, student: nn.Module, teacher: FrozenTeacher, cfg: StudentConfig, mean, std,
                 pos_weight: torch.Tensor | None = None, unlabeled: UnlabeledFrames | None = None):
        self.student, self.teacher, self.cfg = student, teacher, cfg
        self.mean, self.std, self.pos_weight, self.unlabeled = mean, std, pos_weight, unlabeled
        needs_tokens = cfg.w_feat > 0 or cfg.w_rel > 0
        if needs_tokens and student.distill_proj is None:
            raise ValueError("model.w_feat/w_rel > 0 need the teacher's AU tokens; this teacher has none "
                             "(set model.w_feat=0 model.w_rel=0)")
        self.needs_tokens = needs_tokens

    def _with_unlabeled(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.unlabeled is None or not self.student.training:
            return batch
        u8 = self.unlabeled.next().to(batch["image_u8"].device)
        n, a = u8.shape[0], batch["labels"].shape[1]
        return {"image_u8": torch.cat([batch["image_u8"], u8]),
                "image": torch.cat([batch["image"], normalize(u8, self.mean, self.std)]),
                "labels": torch.cat([batch["labels"], batch["labels"].new_zeros(n, a)]),
                "mask": torch.cat([batch["mask"].bool(), batch["mask"].new_zeros(n, a, dtype=torch.bool)])}

    def __call__(self, batch: dict[str, torch.Tensor], forward: nn.Module | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        batch = self._with_unlabeled(batch)
        t_logits, t_tokens = self.teacher(batch["image_u8"])
        out = (forward or self.student)(batch["image"], with_tokens=True)
        s_logits, s_tokens = out
        c = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if c.w_hard > 0:
            terms["hard"] = masked_bce(s_logits.float(), batch["labels"], batch["mask"], self.pos_weight)
        if c.w_soft > 0:
            terms["soft"] = soft_bce(s_logits, t_logits, c.temperature)
        if c.w_pseudo > 0:
            terms["pseudo"] = pseudo_label_bce(s_logits, t_logits, batch["mask"], c.pseudo_confidence)
        if self.needs_tokens and t_tokens is not None:
            if c.w_feat > 0:
                terms["feat"] = feature_distill(s_tokens, t_tokens)
            if c.w_rel > 0:
                terms["rel"] = relation_distill(s_tokens, t_tokens)
        weights = {"hard": c.w_hard, "soft": c.w_soft, "pseudo": c.w_pseudo, "feat": c.w_feat, "rel": c.w_rel}
        total = sum(weights[k] * v for k, v in terms.items())
        if not terms:  # every weight 0: a zero loss still connected to the student
            total = s_logits.sum() * 0.0
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"unlabeled_draws": self.unlabeled.draws if self.unlabeled else 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.unlabeled is not None:
            self.unlabeled.draws = int(state.get("unlabeled_draws", 0))
