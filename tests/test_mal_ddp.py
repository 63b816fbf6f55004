"""MAL under DDP: a rank whose batch has no expression target still takes part in every
collective, so a 2-process run finishes and both ranks hold the same weighting net."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # torchrun with two processes
def test_mal_finishes_when_one_rank_has_no_expression_target(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "tests" / "ddp_mal_worker.py"), str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for a, b in zip(r0["phi"], r1["phi"]):
        assert torch.equal(a, b)  # the same meta update on both ranks
    assert any(bool((p != 0).any()) for p in r0["phi"][2:])  # and it happened (last layer starts at 0)
    assert [sorted(t) for t in r0["terms"]] == [sorted(t) for t in r1["terms"]]  # the same loss keys
    assert all("mal_meta" in t for t in r0["terms"])
