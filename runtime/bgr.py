"""Frames as the runtime takes them: contiguous H x W x 3, BGR, uint8.

Two doors, one conversion: ``to_bgr`` for frames handed to the API (8-bit only; anything else is the
caller's mistake and named), ``as_bgr`` for frames a source decoded (gray, BGRA or 16-bit frames
from cameras and pipelines are brought to 8 bits first, since the contract is BGR uint8).
"""
from __future__ import annotations

import cv2
import numpy as np


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Any 8-bit frame (gray, gray+1, BGR, BGRA) -> contiguous HxWx3 BGR.

    Raises:
        ValueError: not an image array (wrong ndim, channels or dtype), naming what was given.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame dtype must be uint8, got {frame.dtype} (convert with "
                         "cv2.convertScaleAbs or (x*255).astype(np.uint8))")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.ascontiguousarray(frame)
    raise ValueError(f"frame must be HxW, HxWx1, HxWx3 or HxWx4, got shape {frame.shape}")


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A decoded frame of any depth -> BGR uint8 (16 bit: the high byte; other depths: saturated)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image)
    return to_bgr(image)
