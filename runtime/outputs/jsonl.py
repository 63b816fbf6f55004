"""JSONL output: one compact CONTRACTS record per processed frame, to a file or stdout (``-``).

A file is written under a partial name (``.name.partial.jsonl``) and renamed into place when closed.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from runtime.outputs.base import Output, open_text
from runtime.results import FrameResult


class JsonlOutput(Output):
    """``FrameResult.to_json()`` per line. Every line is flushed, so ``| jq`` and tails see it live.

    A reader that goes away on stdout (``| head``) ends the run quietly via ``quit_requested``.
    """

    def __init__(self, path: str | Path):
        self.to_stdout = str(path) == "-"
        self._file = None if self.to_stdout else open_text(path, "JSONL")
        self._f = sys.stdout if self._file is None else self._file.file
        self.path = "-" if self.to_stdout else str(path)

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if self._f is None:
            return
        line = json.dumps(result.to_json(), separators=(",", ":"))
        try:
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

    def close(self) -> None:
        """Complete the file: it appears under its name now (written to a partial name until then)."""
        if self._file is not None:
            self._file.commit()
        self._f = None

    def abort(self) -> None:
        if self._file is not None:
            self._file.discard()
        self._f = None
