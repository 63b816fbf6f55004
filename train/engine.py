"""The training loop: DDP, AMP, accumulation, atomic checkpoints, exact resume; reads top to bottom.

``python -m train --config configs/NAME.yaml [key=value ...]`` runs ``train(cfg)``; under
``torchrun --nproc_per_node N`` the same command trains with DDP (gloo on CPU, nccl on GPU), and
N processes with ``batch_size=B`` take the same steps as one process with ``batch_size=N*B``:
the same samples per step (one seeded sampler), the same augmentation and inpainting masks
(drawn per sample, not per process), and losses normalised by global counts.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from runtime.errors import AUEdgeError
from train import checkpoint, distributed
from train.config import TrainConfig
from train.data.policy import TrainingData, load_training_data, teacher_trained_subjects
from train.data.torch_data import CacheDataset
from train.evaluate import evaluate_run
from train.loader import make_loader, predict
from train.metrics import au_report
from train.model.input_norm import normalize
from train.optim import build_optimizer, lr_at
from train.runlog import RunLog
from train.task import Task, TeacherTask


class NonFiniteLoss(AUEdgeError, RuntimeError):
    """The loss became NaN or infinite (one line for the CLI: what and the fix)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_threads(threads: int) -> int:
    """``threads``, or by default the CPU cores this process may use divided by the processes
    torchrun starts on this machine (oversubscribed thread pools made a 2-core smoke run 20x slower)."""
    if threads > 0:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // distributed.local_processes())


@dataclass
class State:
    """Where the run is; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0  # epochs completed before the current one
    batch_in_epoch: int = 0  # micro-batches of ``epoch`` already trained (resume skips them)
    best: float = -1.0
    history: list[dict] = field(default_factory=list)
    epoch_terms: dict[str, list[float]] = field(default_factory=dict)  # per step, for the epoch's means


@dataclass
class Run:
    """Everything the loop touches, built once by ``build_run``."""

    cfg: TrainConfig
    d: distributed.Dist
    task: Task
    mean: tuple[float, ...]  # the model's input normalisation (its registry entry's)
    std: tuple[float, ...]
    run_dir: Path
    data: TrainingData
    model: torch.nn.Module
    ddp: torch.nn.Module
    objective: Any
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    gen: torch.Generator
    train_ds: CacheDataset
    train_dl: DataLoader
    val_dl: DataLoader
    total: int
    use_amp: bool
    log: Any
    logs: RunLog


def train(cfg: TrainConfig, resume: str | None = None, log=print, task: Task | None = None) -> dict:
    """Train ``task`` (default: the RTATL teacher); returns the metrics written to
    ``run_dir/metrics.json``."""
    d = distributed.setup()
    try:
        return _train(cfg, d, resume, log, task or TeacherTask())
    finally:
        distributed.cleanup(d)


def _train(cfg: TrainConfig, d: distributed.Dist, resume: str | None, log, task: Task) -> dict:
    cfg = resolve_config(cfg, d)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    data = load_training_data(cfg, task)
    run = build_run(cfg, d, task, data, log)
    if cfg.init and not resume:
        start_from(run, cfg.init)
    state = restore(run, resume) if resume else State()
    run.logs.write_config(cfg.to_dict())
    for epoch in range(state.epoch, cfg.epochs):
        done = train_epoch(run, state, epoch)
        end_epoch(run, state, epoch, done)
        if done:
            break
    distributed.barrier(d)
    metrics = evaluate_run(run.run_dir, cfg, data.cache, data.idx, d, _last_terms(state), task)
    run.logs.close()
    return metrics


def resolve_config(cfg: TrainConfig, d: distributed.Dist) -> TrainConfig:
    """The values this run uses: the run directory named once on rank 0 (timestamps differ
    between ranks) and the thread count."""
    name = cfg.run_dir or (f"runs/{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}" if d.is_main else "")
    return TrainConfig(**{**cfg.to_dict(), "run_dir": str(distributed.broadcast_object(d, name)),
                          "threads": resolve_threads(cfg.threads)})


def build_run(cfg: TrainConfig, d: distributed.Dist, task: Task, data: TrainingData, log) -> Run:
    model_cfg = dict(cfg.model)
    two_views = bool(model_cfg.get("aunce", False) or model_cfg.get("ot", False))
    train_ds = CacheDataset(data.cache, data.idx["train"], cfg.input_size, train=True, two_views=two_views,
                            seed=cfg.seed, columns=data.cols)
    train_dl = make_loader(train_ds, cfg, d, shuffle=True)
    val_dl = make_loader(CacheDataset(data.cache, data.idx["val"], cfg.input_size, columns=data.cols), cfg, d,
                         shuffle=False)
    model = task.build_model(model_cfg, data.aus, cfg.input_size).to(d.device)
    if d.enabled and d.device.type == "cuda":  # batch statistics over the global batch (GPU only;
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # on CPU use model.norm=group)
    ddp = DistributedDataParallel(model, find_unused_parameters=True) if d.enabled else model
    gen = torch.Generator().manual_seed(cfg.seed)  # AUNCE draws; checkpointed for exact resume
    pos_w = torch.tensor(data.pos_weight, dtype=torch.float32, device=d.device)
    use_amp = cfg.amp and d.device.type == "cuda"
    if len(train_dl) < cfg.grad_accum:
        raise ValueError(f"{cfg.data}: {len(train_dl)} training batches per epoch cannot fill one step of "
                         f"grad_accum={cfg.grad_accum}; lower batch_size or grad_accum")
    total = cfg.epochs * (len(train_dl) // cfg.grad_accum)
    return Run(cfg, d, task, *task.input_norm(model_cfg), Path(cfg.run_dir), data, model, ddp, task.build_objective(model, pos_w, gen),
               build_optimizer(model, cfg), torch.amp.GradScaler("cuda", enabled=use_amp), gen, train_ds,
               train_dl, val_dl, min(total, cfg.max_steps) if cfg.max_steps else total, use_amp, log,
               RunLog(Path(cfg.run_dir), d.is_main))


def start_from(run: Run, path: str) -> None:
    """Load a checkpoint's model weights into a new run (``init=``). Refused in one line when its
    task, AUs or model differ from the run's, or when it trained on identities the run validates or
    tests on: the run's thresholds, calibration and scores would then read that memory."""
    ck = checkpoint.Checkpoint.read(path)
    where = f"init={path}"
    if ck.task != run.task.kind or list(ck.aus) != list(run.data.aus):
        raise ValueError(f"{where} holds a {ck.task} for {len(ck.aus)} AUs ({', '.join(ck.aus[:3])}, ...); this run "
                         f"trains a {run.task.kind} for {len(run.data.aus)} ({', '.join(run.data.aus[:3])}, ...): "
                         "start from a checkpoint of the same task and AUs")
    trained = TrainConfig.from_dict(ck.train_config) if ck.train_config else None
    leaked = teacher_trained_subjects(run.data.cache, trained, run.data.idx)
    if leaked:
        raise ValueError(f"{where}: {len(leaked)} of this run's validation/test identities trained it (e.g. "
                         f"{', '.join(leaked[:3])}); keep its split: split={trained.split} fold={trained.fold} "
                         f"val_fraction={trained.val_fraction} split_seed={trained.split_draw_seed}")
    try:
        run.model.load_state_dict(ck.weights)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        detail = detail if len(detail) <= 120 else detail[:117] + "..."
        raise ValueError(f"{where}: its weights do not fit this run's model ({detail}); use a checkpoint "
                         f"of the same model config (its: {json.dumps(ck.model_config)})") from None
    run.log(f"started from {path} ({ck.task} trained at {ck.input_size} px; its optimiser and step not kept)")


def restore(run: Run, resume: str) -> State:
    """Load ``last.pt`` (or a path) into the run; the logs are cut back to it."""
    ck = checkpoint.load(run.run_dir / "last.pt" if resume == "auto" else resume)
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    run.scaler.load_state_dict(ck["scaler"])
    run.objective.load_state_dict(ck["objective"])
    ranks = ck["rng"] if isinstance(ck["rng"], list) else [{**ck["rng"], "generator": ck["generator"]}]
    if len(ranks) != run.d.world:
        run.log(f"resuming {len(ranks)} processes' checkpoint with {run.d.world}: batches match, random "
                "streams (dropout) do not")
    mine = ranks[run.d.rank % len(ranks)]
    checkpoint.set_rng_state(mine, run.d.device)
    run.gen.set_state(mine["generator"])
    state = State(ck["step"], ck["epoch"], ck["batch_in_epoch"], ck["best"], json.loads(ck["history"]),
                  json.loads(ck.get("epoch_terms", "{}")))
    run.logs.rewind(state.step, state.history)
    run.log(f"resumed from step {state.step} (epoch {state.epoch}, batch {state.batch_in_epoch})")
    return state


def save(run: Run, state: State, name: str) -> None:
    """Every rank's RNG streams are gathered (collective); rank 0 writes the file."""
    rng = distributed.gather_objects(run.d, {**checkpoint.rng_state(run.d.device), "generator": run.gen.get_state()})
    if run.d.is_main:
        checkpoint.save(run.run_dir / name, {
            "model": run.model.state_dict(), "optimizer": run.opt.state_dict(), "scaler": run.scaler.state_dict(),
            "step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch, "best": state.best,
            "history": json.dumps(state.history), "epoch_terms": json.dumps(state.epoch_terms), "rng": rng, "config": json.dumps(run.cfg.to_dict()),
            "objective": run.objective.state_dict(),
            **run.task.checkpoint_meta(dict(run.cfg.model), run.data.aus, run.cfg.input_size)})


def to_device(batch: dict[str, torch.Tensor], run: Run) -> dict[str, torch.Tensor]:
    """On the device, images normalised for the task; the uint8 images kept in ``image_u8``."""
    batch = {k: v.to(run.d.device, non_blocking=True) for k, v in batch.items()}
    batch["image_u8"] = batch["image"]  # for objectives whose second model normalises otherwise
    for key in ("image", "image2"):
        if key in batch:
            batch[key] = normalize(batch[key], run.mean, run.std)
    return batch


def train_epoch(run: Run, state: State, epoch: int) -> bool:
    """One epoch of optimizer steps; True when ``max_steps`` is reached."""
    from tqdm import tqdm

    cfg, d = run.cfg, run.d
    run.train_ds.set_epoch(epoch)
    run.train_dl.sampler.set_epoch(epoch)
    run.ddp.train()
    run.opt.zero_grad(set_to_none=True)
    usable = len(run.train_dl) - len(run.train_dl) % cfg.grad_accum
    skip = state.batch_in_epoch if epoch == state.epoch else 0
    window: list[dict[str, float]] = []
    bar = tqdm(run.train_dl, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not d.is_main, leave=False)
    for b, batch in enumerate(bar):
        if b >= usable:
            break  # a partial accumulation window would leave its gradients for the next epoch
        if b < skip:
            continue  # exact resume: the same batches in the same order, minus the ones done
        stepping = (b + 1) % cfg.grad_accum == 0
        batch = to_device(batch, run)
        # no_sync: only the micro-batch that steps all-reduces gradients (DDP's accumulation)
        sync = contextlib.nullcontext() if stepping or not d.enabled else run.ddp.no_sync()
        with sync:
            with torch.autocast(d.device.type, enabled=run.use_amp):
                loss, terms = run.objective(batch, forward=run.ddp)
            if not distributed.all_true(d, torch.isfinite(loss)):  # every rank stops, none waits
                raise NonFiniteLoss(f"loss became {loss.item()} at step {state.step} (terms {terms}); lower lr "
                                    f"(now {cfg.lr}) or check the data in {cfg.data}")
            run.scaler.scale(loss / cfg.grad_accum).backward()
        window.append({"loss": float(loss.detach()), **terms})
        if not stepping:
            continue
        optimizer_step(run, state)
        state.batch_in_epoch = b + 1
        row = {k: float(np.mean([w[k] for w in window if k in w])) for k in sorted(set().union(*window))}
        for k, v in row.items():
            state.epoch_terms.setdefault(k, []).append(v)
        window = []
        run.logs.step({"step": state.step, "epoch": epoch, **row})
        if d.is_main and state.step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        if cfg.max_steps and state.step >= cfg.max_steps:
            save(run, state, "last.pt")
            return True
        if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
            save(run, state, "last.pt")  # a kill loses at most checkpoint_every steps
    return False


def optimizer_step(run: Run, state: State) -> None:
    for group in run.opt.param_groups:
        group["lr"] = lr_at(run.cfg, state.step, run.total)
    run.scaler.unscale_(run.opt)
    if run.cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.opt.zero_grad(set_to_none=True)
    state.step += 1


def end_epoch(run: Run, state: State, epoch: int, done: bool) -> None:
    """Validate, log the epoch, keep the best checkpoint and (unless stopped mid-epoch, where the
    ``last.pt`` written at the step budget stays, for an exact resume) ``last.pt``."""
    d = run.d
    terms = {k: distributed.all_reduce_mean(d, float(np.mean(v))) for k, v in sorted(state.epoch_terms.items())}
    probs, labels_v, mask_v = predict(run.ddp, run.val_dl, d, run.mean, run.std)
    val_f1 = au_report(probs, labels_v, mask_v, run.data.aus)["f1"]["mean"] or 0.0
    state.history.append({"epoch": epoch + 1, "step": state.step, "val_f1_mean": val_f1, **terms})
    run.logs.epoch(state.history[-1])
    run.logs.scalar("val/f1_mean", val_f1, state.step)
    if d.is_main:
        run.log(f"epoch {epoch + 1}: " + " ".join(f"{k}={v:.4f}" for k, v in terms.items())
                + f" val_f1={val_f1:.4f}")
    if not done:
        state.epoch, state.batch_in_epoch, state.epoch_terms = epoch + 1, 0, {}
    if val_f1 > state.best:
        state.best = val_f1
        save(run, state, "best.pt")
    if not done:
        save(run, state, "last.pt")


def _last_terms(state: State) -> dict[str, float]:
    if not state.history:
        return {}
    return {k: v for k, v in state.history[-1].items() if k not in ("epoch", "step", "val_f1_mean")}
