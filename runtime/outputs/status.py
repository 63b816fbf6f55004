"""One updating status line on stderr (fps and per-stage ms), and a summary line at the end.

On a terminal the line is rewritten in place (``\\r``) at most every 0.5 s; into a log file it prints
plain lines every 5 s instead, so logs stay readable.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from runtime.results import FrameResult

STAGES = ("decode", "face", "align", "au", "post")


class StatusLine:
    """``update(result)`` per frame, ``finish(summary)`` once; does nothing when ``enabled=False``."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, interval_s: float | None = None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (0.5 if self.tty else 5.0)
        self.frames = 0
        self._t_first = self._t_last = None
        self._sums = dict.fromkeys(STAGES, 0.0)
        self._win = (0, 0.0, dict.fromkeys(STAGES, 0.0))  # frames, start, stage sums since the last print
        self._width = 0
        self._shown = False

    def update(self, result: FrameResult) -> None:
        now = time.perf_counter()
        if self._t_first is None:
            self._t_first = self._t_last = now
            self._win = (0, now, dict.fromkeys(STAGES, 0.0))
        self.frames += 1
        self._t_last = now
        n, start, sums = self._win
        for k in STAGES:
            ms = float(result.stages_ms.get(k, 0.0))
            sums[k] += ms
            self._sums[k] += ms
        self._win = (n + 1, start, sums)
        if self.enabled and now - start >= self.interval_s:
            fps = (n + 1) / (now - start) if now > start else 0.0
            self._print(f"au-edge: frame {result.frame} | {fps:5.1f} fps | ms " + _stages(sums, n + 1)
                        + f" | faces {len(result.faces)}")
            self._win = (0, now, dict.fromkeys(STAGES, 0.0))

    def note(self, line: str) -> None:
        """One plain line before the updating line starts (e.g. which engine ``--engine default`` picked)."""
        if self.enabled:
            self.stream.write(f"au-edge: {line}\n")
            self.stream.flush()

    def _print(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def summary(self) -> dict:
        """Frames, mean fps and mean ms per stage so far."""
        span = (self._t_last - self._t_first) if self._t_first is not None else 0.0
        fps = (self.frames - 1) / span if self.frames > 1 and span > 0 else 0.0
        means = {k: (v / self.frames if self.frames else 0.0) for k, v in self._sums.items()}
        return {"frames": self.frames, "fps": fps, "stages_ms": means}

    def finish(self, summary: str = "") -> None:
        """End the updating line and print one summary line (``summary`` first, then fps and stage ms)."""
        if not self.enabled:
            return
        if self._shown and self.tty:
            self.stream.write("\n")
        s = self.summary()
        parts = [p for p in (summary, f"{s['fps']:.1f} fps",
                             "mean ms " + _stages(s["stages_ms"], 1) if self.frames else "") if p]
        self.stream.write("au-edge: " + " | ".join(parts) + "\n")
        self.stream.flush()


def _stages(sums: dict[str, float], n: int) -> str:
    return " ".join(f"{k} {sums[k] / n:.1f}" for k in STAGES)
