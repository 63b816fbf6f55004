"""``init=``: a new run starts from a checkpoint's weights (fine-tuning, here at another input size),
and refuses one whose training identities it would validate or test on."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_train import REPO, SMOKE, train_cmd

from train.config import TrainConfig

PRIOR = "net.au_branch.attention.prior"
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # moved by the one training step's batch


def train(*overrides: str) -> subprocess.CompletedProcess:
    """test_train's command; the exit code is the caller's to check (one run must fail)."""
    return subprocess.run(train_cmd(*overrides), cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def data(data_dir, tmp_path_factory) -> Path:
    from train.data.build import build_from_spec

    out = tmp_path_factory.mktemp("init") / "data"
    build_from_spec({**TrainConfig.from_yaml(SMOKE).build, "n": 72, "faces": str(data_dir / "london" / "neutral")}, out)
    return out


@pytest.mark.slow  # three short training processes
def test_a_run_starts_from_a_checkpoint_at_another_input_size(data, tmp_path):
    src, tuned = tmp_path / "src", tmp_path / "tuned"
    one_step = [f"data={data}", "max_steps=1", "checkpoint_every=0"]
    first = train(*one_step, f"run_dir={src}")
    assert first.returncode == 0, first.stderr[-3000:]
    # lr 1e-9: Adam moves every weight by ~1e-9, so the run's weights are the ones it started from
    proc = train(*one_step, f"run_dir={tuned}", f"init={src / 'last.pt'}", "input_size=96", "lr=1e-9")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"started from {src / 'last.pt'}" in proc.stdout + proc.stderr
    a = torch.load(src / "last.pt", weights_only=True)["model"]
    b = torch.load(tuned / "last.pt", weights_only=True)["model"]
    assert a[PRIOR].shape[-2:] == (8, 8) and b[PRIOR].shape[-2:] == (12, 12)  # the prior's grid: input / 8
    want = F.interpolate(a[PRIOR][None], size=(12, 12), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(b[PRIOR], want, atol=1e-6)  # resized as forward resizes it to the map
    same = [k for k in a if k != PRIOR and not k.endswith(BUFFERS)]
    worst = max(same, key=lambda k: (a[k].float() - b[k].float()).abs().max().item())
    assert (a[worst].float() - b[worst].float()).abs().max().item() < 1e-6, worst
    # another fold validates and tests on identities the checkpoint trained on: refused, one line
    leak = train(f"data={data}", "max_steps=1", f"run_dir={tmp_path / 'leak'}", f"init={src / 'last.pt'}", "fold=2")
    assert leak.returncode == 2, leak.stderr[-3000:]
    line = leak.stderr.strip()
    assert "\n" not in line and "init=" in line and "validation/test identities trained it" in line
    assert "fold=1" in line  # the fix: keep its split
