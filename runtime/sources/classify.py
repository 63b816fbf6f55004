"""The one source classifier: what a ``--source`` value names, decided from the text and the file system.

``classify(spec)`` says camera | video | image | folder | url | gst (a URL is refined to "video" once
opened, when FFmpeg knows its length: ``CaptureReader.probe_finite``). Everything else asks it: the
readers, the capture thread's live/file policy, and the detector's running mode (``IMAGE_KINDS``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runtime.errors import SourceError
from runtime.shown import quoted, redact, shown_name

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                            ".pbm", ".pgm", ".ppm", ".pnm", ".jp2", ".avif"})
URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
IMAGE_KINDS = frozenset({"image", "folder"})  # each frame an unrelated photo: the detector's image mode
LIVE_KINDS = frozenset({"camera", "url", "gst"})  # newest frame only, reconnect when lost


@dataclass(frozen=True)
class SourceSpec:
    """A classified source: ``target`` is what the reader opens, ``name`` goes into results, ``label`` into
    messages (URLs without their secrets, file names of any bytes as text: ``runtime.shown``)."""

    kind: str
    target: str | int | Path
    name: str
    label: str

    @property
    def live(self) -> bool:
        return self.kind in LIVE_KINDS


def classify(spec: str | int | os.PathLike) -> SourceSpec:
    """What ``spec`` names. A digit string is a camera index; write ``./0`` for a file named ``0``.

    Raises:
        SourceError: not a source type, an empty ``gst:``, a missing path, or an unreadable video file.
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise SourceError(f"not a source: {spec!r} (expected a camera index, path, URL or gst:<pipeline>)")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        return SourceSpec("camera", index, f"camera{index}", f"camera {index}")
    text = os.fspath(spec)
    if text.startswith("gst:"):
        pipeline = text[4:].strip()
        if not pipeline:
            raise SourceError("empty gst: source; give a pipeline ending in appsink, e.g. "
                              "'gst:videotestsrc ! videoconvert ! appsink'")
        return SourceSpec("gst", pipeline, pipeline.split("!", 1)[0].split()[0], f"'{redact(shown_name(pipeline))}'")
    if text.lower().startswith(URL_PREFIXES):
        shown = redact(shown_name(text))
        try:
            parts = urlsplit(shown)
            name = Path(parts.path).name or parts.hostname or shown
        except ValueError:  # a malformed host ("http://[x/"): FFmpeg will refuse it with the one line
            name = shown
        return SourceSpec("url", text, name, f"'{shown}'")
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(f"source not found: {quoted(text)} (expected a camera index, a video or image file, an "
                          f"image folder, an rtsp:// or http(s):// URL, or gst:<pipeline>; check the path)")
    name, label = shown_name(path.name or str(path)), quoted(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return SourceSpec("folder" if path.is_dir() else "image", path, name, label)
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {label}: permission denied; check the file's permissions")
    return SourceSpec("video", str(path), name, label)


def is_image_source(spec: str | int | os.PathLike) -> bool:
    """True for an image file or a folder (of images): the sources the detector runs in image mode."""
    try:
        return classify(spec).kind in IMAGE_KINDS
    except SourceError:
        return False


def jetson_csi(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """The ``gst:`` source for a Jetson CSI camera (nvarguscamerasrc), newest frame only, BGR out."""
    return (f"gst:nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM),width={width},"
            f"height={height},framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
            f"video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")
