"""The training loop: reads top to bottom; DDP, AMP, accumulation, atomic checkpoints, exact resume.

``python -m train --config configs/NAME.yaml [key=value ...]`` runs ``train(cfg)``; under
``torchrun --nproc_per_node N`` the same command trains with DDP (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import csv
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from train import checkpoint, distributed
from train.config import TrainConfig
from train.data.cache import CacheData
from train.data.splits import fold_split, pos_weights
from train.data.torch_data import CacheDataset
from train.metrics import au_report, calibrate_thresholds
from train.task import Task, TeacherTask, normalize


class NonFiniteLoss(RuntimeError):
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def split_indices(cache: CacheData, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Identity-exclusive train/val/test indices: fold k tests on one part of the subjects; a
    ``val_fraction`` of the remaining subjects (at least one) validates."""
    train_s, test_s = fold_split(cache.meta["dataset"], cfg.fold, subjects=cache.subjects)
    rng = np.random.default_rng(cfg.seed)
    train_s = sorted(train_s)
    n_val = max(1, int(round(cfg.val_fraction * len(train_s)))) if len(train_s) > 1 else 0
    val_s = set(rng.permutation(train_s)[:n_val].tolist())
    return {"train": cache.indices_for_subjects([s for s in train_s if s not in val_s]),
            "val": cache.indices_for_subjects(val_s), "test": cache.indices_for_subjects(test_s)}


@torch.no_grad()
def predict(model, loader, d: distributed.Dist, mean=TeacherTask.mean,
            std=TeacherTask.std) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, labels and masks over a loader (gathered from every rank); ``mean``/``std``
    are the model's input normalisation (its task's)."""
    model.eval()
    probs, labels, masks, order = [], [], [], []
    for batch in loader:
        logits = getattr(model, "module", model).au_logits(normalize(batch["image"].to(d.device), mean, std))
        probs.append(torch.sigmoid(logits.float()).cpu())
        labels.append(batch["labels"])
        masks.append(batch["mask"])
        order.append(batch["index"])
    if not probs:
        n = len(loader.dataset.cache.aus)
        return np.zeros((0, n)), np.zeros((0, n)), np.zeros((0, n), bool)
    cat = [torch.cat(x) for x in (probs, labels, masks, order)]
    cat = [distributed.all_gather_cat(d, x) for x in cat]
    keep = np.unique(cat[3].numpy(), return_index=True)[1]  # DistributedSampler pads with repeats
    return cat[0].numpy()[keep], cat[1].numpy()[keep], cat[2].numpy()[keep].astype(bool)


def _loader(ds, cfg: TrainConfig, d: distributed.Dist, shuffle: bool) -> DataLoader:
    # One sampler for 1 and N processes: the same seeded permutation, rank r taking every N-th
    # sample, so N processes with batch B see the same global batches as 1 process with N*B.
    sampler = DistributedSampler(ds, d.world, d.rank, shuffle=shuffle, seed=cfg.seed)
    # Its own generator: without one, each new iterator draws a seed from the global RNG, which
    # would shift dropout and masks after a resume.
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      drop_last=shuffle, persistent_workers=False, pin_memory=d.device.type == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed))


def _lr(cfg: TrainConfig, step: int, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_teacher(model_cfg: dict, aus: list[str], input_size: int):
    """The teacher for a cache's AU list at the run's input size (config keys: TeacherConfig)."""
    return TeacherTask().build_model(model_cfg, aus, input_size)


def train(cfg: TrainConfig, resume: str | None = None, log=print, task: Task | None = None) -> dict:
    """Train ``task`` (default: the RTATL teacher); returns the metrics written to
    ``run_dir/metrics.json``."""
    d = distributed.setup()
    try:
        return _train(cfg, d, resume, log, task or TeacherTask())
    finally:
        distributed.cleanup(d)


def _train(cfg: TrainConfig, d: distributed.Dist, resume: str | None, log, task: Task) -> dict:
    run_dir = Path(cfg.run_dir or f"runs/{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if d.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(_yaml(cfg.to_dict()))
    seed_everything(cfg.seed)
    cache = CacheData(cfg.data)
    idx = split_indices(cache, cfg)
    for name in ("train", "val"):
        if len(idx[name]) == 0:
            raise ValueError(f"{cfg.data}: the {name} split of fold {cfg.fold} is empty; the cache needs more "
                             "subjects")
    aus, cols = select_aus(cache, cfg.aus)
    labels, masks = cache.field("labels")[idx["train"]][:, cols], cache.field("mask")[idx["train"]][:, cols]
    pos_w = torch.tensor(pos_weights(labels, masks), dtype=torch.float32, device=d.device)
    model_cfg = dict(cfg.model)
    two_views = bool(model_cfg.get("aunce", False) or model_cfg.get("ot", False))
    train_ds = CacheDataset(cache, idx["train"], cfg.input_size, train=True, two_views=two_views, seed=cfg.seed,
                            columns=cols)
    train_dl = _loader(train_ds, cfg, d, shuffle=True)
    val_dl = _loader(CacheDataset(cache, idx["val"], cfg.input_size, columns=cols), cfg, d, shuffle=False)
    model = task.build_model(model_cfg, aus, cfg.input_size).to(d.device)
    if d.enabled and d.device.type == "cuda":  # batch statistics over the global batch (GPU only;
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # on CPU use model.norm=group)
    ddp = DistributedDataParallel(model, find_unused_parameters=True) if d.enabled else model
    # CPU generator for inpainting masks and AUNCE draws: seeded, and checkpointed for exact resume
    gen = torch.Generator().manual_seed(cfg.seed)
    objective = task.build_objective(model, pos_w, gen)
    opt = torch.optim.AdamW(model.main_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and d.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    steps_per_epoch = max(1, len(train_dl) // cfg.grad_accum)
    total = cfg.epochs * steps_per_epoch if not cfg.max_steps else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    step, epoch0, skip, best = 0, 0, 0, -1.0
    history: list[dict] = []
    if resume:
        ck = checkpoint.load(run_dir / "last.pt" if resume == "auto" else resume)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        scaler.load_state_dict(ck["scaler"])
        step, epoch0, skip, best = ck["step"], ck["epoch"], ck["batch_in_epoch"], ck["best"]
        history = json.loads(ck["history"])
        checkpoint.set_rng_state(ck["rng"])
        gen.set_state(ck["generator"])
        objective.load_state_dict(ck["objective"])
        log(f"resumed from step {step} (epoch {epoch0}, batch {skip})")
    writer = _tensorboard(run_dir) if d.is_main else None
    csv_path = run_dir / "log.csv"
    last_terms: dict[str, float] = {}

    def save(name: str, epoch: int, batch_in_epoch: int) -> None:
        if d.is_main:
            checkpoint.save(run_dir / name, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "best": best,
                "history": json.dumps(history), "rng": checkpoint.rng_state(), "config": json.dumps(cfg.to_dict()),
                "generator": gen.get_state(), "objective": objective.state_dict(),
                **task.checkpoint_meta(model_cfg, aus, cfg.input_size)})

    from tqdm import tqdm

    done = False
    for epoch in range(epoch0, cfg.epochs):
        train_ds.set_epoch(epoch)
        train_dl.sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        count = 0
        ddp.train()
        bar = tqdm(train_dl, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not d.is_main, leave=False)
        for b, batch in enumerate(bar):
            if epoch == epoch0 and b < skip:
                continue  # exact resume: the same batches in the same order, minus the ones done
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step, total)
            batch = {k: v.to(d.device, non_blocking=True) for k, v in batch.items()}
            batch["image_u8"] = batch["image"]  # for objectives whose second model normalises otherwise
            for key in ("image", "image2"):
                if key in batch:
                    batch[key] = normalize(batch[key], task.mean, task.std)
            with torch.autocast(d.device.type, enabled=use_amp):
                loss, terms = objective(batch, forward=ddp)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss.item()} at step {step} (terms {terms}); lower lr "
                                    f"(now {cfg.lr}) or check the data in {cfg.data}")
            scaler.scale(loss / cfg.grad_accum).backward()
            if (b + 1) % cfg.grad_accum == 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                step += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if d.is_main:
                with (run_dir / "steps.jsonl").open("a") as f:  # terms vary by step (MAL meta steps)
                    f.write(json.dumps({"step": step, "epoch": epoch, "loss": loss.item(), **terms}) + "\n")
            if d.is_main and step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if writer:
                    for k, v in terms.items():
                        writer.add_scalar(f"train/{k}", v, step)
            if cfg.max_steps and step >= cfg.max_steps:
                done = True
                save("last.pt", epoch, b + 1)
                break
        last_terms = {k: distributed.all_reduce_mean(d, v / max(1, count)) for k, v in sums.items()}
        probs, labels_v, mask_v = predict(ddp, val_dl, d, task.mean, task.std)
        val = au_report(probs, labels_v, mask_v, aus)
        val_f1 = val["f1"]["mean"] or 0.0
        history.append({"epoch": epoch + 1, "step": step, "val_f1_mean": val_f1, **last_terms})
        if d.is_main:
            _append_csv(csv_path, history[-1])
            if writer:
                writer.add_scalar("val/f1_mean", val_f1, step)
            log(f"epoch {epoch + 1}: " + " ".join(f"{k}={v:.4f}" for k, v in last_terms.items())
                + f" val_f1={val_f1:.4f}")
        if val_f1 > best:
            best = val_f1
            save("best.pt", epoch + 1, 0)
        if done:  # keep the mid-epoch last.pt written at the step budget, for an exact resume
            break
        save("last.pt", epoch + 1, 0)
    distributed.barrier(d)
    metrics = evaluate_run(run_dir, cfg, cache, idx, d, last_terms, task)
    if writer:
        writer.close()
    return metrics


def evaluate_run(run_dir: Path, cfg: TrainConfig, cache: CacheData, idx: dict[str, np.ndarray],
                 d: distributed.Dist, loss_terms: dict[str, float], task: Task | None = None) -> dict:
    """Best checkpoint: thresholds calibrated on val, metrics on test -> metrics.json (plus the
    task's ``extra_metrics``, e.g. a student's teacher on the same split)."""
    task = task or TeacherTask()
    ck = checkpoint.load(run_dir / "best.pt")
    aus, cols = select_aus(cache, cfg.aus)
    model = task.model_from_checkpoint(ck).to(d.device)
    val_dl = _loader(CacheDataset(cache, idx["val"], cfg.input_size, columns=cols), cfg, d, shuffle=False)
    test_split = "test" if len(idx["test"]) else "val"
    test_dl = _loader(CacheDataset(cache, idx[test_split], cfg.input_size, columns=cols), cfg, d, shuffle=False)
    pv, lv, mv = predict(model, val_dl, d, task.mean, task.std)
    thr = calibrate_thresholds(pv, lv, mv)
    pt, lt, mt = predict(model, test_dl, d, task.mean, task.std)
    report = au_report(pt, lt, mt, aus, thr)
    kinds = cache.meta.get("label_kinds", [])
    test_kinds = cache.field("kind")[idx[test_split]][:, cols][cache.field("mask")[idx[test_split]][:, cols]]
    present = sorted({kinds[k] for k in np.unique(test_kinds)})
    metrics = {**report, "data": str(cfg.data), "split": f"fold{cfg.fold}/{test_split}",
               "label_kinds": present, "loss_terms": {k: round(v, 5) for k, v in loss_terms.items()},
               "by_label_kind": _by_kind(pt, lt, mt, cache.field("kind")[np.sort(idx[test_split])][:, cols],
                                         kinds, aus, thr)}
    loaders = {"val": val_dl, "test": test_dl}
    metrics.update(task.extra_metrics(lambda m, mean=TeacherTask.mean, std=TeacherTask.std, split="test": predict(
        m.to(d.device), loaders[split], d, mean, std), aus))
    if d.is_main:
        tmp = run_dir / "metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=2))
        tmp.replace(run_dir / "metrics.json")
    return metrics


def _by_kind(p, y, m, kinds: np.ndarray, names: list[str], aus: list[str], thr: np.ndarray) -> dict:
    """F1 per label kind (real / silver / synthetic, per AU) so silver is never reported as real."""
    from train.metrics import f1_per_au

    out = {}
    for k, name in enumerate(names):
        sel = m & (kinds == k)
        if not sel.any():
            continue
        f1 = f1_per_au(p, y, sel, thr)
        per = {a: round(float(v), 4) for a, v in zip(aus, f1) if not np.isnan(v)}
        out[name] = {"f1": per, "mean": round(float(np.mean(list(per.values()))), 4) if per else None}
    return out


def select_aus(cache: CacheData, wanted: list) -> tuple[list[str], np.ndarray]:
    """The AU names and cache columns a run uses (``aus:`` in the config; empty = all)."""
    from runtime.aus import au_name, au_number

    if not wanted:
        return list(cache.aus), np.arange(len(cache.aus))
    names = [au_name(au_number(a)) for a in wanted]
    missing = [a for a in names if a not in cache.aus]
    if missing:
        raise ValueError(f"aus {missing} are not in the cache {cache.root} (it has {cache.aus})")
    return names, np.array([cache.aus.index(a) for a in names])


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tb"))


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
