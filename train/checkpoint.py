"""Atomic checkpoints (``runtime.atomic``: an exclusive partial file, then a rename) that load with
``torch.load(weights_only=True)``; a checkpoint that does not load is one line naming it and the fix."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from runtime.atomic import atomic_write
from runtime.errors import AUEdgeError
from runtime.shown import quoted


class CheckpointError(AUEdgeError):
    """A checkpoint file that exists but cannot be loaded (cut off, corrupt, not a checkpoint)."""


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
