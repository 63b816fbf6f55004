"""The output interface, the fan-out, and the one-line error for outputs that cannot be written."""
from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from runtime.errors import AUEdgeError
from runtime.results import FrameResult


class OutputError(AUEdgeError):
    """An output (file, video writer, socket) that cannot be opened or written."""


class Output:
    """One destination for results. ``quit_requested`` turns True when the user asked to stop (window)."""

    quit_requested: bool = False

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

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


def stderr_line(line: str) -> None:
    """One line on stderr; on a terminal it first clears a pending ``\\r`` status line."""
    clear = "\r\x1b[K" if sys.stderr.isatty() else ""
    print(clear + line, file=sys.stderr, flush=True)


def open_text(path: str | Path, what: str, newline: str | None = None) -> IO[str]:
    """Open a text output for writing, creating its folder; an OutputError naming it when that fails."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, "w", encoding="utf-8", newline=newline)
    except OSError as e:
        raise OutputError(f"cannot write {what} {str(p)!r}: {e.strerror or e}; check the folder exists "
                          f"and is writable") from e
