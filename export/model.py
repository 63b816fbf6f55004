"""The model to export, rebuilt from a checkpoint through its task (teacher or student).

Every artifact is built from one module: normalised NCHW float crops -> AU probabilities (the
task's logits through a sigmoid), so every card says ``output.kind: "prob"`` and an INT8 output
quantises a bounded [0, 1] range instead of unbounded logits. A model with an intensity head whose
run recorded intensity labels (metrics.json ``intensity_labels``) gets a second output, AU
intensity 0-5 for those AUs (``ExportModel.intensity_aus``, in the model's AU order), declared in
the card as ``output.intensity``; the others' intensities were never supervised and are left out.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from train.checkpoint import Checkpoint

INTENSITY_OUTPUT = "intensity"  # the ONNX (and TensorRT) name of the second output


class ProbModule(nn.Module):
    """``sigmoid(logits(x))`` (or the logits, ``sigmoid=False``); optionally takes NHWC input
    (``nhwc=True``) for LiteRT. With ``intensity_columns`` it returns ``(probs, intensity)``: the
    model's intensities (``forward_outputs``) at those AU columns."""

    def __init__(self, logits: nn.Module, nhwc: bool = False, sigmoid: bool = True,
                 intensity_columns: Sequence[int] | None = None):
        super().__init__()
        self.logits = logits
        self.nhwc, self.sigmoid = nhwc, sigmoid
        self.columns = None if intensity_columns is None else list(intensity_columns)

    def forward(self, x: torch.Tensor):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        if self.columns is None:
            z = self.logits(x)
            return torch.sigmoid(z) if self.sigmoid else z
        z, intensity = self.logits.forward_outputs(x)
        if self.columns != list(range(intensity.shape[1])):  # a subset: one Gather, none for all AUs
            intensity = intensity[:, self.columns]
        return (torch.sigmoid(z) if self.sigmoid else z), intensity


@dataclass
class ExportModel:
    """The checkpoint's deployable module; what it is (task, arch, AUs, input size, mean/std, the
    run's config) is its ``train.checkpoint.Checkpoint``, the one reading every stage shares."""

    ck: Checkpoint
    logits: nn.Module  # normalised NCHW float -> B x A logits (``forward_outputs``: + intensities)
    run_metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json beside the checkpoint
    intensity_aus: list[str] = field(default_factory=list)  # the second output's AUs ([]: none)
    warnings: list[str] = field(default_factory=list)

    def prob_module(self, nhwc: bool = False, sigmoid: bool = True) -> ProbModule:
        cols = [list(self.ck.aus).index(a) for a in self.intensity_aus] if self.intensity_aus else None
        return ProbModule(self.logits, nhwc=nhwc, sigmoid=sigmoid, intensity_columns=cols).eval()

    @property
    def output_names(self) -> list[str]:
        """The artifacts' output tensors: ``au`` (+ ``intensity``)."""
        return ["au", INTENSITY_OUTPUT] if self.intensity_aus else ["au"]

    def intensity_card(self, name: str = "") -> dict[str, Any] | None:
        """The card's ``output.intensity`` (``runtime.card_intensity``), None without intensity."""
        if not self.intensity_aus:
            return None
        labels = self.run_metrics.get("intensity_labels") or {}
        return {"aus": list(self.intensity_aus), "name": name or INTENSITY_OUTPUT, "range": [0, 5],
                "label_kinds": {a: list(labels[a]["label_kinds"]) for a in self.intensity_aus}}

    @property
    def params(self) -> int:
        return int(sum(p.numel() for p in self.logits.parameters()))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Probabilities for normalised NCHW float input, in batches."""
        return self.predict_outputs(x, batch)[0]

    @torch.no_grad()
    def predict_outputs(self, x: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(probabilities, intensities of intensity_aus | None)`` for normalised NCHW float input."""
        module = self.prob_module()
        outs = [module(x[i:i + batch]) for i in range(0, len(x), batch)]
        if not self.intensity_aus:
            return (torch.cat(outs) if outs else torch.zeros(0, len(self.ck.aus))), None
        if not outs:
            return torch.zeros(0, len(self.ck.aus)), torch.zeros(0, len(self.intensity_aus))
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def declared_intensity(logits: nn.Module, aus: Sequence[str], run_metrics: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The AUs an export declares intensity for and the warnings: a model with an intensity head,
    for every AU its run trained on intensity labels of (metrics.json ``intensity_labels``) and, where
    the run lists them, supports (``intensity_supported``)."""
    if not getattr(logits, "has_intensity", False):
        return [], []
    labels = run_metrics.get("intensity_labels") or {}
    supported = run_metrics.get("intensity_supported")  # distill.intensity_head: validation ICC high enough
    declared = [a for a in aus if a in labels and (supported is None or a in supported)]
    if not declared:
        return [], [("the model has an intensity head but its run records no intensity labels (metrics.json "
                     "intensity_labels) for an AU it supports (intensity_supported); exported without the "
                     "intensity output")]
    left = [a for a in aus if a in labels and a not in declared]
    return declared, ([f"intensity not declared for {', '.join(left)}: below the run's validation ICC bar "
                       "(metrics.json intensity_supported)"] if left else [])


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
    intensity_aus, warnings = declared_intensity(logits, list(ck.aus), run_metrics)
    return ExportModel(ck=ck, logits=logits, run_metrics=run_metrics, intensity_aus=intensity_aus, warnings=warnings)
