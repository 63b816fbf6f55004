"""Run by ``test_mal_ddp.py`` under torchrun (2 gloo processes): the MAL objective where rank 1's
batch has no expression target (every AU label unknown). Writes each rank's weighting-net
parameters and loss terms to ``OUT/rank<R>.pt`` when both ranks finished."""
from __future__ import annotations

import datetime
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(out: Path) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))  # a mismatch fails, not hangs
    rank = dist.get_rank()
    torch.set_num_threads(1)
    from torch.nn.parallel import DistributedDataParallel

    from train.losses import TeacherObjective
    from train.model import create_teacher

    torch.manual_seed(0)
    teacher = create_teacher(backbone="test_convnext", input_size=64, dim=32, relation_heads=2, relation_depth=1,
                             inpaint=False, flow=False, mal=True, norm="group", aus=("AU01", "AU04", "AU12", "AU26"))
    ddp = DistributedDataParallel(teacher, find_unused_parameters=True)
    objective = TeacherObjective(teacher, None, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(10 + rank)
    terms_seen = []
    for _ in range(2):
        batch = {"image": torch.randn(4, 3, 64, 64, generator=g),
                 "labels": (torch.rand(4, 4, generator=g) < 0.5).float(),
                 "mask": torch.full((4, 4), rank == 0)}  # rank 1: nothing known -> no expression target
        loss, terms = objective(batch, forward=ddp)
        loss.backward()
        terms_seen.append(terms)
    dist.barrier()
    torch.save({"phi": [p.detach().clone() for p in teacher.mal_weight.parameters()], "terms": terms_seen},
               out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
