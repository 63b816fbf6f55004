"""``AUDetector``: camera frames -> faces -> aligned crops -> AU probabilities, for robot software.

```python
from runtime import AUDetector
det = AUDetector("au.tflite", max_faces=4)      # or AUDetector("default")
result = det.process(frame_bgr, timestamp_s)    # FrameResult(faces=[FaceAU(...)])
for result in det.stream(source=0): ...         # same objects, from any source
```
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from runtime.align import align_face
from runtime.engines import Engine, load_engine
from runtime.face import FaceStage
from runtime.results import FaceAU, FrameResult
from runtime.smoothing import TrackSmoother

MIN_FRAME_SIDE = 16  # smaller frames cannot hold a detectable face; they are counted, not run


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


class AUDetector:
    """Faces, 5 points and AU probabilities for each frame, with per-track smoothing.

    Args:
        engine: engine file (``.onnx``, ``.tflite``, ``.trt``...) with its card, or ``"default"``.
        max_faces: faces tracked at once (the largest/most confident are kept).
        face_model: folder or ``.task`` bundle with the face models (else AU_FACE_MODEL, cache, PyPI).
        detector: ``"full"`` (BlazeFace full range: faces across a room) or ``"short"`` (close-ups).
        smooth: One Euro smoothing + threshold hysteresis per track.
        threads: CPU threads for the engines.
    """

    def __init__(self, engine: str | Path | Engine = "default", max_faces: int = 4,
                 face_model: str | None = None, detector: str = "full", smooth: bool = True,
                 threads: int | None = None, detect_every: int = 10):
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        self.engine = engine if isinstance(engine, Engine) else load_engine(engine, threads=threads)
        card = self.engine.card
        self.aus = list(card.aus)
        self._thr = np.array([card.threshold(a) for a in self.aus], np.float32)
        self._align = card.alignment
        self._size = card.input.size[0]
        self.faces = FaceStage(face_model=face_model, detector=detector, max_faces=max_faces,
                               threads=threads, detect_every=detect_every)
        self.smoother = TrackSmoother(self._thr, enabled=smooth)
        self.skipped: Counter[str] = Counter()
        self._frames = 0

    def process(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> FrameResult:
        """Detect, align and score the faces of one frame (tracking carries over between calls).

        Args:
            frame_bgr: HxWx3 BGR uint8 (gray and BGRA are converted).
            timestamp_s: capture time, for smoothing; defaults to frame count / 30.
        """
        t0 = time.perf_counter()
        index = self._frames
        self._frames += 1
        t = float(timestamp_s) if timestamp_s is not None else index / 30.0
        bgr = to_bgr(frame_bgr)
        if min(bgr.shape[:2]) < MIN_FRAME_SIDE:
            self.skipped["tiny_frame"] += 1
            return FrameResult(frame=index, time_s=t, latency_ms=(time.perf_counter() - t0) * 1e3)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        faces = self.faces.process(rgb)
        t1 = time.perf_counter()
        crops = [align_face(rgb, f.points5, crop_size=int(self._align["crop_size"]),
                            template=self._align["template"], scale=float(self._align["scale"]),
                            out_size=self._size)[0] for f in faces]
        t2 = time.perf_counter()
        probs = self.engine.infer(np.stack(crops)) if crops else np.zeros((0, len(self.aus)), np.float32)
        t3 = time.perf_counter()
        results = []
        for face, p in zip(faces, probs):
            p_s, active = self.smoother(face.track_id, p, t)
            results.append(FaceAU(
                track_id=int(face.track_id), bbox=tuple(float(v) for v in face.bbox), score=float(face.score),
                landmarks5=face.points5, landmarks=face.landmarks,
                au_prob={a: float(v) for a, v in zip(self.aus, p_s)},
                au_active={a for a, on in zip(self.aus, active) if on},
            ))
        self.smoother.forget_stale(t)
        t4 = time.perf_counter()
        stages = {"face": (t1 - t0) * 1e3, "align": (t2 - t1) * 1e3, "au": (t3 - t2) * 1e3,
                  "post": (t4 - t3) * 1e3}
        return FrameResult(frame=index, time_s=t, faces=results, latency_ms=(t4 - t0) * 1e3,
                           stages_ms=stages)

    def stream(self, source: str | int = 0, max_frames: int | None = None) -> Iterator[FrameResult]:
        """Results for every frame of a source (camera index, file, folder, URL, ``gst:...``).

        Frame numbers and times are the source's; ``stages_ms["decode"]`` is the capture thread's
        read/decode time of the frame (it overlaps inference), ``stages_ms["wait"]`` the time this
        loop waited for it.
        """
        for result, _ in self.stream_frames(source, max_frames):
            yield result

    def stream_frames(self, source: str | int = 0,
                      max_frames: int | None = None) -> Iterator[tuple[FrameResult, np.ndarray]]:
        """Like ``stream``, also yielding each BGR frame (for drawing and recording)."""
        from runtime.sources import open_source

        with open_source(source) as src:
            self.reset()
            n = 0
            t_wait = time.perf_counter()
            try:
                for frame in src:
                    wait_ms = (time.perf_counter() - t_wait) * 1e3
                    result = self.process(frame.image, frame.time_s)
                    result.frame, result.source = frame.index, frame.name
                    result.stages_ms["decode"] = frame.decode_ms
                    result.stages_ms["wait"] = wait_ms
                    yield result, frame.image
                    n += 1
                    if max_frames is not None and n >= max_frames:
                        break
                    t_wait = time.perf_counter()
            finally:
                self.skipped.update(src.skipped)

    def reset(self) -> None:
        """Forget tracks and smoothing state (a new, unrelated source)."""
        self.faces.reset()
        self.smoother.reset()
        self._frames = 0

    def close(self) -> None:
        self.faces.close()
        self.engine.close()

    def __enter__(self) -> "AUDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
