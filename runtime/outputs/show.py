"""``--show``: the overlay in an OpenCV window; ``q`` or Esc (or closing the window) asks to quit.

Without a display or with a GUI-less OpenCV (opencv-python-headless) it warns once and does nothing,
so a headless robot or CI run never crashes on ``--show``.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from runtime.errors import stderr_line
from runtime.outputs.base import Output
from runtime.outputs.draw import Annotator
from runtime.results import FrameResult

QUIT_KEYS = (ord("q"), ord("Q"), 27)


def no_window_reason() -> str | None:
    """Why no window can be shown here, or None when one can be tried."""
    reasons = []
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        reasons.append("no display (DISPLAY is not set)")
    if _gui_backend() == "NONE":
        reasons.append("this OpenCV has no GUI (opencv-python-headless; install opencv-python for windows)")
    return " and ".join(reasons) or None


def _gui_backend() -> str:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() or "NONE"
    return "UNKNOWN"


class ShowOutput(Output):
    """An on-screen overlay window; disabled (one warning line) where no window can open."""

    def __init__(self, aus: Sequence[str] | None = None, *, window: str = "au-edge",
                 annotator: Annotator | None = None, log: Callable[[str], None] = stderr_line):
        self.window, self.annotator, self._log = window, annotator or Annotator(aus or []), log
        self.enabled = False
        reason = no_window_reason()
        if reason is None:
            try:
                cv2.namedWindow(window, cv2.WINDOW_NORMAL)
                self.enabled = True
            except cv2.error as e:
                reason = f"cannot open a window ({str(e).strip().splitlines()[-1][:120]})"
        if reason:
            self._disable(reason)

    def _disable(self, reason: str) -> None:
        self.enabled = False
        self._log(f"au-edge: warning: --show disabled: {reason}; use --record OUT.mp4 to keep the overlay")

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if not self.enabled or frame_bgr is None:
            return
        try:
            cv2.imshow(self.window, self.annotator.annotate(result, frame_bgr))
            key = cv2.waitKey(1) & 0xFF
            closed = cv2.getWindowProperty(self.window, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error as e:
            self._disable(f"the window failed ({str(e).strip().splitlines()[-1][:120]})")
            return
        if key in QUIT_KEYS or closed:
            self.quit_requested = True

    def close(self) -> None:
        if self.enabled:
            try:
                cv2.destroyWindow(self.window)
                cv2.waitKey(1)  # let the GUI loop actually remove it
            except cv2.error:
                pass
            self.enabled = False
