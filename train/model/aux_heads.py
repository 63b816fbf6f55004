"""Training-only heads of the RTATL teacher: RoI inpainting, single-image flow, expression, AUNCE.

None of these is part of ``RTATLTeacher.export_module()``. The two dense decoders read the neck's
stride-8 map together with the AU relation embedding written back onto it: each AU token is
projected and spread over its own attention map (peak-normalised), so the decoders see what the
AU branch believes about each region.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.model.au_branch import conv_bn_act


class RelationBroadcast(nn.Module):
    """AU tokens ``(B, A, D)`` spread onto the map through the AU attention: ``(B, C, h, w)``."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.proj = nn.Linear(dim, out)

    def forward(self, tokens: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        weights = attn / attn.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
        return torch.einsum("bahw,bac->bchw", weights, self.proj(tokens))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_act(cin, cout)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="bilinear", align_corners=False))


class InpaintDecoder(nn.Module):
    """Masked-image features -> the full-resolution image (normalised units).

    Stride 8 -> 4 -> 2 -> 1 by bilinear upsampling and 3x3 convs; at full resolution the masked
    image and the mask are concatenated so that visible context needs no reconstruction effort and
    capacity goes to the masked AU regions (the loss scores masked pixels only).
    """

    def __init__(self, dim: int, rel: int = 64, widths: tuple[int, int, int] = (128, 64, 32)):
        super().__init__()
        self.broadcast = RelationBroadcast(dim, rel)
        self.fuse = conv_bn_act(dim + rel, widths[0])
        self.up4 = _Up(widths[0], widths[1])
        self.up2 = _Up(widths[1], widths[2])
        self.up1 = _Up(widths[2], widths[2])
        self.out = nn.Sequential(conv_bn_act(widths[2] + 4, widths[2]), nn.Conv2d(widths[2], 3, 1))

    def forward(self, fmap: torch.Tensor, tokens: torch.Tensor, attn: torch.Tensor,
                masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, w = masked_image.shape[-2:]
        x = self.fuse(torch.cat([fmap, self.broadcast(tokens, attn)], dim=1))
        x = self.up4(x, (h // 4, w // 4))
        x = self.up2(x, (h // 2, w // 2))
        x = self.up1(x, (h, w))
        return self.out(torch.cat([x, masked_image, mask], dim=1))


class FlowDecoder(nn.Module):
    """One frame's features -> dense flow ``(B, 2, H/4, W/4)`` in pixels of that grid."""

    def __init__(self, dim: int, rel: int = 64, width: int = 96):
        super().__init__()
        self.broadcast = RelationBroadcast(dim, rel)
        self.fuse = conv_bn_act(dim + rel, width)
        self.up = _Up(width, width // 2)
        self.out = nn.Conv2d(width // 2, 2, 3, padding=1)

    def forward(self, fmap: torch.Tensor, tokens: torch.Tensor, attn: torch.Tensor,
                out_size: tuple[int, int]) -> torch.Tensor:
        x = self.fuse(torch.cat([fmap, self.broadcast(tokens, attn)], dim=1))
        return self.out(self.up(x, out_size))


class ExpressionHead(nn.Module):
    """The MAL auxiliary task: expression logits from the mean AU token and the pooled map."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, n_classes))

    def forward(self, tokens: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([tokens.mean(1), fmap.mean(dim=(-2, -1))], dim=-1))


class TokenProjector(nn.Module):
    """AUNCE projection: each AU token -> an L2-normalised embedding ``(B, A, E)``."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(tokens), dim=-1)


def roi_mask(points: torch.Tensor, size: tuple[int, int], patch: float, ratio: float,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Square masks over randomly chosen AU regions.

    Each AU of each sample is chosen with probability ``ratio`` (at least one AU per sample); a
    chosen AU masks a square of side ``patch * min(H, W)`` centred on each of its anchors.

    Args:
        points: ``(B, A, K, 2)`` anchors in input pixels (x, y); NaN anchors mask nothing.
        size: ``(H, W)`` of the input.
        patch: square side as a fraction of the input's shorter side.
        ratio: per-AU masking probability.
        generator: CPU generator for reproducible masks.
        noise: ``(B, A)`` uniform draws in [0, 1) to use instead of the generator's (the training
            data draws them per sample, so a sample's mask is the same in any batch or process).

    Returns:
        ``(B, 1, H, W)`` float mask, 1 = masked.
    """
    b, a, k, _ = points.shape
    h, w = size
    u = torch.rand(b, a, generator=generator) if noise is None else noise.to(torch.float32)
    pick = u < ratio
    first = torch.nn.functional.one_hot(u.argmin(dim=1), a).bool()  # the guaranteed AU
    pick = (pick | first).to(points.device)
    half = patch * min(h, w) / 2
    pts = points.reshape(b, a * k, 2)
    on = pick.repeat_interleave(k, dim=1) & torch.isfinite(pts).all(-1)  # (B, A*K)
    ys = torch.arange(h, device=points.device, dtype=points.dtype) + 0.5
    xs = torch.arange(w, device=points.device, dtype=points.dtype) + 0.5
    in_y = ((ys[None, None] - pts[..., 1:2]).abs() <= half) & on[..., None]  # (B, A*K, H)
    in_x = ((xs[None, None] - pts[..., 0:1]).abs() <= half)  # (B, A*K, W)
    cover = torch.bmm(in_y.transpose(1, 2).float(), in_x.float())  # (B, H, W): squares covering
    return (cover > 0).float()[:, None]
