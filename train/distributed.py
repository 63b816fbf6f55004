"""DDP in a few lines, chosen by torchrun's environment (nanoGPT's habit): gloo on CPU, nccl on GPU.

Rule for every collective here: each rank calls it, in the same order, whatever its data (a rank
that skips one leaves the others waiting until the process-group timeout).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup() -> Dist:
    """Initialise the process group when launched by torchrun (RANK/WORLD_SIZE set)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
        device = torch.device("cuda", local)
    else:
        dist.init_process_group("gloo")
        device = torch.device("cpu")
    return Dist(rank, world, local, device)


def active() -> bool:
    """A process group with more than one rank is running (losses normalise over all ranks)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def local_processes() -> int:
    """Processes of this job on this machine (torchrun's LOCAL_WORLD_SIZE; 1 without torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast_object(d: Dist, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory, named once)."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(d: Dist, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (e.g. each rank's RNG state)."""
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def all_gather_cat(d: Dist, x: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor's rows from every rank (sizes may differ by rank)."""
    if not d.enabled:
        return x
    n = torch.tensor([len(x)], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(d.world)]
    dist.all_gather(sizes, n)
    top = int(max(s.item() for s in sizes))
    padded = torch.zeros((top, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: len(x)] = x
    parts = [torch.zeros_like(padded) for _ in range(d.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def all_reduce_mean(d: Dist, value: float) -> float:
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return float(t.item() / d.world)


def all_true(d: Dist, flag: bool | torch.Tensor) -> bool:
    """Whether ``flag`` holds on every rank (so all ranks take the same branch)."""
    if not d.enabled:
        return bool(flag)
    t = torch.tensor([0 if bool(flag) else 1], dtype=torch.int32, device=d.device)
    dist.all_reduce(t)
    return int(t.item()) == 0


def mean_count(n: torch.Tensor) -> torch.Tensor:
    """A loss's normaliser from a per-rank count (no gradient): ``max(1, global count) / ranks``;
    with one process, ``max(1, n)``.

    A loss that divides its local sum by this equals, averaged over ranks the way DDP averages
    gradients, the same loss over the global batch, even when the ranks' counts differ (or one
    rank has none).
    """
    n = n.detach().to(torch.float32)
    if not active():
        return n.clamp_min(1)
    t = n.clone()
    dist.all_reduce(t)
    return t.clamp_min(1) / dist.get_world_size()


def mean_over_ranks_differentiable(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The mean over ranks of each tensor, with a gradient that flows back to every rank's input
    (MAL's look-ahead step must use the global gradient and differentiate through it)."""
    if not active() or not tensors:
        return tensors
    from torch.distributed.nn.functional import all_reduce

    flat = torch.cat([t.reshape(-1) for t in tensors])
    flat = all_reduce(flat) / dist.get_world_size()
    out, i = [], 0
    for t in tensors:
        out.append(flat[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
