"""Our side of the real check: the engine through the RUNTIME (``AUDetector``), as a user runs it.

Photos go through image mode where the runtime has it (``mode="image"``: no tracking or smoothing
state); on a runtime without modes each photo starts from ``reset()`` with smoothing off, which
is what a fresh detector would do. The clip goes through video mode with the runtime's defaults
(tracking, One Euro smoothing), frame by frame from ``AUDetector.stream``.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import cv2

from train.data.holdout import HeldOutFace


def _detector(engine: str, mode: str, face_model: str | None, threads: int | None):
    from runtime.detector import AUDetector

    kw: dict = {"max_faces": 1, "face_model": face_model, "threads": threads}
    if "mode" in inspect.signature(AUDetector).parameters:
        kw["mode"] = mode
    if mode == "image":
        kw["smooth"] = False
    return AUDetector(engine, **kw)


def open_engine(engine: str, threads: int | None = None):
    """Load the engine once to read its card and backend (raises the runtime's one-line errors)."""
    from runtime.engines import load_engine

    return load_engine(engine, threads=threads)


def run_photos(engine: str, faces: Sequence[HeldOutFace], face_model: str | None = None,
               threads: int | None = None) -> tuple[list[dict | None], dict]:
    """Per photo the AU probabilities of the first face (``None``: no face found or unreadable),
    and the mode used."""
    out: list[dict | None] = []
    with _detector(engine, "image", face_model, threads) as det:
        image_mode = getattr(det, "running_mode", None) == "image" or getattr(det, "mode", None) == "image"
        for f in faces:
            bgr = cv2.imread(str(f.path))
            if bgr is None:
                out.append(None)
                continue
            if not image_mode:
                det.reset()
            result = det.process(bgr, 0.0)
            out.append(dict(result.faces[0].au_prob) if result.faces else None)
    return out, {"mode": "image" if image_mode else "reset per photo (runtime without image mode)",
                 "smooth": False}


def run_clip(engine: str, clip: Path, max_frames: int | None, face_model: str | None = None,
             threads: int | None = None) -> tuple[list[dict], dict]:
    """Per frame ``{"frame", "time_s", "prob"}`` (``prob`` None where no face was found)."""
    frames: list[dict] = []
    with _detector(engine, "video", face_model, threads) as det:
        for result in det.stream(str(clip), max_frames=max_frames):
            frames.append({"frame": int(result.frame), "time_s": float(result.time_s),
                           "prob": dict(result.faces[0].au_prob) if result.faces else None})
        skipped = dict(det.skipped)
    return frames, {"mode": "video", "smooth": True, "skipped": skipped}
