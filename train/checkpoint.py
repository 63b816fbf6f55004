"""Checkpoints: atomic files (``runtime.atomic``: an exclusive partial file, then a rename) that
load with ``torch.load(weights_only=True)``, and ``Checkpoint``, the one reading of what model a checkpoint holds.

Every reader (``train.eval``, the run's own evaluation, distillation's frozen teacher, export)
takes the model's identity from ``Checkpoint``: the task (teacher | student), arch, AUs, input
size, input normalisation and the run's config. Checkpoints written before a key existed still
load: no ``task`` is a teacher, no ``mean``/``std`` is the registry's for its arch, no ``config``
is an empty run config. A checkpoint that does not load is one line naming it and the fix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from runtime.atomic import atomic_write
from runtime.errors import AUEdgeError
from runtime.shown import quoted


class CheckpointError(AUEdgeError):
    """A checkpoint file that exists but cannot be loaded (cut off, corrupt, not a checkpoint)."""


IDENTITY_KEYS = ("model", "aus", "input_size", "model_config")  # what every readable checkpoint has


def save(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_write(path, "checkpoint") as f:
        torch.save(state, f)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - zip, unpickling and EOF errors all mean the same to the user
        detail = (str(e).splitlines() or [""])[0][:120]
        raise CheckpointError(f"checkpoint {quoted(path)} cannot be loaded ({type(e).__name__}: {detail}): it is cut "
                              "off or corrupt; resume from another checkpoint (--resume PATH, e.g. best.pt), or move "
                              "it away to start the run over") from None


def identity_meta(task: str, model_config: dict[str, Any], aus: list[str], input_size: int,
                  mean: tuple[float, ...], std: tuple[float, ...], **extra: Any) -> dict[str, Any]:
    """The keys a checkpoint stores about its model (``Checkpoint.of`` reads them back)."""
    return {"task": task, "aus": list(aus), "input_size": int(input_size), "model_config": json.dumps(model_config),
            "mean": list(mean), "std": list(std), **extra}


@dataclass(frozen=True)
class Checkpoint:
    """What model a checkpoint holds, and its raw contents (weights under ``raw["model"]``)."""

    task: str  # teacher | student
    arch: str  # the teacher's backbone or the student's arch (registry names)
    aus: tuple[str, ...]
    input_size: int
    mean: tuple[float, float, float]  # input normalisation, RGB in [0, 1]
    std: tuple[float, float, float]
    model_config: dict[str, Any]  # the task's model section, as the run recorded it
    train_config: dict[str, Any]  # the run's TrainConfig ({} for checkpoints without one)
    teacher_checkpoint: str  # a student's teacher, as its run recorded it ("" otherwise)
    pretrained: bool  # initialised from pretrained weights (its card credits them)
    attribution: str  # what the pretrained init asks a card to credit ("" when none)
    raw: dict[str, Any] = field(repr=False, compare=False)
    path: Path | None = None

    @classmethod
    def read(cls, path: str | Path) -> Checkpoint:
        """Load and read ``path``.

        Raises:
            FileNotFoundError: no file; ValueError: not a model checkpoint of a known task.
        """
        return cls.of(load(path), Path(path))

    @classmethod
    def of(cls, ck: Checkpoint | dict[str, Any], path: Path | None = None) -> Checkpoint:
        """Read a loaded checkpoint dict (a ``Checkpoint`` is returned as it is).

        Raises:
            ValueError: a key every model checkpoint has is missing, or the task is unknown.
        """
        if isinstance(ck, Checkpoint):
            return ck
        from train.task import task_class

        missing = [k for k in IDENTITY_KEYS if k not in ck]
        if missing:
            raise ValueError(f"checkpoint {path or ''} lacks {missing}; use a best.pt/last.pt written by "
                             "`python -m train` or `python -m distill`")
        kind = str(ck.get("task", "teacher"))
        model_config = json.loads(ck["model_config"])
        spec, pretrained = task_class(kind).model_spec(model_config)
        return cls(task=kind, arch=spec.name, aus=tuple(ck["aus"]), input_size=int(ck["input_size"]),
                   mean=tuple(float(v) for v in ck.get("mean", spec.mean)),
                   std=tuple(float(v) for v in ck.get("std", spec.std)),
                   model_config=model_config, train_config=json.loads(ck["config"]) if "config" in ck else {},
                   teacher_checkpoint=str(ck.get("teacher_checkpoint", "")), pretrained=pretrained,
                   attribution=spec.attribution if pretrained else "", raw=ck, path=path)

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        return self.raw["model"]


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG streams: the CPU generator and, on CUDA, its OWN device's generator
    only (asking for every device's state would create a CUDA context on each GPU)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):  # checkpoints from before per-rank states: all devices
            cuda = cuda[device.index or 0]
        torch.cuda.set_rng_state(cuda, device)
