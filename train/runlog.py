"""What a run writes beside its checkpoints, on rank 0 only: ``config.yaml`` (the values used),
``steps.jsonl`` (one row per optimizer step), ``log.csv`` (one row per epoch) and TensorBoard.

After a resume the logs are cut back to the checkpoint (steps after it are dropped, epochs are
rewritten from its history), so every step and epoch appears once however often a run is killed.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class RunLog:
    def __init__(self, run_dir: Path, enabled: bool):
        self.run_dir, self.enabled = run_dir, enabled
        self.steps, self.epochs = run_dir / "steps.jsonl", run_dir / "log.csv"
        self.writer = None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.writer = _tensorboard(run_dir)

    def write_config(self, config: dict[str, Any]) -> None:
        if self.enabled:
            import yaml

            tmp = self.run_dir / "config.yaml.tmp"
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))
            tmp.replace(self.run_dir / "config.yaml")

    def rewind(self, step: int, history: list[dict]) -> None:
        """Cut the logs back to a checkpoint at ``step`` with epoch ``history``."""
        if not self.enabled:
            return
        if self.steps.is_file():
            rows = [r for r in self.steps.read_text().splitlines() if r.strip()]
            kept = [r for r in rows if json.loads(r)["step"] <= step]
            _atomic_text(self.steps, "".join(r + "\n" for r in kept))
        self.epochs.unlink(missing_ok=True)
        for row in history:
            self.epoch(row)

    def step(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.steps.open("a") as f:  # terms vary by step (MAL meta steps)
            f.write(json.dumps(row) + "\n")
        if self.writer:
            for k, v in row.items():
                if k not in ("step", "epoch"):
                    self.writer.add_scalar(f"train/{k}", v, row["step"])

    def epoch(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        new = not self.epochs.exists()
        with self.epochs.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def scalar(self, name: str, value: float, step: int) -> None:
        if self.writer:
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tb"))
