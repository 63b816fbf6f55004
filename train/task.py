"""What a run trains: the model, its objective and its input convention.

The training engine (``train/engine.py``) is generic over a ``Task``: the RTATL teacher
(``TeacherTask``) and distilled students (``distill.task.StudentTask``) share one loop, with the
same DDP, resume, checkpoints and logs. Every checkpoint records ``task`` (the kind) and what
``model_from_checkpoint`` needs, so export and evaluation rebuild the model without the config.
"""
from __future__ import annotations

import json
from typing import Any, Protocol

import torch
from torch import nn

from train.model.backbones import IMAGENET_MEAN, IMAGENET_STD


class Objective(Protocol):
    """Per-step loss: ``objective(batch, forward=ddp_module) -> (loss, {term: float})``."""

    def __call__(self, batch: dict[str, torch.Tensor], forward: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        ...

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


class Task:
    """Base class. A model built here has ``au_logits(x)`` (normalised NCHW -> B×A logits) and
    ``main_parameters()`` (what the optimiser updates)."""

    kind = "base"
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per channel, RGB in [0, 1]
    std: tuple[float, float, float] = IMAGENET_STD

    def build_model(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> nn.Module:
        raise NotImplementedError

    def build_objective(self, model: nn.Module, pos_weight: torch.Tensor, generator: torch.Generator) -> Objective:
        raise NotImplementedError

    def checkpoint_meta(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> dict[str, Any]:
        """Saved in every checkpoint of the run; enough for ``model_from_checkpoint``."""
        return {"task": self.kind, "aus": list(aus), "input_size": int(input_size),
                "model_config": json.dumps(model_cfg), "mean": list(self.mean), "std": list(self.std)}

    def model_from_checkpoint(self, ck: dict[str, Any]) -> nn.Module:
        model = self.build_model(json.loads(ck["model_config"]), list(ck["aus"]), int(ck["input_size"]))
        model.load_state_dict(ck["model"])
        return model

    def export_module(self, model: nn.Module) -> nn.Module:
        """The deployable part of ``model``: normalised NCHW crops -> B×A logits."""
        return model

    def uses_flow(self, model_cfg: dict[str, Any]) -> bool:
        """Whether the objective needs flow targets (the engine stops early when the data has none)."""
        return False

    def extra_metrics(self, predict_on, aus: list[str], calibrate) -> dict[str, Any]:
        """Metrics added to ``metrics.json`` beside the run's own; ``predict_on(model, mean, std,
        split="test"|"val")`` returns ``(probs, labels, mask)`` of any model (with ``au_logits``) on
        the run's test split (or the validation split its thresholds are calibrated on), and
        ``calibrate(probs, labels, mask)`` the run's thresholds for validation outputs."""
        return {}


class TeacherTask(Task):
    """The RTATL teacher (``train.model``) and its objective (``train.losses``)."""

    kind = "teacher"

    def build_model(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> nn.Module:
        from train.model import TeacherConfig, create_teacher
        from train.model.backbones import get_spec

        spec = get_spec(TeacherConfig.from_dict(dict(model_cfg)).backbone)
        self.mean, self.std = spec.mean, spec.std  # what the backbone's weights expect (Lite: [-1, 1])
        return create_teacher(model_cfg, aus=tuple(aus), input_size=input_size)

    def build_objective(self, model: nn.Module, pos_weight: torch.Tensor, generator: torch.Generator) -> Objective:
        from train.losses import TeacherObjective

        return TeacherObjective(model, pos_weight, generator)

    def export_module(self, model: nn.Module) -> nn.Module:
        return model.export_module()  # backbone + AU branch, without the training-only heads

    def uses_flow(self, model_cfg: dict[str, Any]) -> bool:
        from train.model import TeacherConfig

        return TeacherConfig.from_dict(model_cfg).flow


def task_for_checkpoint(ck: dict[str, Any]) -> Task:
    """The task that wrote ``ck`` (checkpoints from before ``task`` existed are teachers)."""
    kind = ck.get("task", "teacher")
    if kind == "teacher":
        return TeacherTask()
    if kind == "student":
        from distill.task import StudentTask  # distill builds on train, never the other way round

        return StudentTask.from_checkpoint(ck)
    raise ValueError(f"checkpoint of unknown task {kind!r}; expected 'teacher' or 'student'")


def normalize(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 N×3×H×W RGB -> float ``(x/255 - mean) / std``: the model card's input convention."""
    m = torch.tensor(mean, device=images.device, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() / 255.0 - m) / s
