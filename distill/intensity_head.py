"""An intensity head for a finished student, fitted on its frozen features.

``python -m distill.intensity_head --student RUN/best.pt --out DIR [--data CACHE]``

Why: retraining a shipped student to add intensity would change its occurrence outputs, and every
number read on them (calibration, the clip read by eye, the held-out real faces) would have to be
read again. The student's intensity head is a linear layer on its pooled features
(``StudentNet.intensity``: ``5 · sigmoid``), so it can be fitted on those features with the
backbone and the AU head frozen: the new checkpoint's occurrence logits are the old ones, bit for
bit (checked before anything is written), and it gains the second output.

The head is fitted on the run's own training split (the checkpoint's recorded config and split),
an L1 loss on the known intensity labels only (NaN = unknown), over unaugmented crops plus
``--views`` augmented views of each. Validation picks the weight decay; the test split is scored
once, with the run's other metrics. ``DIR`` gets ``best.pt`` and ``metrics.json``: the student's
metrics plus ``intensity_labels`` (what export declares the output for), ``intensity`` (the DISFA
protocol on test) and ``intensity_supported`` (the AUs whose validation ICC(3,1) reaches ``--min-icc``: the only ones
an export declares) and ``intensity_fit`` (how, and the validation scores).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from runtime.atomic import atomic_write
from train.cli import OneLineParser, guarded
from train.features import Features, pooled_features

WEIGHT_DECAYS = (0.0, 1e-3, 1e-2, 3e-2, 1e-1)  # the L2 penalties validation chooses from
MIN_ICC = 0.6  # an AU's intensity is declared only where its validation ICC(3,1) reaches this ("good")
STEPS = 1500  # full-batch Adam steps per fit (a linear layer on a few thousand rows: seconds)


def fit_linear(feats: Features, n_out: int, weight_decay: float, steps: int = STEPS, seed: int = 0) -> nn.Linear:
    """A linear layer whose ``5 · sigmoid`` output minimises the L1 to the known labels."""
    from train.losses.bce import masked_intensity_l1

    torch.manual_seed(seed)
    head = nn.Linear(feats.x.shape[1], n_out)
    nn.init.zeros_(head.weight)
    nn.init.constant_(head.bias, -1.0)  # 5·sigmoid(-1) ≈ 1.3: near the labels' lower half
    mu, sd = feats.x.mean(0), feats.x.std(0).clamp_min(1e-6)
    z = (feats.x - mu) / sd  # standardised for the fit, folded back into the weights below
    opt = torch.optim.Adam(head.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        loss = masked_intensity_l1(5 * torch.sigmoid(head(z)), feats.target)
        loss = loss + weight_decay * head.weight.pow(2).sum(1).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        w = head.weight / sd
        b = head.bias - (w * mu).sum(1)
        out = nn.Linear(feats.x.shape[1], n_out)
        out.weight.copy_(w)
        out.bias.copy_(b)
    return out


def predict_intensity(head: nn.Linear, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return (5 * torch.sigmoid(head(x))).numpy()


def _run(args) -> int:
    from train.checkpoint import Checkpoint, save
    from train.config import TrainConfig
    from train.data.cache import CacheData
    from train.data.policy import select_aus, split_indices
    from train.intensity_metrics import intensity_labels, intensity_report
    from train.task import task_for_checkpoint

    if args.views < 0 or args.views > 20:
        raise ValueError(f"--views {args.views} is out of range; give 0..20 augmented views per crop (default 2)")
    if not 0.0 <= args.min_icc <= 1.0:
        raise ValueError(f"--min-icc {args.min_icc} is out of range; give an ICC in 0..1 (default {MIN_ICC})")
    if not 1 <= args.threads <= 256:
        raise ValueError(f"--threads {args.threads} is out of range; give 1..256 (default 2)")
    torch.set_num_threads(args.threads)
    ck = Checkpoint.read(args.student)
    if ck.task != "student":
        raise ValueError(f"--student {args.student} holds a {ck.task}; pass a student's best.pt (python -m distill)")
    cfg = TrainConfig.from_dict({**ck.train_config, **({"data": args.data} if args.data else {})})
    cache = CacheData(cfg.data)
    aus, cols = select_aus(cache, cfg.aus)
    if list(aus) != list(ck.aus):
        raise ValueError(f"the cache {cfg.data} gives AUs {aus}, the student was trained on {list(ck.aus)}; "
                         "pass --data with the student's own cache")
    idx = split_indices(cache, cfg)
    task = task_for_checkpoint(ck)
    old = task.model_from_checkpoint(ck).eval()
    kinds = list(cache.meta.get("label_kinds", []))
    feats = {s: pooled_features(old, cache, idx[s], ck.input_size, cols, ck.mean, ck.std,
                                views=args.views if s == "train" else 0, seed=cfg.seed)
             for s in ("train", "val", "test") if len(idx[s])}
    if not torch.isfinite(feats["train"].target).any():
        raise ValueError(f"no training frame of {cfg.data} has a known AU intensity for the student's AUs; "
                         "build the cache with intensity labels (e.g. --ict-version 3)")
    has_val = "val" in feats and bool(torch.isfinite(feats["val"].target).any())
    val = feats["val"] if has_val else feats["train"]  # no validation labels: chosen on training (said below)
    fits = {}
    for wd in WEIGHT_DECAYS:
        head = fit_linear(feats["train"], len(aus), wd, seed=cfg.seed)
        scores = intensity_report(predict_intensity(head, val.x), val.target.numpy(), list(aus))
        fits[wd] = (head, scores)
        print(f"weight decay {wd:g}: validation ICC {scores['icc']['mean']}, MAE {scores['mae']['mean']}",
              file=sys.stderr)
    best_wd = max(fits, key=lambda wd: fits[wd][1]["icc"]["mean"] or -1.0)
    head = fits[best_wd][0]

    new = task.build_model({**ck.model_config, "pretrained": False, "intensity_head": True}, list(aus), ck.input_size)
    kept = {k: v for k, v in ck.weights.items() if not k.startswith("net.intensity.")}  # a refit replaces the head
    missing = new.load_state_dict(kept, strict=False).missing_keys
    if sorted(missing) != ["net.intensity.bias", "net.intensity.weight"]:
        raise RuntimeError(f"the student's weights do not fit its own architecture with an intensity head ({missing})")
    new.net.intensity.load_state_dict(head.state_dict())
    new.eval()
    _check_unchanged(old, new, cache, idx, ck, cols)

    raw = {**ck.raw, "model": new.state_dict(),
           "model_config": json.dumps({**ck.model_config, "intensity_head": True})}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out / "best.pt", raw)
    metrics_path = Path(args.student).parent / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    order = np.sort(idx["train"])
    metrics["intensity_labels"] = intensity_labels(cache.field("intensity")[order][:, cols].astype(np.float32),
                                                   cache.field("kind")[order][:, cols], kinds, list(aus))
    test = feats.get("test")
    if test is not None:
        report = intensity_report(predict_intensity(head, test.x), test.target.numpy(), list(aus), test.kinds, kinds)
        if report is not None:
            metrics["intensity"] = report
    val_icc = fits[best_wd][1]["icc"]
    metrics["intensity_supported"] = [a for a in aus if (val_icc.get(a) or -1.0) >= args.min_icc]
    metrics["intensity_fit"] = {
        "how": "linear head on the frozen student's pooled features (distill.intensity_head); occurrence "
               "outputs unchanged", "from": str(args.student), "data": str(cfg.data), "views": int(args.views),
        "train_rows": int(feats["train"].x.shape[0]), "weight_decay": best_wd, "min_icc": args.min_icc,
        "chosen_on": "validation" if has_val else "training (the validation split has no intensity label)",
        "validation": {str(wd): s for wd, s in ((wd, fits[wd][1]) for wd in fits)}}
    with atomic_write(out / "metrics.json", "metrics", mode="w") as f:
        f.write(json.dumps(metrics, indent=2))
    for name in ("config.yaml",):
        if (Path(args.student).parent / name).is_file():
            shutil.copyfile(Path(args.student).parent / name, out / name)
    scored = metrics.get("intensity", fits[best_wd][1])
    dropped = [a for a in aus if a not in metrics["intensity_supported"]]
    print(f"intensity head (weight decay {best_wd:g}): test ICC {scored['icc']['mean']}, MAE {scored['mae']['mean']}; "
          f"declared for {len(aus) - len(dropped)} AUs" + (f", not {', '.join(dropped)} (validation ICC < "
          f"{args.min_icc:g})" if dropped else "") + f" -> {out / 'best.pt'}")
    return 0


@torch.no_grad()
def _check_unchanged(old, new, cache, idx, ck, cols) -> None:
    """The new model's occurrence logits equal the old one's on validation crops (the point of a frozen fit)."""
    from train.data.torch_data import CacheDataset
    from train.model.input_norm import normalize

    split = idx["val"] if len(idx["val"]) else idx["train"]
    ds = CacheDataset(cache, np.sort(split)[:64], ck.input_size, columns=cols)
    x = normalize(torch.stack([ds[i]["image"] for i in range(len(ds))]), ck.mean, ck.std)
    if not torch.equal(old.au_logits(x), new.au_logits(x)):
        raise RuntimeError("the fitted student's occurrence logits differ from the original's; nothing written")


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m distill.intensity_head",
                      description="Fit an intensity head (AU intensity 0-5) on a finished student's frozen features.")
    p.add_argument("--student", required=True, help="the student's checkpoint, e.g. out/default/student/best.pt")
    p.add_argument("--out", required=True, help="folder for the new best.pt and metrics.json")
    p.add_argument("--data", default="", help="the student's cache (default: the one its run recorded)")
    p.add_argument("--views", type=int, default=2, help="augmented views per training crop, besides the crop itself")
    p.add_argument("--min-icc", type=float, default=MIN_ICC,
                   help="declare intensity only for AUs whose validation ICC(3,1) reaches this")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    return guarded(_run, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
