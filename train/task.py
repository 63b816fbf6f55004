"""What a run trains: the model, its objective and its input convention.

The training engine (``train/engine.py``) is generic over a ``Task``: the RTATL teacher
(``TeacherTask``) and distilled students share one loop, with the same DDP, resume, checkpoints
and logs. Every checkpoint records its task kind and its model's identity (``train.checkpoint``),
so eval, distillation and export rebuild the model without the config: ``task_for_checkpoint``
gives the task that can (``StudentModelTask`` rebuilds a student; training one, with its frozen
teacher, is ``distill.task.StudentTask``, a subclass).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from train.checkpoint import Checkpoint, identity_meta

if TYPE_CHECKING:
    from train.data.cache import CacheData


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

    @classmethod
    def model_spec(cls, model_cfg: dict[str, Any]) -> tuple[Any, bool]:
        """The registry entry of the model (``name``, ``mean``, ``std``, ``attribution``) and
        whether it starts from pretrained weights."""
        raise NotImplementedError

    def input_norm(self, model_cfg: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) of the model's input: what its init's weights expect (RGB in [0, 1])."""
        spec, _ = self.model_spec(model_cfg)
        return tuple(spec.mean), tuple(spec.std)

    def build_model(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> nn.Module:
        raise NotImplementedError

    def build_objective(self, model: nn.Module, pos_weight: torch.Tensor, generator: torch.Generator) -> Objective:
        raise NotImplementedError(f"the {self.kind} task here rebuilds models; train it with its own command")

    def checkpoint_meta(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> dict[str, Any]:
        """Saved in every checkpoint of the run; what ``Checkpoint.of`` reads back."""
        return identity_meta(self.kind, model_cfg, aus, input_size, *self.input_norm(model_cfg))

    def model_from_checkpoint(self, ck: Checkpoint | dict[str, Any]) -> nn.Module:
        """The checkpoint's model with its weights (no pretrained init is fetched: the weights are here)."""
        ck = Checkpoint.of(ck)
        model = self.build_model({**ck.model_config, "pretrained": False}, list(ck.aus), ck.input_size)
        model.load_state_dict(ck.weights)
        return model

    def export_module(self, model: nn.Module) -> nn.Module:
        """The deployable part of ``model``: normalised NCHW crops -> B×A logits."""
        return model

    def check_data(self, model_cfg: dict[str, Any], has_flow: bool, where: str, has_intensity: bool = False) -> None:
        """Raise ValueError (one line) when the training data lacks what the objective needs
        (``has_flow``: a training frame has a flow target; ``has_intensity``: one has a known
        intensity label for the run's AUs)."""

    def check_split(self, cache: CacheData, idx: dict[str, np.ndarray]) -> None:
        """Raise ValueError (one line) when the run's split (``idx`` into ``cache``) cannot be scored
        honestly (a student's validation identities that trained its teacher)."""

    def extra_metrics(self, predict_on, aus: list[str], calibrate) -> dict[str, Any]:
        """Metrics added to ``metrics.json`` beside the run's own; ``predict_on(model, mean, std,
        split="test"|"val")`` returns ``(probs, labels, mask)`` of any model (with ``au_logits``) on
        the run's test split (or the validation split its thresholds are calibrated on), and
        ``calibrate(probs, labels, mask)`` the run's thresholds for validation outputs."""
        return {}


class TeacherTask(Task):
    """The RTATL teacher (``train.model``) and its objective (``train.losses``)."""

    kind = "teacher"

    @classmethod
    def model_spec(cls, model_cfg: dict[str, Any]) -> tuple[Any, bool]:
        from train.model import TeacherConfig
        from train.model.backbones import get_spec

        cfg = TeacherConfig.from_dict(dict(model_cfg))
        return get_spec(cfg.backbone), cfg.pretrained

    def build_model(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> nn.Module:
        from train.model import create_teacher

        return create_teacher(model_cfg, aus=tuple(aus), input_size=input_size)

    def build_objective(self, model: nn.Module, pos_weight: torch.Tensor, generator: torch.Generator) -> Objective:
        from train.losses import TeacherObjective

        return TeacherObjective(model, pos_weight, generator)

    def export_module(self, model: nn.Module) -> nn.Module:
        return model.export_module()  # backbone + AU branch, without the training-only heads

    def check_data(self, model_cfg: dict[str, Any], has_flow: bool, where: str, has_intensity: bool = False) -> None:
        from train.model import TeacherConfig

        cfg = TeacherConfig.from_dict(dict(model_cfg))
        if cfg.flow and not has_flow:
            raise ValueError(f"{where}: model.flow is on but no training frame has a flow target; rebuild the "
                             "cache with --flow-k K (frame t-k of each sequence) or set model.flow=false")
        if cfg.intensity_head and not has_intensity:  # on means on: nothing to learn is an error
            raise ValueError(f"{where}: model.intensity_head is on but no training frame has a known AU intensity "
                             "for the run's AUs (DISFA, synthetic warps and manifest AUxx_int columns have them); "
                             "use such a cache or set model.intensity_head=false")


class StudentModelTask(Task):
    """A distilled student as a model (``train.model.students``): rebuilt, normalised and exported
    without its teacher. ``distill.task.StudentTask`` trains one."""

    kind = "student"

    @classmethod
    def model_spec(cls, model_cfg: dict[str, Any]) -> tuple[Any, bool]:
        from train.model.students import StudentModelConfig, get_student_spec

        cfg = StudentModelConfig.of(dict(model_cfg))
        return get_student_spec(cfg.arch), cfg.pretrained

    def build_model(self, model_cfg: dict[str, Any], aus: list[str], input_size: int) -> nn.Module:
        from train.model.students import create_student

        return create_student(dict(model_cfg), aus, input_size)

    def export_module(self, model: nn.Module) -> nn.Module:
        from train.model.students import AUStudent

        return model.net if isinstance(model, AUStudent) else model


TASKS: dict[str, type[Task]] = {"teacher": TeacherTask, "student": StudentModelTask}


def task_class(kind: str) -> type[Task]:
    """The task class of a checkpoint's ``task`` key.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in TASKS:
        raise ValueError(f"checkpoint of unknown task {kind!r}; expected one of {sorted(TASKS)}")
    return TASKS[kind]


def task_for_checkpoint(ck: Checkpoint | dict[str, Any]) -> Task:
    """The task that rebuilds ``ck``'s model (checkpoints from before ``task`` existed are teachers)."""
    return task_class(Checkpoint.of(ck).task)()
