"""The output interface, the fan-out, and the one-line error for outputs that cannot be written."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from runtime.errors import AUEdgeError
from runtime.results import FrameResult, SkippedFile


class OutputError(AUEdgeError):
    """An output (file, video writer, socket) that cannot be opened or written."""


class Output:
    """One destination for results. ``quit_requested`` turns True when the user asked to stop (window)."""

    quit_requested: bool = False

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def write_skipped(self, skipped: SkippedFile) -> None:
        """A file of the source that was not processed (an image folder's unreadable file). Only the
        outputs that keep a record per input (JSONL) write it; the others have nothing to draw."""

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """Give up before the run started: remove what was written, leave existing files untouched."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MultiOutput(Output):
    """Writes every result to each output in turn; closes them all even when one fails."""

    def __init__(self, outputs: Iterable[Output] = ()):
        self.outputs = list(outputs)

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        for out in self.outputs:
            out.write(result, frame_bgr)

    def write_skipped(self, skipped: SkippedFile) -> None:
        for out in self.outputs:
            out.write_skipped(skipped)

    @property
    def quit_requested(self) -> bool:  # type: ignore[override]
        return any(out.quit_requested for out in self.outputs)

    def close(self) -> None:
        first: BaseException | None = None
        for out in self.outputs:
            try:
                out.close()
            except Exception as e:  # noqa: BLE001 - close the others, then report the first
                first = first or e
        if first is not None:
            raise first

    def abort(self) -> None:
        for out in self.outputs:
            try:
                out.abort()
            except Exception:  # noqa: BLE001 - aborting after another error; that error is the one shown
                pass


def partial_path(path: str | Path) -> Path:
    """Where an output is written until it is closed: ``dir/.name.partial.suffix`` (same folder, so the
    final rename is atomic, and the suffix kept, so a video writer still picks its container)."""
    p = Path(path)
    return p.with_name(f".{p.stem}.partial{p.suffix}")


class AtomicText:
    """A text file written under ``partial_path(path)`` and renamed onto ``path`` by ``commit()``.

    An existing file at ``path`` stays byte-identical until the run's outputs are closed; a run that
    fails before it starts (``discard()``) never touches it.
    """

    def __init__(self, path: str | Path, what: str, newline: str | None = None):
        self.path, self.tmp = Path(path), partial_path(path)
        if self.path.exists() and not self.path.is_file():  # a FIFO or device (/dev/stdout): write to it
            self.tmp = self.path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file: IO[str] | None = open(self.tmp, "w", encoding="utf-8", newline=newline)
        except OSError as e:
            raise OutputError(f"cannot write {what} {str(self.path)!r}: {e.strerror or e}; check the folder "
                              f"exists and is writable") from e

    def commit(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            if self.tmp != self.path:
                os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            if self.tmp != self.path:
                self.tmp.unlink(missing_ok=True)


class TextOutput(Output):
    """A text output to a file (``AtomicText``: renamed into place on ``close``) or stdout (``-``)."""

    def _open(self, path: str | Path, what: str, newline: str | None = None) -> None:
        self.to_stdout = str(path) == "-"
        self._file = None if self.to_stdout else AtomicText(path, what, newline)
        self._f: IO[str] | None = sys.stdout if self._file is None else self._file.file

    def close(self) -> None:
        """Complete the file: it appears under its name now (written to a partial name until then)."""
        if self._file is not None:
            self._file.commit()
        self._f = None

    def abort(self) -> None:
        if self._file is not None:
            self._file.discard()
        self._f = None
