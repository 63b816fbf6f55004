"""JSONL output: one compact CONTRACTS record per processed frame, to a file or stdout (``-``), and one
record per file of an image folder that was not processed (``"skipped": reason``, ``"faces": []``).

A file is written under a partial name (``.name.XXXXXXXX.partial.jsonl``, ``runtime.atomic``) and renamed
into place when the run ends well. Lines are strict JSON (``runtime.strict_json.dumps``): a non-finite
number stops the run with one line instead of writing a bare ``NaN`` that strict readers reject.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from runtime.errors import OutputError
from runtime.outputs.base import TextOutput
from runtime.results import FrameResult, SkippedFile
from runtime.strict_json import dumps


class JsonlOutput(TextOutput):
    """``FrameResult.to_json()`` per line. Every line is flushed, so ``| jq`` and tails see it live.

    A reader that goes away on stdout (``| head``) ends the run quietly via ``quit_requested``.
    """

    def __init__(self, path: str | Path):
        self._open(path, "JSONL")
        self.path = "-" if self.to_stdout else str(path)

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if self._f is None:
            return
        self._line(result.to_json(), f"frame {result.frame}")

    def write_skipped(self, skipped: SkippedFile) -> None:
        if self._f is not None:
            self._line(skipped.to_json(), f"skipped file {skipped.source}")

    def _line(self, record: dict, what: str) -> None:
        try:
            line = dumps(record)
        except ValueError as e:
            raise OutputError(f"JSONL {self._shown()}, {what}: {e}; this is a bug in the "
                              "stage that made it, please report it") from None
        try:
            with self._writing():
                self._f.write(line + "\n")
                self._f.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        self._f = None
        self.quit_requested = True
