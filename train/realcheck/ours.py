"""Our side of the real check: the engine through the RUNTIME (``AUDetector``), as a user runs it.

Photos go through image mode (``mode="image"``: no tracking or smoothing state, every photo
detected afresh). The clip goes through video mode with the runtime's defaults
(tracking, the per-person baseline, One Euro smoothing), frame by frame from ``AUDetector.stream``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runtime.cv_path import decode_image
from train.data.holdout import HeldOutFace


def _detector(engine: str, mode: str, face_model: str | None, threads: int | None):
    from runtime.detector import AUDetector

    return AUDetector(engine, max_faces=1, face_model=face_model, threads=threads, mode=mode)


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
        for f in faces:
            bgr = decode_image(f.path)
            if bgr is None:
                out.append(None)
                continue
            result = det.process(bgr, 0.0)
            out.append(dict(result.faces[0].au_prob) if result.faces else None)
    return out, {"mode": "image", "smooth": False, "person_baseline": False}


def run_clip(engine: str, clip: Path, max_frames: int | None, face_model: str | None = None,
             threads: int | None = None) -> tuple[list[dict], dict]:
    """Per frame ``{"frame", "time_s", "prob", "active"}`` (``prob`` None where no face was found;
    ``active`` the runtime's decisions, with its smoothing and hysteresis)."""
    frames: list[dict] = []
    with _detector(engine, "video", face_model, threads) as det:
        for result in det.stream(str(clip), max_frames=max_frames):
            frames.append({"frame": int(result.frame), "time_s": float(result.time_s),
                           "prob": dict(result.faces[0].au_prob) if result.faces else None,
                           "active": sorted(result.faces[0].au_active) if result.faces else None})
        skipped = dict(det.skipped)
    return frames, {"mode": "video", "smooth": True, "person_baseline": True, "skipped": skipped}
