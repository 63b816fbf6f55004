"""The LiteRT interpreter, from ai-edge-litert (preferred) or tflite_runtime (Python <= 3.11 boards).

One import point, so the AU engines and the face stage agree on which runtime is used.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

from runtime.errors import MissingDependency

_quieted = False
# fd 2 is process-wide: two threads saving and restoring it around their own interpreter interleave
# (A saves the real stderr, B saves A's /dev/null, A restores, B restores /dev/null for good). One lock
# makes the redirect-create-restore a unit; it is taken only until the first interpreter exists.
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the native one-time "INFO: Created TensorFlow Lite XNNPACK delegate" line, which no
    setting turns off and which would break the CLI's one-line errors and clean stderr."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to hide
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def default_threads() -> int:
    """Threads per interpreter when the user gives none: 2 (1 on a single core). LiteRT's own
    default is 1, which makes the small per-frame models (face mesh, AU engine) up to 1.4x slower."""
    return min(2, os.cpu_count() or 1)


def make_interpreter(model: str | Path | bytes, threads: int | None = None):
    """A LiteRT ``Interpreter`` for a model path or the model's bytes (tensors not yet allocated).

    Args:
        model: path of a ``.tflite`` file, or its bytes (e.g. a member of a ``.task`` bundle).
        threads: CPU threads for the kernels; ``None``: ``default_threads()``.

    Returns:
        The interpreter; call ``allocate_tensors()`` before use.

    Raises:
        MissingDependency: neither ai-edge-litert nor tflite_runtime is installed.
        ValueError: LiteRT's own error for an unreadable or invalid model.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise MissingDependency(
                "LiteRT", "pip install ai-edge-litert (or tflite-runtime on Python <= 3.11)") from None
    kwargs = {"num_threads": int(threads or default_threads())}
    if isinstance(model, (bytes, bytearray, memoryview)):
        kwargs["model_content"] = bytes(model)
    else:
        kwargs["model_path"] = str(model)
    if _quieted:
        return Interpreter(**kwargs)
    return _first_interpreter(Interpreter, kwargs)


def _first_interpreter(interpreter: type, kwargs: dict):
    """The process's first interpreter, created with fd 2 silenced, under the lock; threads that
    waited for it find ``_quieted`` set and create theirs unsilenced (the line comes only once).

    Other threads' writes to fd 2 during these few milliseconds are lost: the price of hiding a
    native line no setting turns off, paid once per process.
    """
    global _quieted
    with _QUIET_LOCK:
        if _quieted:
            return interpreter(**kwargs)
        with _quiet_native_stderr():
            interp = interpreter(**kwargs)
            interp.allocate_tensors()  # the delegate (and its log line) is created here
        _quieted = True
    return interp
