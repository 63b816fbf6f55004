"""What a run trains and evaluates on, decided from its config and the cache alone.

The split policy (identity-exclusive folds, or ``split: deploy`` for a model to ship), the AU
selection, oversampling of real labels and the positive-class weights: the training loop,
``train.eval`` and export all take their samples from here, so a checkpoint's test split is the
same wherever it is recomputed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from train.data.cache import LABEL_KINDS, CacheData
from train.data.splits import fold_split, pos_weights

if TYPE_CHECKING:
    from train.config import TrainConfig

# ``split: deploy`` validates and tests on these open-data photo identities (the subject names'
# prefix); every other subject (the video clip, other datasets) trains.
DEPLOY_EVAL_DATASETS = ("london", "canada")


def split_indices(cache: CacheData, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Identity-exclusive train/val/test indices: fold k tests on one part of the subjects; a
    ``val_fraction`` of the remaining subjects (at least one) validates.

    ``split: deploy`` (a model to ship, e.g. the default model) trains on most identities: a
    seeded ``val_fraction`` of the open photo identities validates (thresholds, best epoch) and
    another tests; every other subject (the video clip, other datasets) trains. The check that
    counts for a shipped model is ``train.realcheck`` on identities no split contains. The draw's
    seed is ``split_seed``, else ``seed``.
    """
    rng = np.random.default_rng(cfg.split_draw_seed)
    if cfg.split == "deploy":
        photo = sorted(s for s in cache.subjects if s.partition("_")[0] in DEPLOY_EVAL_DATASETS)
        k = max(1, int(round(cfg.val_fraction * len(photo))))
        order = rng.permutation(photo).tolist()
        val_s, test_s = set(order[:k]), set(order[k:2 * k])
        return {"train": cache.indices_for_subjects([s for s in cache.subjects if s not in val_s | test_s]),
                "val": cache.indices_for_subjects(sorted(val_s)), "test": cache.indices_for_subjects(sorted(test_s))}
    train_s, test_s = fold_split(cache.meta["dataset"], cfg.fold, subjects=cache.subjects)
    train_s = sorted(train_s)
    n_val = max(1, int(round(cfg.val_fraction * len(train_s)))) if len(train_s) > 1 else 0
    val_s = set(rng.permutation(train_s)[:n_val].tolist())
    return {"train": cache.indices_for_subjects([s for s in train_s if s not in val_s]),
            "val": cache.indices_for_subjects(val_s), "test": cache.indices_for_subjects(test_s)}


def split_indices_for(cache: CacheData, train_config: dict[str, Any], split: str) -> np.ndarray:
    """Sorted indices of ``split`` (train|val|test|all) as a checkpoint's run splits this cache
    (``train_config``: the run's recorded ``TrainConfig``).

    Raises:
        ValueError: the split is empty or the run's config is unknown (name the fix).
    """
    if split == "all":
        return np.arange(len(cache))
    if not train_config:
        raise ValueError(f"the checkpoint records no training config, so split {split!r} of {cache.root} "
                         "is unknown; pass --split all")
    from train.config import TrainConfig

    cfg = TrainConfig.from_dict(train_config)
    idx = np.sort(split_indices(cache, cfg)[split])
    if len(idx) == 0:
        raise ValueError(f"split {split!r} of {cache.root} is empty for the run's fold {cfg.fold}; "
                         "pass --split all or another split")
    return idx


def teacher_trained_subjects(cache: CacheData, tcfg: TrainConfig | None, idx: dict[str, np.ndarray]) -> list[str]:
    """The subjects of a run's validation and test splits (``idx``) that another run trained on: a
    student's teacher, or the checkpoint a run starts from (``init=``).

    Why: a student scored on them reads the teacher's memorised soft labels (a run started from
    those weights, their memory), which flatters its validation F1, thresholds and calibration.
    ``tcfg`` is that run's recorded config; [] when it records none or trained on another cache
    (nothing to compare).
    """
    if tcfg is None or not tcfg.data or Path(tcfg.data).resolve() != Path(cache.root).resolve():
        return []
    subject = cache.field("subject")
    taught = set(subject[split_indices(cache, tcfg)["train"]].tolist())
    scored = set(subject[np.concatenate([idx["val"], idx["test"]])].tolist())
    return sorted(cache.subjects[i] for i in scored & taught)


def split_name(cfg: TrainConfig) -> str:
    """How metrics name the split: ``fold1`` .. ``fold3``, or ``deploy``."""
    return "deploy" if cfg.split == "deploy" else f"fold{cfg.fold}"


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


def oversample_real(cache: CacheData, train: np.ndarray, times: int) -> np.ndarray:
    """``train`` with every sample that has a known real-kind label repeated ``times`` times in all:
    a few hundred real photos would otherwise be drowned by thousands of synthetic warps."""
    known_real = ((cache.field("kind")[train] == LABEL_KINDS.index("real")) & cache.field("mask")[train]).any(1)
    return np.concatenate([train] + [train[known_real]] * (times - 1))


@dataclass
class TrainingData:
    """The cache, its split and what the run trains on."""

    cache: CacheData
    idx: dict[str, np.ndarray]
    aus: list[str]
    cols: np.ndarray
    pos_weight: np.ndarray


def load_training_data(cfg: TrainConfig, task: Any) -> TrainingData:
    """Open the cache, split it, and check it has what the task's objective needs
    (``task.check_data``: flow targets, intensity labels); then oversample and weigh the training split."""
    cache = CacheData(cfg.data)
    idx = split_indices(cache, cfg)
    for name in ("train", "val"):
        if len(idx[name]) == 0:
            raise ValueError(f"{cfg.data}: the {name} split of fold {cfg.fold} is empty; the cache needs more "
                             "subjects")
    task.check_split(cache, idx)
    aus, cols = select_aus(cache, cfg.aus)
    has_intensity = bool(np.isfinite(cache.field("intensity")[idx["train"]][:, cols]).any())
    task.check_data(dict(cfg.model), bool(cache.field("flow_valid")[idx["train"]].any()), str(cfg.data),
                    has_intensity=has_intensity)
    if cfg.oversample_real > 1:
        idx["train"] = oversample_real(cache, idx["train"], cfg.oversample_real)
    labels, masks = cache.field("labels")[idx["train"]][:, cols], cache.field("mask")[idx["train"]][:, cols]
    return TrainingData(cache, idx, aus, cols, pos_weights(labels, masks))
