"""A finished run's evaluation: the best checkpoint, thresholds and the per-AU probability
calibration fitted on val, metrics on test -> ``run_dir/metrics.json`` (the CONTRACTS form, with F1
per label kind, and ``calibration``: the card's form plus ECE / reliability on val)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from train import distributed
from train.calibration import metrics_section
from train.checkpoint import Checkpoint
from train.config import TrainConfig
from train.data.cache import LABEL_KINDS, CacheData
from train.data.policy import select_aus, split_name
from train.data.torch_data import CacheDataset
from train.intensity_metrics import intensity_labels, intensity_report
from train.loader import make_loader, predict, predict_outputs
from train.metrics import au_report, budget_rate, calibrate, f1_per_au, neutral_lit
from train.task import Task, TeacherTask


def evaluate_run(run_dir: Path, cfg: TrainConfig, cache: CacheData, idx: dict[str, np.ndarray],
                 d: distributed.Dist, loss_terms: dict[str, float], task: Task | None = None) -> dict:
    """Best checkpoint: thresholds and calibration fitted on val, metrics on test -> metrics.json (plus the
    task's ``extra_metrics``, e.g. a student's teacher on the same split)."""
    task = task or TeacherTask()
    ck = Checkpoint.read(run_dir / "best.pt")
    aus, cols = select_aus(cache, cfg.aus)
    model = task.model_from_checkpoint(ck).to(d.device)
    val_dl = make_loader(CacheDataset(cache, idx["val"], cfg.input_size, columns=cols), cfg, d, shuffle=False)
    test_split = "test" if len(idx["test"]) else "val"
    test_dl = make_loader(CacheDataset(cache, idx[test_split], cfg.input_size, columns=cols), cfg, d, shuffle=False)
    val_real = cache.field("kind")[np.sort(idx["val"])][:, cols] == LABEL_KINDS.index("real")

    def thresholds(pv: np.ndarray, lv: np.ndarray, mv: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return calibrate(pv, lv, mv, real=val_real, max_fp_rate=budget_rate(cfg.neutral_fp_budget, len(aus)),
                         neutral_rule=cfg.neutral_fp_rule)

    pv, lv, mv = predict(model, val_dl, d, ck.mean, ck.std)
    thr, rules = thresholds(pv, lv, mv)
    test_out = predict_outputs(model, test_dl, d, ck.mean, ck.std)
    pt, lt, mt = test_out.probs, test_out.labels, test_out.mask
    report = {**au_report(pt, lt, mt, aus, thr), "threshold_rules": dict(zip(aus, rules))}
    test_kind = cache.field("kind")[np.sort(idx[test_split])][:, cols]
    if len(pv):  # per-AU calibration on the same validation outputs (0.5 = each AU's threshold)
        report["calibration"] = metrics_section(
            pv, lv, mv, thr, aus, real=val_real,
            test=(pt, lt, mt, test_kind == LABEL_KINDS.index("real")) if test_split == "test" else None,
            fitted_on=f"validation: {cfg.data} split {split_name(cfg)}/val ({len(pv)} samples)")
    report["neutral_faces"] = neutral_lit(pt, lt, mt, test_kind == LABEL_KINDS.index("real"), aus, thr)
    kinds = cache.meta.get("label_kinds", [])
    test_kinds = cache.field("kind")[idx[test_split]][:, cols][cache.field("mask")[idx[test_split]][:, cols]]
    present = sorted({kinds[k] for k in np.unique(test_kinds)})
    metrics = {**report, "data": str(cfg.data), "split": f"{split_name(cfg)}/{test_split}",
               "label_kinds": present, "loss_terms": {k: round(v, 5) for k, v in loss_terms.items()},
               "by_label_kind": by_kind(pt, lt, mt, test_kind, kinds, aus, thr)}
    metrics.update(intensity_metrics(cache, idx["train"], cols, test_out, test_kind, kinds, aus))
    loaders = {"val": val_dl, "test": test_dl}
    metrics.update(task.extra_metrics(lambda m, mean, std, split="test": predict(
        m.to(d.device), loaders[split], d, mean, std), aus, calibrate=lambda *v: thresholds(*v)[0]))
    if d.is_main:
        tmp = run_dir / "metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=2))
        tmp.replace(run_dir / "metrics.json")
    return metrics


def intensity_metrics(cache: CacheData, train_idx: np.ndarray, cols: np.ndarray, test_out, test_kind: np.ndarray,
                      kinds: list[str], aus: list[str]) -> dict:
    """``intensity_labels`` (the training split's known intensity labels per AU and their kinds:
    what export declares the intensity output for) and, for a model with an intensity head, the
    DISFA intensity protocol on the test split (``intensity``; absent when it has no labels)."""
    out: dict = {}
    if test_out.intensity is None:
        return out
    order = np.sort(train_idx)
    out["intensity_labels"] = intensity_labels(cache.field("intensity")[order][:, cols].astype(np.float32),
                                               cache.field("kind")[order][:, cols], kinds, aus)
    report = intensity_report(test_out.intensity, test_out.intensity_target, aus, test_kind, kinds)
    if report is not None:
        out["intensity"] = report
    return out


def by_kind(p, y, m, kinds: np.ndarray, names: list[str], aus: list[str], thr: np.ndarray) -> dict:
    """F1 per label kind (real / silver / synthetic, per AU) so silver is never reported as real."""
    out = {}
    for k, name in enumerate(names):
        sel = m & (kinds == k)
        if not sel.any():
            continue
        f1 = f1_per_au(p, y, sel, thr)
        per = {a: round(float(v), 4) for a, v in zip(aus, f1) if not np.isnan(v)}
        out[name] = {"f1": per, "mean": round(float(np.mean(list(per.values()))), 4) if per else None}
    return out
