"""``--save-annotated DIR``: one annotated image per photo of an image file or folder, named as the photo.

Like every run output (``outputs.base``), the images are committed only when the run ends well: each
is written, fsynced, into one partial folder beside ``DIR`` (``runtime.atomic.Partial``: created
exclusively, locked, named in the next run's summary if this one is killed) and moved into ``DIR`` by
``close()``; ``abort()`` removes the partial folder and leaves ``DIR`` as it was. The format follows
the photo's suffix (a ``.jpg`` stays JPEG); a suffix OpenCV cannot write gets ``.png`` appended.
Videos and cameras are refused: ``--record OUT.mp4`` writes their annotated frames.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.atomic import Partial, reason, write_error
from runtime.outputs.base import Output, OutputError
from runtime.outputs.draw import Annotator
from runtime.results import FrameResult
from runtime.shown import quoted

WHAT = "--save-annotated"


class AnnotatedImages(Output):
    """Annotated copies of the photos in ``folder``.

    Args:
        folder: where the images go (created); must not be the source's own folder.
        aus: the AU bars drawn (the engine's AUs).
        source: the source spec (a path), to refuse overwriting the photos themselves.
        annotator: shared with ``--record``/``--show`` so a frame is drawn once.

    Raises:
        OutputError: the folder is the source's folder, or it (or the partial folder beside it)
            cannot be created, or another run is writing it now.
    """

    def __init__(self, folder: str | Path, aus: Sequence[str], *, source: str | int | os.PathLike | None = None,
                 annotator: Annotator | None = None):
        self.folder = Path(folder)
        self.annotator = annotator or Annotator(aus)
        self.written: list[str] = []  # names in the partial folder, in order
        if source is not None and not isinstance(source, int) and Path(source).exists():
            photos = Path(source) if Path(source).is_dir() else Path(source).parent
            if self.folder.resolve() == photos.resolve():
                raise OutputError(f"{WHAT} {quoted(self.folder)} is the folder of the photos: the annotated "
                                  "copies would overwrite them; pass another folder")
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"{WHAT} {quoted(self.folder)} is a file; pass a folder")
        self._stage: Partial | None = Partial(self.folder, WHAT, folder=True)
        self.stale = self._stage.stale

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if frame_bgr is None or self._stage is None:
            return
        image = self.annotator.annotate(result, frame_bgr)
        name = Path(str(result.source)).name or f"frame_{int(result.frame):06d}.png"
        data = _encode(image, Path(name).suffix)
        if data is None:
            name, data = name + ".png", _encode(image, ".png")
        path = self._stage.path / name
        try:
            with open(path, "xb") as f:  # a name seen twice in one run would be a bug: never overwrite
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise OutputError(write_error(WHAT, self.folder / name, e)) from e
        self.written.append(name)

    def prepare(self) -> None:
        if self._stage is not None:
            self._stage.check()

    def close(self) -> None:
        """Move every image into the folder (each rename atomic; an older copy of the same name is replaced)."""
        if self._stage is None:
            return
        self.prepare()
        stage, self._stage = self._stage, None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for name in self.written:
                os.replace(stage.path / name, self.folder / name)
        except OSError as e:
            raise OutputError(f"cannot complete {WHAT} {quoted(self.folder)}: {reason(e)}") from e
        finally:
            stage.discard()

    def abort(self) -> None:
        stage, self._stage = self._stage, None
        if stage is not None:
            stage.discard()


def _encode(image: np.ndarray, suffix: str) -> bytes | None:
    """The image encoded as ``suffix`` says, or None when this OpenCV cannot write that format."""
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error:
        return None
    return buf.tobytes() if ok else None
