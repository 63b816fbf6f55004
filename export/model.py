"""The model to export, rebuilt from a checkpoint through its task (teacher or student).

Every artifact is built from one module: normalised NCHW float crops -> AU probabilities (the
task's logits through a sigmoid), so every card says ``output.kind: "prob"`` and an INT8 output
quantises a bounded [0, 1] range instead of unbounded logits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from train.checkpoint import Checkpoint


class ProbModule(nn.Module):
    """``sigmoid(logits(x))`` (or the logits, ``sigmoid=False``); optionally takes NHWC input
    (``nhwc=True``) for LiteRT."""

    def __init__(self, logits: nn.Module, nhwc: bool = False, sigmoid: bool = True):
        super().__init__()
        self.logits = logits
        self.nhwc, self.sigmoid = nhwc, sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        z = self.logits(x)
        return torch.sigmoid(z) if self.sigmoid else z


@dataclass
class ExportModel:
    """The checkpoint's deployable module; what it is (task, arch, AUs, input size, mean/std, the
    run's config) is its ``train.checkpoint.Checkpoint``, the one reading every stage shares."""

    ck: Checkpoint
    logits: nn.Module  # normalised NCHW float -> B x A logits
    run_metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json beside the checkpoint

    def prob_module(self, nhwc: bool = False, sigmoid: bool = True) -> ProbModule:
        return ProbModule(self.logits, nhwc=nhwc, sigmoid=sigmoid).eval()

    @property
    def params(self) -> int:
        return int(sum(p.numel() for p in self.logits.parameters()))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Probabilities for normalised NCHW float input, in batches."""
        module = self.prob_module()
        return torch.cat([module(x[i:i + batch]) for i in range(0, len(x), batch)]) if len(x) else \
            torch.zeros(0, len(self.ck.aus))


def load_export_model(path: str | Path) -> ExportModel:
    """Rebuild the checkpoint's export module (``task_for_checkpoint`` -> ``export_module``).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: the checkpoint lacks what its task needs (it names the missing key).
    """
    from train.task import task_for_checkpoint

    ck = Checkpoint.read(path)
    task = task_for_checkpoint(ck)
    logits = task.export_module(task.model_from_checkpoint(ck).eval()).eval()
    metrics_path = Path(path).parent / "metrics.json"
    run_metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return ExportModel(ck=ck, logits=logits, run_metrics=run_metrics)
