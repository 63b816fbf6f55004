"""The user's au-edge cache folder: ``$XDG_CACHE_HOME/au-edge`` (default ``~/.cache/au-edge``).

One home for the base every cache lives under (face models, the demo clip, the default engine's
measured pick), so one ``XDG_CACHE_HOME`` moves them all.
"""
from __future__ import annotations

import os
from pathlib import Path


def user_cache(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/au-edge/<parts...>`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "au-edge", *parts)
