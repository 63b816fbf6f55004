"""Helpers of the fault tests (``test_reliability.py``): the CLI as a user runs it, a full disk (a tmpfs
filled up, or a file size limit), snapshots of a folder, a long face-less clip."""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
USER_FILES = {"o.jsonl": b'{"old": 1}\n', "o.csv": b"old,csv\n1,2\n", "o.mp4": b"the user's earlier recording"}


def run_cli(*args, preexec: Callable[[], None] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m runtime.camera ARGS`` with the open data's face models and one thread."""
    return subprocess.run(cli_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          preexec_fn=preexec, env=env(), check=False)


def cli_cmd(*args) -> list[str]:
    face_model = Path(os.environ.get("AU_DATA_DIR", "")) / "models" / "mediapipe-0.10.21"
    return [sys.executable, "-m", "runtime.camera", "--no-show", "--face-model", str(face_model), "--threads", "1",
            *map(str, args)]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The run ended with exit 2 and one line on stderr (after the engine's own note) holding ``words``."""
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert proc.returncode == 2 and len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry of ``folder``: a file's bytes, a link's target (as bytes)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        p = folder / name
        out[name] = b"->" + os.fsencode(os.readlink(p)) if p.is_symlink() else p.read_bytes() if p.is_file() else b"<dir>"
    return out


def long_video(path: Path, frames: int = 3000) -> Path:
    """A face-less MJPG clip, fast to decode and to run (the detector finds nothing)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (96, 64))
    frame = np.full((64, 96, 3), 90, np.uint8)
    for i in range(frames):
        frame[:, :, 1] = i % 250
        w.write(frame)
    w.release()
    return path


def partial_names(folder: Path, stem: str) -> list[str]:
    """The partial files a run writes for ``folder/stem.*`` (any version's naming)."""
    return sorted(n for n in os.listdir(folder) if n.startswith(f".{stem}.") and ".partial" in n)


def wait_for(cond: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[None]:
    """A tmpfs at ``folder`` (root only); skips the test where it cannot be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the RLIMIT_FSIZE variant covers this case")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system, then free ``leave`` bytes (whole 4 KiB pages) again."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while f.write(b"\0" * 4096):
            pass
    with open(filler, "r+b") as f:
        f.truncate(max(0, filler.stat().st_size - leave))


def file_size_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child may write files of at most ``limit`` bytes; EFBIG instead of SIGXFSZ."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


def only_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 and stderr is exactly one line (no traceback, no engine note) holding every one of ``words``."""
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    for w in words:
        assert w in err, err
