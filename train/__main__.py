"""``python -m train --config configs/NAME.yaml [key=value ...] [--resume auto|PATH]``.

The same command under ``torchrun --standalone --nproc_per_node=N`` trains with DDP.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _ensure_data(cfg) -> None:
    """Build the preset's data once: rank 0 builds, other torchrun ranks wait for the manifest."""
    manifest = Path(cfg.data) / "manifest.json"
    if manifest.is_file():
        return
    if int(os.environ.get("RANK", "0")) == 0:
        from train.data.build import build_from_spec

        build_from_spec(cfg.build, cfg.data)
        return
    deadline = time.monotonic() + 3600
    while not manifest.is_file():
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{manifest} did not appear within an hour (rank 0 builds it)")
        time.sleep(2)


def missing_training_module() -> str | None:
    """The first training dependency that does not import (a runtime-only install), else None."""
    import importlib

    for name in ("torch", "timm", "yaml", "tqdm"):
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train", description="Train an RTATL AU teacher.")
    p.add_argument("--config", required=True, help="YAML preset, e.g. configs/smoke.yaml")
    p.add_argument("--resume", default=None, help="'auto' (run_dir/last.pt) or a checkpoint path")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. epochs=3 model.backbone=resnet18")
    args = p.parse_args(argv)
    missing = missing_training_module()
    if missing:
        print(f"au-edge: error: training needs the 'train' extra ({missing} is not installed): "
              "pip install 'au-edge[train]'", file=sys.stderr)
        return 2

    from runtime.errors import AUEdgeError
    from train.config import TrainConfig
    from train.engine import NonFiniteLoss, train

    try:
        cfg = TrainConfig.from_yaml(args.config, args.overrides)
        from train.model import TeacherConfig

        TeacherConfig.from_dict(dict(cfg.model))  # reject a bad model section before building data
        if args.resume == "auto" and not cfg.run_dir:
            raise ValueError("--resume auto needs run_dir=PATH (the run to continue)")
        if cfg.build:
            _ensure_data(cfg)
        metrics = train(cfg, resume=args.resume, log=lambda m: print(m, file=sys.stderr))
    except (AUEdgeError, ValueError, FileNotFoundError, NonFiniteLoss) as e:
        print(f"au-edge: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    f1 = metrics["f1"]["mean"]
    print(f"mean F1 {f1 if f1 is None else round(f1, 4)} on {metrics['split']} "
          f"(label kinds: {', '.join(metrics['label_kinds'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
