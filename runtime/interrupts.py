"""Ctrl-C and SIGTERM for the command-line runs: both end a run the same way, never mid-frame.

``handled()`` routes both signals into ``INTERRUPTS`` for the length of a command: SIGTERM (how systemd
and docker stop a process) becomes ``Terminated``, a ``KeyboardInterrupt``, so one ``except`` ends the
run. ``INTERRUPTS.atomic()`` holds a signal back while one frame goes to every output, and ``ignored()``
keeps a second signal from cutting the closing short (a recording would lose its index).
"""
from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the run ends exactly as after Ctrl-C."""


def exit_code(interrupted: BaseException | None) -> int:
    """0 for a run that ended by itself, 130 after Ctrl-C, 143 after SIGTERM (the shells' 128 + signal)."""
    if interrupted is None:
        return 0
    return 143 if isinstance(interrupted, Terminated) else 130


class Interrupts:
    """Ctrl-C and SIGTERM, held back while one frame goes to every output so the files agree frame for frame.

    A signal that lands between the JSONL line and the recorded frame would otherwise leave the recording one
    frame short of the JSONL; inside ``atomic()`` it is kept and raised when the frame is written everywhere.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending: KeyboardInterrupt | None = None

    def handler(self, signum, frame) -> None:
        exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.depth:
            self.pending = self.pending or exc
            return
        raise exc

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending is not None:
                exc, self.pending = self.pending, None
                raise exc


INTERRUPTS = Interrupts()


@contextlib.contextmanager
def _signals_to(handler) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` inside the block; the previous handlers come back after it."""
    old = {}
    for sig in SIGNALS:
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (called from a library thread): signals stay as they are
            pass
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def handled() -> contextlib.AbstractContextManager[None]:
    """Ctrl-C and SIGTERM go to ``INTERRUPTS`` inside the block (a command's whole run)."""
    return _signals_to(INTERRUPTS.handler)


def ignored() -> contextlib.AbstractContextManager[None]:
    """Neither signal interrupts the block (closing the outputs after the run ended)."""
    return _signals_to(signal.SIG_IGN)
