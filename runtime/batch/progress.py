"""The batch's progress on stderr: a tqdm bar on a terminal when tqdm is installed, else one plain line
per finished input (readable in logs). A failed input's line is printed either way, ``--quiet`` too."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from runtime.batch.manifest import DONE, Row
from runtime.errors import stderr_line
from runtime.shown import redact, shown_name


class Progress:
    """``row(row)`` per finished input, ``close()`` at the end.

    Args:
        total: inputs to run.
        enabled: show progress (failures are shown regardless).
        bar: use tqdm (None: when stderr is a terminal and tqdm is installed).
    """

    def __init__(self, total: int, enabled: bool = True, bar: bool | None = None, stream: TextIO | None = None):
        self.total, self.enabled, self.count = total, enabled, 0
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None
        if bar is None:
            bar = bool(getattr(self.stream, "isatty", lambda: False)())
        if enabled and bar and total:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, unit="file", desc="au-edge batch", file=self.stream, dynamic_ncols=True)

    def row(self, row: Row) -> None:
        self.count += 1
        name = shown_name(Path(row.input).name)
        if row.status == DONE:
            line = f"au-edge batch: [{self.count}/{self.total}] done {name}: {row.frames} frames, {row.faces} faces, " \
                   f"{row.fps:.1f} fps"
            if self.bar is not None:
                self.bar.set_postfix_str(name, refresh=False)
                self.bar.update(1)
            elif self.enabled:
                self._print(line)
            return
        line = f"au-edge batch: [{self.count}/{self.total}] failed {name}: {row.error}"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(redact(line), file=self.stream)
        else:
            self._print(line)

    def _print(self, line: str) -> None:
        if self.stream is sys.stderr:
            stderr_line(line)  # secrets redacted
        else:
            self.stream.write(redact(line) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
