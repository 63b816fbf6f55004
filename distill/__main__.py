"""``python -m distill --teacher CKPT --config configs/NAME.yaml [key=value ...] [--resume auto|PATH]``.

Same config class, overrides, engine, DDP (under torchrun), resume and run directory as
``python -m train``; the ``model:`` section holds the student and its loss weights
(``distill.config.StudentConfig``). ``metrics.json`` adds ``"teacher"``: the teacher's metrics
on the same evaluation set.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from train.cli import OneLineParser, guarded


def _round(v: float | None) -> float | None:
    return v if v is None else round(v, 4)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m distill", description="Distil an AU teacher into a small student.")
    p.add_argument("--teacher", required=True, help="teacher checkpoint, e.g. runs/NAME/best.pt")
    p.add_argument("--config", required=True, help="YAML preset, e.g. configs/smoke_distill.yaml")
    p.add_argument("--resume", default=None, help="'auto' (run_dir/last.pt) or a checkpoint path")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. max_steps=100 model.arch=mobilenetv2_100")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    from distill.config import StudentConfig
    from distill.task import StudentTask
    from train.config import TrainConfig
    from train.data.build import ensure_built
    from train.engine import train

    if not Path(args.teacher).is_file():
        raise FileNotFoundError(f"teacher checkpoint {args.teacher} not found; train one with "
                                "python -m train and pass its run_dir/best.pt")
    cfg = TrainConfig.from_yaml(args.config, args.overrides)
    StudentConfig.from_dict(dict(cfg.model))  # reject a bad model section before loading anything
    if args.resume == "auto" and not cfg.run_dir:
        raise ValueError("--resume auto needs run_dir=PATH (the run to continue)")
    task = StudentTask(dict(cfg.model), str(args.teacher))
    if cfg.build:
        ensure_built(cfg.build, cfg.data)
    metrics = train(cfg, resume=args.resume, log=lambda m: print(m, file=sys.stderr), task=task)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    f1, tf1 = metrics["f1"]["mean"], metrics.get("teacher", {}).get("f1", {}).get("mean")
    print(f"student mean F1 {_round(f1)}, teacher {_round(tf1)} on {metrics['split']} "
          f"(label kinds: {', '.join(metrics['label_kinds'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
