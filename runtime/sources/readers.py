"""Readers: one kind of source each (``cv2.VideoCapture`` for cameras, videos, URLs and gst; files for
images and folders). Only the capture thread calls them after the probe in ``FrameSource``.

A reader has ``open()``, ``read() -> Frame | None`` (None: the end, or a lost live stream),
``empty()`` (the one line when the first read gives nothing), ``close()`` and ``skipped`` (frames
not delivered, by reason: ``corrupt_frame``, ``frame_count_shortfall``, ``unreadable_image``, ``not_image``).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.bgr import as_bgr
from runtime.cv_path import decode_image, for_reading, text
from runtime.errors import SourceError
from runtime.results import SkippedFile
from runtime.shown import shown_name
from runtime.sources.classify import IMAGE_KINDS, IMAGE_SUFFIXES, SourceSpec

_MAX_CORRUPT_RUN = 30  # consecutive unreadable frames tried before a video is given up as ended
_EOF_PROBES = 2  # extra reads at a failure when the container does not know its frame count
_OPEN_LOCK = threading.Lock()
_REENCODE = "re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p out.mp4`"


@dataclass
class Frame:
    """One decoded frame: ``index`` and ``time_s`` in the source's numbering and clock."""

    index: int
    time_s: float
    image: np.ndarray  # H x W x 3, BGR, uint8
    name: str  # file name for image files and folders, else the source's name
    decode_ms: float = 0.0  # time the capture thread spent reading/decoding it


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


def _ffmpeg_state() -> str:
    from cv2 import videoio_registry

    return "FFmpeg backend: " + ("yes" if videoio_registry.hasBackend(cv2.CAP_FFMPEG) else "no")


class CaptureReader:
    """Camera, video file, URL or GStreamer pipeline through cv2.VideoCapture."""

    def __init__(self, spec: SourceSpec, live: bool, api: int = cv2.CAP_ANY, params: tuple[int, ...] = ()):
        self.target, self.kind, self.name, self.label = spec.target, spec.kind, spec.name, spec.label
        self.live, self.api, self.params = live, api, list(params)
        self.skipped: Counter[str] = Counter()
        self.cap: cv2.VideoCapture | None = None
        self.fps = 0.0
        self.frame_count = 0
        self.next_index = 0
        self.t0 = time.monotonic()

    def open(self) -> None:
        if self.cap is not None:  # already opened (a URL probed for its length)
            return
        with _quiet_opencv(), self._opencv_name() as target:
            cap = cv2.VideoCapture(target, self.api, self.params)
        if not cap.isOpened():
            raise SourceError(self.cannot_open())
        if self.kind == "camera":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue only adds latency
        self.cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind in ("video", "url") else 0
        self.frame_count = max(0, self.frame_count)  # live streams report 0 or -1

    @contextmanager
    def _opencv_name(self):
        """The target as OpenCV can take it: a video file of any name (``cv_path``); URLs and pipelines as UTF-8."""
        if self.kind == "video":
            with for_reading(self.target, "video", SourceError) as name:
                yield name
        elif isinstance(self.target, str):
            yield text(self.target, "source", SourceError)
        else:
            yield self.target

    def probe_finite(self) -> None:
        """A URL to a finite file (a known frame count: FFmpeg knows the duration, so it can seek) is read
        like a file: every frame once, in order, then the end. A live stream (no frame count) stays live."""
        self.open()
        if self.frame_count > 0:
            self.kind, self.live = "video", False

    def read(self) -> Frame | None:
        """The next frame, or None at the end (file) or when the stream is lost (live)."""
        ok, image = self.cap.read()
        if not ok and self.kind == "video":
            ok, image = self._skip_corrupt()
        if not ok:
            return None
        index = self.next_index
        self.next_index += 1
        return Frame(index, self._time(index), as_bgr(image), self.name)

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
                f"complete, or {_REENCODE}")

    def empty(self) -> str:
        if self.kind == "video":
            return (f"video {self.label} opened but has no decodable frame ({_ffmpeg_state()}): check the file "
                    f"is complete, or {_REENCODE}")
        return f"{self.kind} {self.label} opened but gave no frame: " + self.cannot_open().split(": ", 1)[1]

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ImageReader:
    """One image file, or a folder of images in sorted order; unreadable files are counted and named
    (``skipped_files``, appended before the next frame is returned), not fatal."""

    live = False

    def __init__(self, spec: SourceSpec, fps: float):
        self.path, self.fps, self.kind = Path(spec.target), fps, spec.kind
        self.name, self.label = spec.name, spec.label
        self.skipped: Counter[str] = Counter()
        self.skipped_files: list[SkippedFile] = []
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
        others = [p for p in entries if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            self.skipped["not_image"] += len(others)
            self.skipped_files += [SkippedFile(None, None, shown_name(p.name), "not_image") for p in others]

    def read(self) -> Frame | None:
        while self.next_index < len(self.files):
            index = self.next_index
            self.next_index += 1
            path = self.files[index]
            image = decode_image(path)
            if image is None:
                self.skipped["unreadable_image"] += 1
                self.skipped_files.append(
                    SkippedFile(index, index / self.fps, shown_name(path.name), "unreadable_image"))
                continue
            return Frame(index, index / self.fps, image, shown_name(path.name))  # any bytes, as valid text
        return None

    def empty(self) -> str:
        if self.kind == "image":
            return f"cannot read image {self.label}: not a readable image (corrupt, empty or an unsupported format)"
        seen = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "folder is empty"
        return (f"image folder {self.label} has no readable images ({seen}); put .jpg/.png/.bmp/.tif/.webp "
                f"files in it, or pass a video file")

    def close(self) -> None:
        pass


def reader_for(spec: SourceSpec, open_timeout_s: float, read_timeout_s: float,
               image_fps: float) -> CaptureReader | ImageReader:
    """The reader for a classified source (not opened yet).

    Raises:
        SourceError: a ``gst:`` source on an OpenCV without GStreamer.
    """
    from cv2 import videoio_registry

    if spec.kind in IMAGE_KINDS:
        return ImageReader(spec, image_fps)
    if spec.kind == "url":
        api = cv2.CAP_FFMPEG if videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
        params = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000))
        return CaptureReader(spec, live=True, api=api, params=params)
    if spec.kind == "gst":
        if not videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
            raise SourceError("this OpenCV has no GStreamer support, which gst: sources need: on a Jetson use the "
                              "JetPack OpenCV (apt python3-opencv; install au-edge[runtime-core], not [runtime]); "
                              "elsewhere build OpenCV with -DWITH_GSTREAMER=ON")
        return CaptureReader(spec, live=True, api=cv2.CAP_GSTREAMER)
    return CaptureReader(spec, live=spec.live)
