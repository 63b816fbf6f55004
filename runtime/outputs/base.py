"""The output interface, the fan-out with its two-phase close, and text files written through a ``Partial``.

A run's outputs are committed together and only when the run ended well: ``MultiOutput.close()`` first
``prepare()``s every output (flush, fsync, a recording's index, checks), and only when all of them are
complete renames each onto its name; a failure in either phase removes what was not committed yet.
``abort()`` (the run failed) removes every partial file and leaves every existing output as it was.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from runtime.atomic import Partial, write_error
from runtime.errors import OutputError
from runtime.results import FrameResult, SkippedFile

__all__ = ["MultiOutput", "Output", "OutputError", "TextOutput"]


class Output:
    """One destination for results. ``quit_requested`` turns True when the user asked to stop (window).

    Files: ``prepare()`` completes and checks what was written (nothing visible changes), ``close()``
    commits it (the file appears under its name), ``abort()`` removes it. ``stale`` lists partial files
    of the same targets that killed runs left behind (named in the run's summary).
    """

    quit_requested: bool = False
    stale: list[Path] = []

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def write_skipped(self, skipped: SkippedFile) -> None:
        """A file of the source that was not processed (an image folder's unreadable file). Only the
        outputs that keep a record per input (JSONL) write it; the others have nothing to draw."""

    def prepare(self) -> None:
        """Complete the output without committing it (raises OutputError when it cannot be completed)."""

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """The run failed: remove what was written, leave existing files untouched."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            self.abort()


class MultiOutput(Output):
    """Writes every result to each output in turn; commits them all or none."""

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

    @property
    def stale(self) -> list[Path]:  # type: ignore[override]
        return [p for out in self.outputs for p in out.stale]

    def prepare(self) -> None:
        for out in self.outputs:
            out.prepare()

    def close(self) -> None:
        """Prepare every output, then commit each; the first failure aborts the outputs not yet committed.

        Raises:
            OutputError: an output that could not be completed (the others were not committed either,
            unless the failure came while renaming, after some were).
        """
        try:
            self.prepare()
        except OutputError as e:
            self.abort()
            raise OutputError(f"{e}; no output was committed, existing files are as they were") from e
        except BaseException:
            self.abort()
            raise
        for i, out in enumerate(self.outputs):
            try:
                out.close()
            except BaseException as e:
                MultiOutput(self.outputs[i + 1:]).abort()
                if isinstance(e, OutputError) and self.outputs[i + 1:]:
                    raise OutputError(f"{e}; the outputs after it were not committed") from e
                raise

    def abort(self) -> None:
        for out in self.outputs:
            try:
                out.abort()
            except Exception:  # noqa: BLE001 - aborting after another error; that error is the one shown
                pass


class TextOutput(Output):
    """A text output to a file (a ``Partial``, renamed into place on ``close``) or stdout (``-``).

    A path that is a FIFO or a device (``/dev/stdout``) is written directly. Every OS error while writing
    becomes one ``OutputError`` line naming the file and the error (``_writing``).
    """

    what = "file"

    def _open(self, path: str | Path, what: str, newline: str | None = None) -> None:
        self.what, self.to_stdout = what, str(path) == "-"
        self.target = None if self.to_stdout else Path(path)
        self._partial: Partial | None = None
        self._prepared = False
        if self.to_stdout:
            self._f: IO[str] | None = sys.stdout
            return
        if self.target.exists() and not self.target.is_file() and not self.target.is_dir():  # FIFO, device
            try:
                self._f = open(self.target, "w", encoding="utf-8", newline=newline, errors="backslashreplace")
            except OSError as e:
                raise OutputError(write_error(what, self.target, e)) from e
            return
        if self.target.is_dir():
            raise OutputError(f"{what} {self._shown()} is a folder; give a file name")
        self._partial = Partial(self.target, what)
        self.stale = self._partial.stale
        self._f = self._partial.text(newline)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """OS errors as one line naming the file (``BrokenPipeError`` on stdout is the caller's)."""
        try:
            yield
        except BrokenPipeError:
            if not self.to_stdout:
                raise OutputError(f"writing {self.what} {self._shown()} failed: the reader went away") from None
            raise
        except OSError as e:
            raise OutputError(write_error(self.what, self.target or "<stdout>", e)) from e

    def _shown(self) -> str:
        from runtime.shown import quoted

        return quoted(self.target) if self.target is not None else "<stdout>"

    def prepare(self) -> None:
        """Flush and fsync the partial file (once); nothing is renamed yet."""
        if self._prepared or self._f is None:
            return
        with self._writing():
            self._f.flush()
            if self._partial is not None:
                self._partial.sync()
        self._prepared = True

    def close(self) -> None:
        """Complete the file: it appears under its name now (written to a partial name until then)."""
        if self._f is None:
            return
        self.prepare()
        f, self._f = self._f, None
        if f is not sys.stdout:
            with self._writing():
                f.close()
        if self._partial is not None:
            self._partial.commit()

    def abort(self) -> None:
        f, self._f = self._f, None
        if f is not None and f is not sys.stdout:
            with contextlib.suppress(OSError):
                f.close()
        if self._partial is not None:
            self._partial.discard()
