"""``sensor_msgs/msg/Image`` payloads -> BGR frames, without cv_bridge (numpy only).

The live node subscribes to a camera topic; cv_bridge would tie au-edge to the ROS install's OpenCV
and numpy, so the few 8-bit encodings cameras publish are unpacked here.
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (channels, conversion to BGR or None)
ENCODINGS = {
    "bgr8": (3, None),
    "rgb8": (3, cv2.COLOR_RGB2BGR),
    "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR),
    "mono8": (1, cv2.COLOR_GRAY2BGR),
    "8UC1": (1, cv2.COLOR_GRAY2BGR),
    "8UC3": (3, None),  # OpenCV's own layout: BGR
}


def image_to_bgr(height: int, width: int, encoding: str, step: int, data: bytes | bytearray | memoryview |
                 np.ndarray) -> np.ndarray:
    """One ``sensor_msgs/Image`` (its fields) -> a contiguous HxWx3 BGR uint8 array.

    Args:
        height, width, encoding, step, data: the message's fields (``step``: bytes per row,
            padding allowed).

    Raises:
        ValueError: an encoding not in ``ENCODINGS`` or a payload shorter than ``step * height``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"image encoding {encoding!r} is not supported: publish one of "
                         f"{', '.join(ENCODINGS)} (e.g. image_proc or a camera driver's 'bgr8' option)")
    channels, code = ENCODINGS[encoding]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0 or step < width * channels:
        raise ValueError(f"image {width}x{height} {encoding} with step {step} is inconsistent "
                         f"(step must be >= width * {channels})")
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if buf.size < step * height:
        raise ValueError(f"image payload has {buf.size} bytes; {width}x{height} {encoding} with step {step} "
                         f"needs {step * height}")
    rows = buf[: step * height].reshape(height, step)[:, : width * channels]
    image = rows.reshape(height, width, channels)
    if code is None:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(np.ascontiguousarray(image), code)
