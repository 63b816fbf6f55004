"""The RTATL teacher: a backbone and AU branch, trained with self-supervised auxiliary tasks.

RTATL ("Representation learning of facial AUs with Transfer of self-supervised auxiliary tasks"):
the AU detector (``AUNet`` = timm backbone + AU branch with AU relation embedding) shares its
features with training-only heads, RoI inpainting of masked AU patches and single-image optical
flow, and optionally an AUNCE projection and a meta-weighted expression head (MAL). Only
``export_module()`` (the ``AUNet``) is exported.

Batch format (a dict of tensors; ``train.data.torch_data.CacheDataset`` produces it):
    image       B×3×H×W float, normalised (RGB in [0, 1], then (x - mean) / std per channel)
    labels      B×A float, 0/1 per AU in ``cfg.aus`` order (any value where unknown)
    mask        B×A bool, True where the label is known
    landmarks   B×P×2 float, crop pixels of ``image`` (P = 478 MediaPipe mesh; missing points
                NaN or negative); optional, inpainting falls back to canonical AU anchors
    flow        B×2×(H/4)×(W/4) float: for each pixel of the quarter-resolution grid, where it was
                k frames earlier (synthetic: in the neutral face), in pixels of that grid; with
    flow_valid  B bool, whether the sample has a flow target (needed when ``cfg.flow``)
    image2      B×3×H×W float, a second augmented view (AUNCE, OT); optional
    expression  B long, expression class (``train.model.expression.EXPRESSIONS``) or -1; optional, AU
                prototypes give pseudo-labels where absent
    intensity   B×A float, AU intensity 0..5, NaN unknown; optional (intensity head)
    mask_noise  B×A float uniform in [0, 1): the inpainting mask draws of each sample; optional
                (else drawn from the forward's generator)
Other keys (e.g. ``index``) are ignored.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from train.model.au_branch import AUBranch
from train.model.au_centres import canonical_au_points, mesh_au_points
from train.model.aux_heads import (
    ExpressionHead,
    FlowDecoder,
    InpaintDecoder,
    TokenProjector,
    roi_mask,
)
from train.model.backbones import create_backbone
from train.model.config import TeacherConfig
from train.model.expression import EXPRESSIONS, WeightNet


class AUNet(nn.Module):
    """Backbone + AU branch: the exported AU detector, ``B×3×H×W`` (normalised) -> logits ``B×A``.

    timm-style methods: ``forward_features`` (relation-embedded AU tokens ``B×A×D``),
    ``forward_head`` (tokens -> logits), ``forward_intermediates`` (everything, for heads and
    distillation).
    """

    def __init__(self, backbone: nn.Module, au_branch: AUBranch, aus: tuple[str, ...]):
        super().__init__()
        self.backbone = backbone
        self.au_branch = au_branch
        self.aus = tuple(aus)

    def forward_intermediates(self, x: torch.Tensor) -> dict[str, Any]:
        """``{"features": [stride 8, 16, 32 maps], "map", "attn", "tokens_local", "tokens", "logits"}``."""
        feats = self.backbone(x)
        out: dict[str, Any] = {"features": feats, **self.au_branch.forward_tokens(feats)}
        out["logits"] = self.au_branch.head(out["tokens"])
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.au_branch.forward_tokens(self.backbone(x))["tokens"]

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return tokens if pre_logits else self.au_branch.head(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def has_intensity(self) -> bool:
        return self.au_branch.intensity is not None

    def forward_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits B×A, intensity B×A in 0..5 | None)`` from one pass: what export and
        evaluation read when the model has an intensity head."""
        tokens = self.forward_features(x)
        return self.forward_head(tokens), (self.au_branch.intensity_out(tokens) if self.has_intensity else None)


class AUExpressionModel(nn.Module):
    """``x -> (AU logits, expression logits)`` over the teacher's own modules (MAL look-ahead).

    Parameter names match the teacher's (``net.*``, ``expr_head.*``), so a
    ``torch.func.functional_call`` can swap in look-ahead weights by name.
    """

    def __init__(self, net: AUNet, expr_head: ExpressionHead):
        super().__init__()
        self.net, self.expr_head = net, expr_head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inter = self.net.forward_intermediates(x)
        return inter["logits"], self.expr_head(inter["tokens"], inter["map"])


class RTATLTeacher(nn.Module):
    """The teacher with its training-only heads. See the module docstring for the batch format.

    Args:
        cfg: model and loss options.
    """

    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        self.cfg = cfg
        points = canonical_au_points(cfg.aus)
        backbone = create_backbone(cfg.backbone, cfg.pretrained, cfg.input_size, cfg.drop_path)
        branch = AUBranch(backbone.channels, points, cfg.input_size, cfg.dim, cfg.relation_depth,
                          cfg.relation_heads, cfg.attn_sigma, cfg.dropout, cfg.intensity_head)
        self.net = AUNet(backbone, branch, cfg.aus)
        self.register_buffer("unit_points", torch.from_numpy(points), persistent=False)
        self.inpaint_head = InpaintDecoder(cfg.dim) if cfg.inpaint else None
        self.flow_head = FlowDecoder(cfg.dim) if cfg.flow else None
        self.aunce_head = TokenProjector(cfg.dim, cfg.aunce_dim) if cfg.aunce else None
        self.expr_head = ExpressionHead(cfg.dim, len(EXPRESSIONS)) if cfg.mal else None
        # Trained only by the MAL meta step (train.losses.mal.MetaAuxLearner), never by the task loss.
        self.mal_weight = WeightNet(len(EXPRESSIONS), cfg.mal_hidden) if cfg.mal else None

    def export_module(self) -> AUNet:
        """The deployable detector (backbone + AU branch, shared with this teacher, not a copy)."""
        return self.net

    def expression_model(self) -> AUExpressionModel:
        if self.expr_head is None:
            raise RuntimeError("this teacher has no expression head (TeacherConfig.mal is off)")
        return AUExpressionModel(self.net, self.expr_head)

    def main_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the task optimiser should update (all but the MAL weighting net)."""
        skip = {id(p) for p in self.mal_weight.parameters()} if self.mal_weight is not None else set()
        return (p for p in self.parameters() if id(p) not in skip)

    def au_logits(self, x: torch.Tensor) -> torch.Tensor:
        """AU logits ``B×A`` of normalised crops (the export module's output)."""
        return self.net(x)

    def au_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, intensity | None)`` of normalised crops in one pass (``AUNet.forward_outputs``)."""
        return self.net.forward_outputs(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(tokens, pre_logits)

    def intensity_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """AU intensities 0..5 of ``forward_features`` tokens (None without the head): distillation
        reads tokens, logits and intensities from one pass."""
        return self.net.au_branch.intensity_out(tokens) if self.net.has_intensity else None

    def au_points(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """AU anchors ``(B, A, 2, 2)`` in input pixels: per-sample mesh anchors where available."""
        x = batch["image"]
        h, w = x.shape[-2:]
        canon = self.unit_points * torch.tensor([w, h], dtype=x.dtype, device=x.device)
        lm = batch.get("landmarks")
        if self.cfg.mask_source == "landmarks" and lm is not None and lm.ndim == 3 and lm.shape[1] >= 468:
            return mesh_au_points(lm.to(x.dtype), self.cfg.aus, fallback=canon)
        return canon.expand(x.shape[0], *canon.shape)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None,
                aux: bool | None = None) -> dict[str, torch.Tensor]:
        """Run the detector and (when ``aux``, default: in training mode) every auxiliary head.

        Args:
            batch: see the module docstring.
            generator: CPU generator for the inpainting masks (reproducible runs).
            aux: force the auxiliary heads on or off.

        Returns:
            ``logits`` B×A, ``tokens`` B×A×D, and when on: ``intensity`` B×A, ``flow``
            B×2×H/4×W/4, ``inpaint`` B×3×H×W with ``inpaint_mask`` B×1×H×W, ``embed`` (and
            ``embed2``) B×A×E normalised, ``tokens2`` B×A×D (second view), ``expression_logits``.
        """
        x = batch["image"]
        inter = self.net.forward_intermediates(x)
        out = {"logits": inter["logits"], "tokens": inter["tokens"]}
        if self.cfg.intensity_head:
            out["intensity"] = self.net.au_branch.intensity_out(inter["tokens"])
        if not (self.training if aux is None else aux):
            return out
        h, w = x.shape[-2:]
        if self.flow_head is not None:
            out["flow"] = self.flow_head(inter["map"], inter["tokens"], inter["attn"], (h // 4, w // 4))
        if self.expr_head is not None:
            out["expression_logits"] = self.expr_head(inter["tokens"], inter["map"])
        if self.inpaint_head is not None:
            mask = roi_mask(self.au_points(batch), (h, w), self.cfg.mask_patch, self.cfg.mask_ratio,
                            generator, noise=batch.get("mask_noise")).to(x.dtype)
            masked = x * (1 - mask)  # 0 = the normalisation mean: a neutral grey patch
            with frozen_norm_statistics(self.net):  # masked images are not the data BatchNorm serves
                m = self.net.forward_intermediates(masked)
            out["inpaint"] = self.inpaint_head(m["map"], m["tokens"], m["attn"], masked, mask)
            out["inpaint_mask"] = mask
        if (self.cfg.aunce or self.cfg.ot) and batch.get("image2") is not None:
            out["tokens2"] = self.net.forward_features(batch["image2"])
        if self.aunce_head is not None:
            out["embed"] = self.aunce_head(inter["tokens"])
            if "tokens2" in out:
                out["embed2"] = self.aunce_head(out["tokens2"])
        return out


def create_teacher(cfg: TeacherConfig | dict[str, Any] | None = None, **overrides: Any) -> RTATLTeacher:
    """Build a teacher from a config, a plain mapping (YAML ``model:`` section) and/or overrides.

    Raises:
        ValueError: unknown keys or invalid values (see ``TeacherConfig``).
    """
    if isinstance(cfg, TeacherConfig):
        raw = {**cfg.to_dict(), **overrides}
    else:
        raw = {**(cfg or {}), **overrides}
    cfg = TeacherConfig.from_dict(raw)
    teacher = RTATLTeacher(cfg)
    if cfg.norm == "group":
        batchnorm_to_groupnorm(teacher)
    return teacher


def batchnorm_to_groupnorm(module: nn.Module, groups: int = 8) -> nn.Module:
    """Replace every BatchNorm2d in place by a GroupNorm with the same affine parameters."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            g = next(k for k in (groups, 4, 2, 1) if child.num_features % k == 0)
            gn = nn.GroupNorm(g, child.num_features, affine=child.affine)
            if child.affine:
                gn.weight.data.copy_(child.weight.data)
                gn.bias.data.copy_(child.bias.data)
            setattr(module, name, gn)
        else:
            batchnorm_to_groupnorm(child, groups)
    return module


@contextlib.contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with the batch's statistics but leave their running statistics
    (what evaluation and export use) untouched."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
