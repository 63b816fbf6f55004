"""au-edge runtime: the lean AU detector for cameras, boards and robots (numpy + OpenCV + one backend).

The public surface is small and imported lazily, so ``import runtime.align`` (training) does not
pull in the face models or inference backends.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "AUDetector": "runtime.detector",
    "FaceAU": "runtime.results",
    "FrameResult": "runtime.results",
    "ModelCard": "runtime.card",
    "load_card": "runtime.card",
    "load_engine": "runtime.engines",
    "AUEdgeError": "runtime.errors",
    "read_results": "runtime.result_files",
    "Results": "runtime.result_files",
}
__all__ = list(_EXPORTS)
__all__.append("__version__")


def _version() -> str:
    """The installed distribution's version (one place: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("au-edge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _version()


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
