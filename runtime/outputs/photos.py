"""``--save-annotated DIR``: one annotated image per photo of an image file or folder, named as the photo.

Each image is encoded in memory, written beside its final name and renamed onto it, so a viewer or a
sync tool never sees half an image, and a photo's annotated copy appears as soon as it is done. The
format follows the photo's suffix (a ``.jpg`` stays JPEG); a suffix OpenCV cannot write gets ``.png``
appended. Videos and cameras are refused: ``--record OUT.mp4`` writes their annotated frames.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.outputs.base import Output, OutputError
from runtime.outputs.draw import Annotator
from runtime.results import FrameResult
from runtime.wheel_files import write_atomic


class AnnotatedImages(Output):
    """Annotated copies of the photos in ``folder``.

    Args:
        folder: where the images go (created); must not be the source's own folder.
        aus: the AU bars drawn (the engine's AUs).
        source: the source spec (a path), to refuse overwriting the photos themselves.
        annotator: shared with ``--record``/``--show`` so a frame is drawn once.

    Raises:
        OutputError: the folder is the source's folder, or cannot be created.
    """

    def __init__(self, folder: str | Path, aus: Sequence[str], *, source: str | int | os.PathLike | None = None,
                 annotator: Annotator | None = None):
        self.folder = Path(folder)
        self.annotator = annotator or Annotator(aus)
        self.written = 0
        if source is not None and not isinstance(source, int) and Path(source).exists():
            photos = Path(source) if Path(source).is_dir() else Path(source).parent
            if self.folder.resolve() == photos.resolve():
                raise OutputError(f"--save-annotated {str(self.folder)!r} is the folder of the photos: the annotated "
                                  f"copies would overwrite them; pass another folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create --save-annotated folder {str(self.folder)!r}: {e.strerror}; pass a "
                              f"writable folder") from e

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if frame_bgr is None:
            return
        image = self.annotator.annotate(result, frame_bgr)
        name = Path(str(result.source)).name or f"frame_{int(result.frame):06d}.png"
        data = _encode(image, Path(name).suffix)
        if data is None:
            name, data = name + ".png", _encode(image, ".png")
        try:
            write_atomic(self.folder / name, data)
        except OSError as e:
            raise OutputError(f"cannot write {str(self.folder / name)!r}: {e.strerror}; check the folder is "
                              f"writable and has space") from e
        self.written += 1


def _encode(image: np.ndarray, suffix: str) -> bytes | None:
    """The image encoded as ``suffix`` says, or None when this OpenCV cannot write that format."""
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error:
        return None
    return buf.tobytes() if ok else None
