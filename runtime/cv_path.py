"""Names OpenCV can take: its Python bindings read a path or URL as UTF-8 text and end the whole process
(a segmentation fault, OpenCV 5.1) on a ``str`` holding surrogate escapes, which is how Python holds a
file name whose bytes are not UTF-8 (``os.fsdecode``). Such names are legal on Linux (an old camera's
card, a share mounted with another code page), so a file with one is opened another way, never crashed on:

- ``for_reading(path)``: a file FFmpeg decodes (a video source, a finished recording read back): its own
  name when that is UTF-8, else ``/proc/self/fd/N`` of the file opened here (FFmpeg probes an input by its
  content, so the name does not matter).
- ``for_writing(path)``: a file OpenCV creates (FFmpeg picks the container by the name's suffix, so the
  name stays): its own path when UTF-8, else ``/proc/self/fd/N/NAME``, N its folder opened here; NAME
  must be UTF-8 (``runtime.atomic`` gives partial files such names).
- ``text(value)``: a URL or pipeline as it is, or one line when it is not UTF-8.
- ``decode_image(path)``: an image file of any name, decoded from its bytes.
- ``open_video(path)``: a ``cv2.VideoCapture`` of a video file of any name (through ``for_reading``).

The descriptors opened here are closed when the block ends: OpenCV has opened the file itself by then.
Where ``/proc/self/fd`` is missing (not Linux; macOS and Windows names are always Unicode), a name that is
not UTF-8 is one line naming it.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import cv2
import numpy as np

from runtime.atomic import reason
from runtime.errors import AUEdgeError
from runtime.shown import quoted

_PROC_FD = "/proc/self/fd"
_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def is_text(name: str | os.PathLike) -> bool:
    """``name`` is valid UTF-8 text (no byte of the OS name was held as a surrogate escape)."""
    try:
        os.fspath(name).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(value: str, what: str, error: type[AUEdgeError]) -> str:
    """``value`` (a URL, a pipeline) for OpenCV, or ``error`` naming it when it is not UTF-8."""
    if not is_text(value):
        raise error(f"{what} {quoted(value)} is not valid UTF-8 text, which OpenCV cannot take; give it as "
                    "UTF-8 (percent-encode other bytes of a URL)")
    return value


@contextlib.contextmanager
def for_reading(path: str | os.PathLike, what: str, error: type[AUEdgeError]) -> Iterator[str]:
    """A name OpenCV can open ``path`` by for reading, valid inside the block.

    Raises:
        error: the file cannot be opened, or its name is not UTF-8 and this system has no ``/proc/self/fd``.
    """
    if is_text(path):
        yield os.fspath(path)
        return
    fd = _open(path, _FLAGS, what, error)
    try:
        yield _through(fd, "", path, what, error)
    finally:
        os.close(fd)


@contextlib.contextmanager
def for_writing(path: str | os.PathLike, what: str, error: type[AUEdgeError]) -> Iterator[str]:
    """A name OpenCV can create (or overwrite) ``path`` by, valid inside the block; ``path``'s own name
    (its last part) must be UTF-8, its folders need not be.

    Raises:
        error: the folder cannot be opened, or it is not UTF-8 and this system has no ``/proc/self/fd``.
    """
    if is_text(path):
        yield os.fspath(path)
        return
    folder, name = os.path.split(os.fspath(path))
    if not is_text(name):
        raise ValueError(f"for_writing needs a UTF-8 file name, got {quoted(name)}")  # a caller's bug
    fd = _open(folder or ".", _FLAGS | getattr(os, "O_DIRECTORY", 0), what, error)
    try:
        yield _through(fd, name, path, what, error)
    finally:
        os.close(fd)


def _open(path: str | os.PathLike, flags: int, what: str, error: type[AUEdgeError]) -> int:
    try:
        return os.open(path, flags)
    except OSError as e:
        raise error(f"cannot open {what} {quoted(path)}: {reason(e)}") from e


def _through(fd: int, name: str, path: str | os.PathLike, what: str, error: type[AUEdgeError]) -> str:
    via = f"{_PROC_FD}/{fd}"
    if not os.path.isdir(_PROC_FD):
        raise error(f"{what} {quoted(path)}: its name is not valid UTF-8 text, which OpenCV cannot open on this "
                    "system; rename it")
    return f"{via}/{name}" if name else via


def decode_image(path: str | os.PathLike) -> np.ndarray | None:
    """BGR uint8, whatever the file holds (gray, RGBA, 16 bit); None if it cannot be decoded. Any file
    name: the bytes are read here and decoded in memory (``cv2.imread`` would take the name as text)."""
    try:
        data = np.fromfile(os.fspath(path), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error):
        return None
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return None
    return image


def open_video(path: str | os.PathLike) -> cv2.VideoCapture:
    """A capture of the video file ``path``, whatever its name; not opened (``isOpened()`` False) when
    the file cannot be, as ``cv2.VideoCapture(name)`` behaves for a UTF-8 name."""
    try:
        with for_reading(path, "video", AUEdgeError) as name:
            return cv2.VideoCapture(name)
    except AUEdgeError:
        return cv2.VideoCapture()
