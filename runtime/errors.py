"""Errors for expected faults: each carries one line that names the problem and the fix.

The CLIs print ``str(err)`` and exit 2; no traceback is shown for these.
"""
from __future__ import annotations


class AUEdgeError(Exception):
    """An expected, user-fixable fault (bad file, bad value, missing dependency)."""

    exit_code = 2


class EngineError(AUEdgeError):
    """A missing, corrupt or unsupported engine file."""


class CardError(AUEdgeError):
    """A model card that is missing, malformed or does not match its engine."""


class SourceError(AUEdgeError):
    """A frame source that cannot be opened or read."""


class MissingDependency(AUEdgeError):
    """An optional dependency (TensorRT, LiteRT, ...) is not installed."""

    def __init__(self, what: str, hint: str):
        super().__init__(f"{what} is not installed: {hint}")
