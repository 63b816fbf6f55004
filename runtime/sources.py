"""Frame sources: one iterator of BGR frames for cameras, files, image folders, URLs and GStreamer.

``open_source(SRC)`` accepts what ``python -m runtime.camera --source`` accepts:

- a camera index (``0`` or ``"0"``; V4L2 on Linux),
- a video file (anything this OpenCV's FFmpeg decodes),
- an image file, or a directory of images (lexicographically sorted by file name),
- an ``rtsp://``, ``rtsps://``, ``rtmp://`` or ``http(s)://`` URL (FFmpeg; HTTP MJPEG works). A URL to a
  finite file (FFmpeg knows its frame count, e.g. ``http://host/clip.mp4``) is read as a file: every
  frame once, in order, then the end. Streams without a length are live (below),
- ``gst:<pipeline>`` for OpenCV's GStreamer backend, ending in ``appsink``. A Jetson CSI camera
  (``jetson_csi()`` builds this string; pass it as one line)::

      gst:nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 !
          nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1

  It needs the JetPack OpenCV (built with GStreamer); the PyPI opencv-python wheels have none.

A digit string is a camera index; write ``./0`` for a file named ``0``.

Capture runs in its own thread so decoding overlaps inference. Live sources (camera, URL, gst) keep
only the newest frame: a robot wants the present, so frames the consumer was too slow for are
overwritten and counted as ``skipped["dropped"]``. Files and folders lose none: a bounded queue makes
the reader wait for the consumer. A live source that drops out is reopened with exponential backoff
(0.5 s doubling to 8 s, one stderr line per attempt) until ``reconnect_timeout_s`` has passed.

Every frame that is not delivered is counted in ``skipped`` (``dropped``, ``corrupt_frame``,
``frame_count_shortfall``, ``unreadable_image``, ``not_image``); frame indices keep the source's
numbering, so a gap always corresponds to a count. FFmpeg's own log lines (e.g. ``[mjpeg @ ...]``)
go to stderr; ``OPENCV_FFMPEG_LOGLEVEL=-8`` silences them. For RTSP over lossy links,
``OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp`` is usually more robust than the UDP default.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from runtime.errors import SourceError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                            ".pbm", ".pgm", ".ppm", ".pnm", ".jp2", ".avif"})
URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
BACKOFF_S = (0.5, 8.0)  # first and longest wait between reconnect attempts
_MAX_CORRUPT_RUN = 30  # consecutive unreadable frames tried before a video is given up as ended
_EOF_PROBES = 2  # extra reads at a failure when the container does not know its frame count
_END = object()
Log = Callable[[str], None]


@dataclass
class Frame:
    """One decoded frame: ``index`` and ``time_s`` in the source's numbering and clock."""

    index: int
    time_s: float
    image: np.ndarray  # H x W x 3, BGR, uint8
    name: str  # file name for image files and folders, else the source's name
    decode_ms: float = 0.0  # time the capture thread spent reading/decoding it


def _stderr(line: str) -> None:
    """One line on stderr; on a terminal it first clears a pending ``\\r`` status line."""
    clear = "\r\x1b[K" if sys.stderr.isatty() else ""
    print(clear + line, file=sys.stderr, flush=True)


_OPEN_LOCK = threading.Lock()


@contextmanager
def _quiet_opencv():
    """OpenCV warns on every failed open; our SourceError says it once, with the fix."""
    with _OPEN_LOCK:
        log = cv2.utils.logging
        old = log.getLogLevel()
        log.setLogLevel(log.LOG_LEVEL_ERROR)
        try:
            yield
        finally:
            log.setLogLevel(old)


def _redact(url: str) -> str:
    """The URL without its password, for names and log lines."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


# --- readers: one kind of source each; only the capture thread calls them after the probe -------------

class _CaptureReader:
    """Camera, video file, URL or GStreamer pipeline through cv2.VideoCapture."""

    def __init__(self, target: str | int, kind: str, name: str, label: str, live: bool,
                 api: int = cv2.CAP_ANY, params: tuple[int, ...] = ()):
        self.target, self.kind, self.name, self.label, self.live = target, kind, name, label, live
        self.api, self.params = api, list(params)
        self.skipped: Counter[str] = Counter()
        self.cap: cv2.VideoCapture | None = None
        self.fps = 0.0
        self.frame_count = 0
        self.next_index = 0
        self.t0 = time.monotonic()

    def open(self) -> None:
        if self.cap is not None:  # already opened (a URL probed for its length)
            return
        with _quiet_opencv():
            cap = cv2.VideoCapture(self.target, self.api, self.params)
        if not cap.isOpened():
            raise SourceError(self.cannot_open())
        if self.kind == "camera":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue only adds latency
        self.cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind in ("video", "url") else 0
        self.frame_count = max(0, self.frame_count)  # live streams report 0 or -1

    def read(self) -> Frame | None:
        """The next frame, or None at the end (file) or when the stream is lost (live)."""
        ok, image = self.cap.read()
        if not ok and self.kind == "video":
            ok, image = self._skip_corrupt()
        if not ok:
            return None
        index = self.next_index
        self.next_index += 1
        return Frame(index, self._time(index), _as_bgr(image), self.name)

    def _skip_corrupt(self) -> tuple[bool, np.ndarray | None]:
        """read() failed before the container's end: a corrupt frame, so try the next ones."""
        first = self.next_index
        remaining = self.frame_count - first - 1 if self.frame_count > 0 else _EOF_PROBES
        for extra in range(min(remaining, _MAX_CORRUPT_RUN)):
            ok, image = self.cap.read()
            if ok:
                self.skipped["corrupt_frame"] += extra + 1
                self.next_index = first + extra + 1
                return True, image
        if self.frame_count > first:  # edit lists, an estimated count, or an undecodable tail
            self.skipped["frame_count_shortfall"] += self.frame_count - first
        return False, None

    def _time(self, index: int) -> float:
        if self.live:
            return time.monotonic() - self.t0
        msec = self.cap.get(cv2.CAP_PROP_POS_MSEC)  # the pts of the frame just read
        if msec > 0 or index == 0:
            return msec / 1000.0
        return index / self.fps if self.fps > 0 else 0.0

    def cannot_open(self) -> str:
        if self.kind == "camera":
            dev = f"/dev/video{self.target}"
            missing = sys.platform.startswith("linux") and not os.path.exists(dev)
            where = f"no {dev}" if missing else "absent, busy or not permitted"
            return (f"camera {self.target} cannot be opened ({where}): check the cable and `ls /dev/video*`, "
                    f"that no other program holds it and you are in the 'video' group, or pass a file/URL")
        if self.kind == "url":
            return (f"cannot open stream {self.label}: check the URL, that the server is up and reachable, "
                    f"and its credentials (OpenCV reads URLs through FFmpeg)")
        if self.kind == "gst":
            return (f"GStreamer pipeline {self.label} did not start: test it with gst-launch-1.0, end it in "
                    f"'appsink', and for BGR frames add 'videoconvert ! video/x-raw,format=BGR'")
        return (f"cannot open video {self.label} with this OpenCV ({_ffmpeg_state()}): check the file is "
                f"complete, or re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p out.mp4`")

    def empty(self) -> str:
        if self.kind == "video":
            return (f"video {self.label} opened but has no decodable frame ({_ffmpeg_state()}): check the file "
                    f"is complete, or re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p out.mp4`")
        return f"{self.kind} {self.label} opened but gave no frame: " + self.cannot_open().split(": ", 1)[1]

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class _ImageReader:
    """One image file, or a folder of images in sorted order; unreadable files are counted, not fatal."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self.kind = path, fps, ("folder" if path.is_dir() else "image")
        self.name = path.name or str(path)
        self.label = repr(str(path))
        self.skipped: Counter[str] = Counter()
        self.files: list[Path] = []
        self.next_index = 0

    def open(self) -> None:
        if self.kind == "image":
            self.files = [self.path]
            return
        try:
            entries = sorted(p for p in self.path.iterdir() if p.is_file())
        except OSError as e:
            raise SourceError(f"cannot list image folder {self.label}: {e.strerror}; check its permissions") from e
        self.files = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
        if len(entries) > len(self.files):
            self.skipped["not_image"] += len(entries) - len(self.files)

    def read(self) -> Frame | None:
        while self.next_index < len(self.files):
            index = self.next_index
            self.next_index += 1
            path = self.files[index]
            image = _decode_image(path)
            if image is None:
                self.skipped["unreadable_image"] += 1
                continue
            return Frame(index, index / self.fps, image, path.name)
        return None

    def empty(self) -> str:
        if self.kind == "image":
            return f"cannot read image {self.label}: not a readable image (corrupt, empty or an unsupported format)"
        seen = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "folder is empty"
        return (f"image folder {self.label} has no readable images ({seen}); put .jpg/.png/.bmp/.tif/.webp "
                f"files in it, or pass a video file")

    def close(self) -> None:
        pass


def _decode_image(path: Path) -> np.ndarray | None:
    """BGR uint8, whatever the file holds (gray, RGBA, 16 bit); None if it cannot be decoded."""
    try:
        data = np.fromfile(str(path), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error):
        return None
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return None
    return image


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Some cameras and pipelines hand out gray, BGRA or 16-bit frames; the contract is BGR uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _ffmpeg_state() -> str:
    from cv2 import videoio_registry

    return "FFmpeg backend: " + ("yes" if videoio_registry.hasBackend(cv2.CAP_FFMPEG) else "no")


# --- hand-over between the capture thread and the consumer ----------------------------------------------

class _Bounded:
    """Files: every frame in order; the reader waits while the queue is full (backpressure)."""

    dropped = 0

    def __init__(self, size: int):
        self._q: queue.Queue = queue.Queue(size)

    def put(self, item, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        while True:
            try:
                return self._q.get(timeout=0.5)
            except queue.Empty:
                continue


class _Newest:
    """Live: a one-frame slot; a frame not taken before the next arrives is dropped (and counted)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._final = None  # _END or an exception from the capture thread
        self.dropped = 0

    def put(self, item, stop: threading.Event) -> bool:
        with self._cond:
            if isinstance(item, Frame):
                self.dropped += self._frame is not None
                self._frame = item
            else:
                self._final = item
            self._cond.notify_all()
        return not stop.is_set()

    def get(self):
        with self._cond:
            while self._frame is None and self._final is None:
                self._cond.wait(0.5)
            if self._frame is not None:
                frame, self._frame = self._frame, None
                return frame
            return self._final


# --- the public source ----------------------------------------------------------------------------------

class FrameSource:
    """An iterator of ``Frame`` filled by a capture thread; a context manager; ``close()`` stops it.

    Attributes:
        name, kind ("camera" | "video" | "image" | "folder" | "url" | "gst"), is_live, fps (0.0 if
        unknown), reconnects (times a live source came back), end_reason (None, or the line printed
        when a live source was given up).
    """

    def __init__(self, reader, *, live: bool, reconnect: bool, reconnect_timeout_s: float | None,
                 queue_size: int, log: Log):
        self._reader, self._log = reader, log
        self.name, self.kind, self.is_live = reader.name, reader.kind, live
        self._reconnect_ok = reconnect and reader.kind in ("camera", "url", "gst")
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
        self._chan = _Newest() if live else _Bounded(queue_size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._capture, args=(first,), daemon=True,
                                        name=f"au-edge capture {self.name}")
        self._thread.start()

    @property
    def skipped(self) -> dict[str, int]:
        """Frames not delivered, by reason (a snapshot; the capture thread keeps counting)."""
        out = dict(self._reader.skipped)
        if self._chan.dropped:
            out["dropped"] = self._chan.dropped
        return out

    def _capture(self, frame: Frame | None) -> None:
        pace = self.is_live and self.kind == "video" and self.fps > 0  # a file played as a camera
        t0 = time.monotonic()
        final = _END
        try:
            while not self._stop.is_set():
                if frame is None:
                    if self._reconnect_ok:
                        frame = self._reopen()
                    elif self.kind in ("camera", "url", "gst"):
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
    reader = _reader_for(spec, live, open_timeout_s, read_timeout_s, image_fps)
    if isinstance(reader, _CaptureReader) and reader.kind == "url" and live is not True:
        _classify_url(reader)
    is_live = reader.live if live is None and isinstance(reader, _CaptureReader) else bool(live)
    if isinstance(reader, _CaptureReader):
        reader.live = is_live
    return FrameSource(reader, live=is_live, reconnect=reconnect, reconnect_timeout_s=reconnect_timeout_s,
                       queue_size=queue_size, log=log or _stderr)


def _classify_url(reader: _CaptureReader) -> None:
    """A URL to a finite file (a known frame count: FFmpeg knows the duration, so it can seek) is read
    like a file: every frame once, in order, then the end. A live stream (no frame count) stays live."""
    reader.open()
    if reader.frame_count > 0:
        reader.kind, reader.live = "video", False


def _reader_for(spec, live: bool | None, open_timeout_s: float, read_timeout_s: float, image_fps: float):
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise SourceError(f"not a source: {spec!r} (expected a camera index, path, URL or gst:<pipeline>)")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        return _CaptureReader(index, "camera", f"camera{index}", f"camera {index}", live=True)
    text = os.fspath(spec)
    if text.startswith("gst:"):
        return _gst_reader(text[4:].strip())
    if text.lower().startswith(URL_PREFIXES):
        from cv2 import videoio_registry

        api = cv2.CAP_FFMPEG if videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
        params = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000))
        shown = _redact(text)
        parts = urlsplit(shown)
        name = Path(parts.path).name or parts.hostname or shown
        return _CaptureReader(text, "url", name, repr(shown), live=True, api=api, params=params)
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(f"source not found: {text!r} (expected a camera index, a video or image file, an "
                          f"image folder, an rtsp:// or http(s):// URL, or gst:<pipeline>; check the path)")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return _ImageReader(path, image_fps)
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {text!r}: permission denied; check the file's permissions")
    return _CaptureReader(str(path), "video", path.name, repr(str(path)), live=False)


def is_image_source(spec: str | int | os.PathLike) -> bool:
    """True for an image file or a folder (of images): the sources the CLI runs in image mode."""
    if isinstance(spec, bool) or not isinstance(spec, (str, os.PathLike)):
        return False
    text = os.fspath(spec)
    if text.strip().isdigit() or text.startswith("gst:") or text.lower().startswith(URL_PREFIXES):
        return False
    path = Path(text).expanduser()
    return path.is_dir() or (path.suffix.lower() in IMAGE_SUFFIXES and path.exists())


def jetson_csi(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """The ``gst:`` source for a Jetson CSI camera (nvarguscamerasrc), newest frame only, BGR out."""
    return (f"gst:nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM),width={width},"
            f"height={height},framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
            f"video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")


def _gst_reader(pipeline: str) -> _CaptureReader:
    from cv2 import videoio_registry

    if not pipeline:
        raise SourceError("empty gst: source; give a pipeline ending in appsink, e.g. "
                          "'gst:videotestsrc ! videoconvert ! appsink'")
    if not videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        raise SourceError("this OpenCV has no GStreamer support, which gst: sources need: on a Jetson use the "
                          "JetPack OpenCV (apt python3-opencv; install au-edge[runtime-core], not [runtime]); "
                          "elsewhere build OpenCV with -DWITH_GSTREAMER=ON")
    first = pipeline.split("!", 1)[0].split()[0]
    return _CaptureReader(pipeline, "gst", first, repr(pipeline), live=True, api=cv2.CAP_GSTREAMER)
