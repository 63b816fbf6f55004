"""``python -m train.folds --config configs/bp4d_rtatl_fold1.yaml [key=value ...]``: the standard
3-fold protocol in one command; prints the papers' table (per-AU F1 per fold and the mean).

Each fold is an ordinary ``python -m train`` run (``fold=k``, ``run_dir=<base>/fold<k>``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from train.cli import OneLineParser, guarded


def table(metrics: list[dict]) -> str:
    """Markdown: one row per fold and the mean row, one column per AU, plus the mean F1."""
    aus = [a for a in metrics[0]["f1"] if a != "mean"]
    lines = ["| fold | " + " | ".join(aus) + " | mean |", "|" + "---|" * (len(aus) + 2)]
    for k, m in enumerate(metrics, 1):
        lines.append(f"| {k} | " + " | ".join(_pct(m["f1"].get(a)) for a in aus) + f" | {_pct(m['f1']['mean'])} |")
    avg = {a: _mean([m["f1"].get(a) for m in metrics]) for a in aus + ["mean"]}
    lines.append("| avg | " + " | ".join(_pct(avg[a]) for a in aus) + f" | {_pct(avg['mean'])} |")
    return "\n".join(lines)


def _mean(values):
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.folds", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--folds", default="1,2,3")
    p.add_argument("overrides", nargs="*")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    from train.config import TrainConfig
    from train.engine import train

    base = TrainConfig.from_yaml(args.config, args.overrides)
    root = Path(base.run_dir or f"runs/{base.name}-folds")
    results = []
    for k in (int(x) for x in args.folds.split(",")):
        cfg = TrainConfig.from_yaml(args.config, [*args.overrides, f"fold={k}", f"run_dir={root / f'fold{k}'}"])
        results.append(train(cfg, log=lambda m: print(m, file=sys.stderr)))
    text = table(results)
    (root / "folds.md").write_text(text + "\n")
    (root / "folds.json").write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
