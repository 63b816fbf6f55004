"""``AUDetector``: camera frames -> faces -> aligned crops -> AU probabilities, for robot software.

```python
from runtime import AUDetector
det = AUDetector("au.tflite", max_faces=4)      # or AUDetector("default")
result = det.process(frame_bgr, timestamp_s)    # FrameResult(faces=[FaceAU(...)]); video mode
photo = AUDetector("au.tflite", mode="image").process(image_bgr)   # each call on its own
for result in det.stream(source=0): ...         # same objects, from any source
live = AUDetector("au.tflite", mode="live", result_callback=fn)    # fn(result, frame_bgr, timestamp_s)
live.detect_async(frame_bgr, timestamp_s)       # returns at once; dropped while the worker is busy
```
Threads: one detector may be shared by several threads (a ROS 2 multi-threaded executor does this).
LiteRT interpreters are not reentrant, so each call runs under the detector's lock: calls from
several threads run one after another and give exactly the results of the same calls made serially.
For throughput on several cores, give each thread its own ``AUDetector``.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.align import align_face, five_points
from runtime.bgr import to_bgr
from runtime.cv_threads import DEFAULT_OPENCV_THREADS, apply_opencv_threads
from runtime.engines import Engine, load_engine
from runtime.face import FaceStage
from runtime.live import LiveWorker, ResultCallback
from runtime.mesh_measures import BLINK_AU, MeshMeasures
from runtime.neutral import check_baseline_options
from runtime.neutral import person_baseline as make_baseline
from runtime.results import FaceAU, FrameResult
from runtime.smoothing import LandmarkSmoother, TrackSmoother, ValueSmoother

if TYPE_CHECKING:
    from runtime.sources import FrameSource

MIN_FRAME_SIDE = 16  # smaller frames cannot hold a detectable face; they are counted, not run
MODES = ("video", "image", "live")
VIDEO_MAX_FACES = 4  # max_faces="auto" outside image mode: faces tracked at once
RETIMED = "retimed_frame"  # a source frame whose time did not increase (given last time + 1 ms)
LARGE_NO_FACE = "large_frame_no_face"  # processed, but a large frame gave no face (FaceStage.hint)
__all__ = ["MODES", "VIDEO_MAX_FACES", "AUDetector", "default_max_faces", "max_faces_for", "running_mode",
           "to_bgr"]


def max_faces_for(mode: str) -> int | None:
    """The default face cap of a running mode: none for photos (every face of a photo counts), else
    ``VIDEO_MAX_FACES`` (tracking cost grows with every face)."""
    return None if mode == "image" else VIDEO_MAX_FACES


def default_max_faces(source: str | int | os.PathLike, mode: str | None = None) -> int | None:
    """The command lines' ``--max-faces`` default: ``max_faces_for`` the mode ``source`` will run in."""
    from runtime.sources import is_image_source

    return max_faces_for(running_mode(mode, is_image_source(source)))


def running_mode(mode: str | None, image_source: bool = False, calibrate_neutral_s: float = 0.0) -> str:
    """The one place the running mode is decided: ``mode`` when given, else image for an image file or
    folder (each picture on its own) and video for everything else (and for ``process`` calls).

    Raises:
        ValueError: an unknown mode, or a neutral calibration (it needs tracks) in image mode.
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (or None: chosen by the source), got {mode!r}")
    chosen = mode or ("image" if image_source else "video")
    if chosen == "image" and calibrate_neutral_s:
        raise ValueError(f"calibrate_neutral_s={calibrate_neutral_s} needs tracks: use mode='video'")
    return chosen


class AUDetector:
    """Faces, 5 points and AU probabilities for each frame, with per-track smoothing.

    Running modes, as MediaPipe's Tasks API has them: ``"video"`` tracks faces from call to call
    (ids, landmark and AU smoothing, hysteresis) and needs increasing timestamps; ``"image"``
    treats every call as an unrelated photo (detected afresh, ids 1..n, no smoothing); ``"live"``
    tracks as video does, but frames go in through ``detect_async`` and results come out through
    ``result_callback`` on a worker thread (``runtime.live``).

    Thread safety: every call holds the detector's lock, so one detector may be shared by threads
    (results equal serial calls). In video mode the calls then run in the order they take the lock,
    and each must carry a later timestamp than the one run before it (else ``ValueError``): feed a
    video-mode detector from one thread, or use live mode. ``stream()`` owns the detector while it
    runs: ``process()`` from another thread meanwhile is a ``ValueError``.

    Args:
        engine: engine file (``.onnx``, ``.tflite``, ``.trt``...) with its card, or ``"default"``.
        max_faces: faces tracked at once (the most confident detections are kept); ``None``: no cap;
            ``"auto"`` (default): no cap in image mode (every face of a photo; for ``stream`` with
            ``mode=None``, decided by the source), else ``VIDEO_MAX_FACES``. A cap shows in every
            result as ``faces_beyond_max``.
        face_model: folder or ``.task`` bundle with the face models (else AU_FACE_MODEL, cache, PyPI).
        detector: ``"full"`` (both BlazeFace ranges, tiles of large frames: faces of every size) or
            ``"short"`` (the short-range model alone: faces within ~2 m, cheapest).
        smooth: One Euro smoothing + threshold hysteresis per track (video mode).
        threads: CPU threads for the engines.
        mode: ``"video"``, ``"image"``, ``"live"``, or ``None``: video for ``process``, and for
            ``stream`` chosen by the source (image files and folders: image; everything else: video).
        detect_every: while fewer than ``max_faces`` are tracked, the face detector also runs
            every N frames to pick up newcomers (default 10: a newcomer is found within 10
            frames for about a tenth of a detector run per frame; ``1``: every such frame;
            ``0``: only while a face is missing — none tracked, or a track lost).
        person_baseline: per-track baseline against identity bias (``runtime.neutral.PersonBaseline``:
            each AU's running low quantile over the track, its excess over a neutral face's removed
            in logit space, before smoothing); video and live mode, image mode is never changed.
        calibrate_neutral_s: ``> 0``: instead, the per-AU median of the track's first seconds (which
            must be neutral) is subtracted from its AU probabilities (``runtime.neutral``; not images).
        smooth_landmarks: One Euro on the face mesh before alignment (MediaPipe's video-mode
            filter); ``None``: as ``smooth``. Never in image mode.
        head_pose: ``FaceAU.head_pose`` from the mesh (``runtime.head_pose``).
        blink: AU45 (eye closure) from the mesh's eyelids in ``au_prob``/``au_active``
            (``runtime.blink``; per track in video mode); not when the engine outputs AU45 itself.
        result_callback: live mode only, and required there: ``fn(result, frame_bgr, timestamp_s)``,
            called on the worker thread for every frame ``detect_async`` accepted.
        mesh_every: video and live mode: the face mesh runs at least every N frames on a reliably
            tracked face, which optical flow follows between (``runtime.face.follow``; the AU crop
            follows the head, while the landmarks, head pose's pitch/yaw and AU45 hold the last
            mesh's reading until the next run; ``FaceAU.meshed`` says which). 1: every frame.
        opencv_threads: OpenCV's thread count, set process-wide when the detector is made
            (``runtime.cv_threads``: 1, the default, keeps OpenCV's pool off the cores the engines'
            threads use); ``None`` leaves OpenCV's setting alone.

    Raises:
        ValueError: a bad option value, naming it.
    """

    def __init__(self, engine: str | Path | Engine = "default", max_faces: int | None | str = "auto",
                 face_model: str | None = None, detector: str = "full", smooth: bool = True,
                 threads: int | None = None, mode: str | None = None, detect_every: int = 10,
                 calibrate_neutral_s: float = 0.0, smooth_landmarks: bool | None = None,
                 head_pose: bool = True, blink: bool = True, result_callback: ResultCallback | None = None,
                 person_baseline: bool = True, opencv_threads: int | None = DEFAULT_OPENCV_THREADS,
                 mesh_every: int = 1):
        self._auto_cap = isinstance(max_faces, str) and max_faces == "auto"  # follows the running mode
        if self._auto_cap:
            max_faces = max_faces_for(mode or "video")
        if max_faces is not None and (not isinstance(max_faces, int) or isinstance(max_faces, bool)
                                      or max_faces < 1):
            raise ValueError(f"max_faces must be an integer >= 1, None (no cap) or 'auto', got {max_faces!r}")
        if mode == "live" and not callable(result_callback):
            raise ValueError("mode='live' needs result_callback=fn(result, frame_bgr, timestamp_s): results "
                             "of detect_async come back through it")
        if mode != "live" and result_callback is not None:
            raise ValueError(f"result_callback is for mode='live' only (this detector runs in mode={mode!r}); "
                             "drop it, or pass mode='live' and feed frames with detect_async")
        self._mode = running_mode(mode, calibrate_neutral_s=calibrate_neutral_s)  # what process() runs in
        self.max_faces = max_faces
        check_baseline_options(person_baseline, calibrate_neutral_s)  # before the engine loads
        apply_opencv_threads(opencv_threads)
        self._calibrate_neutral_s = float(calibrate_neutral_s)
        self.engine = engine if isinstance(engine, Engine) else load_engine(engine, threads=threads)
        card = self.engine.card
        self.baseline = make_baseline(card, person_baseline, calibrate_neutral_s)  # video mode, per track
        self.aus = list(card.aus)  # the engine's outputs, in its order
        self.measures = MeshMeasures(head_pose=head_pose, blink=blink and BLINK_AU not in self.aus)
        # What the results carry: the engine's AUs + the mesh's (AU45); outputs take their columns from it.
        self.output_aus = self.aus + self.measures.aus
        # AUs the engine estimates intensity for (its card's output.intensity; FaceAU.au_intensity,
        # CSV AUxx_r): none for an occurrence-only model, and never derived from a probability.
        self.intensity_aus: list[str] = list(self.engine.intensity_aus)
        self._thr = np.array([card.threshold(a) for a in self.aus], np.float32)
        self._align = card.alignment
        self._size = card.input.size[0]
        self.faces = FaceStage(face_model=face_model, detector=detector, max_faces=max_faces,
                               threads=threads, detect_every=detect_every, mesh_every=mesh_every)
        self.mode = mode  # None: stream() lets the source choose
        self.smoother = TrackSmoother(self._thr, enabled=smooth)
        self.intensity_smoother = ValueSmoother(enabled=smooth)
        self.smooth_landmarks = smooth if smooth_landmarks is None else bool(smooth_landmarks)
        self.landmark_smoother = LandmarkSmoother()
        self.skipped: Counter[str] = Counter()
        self.skipped_files: list = []  # the last stream's files not read (runtime.results.SkippedFile)
        self._frames = 0
        self._last_t: float | None = None
        self._lock = threading.RLock()  # the interpreters are not reentrant: one call at a time
        self._streaming: int | None = None  # the thread running stream(), which owns the detector then
        self._closed = False
        self._live = (LiveWorker(self._run_live, result_callback, name="au-edge live")
                      if mode == "live" else None)

    @property
    def running_mode(self) -> str:
        """The mode ``process`` runs in now: ``"video"``, ``"image"`` or ``"live"``."""
        return self._mode

    def _time(self, timestamp_s: float | None, index: int) -> float:
        """The frame's time; in video mode it must be later than the last one."""
        if self._mode == "image":
            return float(timestamp_s) if timestamp_s is not None else float(index)
        if timestamp_s is None:
            return 0.0 if self._last_t is None else self._last_t + 1.0 / 30.0
        t = float(timestamp_s)
        if self._last_t is not None and not t > self._last_t:
            raise ValueError(f"video mode needs increasing timestamps: got {t} s after {self._last_t} s; "
                             "pass each frame's capture time, or use mode='image' for unrelated images")
        return t

    def process(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> FrameResult:
        """Detect, align and score the faces of one frame.

        In video mode tracking and smoothing carry over between calls; in image mode nothing does.

        Args:
            frame_bgr: HxWx3 BGR uint8 (gray and BGRA are converted).
            timestamp_s: capture time in seconds (video mode: must increase from call to call);
                defaults to the last time + 1/30 s.

        Raises:
            ValueError: not an image array, (video mode) a timestamp not after the last one, live
                mode (use ``detect_async``), a closed detector, or a ``stream()`` running in
                another thread.
        """
        if self._mode == "live":
            raise ValueError("process() is not available in mode='live'; use detect_async(frame, timestamp_s) "
                             "(results come through result_callback), or create the detector with mode='video'")
        if self._streaming is not None and self._streaming != threading.get_ident():
            raise ValueError("this AUDetector is running stream() in another thread; give each thread its own "
                             "AUDetector")
        with self._lock:
            return self._process(frame_bgr, timestamp_s)

    def detect_async(self, frame_bgr: np.ndarray, timestamp_s: float) -> bool:
        """Live mode: hand one frame to the worker and return at once (MediaPipe's ``detect_async``).

        The frame is copied, so the caller may reuse its buffer. Its result reaches
        ``result_callback(result, frame_bgr, timestamp_s)`` on the worker thread; while the worker
        is busy the frame is dropped (counted in ``skipped["dropped"]``), as MediaPipe's
        LIVE_STREAM mode drops frames.

        Args:
            frame_bgr: HxWx3 BGR uint8 (gray and BGRA are converted).
            timestamp_s: capture time in seconds; must increase from call to call (dropped frames too).

        Returns:
            True when the frame will be run, False when it was dropped.

        Raises:
            ValueError: not live mode, not an image array, a timestamp not after the last one, or
                a closed detector.
            Exception: what the last frame's processing or the callback raised (raised once).
        """
        if self._live is None:
            raise ValueError(f"detect_async() needs mode='live' (this detector runs in mode={self._mode!r}); "
                             "use process(frame, timestamp_s), or create the detector with mode='live' and a "
                             "result_callback")
        if timestamp_s is None or isinstance(timestamp_s, bool) or not isinstance(timestamp_s, (int, float)):
            raise ValueError(f"detect_async needs the frame's timestamp in seconds, got {timestamp_s!r}")
        bgr = to_bgr(frame_bgr)
        frame = bgr.copy() if bgr is frame_bgr or bgr.base is not None else bgr
        accepted = self._live.submit(frame, float(timestamp_s))
        if not accepted:
            self.skipped["dropped"] += 1
        return accepted

    def _run_live(self, frame: np.ndarray, timestamp_s: float) -> FrameResult:
        with self._lock:
            return self._process(frame, timestamp_s)

    def _process(self, frame_bgr: np.ndarray, timestamp_s: float | None) -> FrameResult:
        """``process`` under the lock (the live worker calls it too)."""
        if self._closed:
            raise ValueError("this AUDetector is closed; create a new one")
        t0 = time.perf_counter()
        index = self._frames
        bgr = to_bgr(frame_bgr)
        t = self._time(timestamp_s, index)
        self._frames += 1
        video = self._mode != "image"  # live mode tracks as video mode does
        if video:
            self._last_t = t
        if min(bgr.shape[:2]) < MIN_FRAME_SIDE:
            self.skipped["tiny_frame"] += 1
            return FrameResult(frame=index, time_s=t, latency_ms=(time.perf_counter() - t0) * 1e3)
        # The frame stays BGR: only the small model inputs have their channels swapped.
        faces = self.faces.process(bgr, bgr=True) if video else self.faces.detect(bgr, bgr=True)
        if self.faces.hint is not None:  # a large frame without a face: say so in the summary
            self.skipped[LARGE_NO_FACE] += 1
        t1 = time.perf_counter()
        raw_meshes = [f.landmarks for f in faces]  # the eyelids are read before smoothing (runtime.blink)
        if video and self.smooth_landmarks:
            for f in faces:
                f.landmarks = self.landmark_smoother(f.track_id, f.landmarks, t)
                f.points5 = five_points(f.landmarks)
        crops = [self._crop(bgr, f.points5) for f in faces]
        t2 = time.perf_counter()
        probs, intensities = self._infer(crops)
        t3 = time.perf_counter()
        results = []
        height, width = bgr.shape[:2]
        for face, p, raw_mesh, inten in zip(faces, probs, raw_meshes, intensities):
            if video:
                p_s, active = self.smoother(face.track_id, self.baseline(face.track_id, p, t), t)
            else:
                p_s, active = p, p >= self._thr
            au_prob = {a: float(v) for a, v in zip(self.aus, p_s)}
            au_active = {a for a, on in zip(self.aus, active) if on}
            pose, closure = self.measures(face.landmarks, width, height, face.track_id if video else None, t,
                                          eye_landmarks=raw_mesh)
            if closure is not None:
                au_prob[BLINK_AU] = closure
                if closure >= 0.5:
                    au_active.add(BLINK_AU)
            results.append(FaceAU(
                track_id=int(face.track_id), bbox=tuple(float(v) for v in face.bbox), score=float(face.score),
                landmarks5=face.points5, landmarks=face.landmarks, au_prob=au_prob, au_active=au_active,
                head_pose=pose, au_intensity=self._intensity(face.track_id if video else None, inten, t),
                meshed=face.meshed,
            ))
        if video:
            self.smoother.forget_stale(t)
            self.intensity_smoother.forget_stale(t)
            self.landmark_smoother.forget_stale(t)
            self.baseline.forget_stale(t)
            self.measures.forget_stale(t)
        t4 = time.perf_counter()
        stages = {"face": (t1 - t0) * 1e3, "align": (t2 - t1) * 1e3, "au": (t3 - t2) * 1e3,
                  "post": (t4 - t3) * 1e3}
        beyond = None if self.max_faces is None else self.faces.beyond_max  # present only when capped
        return FrameResult(frame=index, time_s=t, faces=results, latency_ms=(t4 - t0) * 1e3,
                           stages_ms=stages, faces_beyond_max=beyond)

    def aligned_crop(self, frame_bgr: np.ndarray, points5: np.ndarray) -> np.ndarray:
        """The engine's input for the face at ``points5`` (``FaceAU.landmarks5``): the card's one
        alignment of ``frame_bgr``, RGB, at the engine's input size, so a caller sees what the model saw."""
        return self._crop(to_bgr(frame_bgr), points5)

    def _crop(self, bgr: np.ndarray, points5: np.ndarray) -> np.ndarray:
        crop, _ = align_face(bgr, points5, crop_size=int(self._align["crop_size"]),
                             template=self._align["template"], scale=float(self._align["scale"]),
                             out_size=self._size)
        return crop[..., ::-1]  # RGB, as the card's input

    def _infer(self, crops: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """AU probabilities (N×A) and, per face, its intensities (None when the model has none)."""
        if not crops:
            return np.zeros((0, len(self.aus)), np.float32), []
        probs, intensities = self.engine.infer_with_intensity(np.stack(crops))
        return probs, (list(intensities) if intensities is not None else [None] * len(probs))

    def _intensity(self, track_id: int | None, values: np.ndarray | None, t: float) -> dict[str, float] | None:
        """``FaceAU.au_intensity``: the engine's intensities (One Euro per track in video mode, as the
        probabilities), or None for a model without them."""
        if values is None:
            return None
        if track_id is not None:
            values = self.intensity_smoother(track_id, values, t)
        return {a: float(v) for a, v in zip(self.intensity_aus, values)}

    def stream(self, source: str | int | FrameSource = 0,
               max_frames: int | None = None) -> Iterator[FrameResult]:
        """Results for every frame of a source (camera index, file, folder, URL, ``gst:...``, or an open
        ``FrameSource``, which the stream then owns and closes).

        Frame numbers and times are the source's; ``stages_ms["decode"]`` is the capture thread's
        read/decode time of the frame (it overlaps inference), ``stages_ms["wait"]`` the time this
        loop waited for it.
        """
        for result, _ in self.stream_frames(source, max_frames):
            yield result

    def stream_frames(self, source: str | int | FrameSource = 0,
                      max_frames: int | None = None) -> Iterator[tuple[FrameResult, np.ndarray]]:
        """Like ``stream``, also yielding each BGR frame (for drawing and recording).

        With ``mode=None`` the source chooses (``running_mode``): image files and folders run in
        image mode (each picture on its own), videos, cameras and streams in video mode. Files of a
        folder that cannot be read are counted in ``skipped`` and listed in ``skipped_files``.

        Raises:
            ValueError: live mode (use ``detect_async``), or another thread is running a stream.
        """
        if self.mode == "live":
            raise ValueError("stream() is not available in mode='live'; feed frames with detect_async, or "
                             "create the detector with mode=None or 'video'")
        with self._lock:
            if self._streaming is not None:
                raise ValueError("this AUDetector is already running stream() in another thread; give each "
                                 "stream its own AUDetector")
            self._streaming = threading.get_ident()
        try:
            yield from self._stream_frames(source, max_frames)
        finally:
            self._streaming = None

    def _stream_frames(self, source, max_frames: int | None) -> Iterator[tuple[FrameResult, np.ndarray]]:
        from runtime.sources import FrameSource, open_source

        with source if isinstance(source, FrameSource) else open_source(source) as src:
            self._mode = running_mode(self.mode, src.is_image, self._calibrate_neutral_s)
            self._follow_mode_cap()
            self.reset()
            n = 0
            t_wait = time.perf_counter()
            try:
                for frame in src:
                    wait_ms = (time.perf_counter() - t_wait) * 1e3
                    t = frame.time_s
                    if self._mode == "video" and self._last_t is not None and not t > self._last_t:
                        self.skipped[RETIMED] += 1  # a file's broken timestamps must not end the run
                        t = self._last_t + 1e-3
                    result = self.process(frame.image, t)
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
                self.skipped_files = list(src.skipped_files)
                self._mode = running_mode(self.mode)
                self._follow_mode_cap()

    def _follow_mode_cap(self) -> None:
        """``max_faces="auto"``: the cap of the mode now running (no cap while a stream of photos runs)."""
        if self._auto_cap:
            self.max_faces = max_faces_for(self._mode)
            self.faces.max_faces = self.max_faces

    def reset(self) -> None:
        """Forget tracks and smoothing state (a new, unrelated source)."""
        with self._lock:
            self.faces.reset()
            self.smoother.reset()
            self.intensity_smoother.reset()
            self.landmark_smoother.reset()
            self.baseline.reset()
            self.measures.reset()
            self._frames = 0
            self._last_t = None

    def close(self) -> None:
        """Wait for the live worker (its accepted frame runs to its callback), then release the
        interpreters; a call running in another thread finishes first. Closing twice is fine.

        Raises:
            Exception: what a live frame's processing or callback raised and was not raised yet.
        """
        try:
            if self._live is not None:
                self._live.close()
        finally:
            with self._lock:
                if not self._closed:
                    self._closed = True
                    self.faces.close()
                    self.engine.close()

    def __enter__(self) -> "AUDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
