"""One CLI error path for every command above the runtime (train, distill, export, device_tests).

A bad option or an expected fault (``AUEdgeError``, a bad value, a missing file) ends the command
with ONE line, ``au-edge: error: ...``, and exit 2; never a usage block or a traceback. The parser
is the runtime's own (``OneLineParser``); this module adds the guarded body the commands above the
runtime share. Imports nothing heavy, so the device tests use it on a board with the runtime extra
alone.
"""
from __future__ import annotations

from collections.abc import Callable

from runtime.camera import OneLineParser  # the runtime's one-line argparse (one home for the CLI's options)
from runtime.errors import AUEdgeError, print_error, stderr_line

__all__ = ["EXPECTED", "OneLineParser", "error_line", "fail", "guarded", "warn"]

EXPECTED: tuple[type[BaseException], ...] = (AUEdgeError, ValueError, FileNotFoundError)


def error_line(e: BaseException) -> str:
    """The first line of an error's message (its repr when it has none)."""
    text = str(e)
    return text.splitlines()[0] if text else repr(e)


def fail(message: str) -> int:
    """Print ``au-edge: error: message`` on stderr (``runtime.errors.print_error``: secrets redacted);
    returns the exit code 2."""
    print_error(message)
    return 2


def warn(message: str) -> None:
    stderr_line(f"au-edge: warning: {message}")


def guarded(run: Callable[..., int | None], *args, expected: tuple[type[BaseException], ...] = (), **kwargs) -> int:
    """``run(*args, **kwargs)`` as a command's body: its exit code, or an expected fault
    (``EXPECTED`` plus ``expected``) as one line and exit 2."""
    try:
        return int(run(*args, **kwargs) or 0)
    except EXPECTED + expected as e:
        return fail(error_line(e))
