"""Dense optical-flow targets for the temporal self-supervised task on unlabeled video.

Why: between two aligned crops of one face (frames ``t`` and ``t - k``) the flow says which facial
parts moved and where; a model that predicts it learns AU-relevant motion features without labels.
OpenCV's DIS flow is fast enough to precompute, and targets are stored small (float16, 1/4 side).

Convention (everywhere in au-edge, and the one ``cv2.DISOpticalFlow.calc(a, b)`` uses):
``flow = dis_flow(a, b)`` means pixel ``p`` of ``a`` is found at ``p + flow[p]`` in ``b``, i.e.
``a(p) ~ b(p + flow(p))``. Training targets are ``dis_flow(frame_t, frame_t_minus_k)`` (see
``train.data.cache``). ``warp_by_flow(b, flow)`` samples ``b`` at ``p + flow(p)``: a backward
warp that reproduces ``a``. ``flow[..., 0]`` is x (columns), ``flow[..., 1]`` is y (rows), pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
STORE_DTYPE = np.float16


def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        gray = img
    elif img.ndim == 3 and img.shape[2] == 3:
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    else:
        raise ValueError(f"expected HxW or HxWx3 image, got shape {img.shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 image, got {gray.dtype}")
    return gray


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """DIS optical flow from ``a`` to ``b`` (HxWx2 float32; ``a(p) ~ b(p + flow(p))``).

    Args:
        a, b: same-size uint8 images, gray or BGR (converted to gray).
        preset: ``"medium"`` (targets), ``"fast"`` or ``"ultrafast"``.

    Raises:
        ValueError: unknown preset, or images of different size or unsupported type.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; known: {sorted(PRESETS)}")
    ga, gb = _gray(a), _gray(b)
    if ga.shape != gb.shape:
        raise ValueError(f"images differ in size: {ga.shape} vs {gb.shape}")
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    return dis.calc(ga, gb, None)


def downsample_flow(flow: np.ndarray, factor: int) -> np.ndarray:
    """The flow at ``1/factor`` of the size for storage: area-averaged, vectors divided by
    ``factor`` (they are in pixels of the smaller grid), float16.

    Raises:
        ValueError: ``factor < 1`` or a size not divisible by it.
    """
    h, w = flow.shape[:2]
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"factor {factor} must be >= 1 and divide the flow size {w}x{h}")
    small = cv2.resize(flow.astype(np.float32), (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return (small / factor).astype(STORE_DTYPE)


def upsample_flow(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Back to full size ``(height, width)``: bilinear, vectors scaled per axis (float32)."""
    h, w = size
    sh, sw = small.shape[:2]
    big = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    big[..., 0] *= w / sw
    big[..., 1] *= h / sh
    return big


def warp_by_flow(img: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Backward warp: ``out(p) = img(p + flow(p))`` (bilinear). With ``flow = dis_flow(a, b)``,
    ``warp_by_flow(b, flow)`` approximates ``a``.

    Raises:
        ValueError: flow and image sizes differ.
    """
    h, w = flow.shape[:2]
    if img.shape[:2] != (h, w):
        raise ValueError(f"image {img.shape[:2]} and flow {flow.shape[:2]} differ in size")
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    return cv2.remap(img, grid + flow.astype(np.float32), None, cv2.INTER_LINEAR, borderMode=border)


def flow_target(a: np.ndarray, b: np.ndarray, factor: int = 4, preset: str = "medium") -> np.ndarray:
    """The stored target of one pair: ``downsample_flow(dis_flow(a, b), factor)`` (float16)."""
    return downsample_flow(dis_flow(a, b, preset), factor)


def pair_indices(n_frames: int, k: int, stride: int = 1) -> np.ndarray:
    """Frame pairs ``(t, t + k)`` for ``t = 0, stride, 2*stride, ...`` inside the clip (Px2 int64).

    Raises:
        ValueError: ``n_frames < 0``, ``k < 1`` or ``stride < 1``.
    """
    if n_frames < 0 or k < 1 or stride < 1:
        raise ValueError(f"need n_frames >= 0, k >= 1, stride >= 1; got {n_frames}, {k}, {stride}")
    t = np.arange(0, max(n_frames - k, 0), stride, dtype=np.int64)
    return np.stack([t, t + k], axis=1)


def photometric_error(a: np.ndarray, b: np.ndarray, margin: int = 0) -> float:
    """Mean absolute difference (gray levels) of two images, ignoring ``margin`` pixels per side."""
    sl = (slice(margin, a.shape[0] - margin), slice(margin, a.shape[1] - margin))
    return float(np.mean(np.abs(a[sl].astype(np.float32) - b[sl].astype(np.float32))))
