"""Training configuration: a YAML file on a dataclass, with type-checked ``key=value`` overrides.

Unknown keys are rejected with the list of known ones (nanoGPT's override habit, without exec).
Nested sections (``model.backbone=resnet18``) are plain dicts validated by their consumers.
"""
from __future__ import annotations

import dataclasses
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    name: str = "run"
    data: str = ""  # cache directory (``${AU_DATA_DIR}`` is expanded)
    build: dict[str, Any] = field(default_factory=dict)  # how to build ``data`` when missing (smoke)
    split: str = "identity"  # identity: 3-fold identity-exclusive split of the cache's subjects
    fold: int = 1
    val_fraction: float = 0.15  # of the training subjects, for early stopping and thresholds
    epochs: int = 10
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    input_size: int = 112
    num_workers: int = 2
    seed: int = 0
    amp: bool = True  # used on CUDA only
    max_steps: int = 0  # 0 = no limit (a budget for ablations)
    log_every: int = 10
    run_dir: str = ""  # default runs/<name>-<time>
    aus: list = field(default_factory=list)  # train/evaluate on these AUs of the cache (empty: all)
    model: dict[str, Any] = field(default_factory=dict)  # TeacherConfig fields

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
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        values = {}
        for key, value in raw.items():
            default = getattr(cls(), key)
            values[key] = _coerce(value, type(default), f"{where}: {key}")
        cfg = cls(**values)
        cfg.data = _expand(cfg.data)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _expand(value: str) -> str:
    try:
        return string.Template(value).substitute(os.environ)
    except KeyError as e:
        raise ValueError(f"config value {value!r} needs environment variable {e.args[0]}; set it "
                         "(AU_DATA_DIR points at the open data)") from None


def _coerce(value: Any, typ: type, where: str) -> Any:
    if typ is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{where}: expected a boolean, got {value!r}")
    if typ in (int, float) and isinstance(value, str):
        try:
            return typ(value)
        except ValueError:
            raise ValueError(f"{where}: expected {typ.__name__}, got {value!r}") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is dict and not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    if typ not in (dict,) and value is not None and not isinstance(value, typ):
        raise ValueError(f"{where}: expected {typ.__name__}, got {value!r}")
    return value


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
