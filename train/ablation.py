"""``python -m train.ablation --config configs/open_rtatl.yaml [--variants ...] [key=value ...]``:
the same budget with each auxiliary task / seed extension switched on, one run per variant;
prints a table of mean F1 (overall and per label kind) and AUC. Reported as it comes out.
"""
from __future__ import annotations

import sys
from pathlib import Path

from runtime.card import LABEL_KINDS
from train.cli import OneLineParser, guarded

VARIANTS: dict[str, list[str]] = {
    "au": ["model.inpaint=false", "model.flow=false"],
    "inpaint": ["model.inpaint=true", "model.flow=false"],
    "flow": ["model.inpaint=false", "model.flow=true"],
    "both": ["model.inpaint=true", "model.flow=true"],
    "both+aunce": ["model.inpaint=true", "model.flow=true", "model.aunce=true"],
    "both+ot": ["model.inpaint=true", "model.flow=true", "model.ot=true"],
    "both+mal": ["model.inpaint=true", "model.flow=true", "model.mal=true"],
}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.ablation", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("overrides", nargs="*")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    from train.config import TrainConfig
    from train.engine import train

    rows = ["| variant | mean F1 | AUC | " + " | ".join(f"F1 {k}" for k in LABEL_KINDS) + " | loss terms |",
            "|---|---|---|" + "---|" * len(LABEL_KINDS) + "---|"]
    for name in args.variants.split(","):
        cfg = TrainConfig.from_yaml(args.config, [*args.overrides, *VARIANTS[name], f"run_dir={args.out / name}"])
        m = train(cfg, log=lambda msg: print(msg, file=sys.stderr))
        kinds = m.get("by_label_kind", {})
        terms = ", ".join(f"{k} {v:.3f}" for k, v in m["loss_terms"].items())
        rows.append(f"| {name} | {m['f1']['mean']} | {m['auc']['mean']} | "
                    + " | ".join(str(kinds.get(k, {}).get("mean", "-")) for k in LABEL_KINDS)
                    + f" | {terms} |")
        print(rows[-1], file=sys.stderr)
    text = "\n".join(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
