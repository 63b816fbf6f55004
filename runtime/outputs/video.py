"""``--record OUT.mp4``: the annotated frames as a video file (mp4v in .mp4/.mov, MJPG in .avi).

The video is written under a partial name (``.OUT.XXXXXXXX.partial.mp4``, created exclusively:
``runtime.atomic``) and renamed onto ``OUT.mp4`` when the run ends well, once the container is complete;
an existing ``OUT.mp4`` is untouched until then.

Write failures are detected, not only warned about: OpenCV 5's ``VideoWriter.write`` returns False when
FFmpeg could not write a frame (a full disk: the run stops at that frame, with the OS error found by
``atomic.unreported_write_failure``); older OpenCVs return nothing, so the free space is also checked
every ``_SPACE_EVERY`` frames. Before the rename the finished file is opened again and must hold every
frame written (``prepare``), which catches what no write reported (the index that did not fit).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.atomic import Partial, unreported_write_failure
from runtime.cv_path import for_reading, for_writing
from runtime.errors import OutputError, stderr_line
from runtime.outputs.base import Output
from runtime.outputs.draw import Annotator
from runtime.results import FrameResult
from runtime.shown import quoted

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
_FPS_WINDOW = (15, 1.0)  # frames / seconds of source time used to estimate the frame rate
_FPS_RANGE = (1.0, 120.0)
_SPACE_EVERY = 30  # frames between free-space checks when the writer cannot report failures
_MIN_FREE = 1 << 20  # bytes: less than this left on the disk ends the recording as full


class VideoRecorder(Output):
    """Records what ``--show`` would show.

    The video's frame rate is ``fps`` when given, else measured from the first frames' timestamps
    (the processed rate: real-time playback for live sources, the file's rate for files). The frame
    size is the first frame's; later frames of another size are letterboxed into it.

    Raises:
        OutputError: unsupported suffix, or this OpenCV cannot write the file (checked at construction).
    """

    def __init__(self, path: str | Path, aus: Sequence[str] | None = None, *, fps: float | None = None,
                 annotator: Annotator | None = None):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise OutputError(f"--record {str(self.path)!r}: unsupported suffix {suffix or '(none)'}; "
                              f"use one of {', '.join(FOURCC)}")
        if fps is not None and not _FPS_RANGE[0] <= fps <= _FPS_RANGE[1]:
            raise ValueError(f"record fps must be in {_FPS_RANGE}, got {fps}")
        self.fourcc = cv2.VideoWriter_fourcc(*FOURCC[suffix])
        self.annotator = annotator or Annotator(aus or [])
        self.fps = fps
        self.frames_written = 0
        self._pending: list[tuple[float, np.ndarray]] = []
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._warned = False
        self._prepared = False
        self._partial = Partial(self.path, "--record")
        self.tmp, self.stale = self._partial.path, self._partial.stale
        self._probe()

    def _probe(self) -> None:
        """Open a tiny writer on the partial file now, so a missing codec fails before the run starts."""
        try:
            with for_writing(self.tmp, "--record", OutputError) as name:
                writer = cv2.VideoWriter(name, self.fourcc, 30.0, (64, 64))
        except OutputError:
            self._partial.discard()
            raise
        ok = writer.isOpened()
        writer.release()
        if not ok or not self._partial.is_ours():
            self._partial.discard()
            raise OutputError(f"cannot open a video writer for {quoted(self.path)} ({FOURCC[self.path.suffix.lower()]})"
                              f": check the folder is writable and this OpenCV was built with FFmpeg")

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if frame_bgr is None:
            if not self._warned:
                stderr_line("au-edge: warning: --record got a result without its frame; skipping such frames")
                self._warned = True
            return
        image = self.annotator.annotate(result, frame_bgr)
        if self._writer is not None:
            self._put(image)
            return
        self._pending.append((float(result.time_s), image))
        t0, t1 = self._pending[0][0], self._pending[-1][0]
        if self.fps is not None or len(self._pending) >= _FPS_WINDOW[0] or t1 - t0 >= _FPS_WINDOW[1]:
            self._start()

    def _start(self) -> None:
        if self.fps is None:
            n, dt = len(self._pending), self._pending[-1][0] - self._pending[0][0]
            self.fps = float(np.clip((n - 1) / dt, *_FPS_RANGE)) if n > 1 and dt > 0 else 30.0
        h, w = self._pending[0][1].shape[:2]
        self._size = (w, h)
        with for_writing(self.tmp, "--record", OutputError) as name:
            self._writer = cv2.VideoWriter(name, self.fourcc, self.fps, self._size)
        if not self._writer.isOpened() or not self._partial.is_ours():
            raise OutputError(f"cannot open a video writer for {quoted(self.path)} at {w}x{h}, {self.fps:.1f} fps")
        pending, self._pending = self._pending, []
        for _, image in pending:
            self._put(image)

    def _put(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self._size:
            image = letterbox(image, self._size)
        ok = self._writer.write(image)  # OpenCV >= 5: False when FFmpeg failed; older versions: None
        if ok is False or (ok is None and self.frames_written % _SPACE_EVERY == 0 and self._disk_full()):
            self._failed(f"frame {self.frames_written + 1} could not be written")
        self.frames_written += 1

    def _disk_full(self) -> bool:
        with contextlib.suppress(OSError):
            st = os.statvfs(self.tmp.parent)
            free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
            return free < _MIN_FREE
        return False

    def _failed(self, what: str) -> None:
        why = unreported_write_failure(self.tmp.parent, self._partial.size())
        raise OutputError(f"writing --record {quoted(self.path)} failed: {what}: {why}")

    def prepare(self) -> None:
        """Finish the container and check it holds every frame written (nothing is renamed yet)."""
        if self._prepared:
            return
        if self._writer is None and self._pending:
            self._start()
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._partial.check()
            with for_reading(self.tmp, "--record", OutputError) as name:
                cap = cv2.VideoCapture(name)
            try:
                count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
            finally:
                cap.release()
            if count != self.frames_written:
                n = self.frames_written
                self._failed(f"the finished file of {n} frames cannot be read back" if count < 0 else
                             f"the finished file holds {count} of {n} frames")
        self._prepared = True

    def close(self) -> None:
        """Finish the container and move it onto ``path`` (nothing is written when no frame came)."""
        if self._partial.fd is None:
            return
        self.prepare()
        if self.frames_written:
            self._partial.commit()
        else:
            self._partial.discard()

    def abort(self) -> None:
        self._pending.clear()
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._partial.discard()


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (w, h) without distortion, centred on black."""
    w, h = size
    s = min(w / image.shape[1], h / image.shape[0])
    nw, nh = max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out
