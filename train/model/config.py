"""``TeacherConfig``: every option of the RTATL teacher and its losses, validated at construction.

``train/config.py`` loads the ``model:`` section of a YAML preset into it (``from_dict``, the one
config loader of ``train.coerce``); unknown keys and wrong types are rejected with the closest match.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from runtime.aus import DEFAULT_MODEL_AUS, au_name, au_number
from train.coerce import SectionConfig

LOOKAHEADS = ("all", "au_branch")
MASK_SOURCES = ("landmarks", "canonical")


@dataclass
class TeacherConfig(SectionConfig):
    """Model and loss options of the RTATL teacher.

    Model: ``backbone`` (a name in ``train.model.backbones.BACKBONES``), ``pretrained`` (ImageNet
    weights from timm; tests use False), ``input_size`` (square side in pixels), ``aus`` (output
    order, ``"AU12"`` style), ``dim`` (neck and AU-token width), ``relation_depth`` /
    ``relation_heads`` (the AU relation transformer), ``attn_sigma`` (the Gaussian attention
    priors' width, unit-square), ``drop_path``, ``dropout``, ``intensity_head``.

    Auxiliary tasks and losses (each term is on when its flag is): ``inpaint`` (RoI inpainting;
    ``mask_ratio`` = probability that an AU's regions are masked, ``mask_patch`` = patch side as a
    fraction of the input, ``mask_source`` = per-sample mesh anchors when present or always
    canonical), ``flow`` (single-image flow), ``aunce`` (contrastive, two views; temperature,
    negative re-weighting powers and the positive-choice probabilities), ``ot`` (optimal-transport
    relation loss; entropic ``ot_reg`` and iterations), ``mal`` (meta auxiliary expression task;
    meta learning rates, look-ahead step, which parameters the look-ahead moves, how often).
    ``lambda_*`` weight each term against the AU BCE.
    """

    # model
    backbone: str = "resnet50"
    pretrained: bool = False  # ImageNet weights from the timm hub only when asked (never in tests)
    input_size: int = 224
    aus: tuple[str, ...] = tuple(au_name(n) for n in DEFAULT_MODEL_AUS)
    dim: int = 256
    relation_depth: int = 2
    relation_heads: int = 4
    attn_sigma: float = 0.07
    drop_path: float = 0.0
    dropout: float = 0.1
    intensity_head: bool = False
    # "batch" (BatchNorm, as the backbones come) or "group": GroupNorm everywhere, independent of
    # the per-process batch (CPU DDP, where SyncBatchNorm is not available, and tiny batches)
    norm: str = "batch"
    # RoI inpainting
    inpaint: bool = True
    mask_ratio: float = 0.3
    mask_patch: float = 0.14
    mask_source: str = "landmarks"
    # single-image flow
    flow: bool = True
    # AUNCE
    aunce: bool = False
    aunce_dim: int = 128
    aunce_temperature: float = 0.5
    aunce_beta_present: float = 1.2
    aunce_beta_absent: float = 0.8
    aunce_p_similar: float = 0.2
    aunce_p_mean: float = 0.6
    # optimal-transport relation loss
    ot: bool = False
    ot_reg: float = 0.1
    ot_iters: int = 100
    # meta auxiliary learning (expression task)
    mal: bool = False
    mal_lr: float = 1e-3
    mal_inner_lr: float = 0.05
    mal_lookahead: str = "all"
    mal_every: int = 1
    mal_hidden: int = 32
    # loss weights
    lambda_inpaint: float = 1.0
    lambda_flow: float = 0.5
    lambda_aunce: float = 0.2
    lambda_ot: float = 0.2
    lambda_mal: float = 0.2
    lambda_intensity: float = 0.5

    def __post_init__(self) -> None:
        self.aus = tuple(self.aus)
        for a in self.aus:
            if not isinstance(a, str) or au_name(au_number(a)) != a:
                raise ValueError(f"TeacherConfig.aus: {a!r} is not an 'AU12'-style name")
        if len(set(self.aus)) != len(self.aus) or not self.aus:
            raise ValueError(f"TeacherConfig.aus must be non-empty and unique, got {list(self.aus)}")
        positive = ("input_size", "dim", "relation_heads", "aunce_dim", "ot_iters", "mal_every",
                    "mal_hidden", "attn_sigma", "aunce_temperature", "ot_reg", "mal_lr", "mal_inner_lr")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"TeacherConfig.{name} must be positive, got {getattr(self, name)!r}")
        if self.relation_depth < 0:
            raise ValueError(f"TeacherConfig.relation_depth must be >= 0, got {self.relation_depth}")
        if self.dim % self.relation_heads:
            raise ValueError(f"TeacherConfig.dim ({self.dim}) must be divisible by relation_heads "
                             f"({self.relation_heads})")
        if self.input_size % 8:
            raise ValueError(f"TeacherConfig.input_size must be a multiple of 8, got {self.input_size}")
        for name in ("mask_ratio", "mask_patch", "dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TeacherConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not (0 <= self.aunce_p_similar and 0 <= self.aunce_p_mean
                and self.aunce_p_similar + self.aunce_p_mean <= 1):
            raise ValueError("TeacherConfig.aunce_p_similar + aunce_p_mean must lie in [0, 1], got "
                             f"{self.aunce_p_similar} + {self.aunce_p_mean}")
        if self.mal_lookahead not in LOOKAHEADS:
            raise ValueError(f"TeacherConfig.mal_lookahead {self.mal_lookahead!r}; one of {LOOKAHEADS}")
        if self.norm not in ("batch", "group"):
            raise ValueError(f"TeacherConfig.norm {self.norm!r}; one of ('batch', 'group')")
        if self.mask_source not in MASK_SOURCES:
            raise ValueError(f"TeacherConfig.mask_source {self.mask_source!r}; one of {MASK_SOURCES}")
        for name in [f.name for f in dataclasses.fields(self) if f.name.startswith("lambda_")]:
            if getattr(self, name) < 0:
                raise ValueError(f"TeacherConfig.{name} must be >= 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["aus"] = list(self.aus)
        return d

    @property
    def n_aus(self) -> int:
        return len(self.aus)

    def terms(self) -> tuple[str, ...]:
        """Names of the loss terms this configuration turns on (``"au"`` always)."""
        on = ["au"] + [t for t in ("inpaint", "flow", "aunce", "ot", "mal") if getattr(self, t)]
        return tuple(on + (["intensity"] if self.intensity_head else []))

