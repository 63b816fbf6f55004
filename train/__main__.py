"""``python -m train --config configs/NAME.yaml [key=value ...] [--resume auto|PATH]``.

The same command under ``torchrun --standalone --nproc_per_node=N`` trains with DDP.
"""
from __future__ import annotations

import os
import sys

from train.cli import OneLineParser, fail, guarded


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
    p = OneLineParser(prog="python -m train", description="Train an RTATL AU teacher.")
    p.add_argument("--config", required=True, help="YAML preset, e.g. configs/smoke.yaml")
    p.add_argument("--resume", default=None, help="'auto' (run_dir/last.pt) or a checkpoint path")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. epochs=3 model.backbone=resnet18")
    args = p.parse_args(argv)
    missing = missing_training_module()
    if missing:
        return fail(f"training needs the 'train' extra ({missing} is not installed): pip install 'au-edge[train]'")
    return guarded(_run, args)


def _run(args) -> int:
    from train.config import TrainConfig
    from train.data.build import ensure_built
    from train.engine import train
    from train.model import TeacherConfig

    cfg = TrainConfig.from_yaml(args.config, args.overrides)
    TeacherConfig.from_dict(dict(cfg.model))  # reject a bad model section before building data
    if args.resume == "auto" and not cfg.run_dir:
        raise ValueError("--resume auto needs run_dir=PATH (the run to continue)")
    if cfg.build:
        ensure_built(cfg.build, cfg.data)
    metrics = train(cfg, resume=args.resume, log=lambda m: print(m, file=sys.stderr))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    f1 = metrics["f1"]["mean"]
    print(f"mean F1 {f1 if f1 is None else round(f1, 4)} on {metrics['split']} "
          f"(label kinds: {', '.join(metrics['label_kinds'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
