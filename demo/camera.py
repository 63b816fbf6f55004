"""``python -m demo.camera``: the demo live from a webcam with the overlay window (``make camera``).

Checks first, in one line each (exit 2): a display, then the camera, then an OpenCV with a GUI
(``make camera`` installs one). Then it runs ``python -m demo --source N --show``: q or Esc in the
window (or Ctrl-C) stops, and out/camera/ gets the same video, JSONL, CSV, timeline and report.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.cli import OneLineParser, number
from runtime.errors import print_error


def no_display() -> str | None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set): `make camera` needs a screen; use `make demo` for files"
    return None


def no_camera(index: int) -> str | None:
    """Why camera ``index`` cannot give a frame, or None when it can."""
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        return f"no camera {index} (/dev/video{index} does not exist); plug one in or pass CAMERA=N"
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # OpenCV's own V4L warnings before our one line
    import cv2

    cap = cv2.VideoCapture(index)
    try:
        ok = cap.isOpened() and cap.read()[0]
    finally:
        cap.release()
    return None if ok else (f"camera {index} gives no frames (in use by another program, or no permission: "
                            "add yourself to the 'video' group)")


def no_gui() -> str | None:
    try:
        from runtime.outputs.show import _gui_backend
    except ImportError as e:  # opencv-python without its system libraries (libGL)
        return f"OpenCV does not load ({e}); on Debian/Ubuntu: apt-get install libgl1 libglib2.0-0"
    if _gui_backend() == "NONE":
        return ("this OpenCV has no GUI (opencv-python-headless); `make camera` installs opencv-python, or "
                "pip install opencv-python after uninstalling opencv-python-headless")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m demo.camera", description=__doc__.splitlines()[0])
    p.add_argument("--camera", type=number(int, 0), default=0, help="camera index (default 0)")
    p.add_argument("--engine", default="default", help="engine file with its card, or 'default'")
    p.add_argument("--out", default="out/camera", help="output folder (default out/camera)")
    p.add_argument("--preflight", action="store_true", help="only check display and camera (exit 0 or 2)")
    p.add_argument("--face-model", metavar="PATH", help="folder or .task bundle with the face models")
    p.add_argument("--no-person-baseline", action="store_true", help="no per-person baseline (on by default)")
    args = p.parse_args(argv)
    reason = no_display() or no_camera(args.camera) or (None if args.preflight else no_gui())
    if reason:
        return print_error(reason)
    if args.preflight:
        return 0
    from demo.__main__ import main as demo_main

    extra = ["--face-model", args.face_model] if args.face_model else []
    extra += ["--no-person-baseline"] if args.no_person_baseline else []
    return demo_main(["--engine", args.engine, "--source", str(args.camera), "--show", "--out", args.out, *extra])


if __name__ == "__main__":
    sys.exit(main())
