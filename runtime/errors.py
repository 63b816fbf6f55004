"""Errors for expected faults, and the one way a command line shows them.

Each ``AUEdgeError`` carries one line that names the problem and the fix. Every entry point prints
expected faults through ``print_error`` (``au-edge: error: <line>`` on stderr, exit 2): no traceback
and no hand-written ``au-edge: error`` print anywhere else. Every line printed here has its secrets
(URL passwords and query values, ``password=``-style values) redacted, wherever the text came from.
"""
from __future__ import annotations

import sys


class AUEdgeError(Exception):
    """An expected, user-fixable fault (bad file, bad value, missing dependency)."""

    exit_code = 2


class EngineError(AUEdgeError):
    """A missing, corrupt or unsupported engine file."""


class CardError(AUEdgeError):
    """A model card that is missing, malformed or does not match its engine."""


class SourceError(AUEdgeError):
    """A frame source that cannot be opened or read."""


class OutputError(AUEdgeError):
    """An output (file, video writer, socket) that cannot be opened, written or completed."""


class MissingDependency(AUEdgeError):
    """An optional dependency (TensorRT, LiteRT, ...) is not installed."""

    def __init__(self, what: str, hint: str):
        super().__init__(f"{what} is not installed: {hint}")


def stderr_line(line: str) -> None:
    """One line on stderr, secrets redacted (``runtime.shown.redact``); on a terminal it first clears a
    pending ``\\r`` status line."""
    from runtime.shown import redact

    clear = "\r\x1b[K" if sys.stderr.isatty() else ""
    print(clear + redact(str(line)), file=sys.stderr, flush=True)


def print_error(fault: BaseException | str) -> int:
    """Show an expected fault as ``au-edge: error: <one line>`` on stderr.

    Args:
        fault: an ``AUEdgeError`` (or ``ValueError`` from an options check), or the line itself.

    Returns:
        The exit code to end with: the error's ``exit_code`` (2 for every ``AUEdgeError``), else 2.
    """
    stderr_line(f"au-edge: error: {fault}")
    return int(getattr(fault, "exit_code", 2))
