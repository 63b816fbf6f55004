"""Frame sources: one iterator of BGR frames for cameras, files, image folders, URLs and GStreamer.

``open_source(SRC)`` accepts what ``au-edge camera --source`` accepts:

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

Modules: ``classify`` (what a source is: the one classifier), ``readers`` (one per kind),
``handover`` (the two queue policies), ``capture`` (the capture thread, reconnect, ``open_source``).
"""
from __future__ import annotations

from runtime.errors import SourceError
from runtime.sources.capture import BACKOFF_S, FrameSource, Log, open_source
from runtime.sources.classify import (
    IMAGE_KINDS,
    IMAGE_SUFFIXES,
    LIVE_KINDS,
    URL_PREFIXES,
    SourceSpec,
    classify,
    is_image_source,
    jetson_csi,
)
from runtime.sources.readers import Frame

__all__ = [
    "BACKOFF_S",
    "IMAGE_KINDS",
    "IMAGE_SUFFIXES",
    "LIVE_KINDS",
    "URL_PREFIXES",
    "Frame",
    "FrameSource",
    "Log",
    "SourceError",
    "SourceSpec",
    "classify",
    "is_image_source",
    "jetson_csi",
    "open_source",
]
