"""``python -m train.eval --checkpoint CKPT --data CACHE [--split test|val|all] [--fold K]``.

Scores a checkpoint on a cache with the run's AU list and input size; thresholds come from the
checkpoint's run (metrics.json beside it) when present, else 0.5. Prints and writes metrics JSON.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from train.cli import OneLineParser, guarded


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.eval", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=("test", "val", "all"))
    p.add_argument("--fold", type=int, default=None, help="default: the run's fold")
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default: print only)")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    from train import distributed
    from train.checkpoint import Checkpoint
    from train.config import TrainConfig
    from train.data.cache import CacheData
    from train.data.policy import select_aus, split_indices_for
    from train.data.torch_data import CacheDataset
    from train.loader import make_loader, predict
    from train.metrics import au_report
    from train.task import task_for_checkpoint

    ck = Checkpoint.read(args.checkpoint)
    run = {**ck.train_config, **({"fold": args.fold} if args.fold and ck.train_config else {})}
    cache = CacheData(args.data)
    aus, cols = select_aus(cache, list(ck.aus))
    idx = split_indices_for(cache, run, args.split)
    cfg = TrainConfig.from_dict(run)  # the run's loader settings (batch size, workers, seed)
    model = task_for_checkpoint(ck).model_from_checkpoint(ck)
    d = distributed.Dist()
    loader = make_loader(CacheDataset(cache, idx, ck.input_size, columns=cols), cfg, d, shuffle=False)
    probs, labels, mask = predict(model, loader, d, ck.mean, ck.std)
    run_metrics = args.checkpoint.parent / "metrics.json"
    thr = None
    if run_metrics.is_file():
        saved = json.loads(run_metrics.read_text()).get("thresholds", {})
        thr = np.array([saved.get(a, 0.5) for a in aus])
    report = {**au_report(probs, labels, mask, aus, thr), "data": args.data, "split": args.split,
              "checkpoint": str(args.checkpoint)}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(f"mean F1 {report['f1']['mean']} (AUC {report['auc']['mean']}) on {len(idx)} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
