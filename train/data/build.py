"""Caches a preset builds for itself (``build:`` in configs/smoke.yaml), built once per run even
under torchrun, and the records of unlabeled videos (``python -m train.data pairs``).
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.aus import DEFAULT_MODEL_AUS, au_name
from runtime.cv_path import open_video


def build_from_spec(spec: dict, out: str | Path) -> dict:
    """A preset's ``build:`` section -> a cache at ``out``. Kinds: ``synth``."""
    kind = spec.get("kind")
    if kind == "synth":
        from train.data.synth_cache import synth_cache

        faces = Path(os.path.expandvars(str(spec.get("faces", "$AU_DATA_DIR/london/neutral"))))
        return synth_cache(faces, out, int(spec.get("n", 200)), int(spec.get("seed", 0)),
                           render_aus=spec.get("aus"), low=float(spec.get("low", 1.0)),
                           max_active=int(spec.get("max_active", 3)))
    raise ValueError(f"build.kind {kind!r} is not known; use 'synth'")


def ensure_built(spec: dict, out: str | Path, timeout_s: float = 3600) -> None:
    """Build a preset's data once: rank 0 builds, other torchrun ranks wait for the manifest.

    Raises:
        FileNotFoundError: the manifest did not appear within ``timeout_s`` on a waiting rank.
    """
    manifest = Path(out) / "manifest.json"
    if manifest.is_file():
        return
    if int(os.environ.get("RANK", "0")) == 0:
        build_from_spec(spec, out)
        return
    deadline = time.monotonic() + timeout_s
    while not manifest.is_file():
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{manifest} did not appear within an hour (rank 0 builds it)")
        time.sleep(2)


def video_records(videos: Sequence[str | Path], every: int = 1) -> tuple[list[str], list]:
    """Unlabeled frames of any videos (every AU unknown): material for the single-image flow task."""
    from train.data.records import FrameRecord

    aus = [au_name(a) for a in DEFAULT_MODEL_AUS]
    records = []
    for video in videos:
        video = Path(video)
        cap = open_video(video)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        if n <= 0:
            raise FileNotFoundError(f"cannot read video {video}; check the path and that OpenCV's FFmpeg decodes it")
        records += [FrameRecord(dataset="pairs", subject=video.stem, video=video.stem, frame=i, image_path=None,
                                video_path=str(video), video_index=i, labels=np.zeros(len(aus), np.float32),
                                mask=np.zeros(len(aus), bool), intensity=None, label_kind="real")
                    for i in range(0, n, max(1, every))]
    return aus, records
