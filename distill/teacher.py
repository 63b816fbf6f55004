"""The frozen teacher of a distillation run, seen through the student's AU list and input size.

Read as a ``train.checkpoint.Checkpoint`` and rebuilt by ``task_for_checkpoint(ck)``; always in eval
mode with gradients off; normalised with ITS mean/std from uint8 crops (``batch["image_u8"]``) and
resized to ITS input size when the student's differs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from train.checkpoint import Checkpoint
from train.model.input_norm import normalize
from train.task import task_for_checkpoint


def load_teacher_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher checkpoint {path} not found; pass --teacher runs/NAME/best.pt")
    return Checkpoint.read(path)


class FrozenTeacher(nn.Module):
    """``teacher(u8)`` -> ``(logits B×A, tokens B×A×D | None)`` for the student's AUs ``aus``."""

    def __init__(self, ck: Checkpoint | dict[str, Any], aus: list[str]):
        super().__init__()
        ck = Checkpoint.of(ck)
        self.model = task_for_checkpoint(ck).model_from_checkpoint(ck).eval().requires_grad_(False)
        self.mean, self.std = ck.mean, ck.std
        self.input_size = ck.input_size
        teacher_aus = list(ck.aus)
        missing = [a for a in aus if a not in teacher_aus]
        if missing:
            raise ValueError(f"the teacher predicts {teacher_aus}, not the run's {missing}; set aus: to a subset")
        self.register_buffer("columns", torch.tensor([teacher_aus.index(a) for a in aus]), persistent=False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)  # frozen: BatchNorm statistics and dropout never change

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.input_size and x.shape[-2] == self.input_size:
            return x
        return F.interpolate(x.float(), size=(self.input_size, self.input_size), mode="bilinear",
                             align_corners=False, antialias=True)

    @torch.no_grad()
    def forward(self, image_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = normalize(self._resize(image_u8), self.mean, self.std)
        if hasattr(self.model, "forward_head"):  # RTATL: AU tokens B×A×D and the head on them
            tokens = self.model.forward_features(x)
            logits = self.model.forward_head(tokens)
            tokens = tokens[:, self.columns] if tokens.ndim == 3 else None
        else:
            logits, tokens = self.model.au_logits(x), None
        return logits[:, self.columns].float(), (None if tokens is None else tokens.float())

    @torch.no_grad()
    def au_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of crops already normalised with the TEACHER's mean/std (``extra_metrics``)."""
        return self.model.au_logits(self._resize(x))[:, self.columns].float()

    @torch.no_grad()
    def token_dim(self) -> int:
        """D of the teacher's AU tokens (0 when it has none, e.g. a student teacher)."""
        dummy = torch.zeros(1, 3, self.input_size, self.input_size, dtype=torch.uint8,
                            device=self.columns.device)
        tokens = self(dummy)[1]
        return 0 if tokens is None else int(tokens.shape[-1])
