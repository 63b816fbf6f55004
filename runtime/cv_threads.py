"""OpenCV's own thread pool, as the detector wants it.

Why: a frame's OpenCV work is small (a 192-px mesh crop, a 112-px aligned crop, a 64-px scene-cut
sample: tens of microseconds each), so splitting it over threads gains nothing, while a second pool
of threads contends for the cores with the engines' LiteRT threads. On a 2-core CPU, one OpenCV
thread made whole frames 10-15 % faster (``python -m device_tests.pipeline``, README). The setting
is process-wide (``cv2.setNumThreads``), so ``None`` leaves it to the application.
"""
from __future__ import annotations

import cv2

DEFAULT_OPENCV_THREADS = 1


def check_opencv_threads(n: int | None) -> None:
    """``n`` is None or an integer >= 1.

    Raises:
        ValueError: naming the value and what to pass.
    """
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"opencv_threads must be an integer >= 1, or None to leave OpenCV's setting alone, "
                         f"got {n!r}")


def apply_opencv_threads(n: int | None) -> None:
    """Set OpenCV's thread count to ``n`` (process-wide); None: leave it."""
    check_opencv_threads(n)
    if n is not None:
        cv2.setNumThreads(n)
