"""``FrameSource``: the capture thread that fills the hand-over, with reconnect for live sources, and
``open_source``, which classifies, opens and probes a source so a bad one fails in the caller's thread."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

from runtime.errors import SourceError, stderr_line
from runtime.results import SkippedFile
from runtime.sources.classify import IMAGE_KINDS, LIVE_KINDS, classify
from runtime.sources.handover import END, Bounded, Newest
from runtime.sources.readers import CaptureReader, Frame, reader_for

BACKOFF_S = (0.5, 8.0)  # first and longest wait between reconnect attempts
Log = Callable[[str], None]


class FrameSource:
    """An iterator of ``Frame`` filled by a capture thread; a context manager; ``close()`` stops it.

    Attributes:
        name, kind ("camera" | "video" | "image" | "folder" | "url" | "gst"), is_live, is_image (an image
        file or folder), fps (0.0 if unknown), reconnects (times a live source came back), end_reason
        (None, or the line printed when a live source was given up).
    """

    def __init__(self, reader, *, live: bool, reconnect: bool, reconnect_timeout_s: float | None,
                 queue_size: int, log: Log):
        self._reader, self._log = reader, log
        self.name, self.kind, self.is_live = reader.name, reader.kind, live
        self._reconnect_ok = reconnect and reader.kind in LIVE_KINDS
        self._reconnect_timeout_s = reconnect_timeout_s
        self.reconnects = 0
        self.end_reason: str | None = None
        reader.open()  # fail early, in the caller's thread, with the one-line SourceError
        first = reader.read()
        for _ in range(3 if reader.kind in ("camera", "gst") else 0):  # some cameras start with empty reads
            if first is not None:
                break
            time.sleep(0.2)
            first = reader.read()
        if first is None:
            reader.close()
            raise SourceError(reader.empty())
        self.fps = float(reader.fps)
        self._chan = Newest() if live else Bounded(queue_size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._capture, args=(first,), daemon=True,
                                        name=f"au-edge capture {self.name}")
        self._thread.start()

    @property
    def is_image(self) -> bool:
        """An image file or folder: each frame an unrelated photo (the detector's image mode)."""
        return self.kind in IMAGE_KINDS

    @property
    def skipped(self) -> dict[str, int]:
        """Frames not delivered, by reason (a snapshot; the capture thread keeps counting)."""
        out = dict(self._reader.skipped)
        if self._chan.dropped:
            out["dropped"] = self._chan.dropped
        return out

    @property
    def skipped_files(self) -> list[SkippedFile]:
        """Files of an image folder not delivered, in order (a snapshot; empty for other sources)."""
        return list(getattr(self._reader, "skipped_files", ()))

    def _capture(self, frame: Frame | None) -> None:
        pace = self.is_live and self.kind == "video" and self.fps > 0  # a file played as a camera
        t0 = time.monotonic()
        final = END
        try:
            while not self._stop.is_set():
                if frame is None:
                    if self._reconnect_ok:
                        frame = self._reopen()
                    elif self.kind in LIVE_KINDS:
                        self.end_reason = f"au-edge: source {self.name} lost; reconnect is off, stopping"
                        self._log(self.end_reason)
                    if frame is None:
                        break
                if pace:
                    self._stop.wait(max(0.0, t0 + frame.index / self.fps - time.monotonic()))
                if not self._chan.put(frame, self._stop):
                    break
                t_read = time.perf_counter()
                frame = self._reader.read()
                if frame is not None:
                    frame.decode_ms = (time.perf_counter() - t_read) * 1e3
        except Exception as e:  # noqa: BLE001 - handed to the consumer, raised there
            final = e
        finally:
            self._reader.close()
            self._chan.put(final, self._stop)  # after close() nobody waits for it, so never block then

    def _reopen(self) -> Frame | None:
        """Reconnect with exponential backoff; the first frame after it, or None when given up."""
        reader, timeout = self._reader, self._reconnect_timeout_s
        lost_at, delay, attempt = time.monotonic(), BACKOFF_S[0], 0
        reader.close()
        while not self._stop.is_set():
            left = None if timeout is None else timeout - (time.monotonic() - lost_at)
            if left is not None and left <= 0:
                break
            attempt += 1
            wait = delay if left is None else min(delay, left)
            self._log(f"au-edge: source {self.name} lost; reconnect attempt {attempt} in {wait:.1f} s")
            if self._stop.wait(wait):
                return None
            try:
                reader.open()
                frame = reader.read()
            except SourceError:
                frame = None
            if frame is not None:
                self.reconnects += 1
                self._log(f"au-edge: source {self.name} is back after {time.monotonic() - lost_at:.1f} s")
                return frame
            reader.close()
            delay = min(delay * 2, BACKOFF_S[1])
        if not self._stop.is_set():
            self.end_reason = f"au-edge: source {self.name} did not come back within {timeout:g} s; stopping"
            self._log(self.end_reason)
        return None

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._done:
            raise StopIteration
        item = self._chan.get()
        if isinstance(item, Frame):
            return item
        self._done = True
        self._thread.join(timeout=1.0)
        if isinstance(item, BaseException):
            raise SourceError(f"reading {self.name} failed: {item}") from item
        raise StopIteration

    def close(self) -> None:
        """Stop the capture thread and release the device or file (waits at most ~2 s)."""
        self._done = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(spec: str | int | os.PathLike, *, live: bool | None = None, reconnect: bool = True,
                reconnect_timeout_s: float | None = 60.0, open_timeout_s: float = 10.0,
                read_timeout_s: float = 5.0, image_fps: float = 30.0, queue_size: int = 4,
                log: Log | None = None) -> FrameSource:
    """Open a frame source and read its first frame, so a bad source fails here, not mid-run.

    Args:
        spec: camera index (int or digit string), video/image file, image folder, URL, or ``gst:<pipeline>``.
        live: keep only the newest frame (default: True for cameras, URLs and gst; False for files).
            ``live=True`` on a video file plays it in real time, like a camera.
        reconnect: reopen a live source that drops out (cameras, URLs, gst).
        reconnect_timeout_s: give up after this long without frames (None: never).
        open_timeout_s, read_timeout_s: network timeouts for URLs (FFmpeg).
        image_fps: the clock for image folders (``time_s = index / image_fps``).
        queue_size: decoded frames buffered ahead for files.
        log: where reconnect lines go (default: one line each on stderr).

    Returns:
        A started ``FrameSource``.

    Raises:
        SourceError: the source is missing, cannot be opened, or gives no frame (one line with the fix).
        ValueError: a bad option value.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    if image_fps <= 0:
        raise ValueError(f"image_fps must be > 0, got {image_fps}")
    if reconnect_timeout_s is not None and reconnect_timeout_s < 0:
        raise ValueError(f"reconnect_timeout_s must be >= 0 or None, got {reconnect_timeout_s}")
    reader = reader_for(classify(spec), open_timeout_s, read_timeout_s, image_fps)
    if isinstance(reader, CaptureReader) and reader.kind == "url" and live is not True:
        reader.probe_finite()
    if live is not None:
        reader.live = live
    return FrameSource(reader, live=reader.live, reconnect=reconnect, reconnect_timeout_s=reconnect_timeout_s,
                       queue_size=queue_size, log=log or stderr_line)
