"""Training configuration: a YAML file on a dataclass, with type-checked ``key=value`` overrides.

Unknown keys are rejected with the closest known one (nanoGPT's override habit, without exec).
Nested sections (``model.backbone=resnet18``) are plain dicts validated by their consumers.
``${VAR}`` in ``data`` and in ``build`` strings is expanded when the config is loaded, so the
run's ``config.yaml`` records the paths actually used.
"""
from __future__ import annotations

import dataclasses
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from train.coerce import config_from_dict
from train.metrics import NEUTRAL_RULES

OPTIMIZERS = ("adamw", "sgd")
SPLITS = ("identity", "deploy")


@dataclass
class TrainConfig:
    name: str = "run"
    data: str = ""  # cache directory (``${AU_DATA_DIR}`` is expanded)
    build: dict[str, Any] = field(default_factory=dict)  # how to build ``data`` when missing (smoke)
    split: str = "identity"  # identity: 3-fold identity-exclusive split; deploy: see train.data.policy
    fold: int = 1
    val_fraction: float = 0.15  # of the training subjects, for early stopping and thresholds
    oversample_real: int = 1  # train samples with a real-kind label appear this many times per epoch
    # Threshold calibration on val: AUs lit per real negative (on the open data: a posed neutral
    # face) allowed in total, split evenly over the AUs; each AU's threshold is raised until its
    # share holds (metrics.calibrate). Negative: off, thresholds maximise F1 only.
    neutral_fp_budget: float = -1.0
    # How the budget holds: "count" (that share of the val neutral faces lit) or "normal" (also
    # the normal-tail bound for new faces: a count over a dozen faces cannot hold 1/150)
    neutral_fp_rule: str = "count"
    epochs: int = 10
    batch_size: int = 32  # per process: N processes train on a global batch of N * batch_size
    grad_accum: int = 1
    optimizer: str = "adamw"  # adamw | sgd (momentum ``momentum``)
    lr: float = 3e-4
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.05  # not on norms, biases, AU attention priors or embeddings
    grad_clip: float = 5.0  # max global gradient norm (0 = no clipping)
    warmup_steps: int = 100
    input_size: int = 112
    num_workers: int = 2
    threads: int = 0  # torch threads per process; 0 = CPU cores / processes on this machine
    seed: int = 0
    # the seed of the train/val/test draw (-1: ``seed``): another ``seed`` with the split kept, so
    # runs compare on one validation set and a student keeps its teacher's held-out identities
    split_seed: int = -1
    amp: bool = True  # used on CUDA only
    max_steps: int = 0  # 0 = no limit (a budget for ablations)
    checkpoint_every: int = 500  # optimizer steps between mid-epoch last.pt saves (0 = epoch ends only)
    log_every: int = 10
    run_dir: str = ""  # default runs/<name>-<time>
    aus: list = field(default_factory=list)  # train/evaluate on these AUs of the cache (empty: all)
    # start from this checkpoint's model weights (not its optimiser, step or schedule): fine-tuning,
    # e.g. at another input_size; refused when it trained on this run's validation/test identities
    init: str = ""
    model: dict[str, Any] = field(default_factory=dict)  # the task's model config (TeacherConfig fields)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r}; one of {OPTIMIZERS}")
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r}; one of {SPLITS}")
        if self.neutral_fp_rule not in NEUTRAL_RULES:
            raise ValueError(f"neutral_fp_rule {self.neutral_fp_rule!r}; one of {NEUTRAL_RULES}")
        for name in ("epochs", "batch_size", "grad_accum", "log_every", "oversample_real"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "threads", "max_steps", "checkpoint_every", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.split_seed < -1:
            raise ValueError(f"split_seed must be >= 0 (or -1: seed), got {self.split_seed}")
        if self.grad_clip < 0 or self.lr <= 0:
            raise ValueError(f"need lr > 0 and grad_clip >= 0, got lr={self.lr}, grad_clip={self.grad_clip}")

    @property
    def split_draw_seed(self) -> int:
        """The seed the train/val/test split is drawn with."""
        return self.split_seed if self.split_seed >= 0 else self.seed

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config {path} not found; presets live in configs/")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"config {path}: expected a mapping at the top level")
        for item in overrides or []:
            apply_override(raw, item)
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> "TrainConfig":
        """Build from a mapping with the one config loader (``train.coerce.config_from_dict``);
        ``${VAR}`` expanded in ``data`` and ``build``."""
        cfg = config_from_dict(cls, raw, source=where)
        cfg.data = _expand(cfg.data)
        # build paths: expanded where the variable is set (a prebuilt cache needs none of them)
        cfg.build = {k: os.path.expandvars(v) if isinstance(v, str) else v for k, v in cfg.build.items()}
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _expand(value: str) -> str:
    try:
        return string.Template(value).substitute(os.environ)
    except KeyError as e:
        raise ValueError(f"config value {value!r} needs environment variable {e.args[0]}; set it "
                         "(AU_DATA_DIR points at the open data)") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """``a.b=value`` into a nested dict; the value is parsed as YAML (numbers, bools, lists)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value")
    key, text = item.split("=", 1)
    value = yaml.safe_load(text) if text else ""
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {item!r}: {part} is not a section")
    node[parts[-1]] = value
