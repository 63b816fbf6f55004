"""Browser-playable video: the runtime's recording re-encoded to H.264 (yuv420p, +faststart).

OpenCV's pip wheels encode only mp4v, which browsers do not play. The ``imageio-ffmpeg`` wheel
ships an ffmpeg binary with libx264, so the demo records with the runtime's ``VideoRecorder`` into
a lossless-enough MJPG intermediate and hands it to that ffmpeg. Without it the runtime records
mp4v directly and one line says so.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from runtime.outputs import OutputError


def ffmpeg_with_x264() -> tuple[str | None, str]:
    """(path of an ffmpeg that encodes H.264, "") or (None, why not), tried on a 2-frame test clip."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        return None, "imageio-ffmpeg is not installed (pip install 'au-edge[demo]')"
    except RuntimeError as e:
        return None, f"imageio-ffmpeg has no ffmpeg binary for this platform ({str(e).strip()[:100]})"
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10",
           "-frames:v", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "null", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{exe} does not run ({e})"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no libx264"])[-1]
        return None, f"{exe} cannot encode H.264 ({last[:120]})"
    return exe, ""


def to_h264(ffmpeg: str, src: Path, dst: Path) -> None:
    """Re-encode ``src`` to H.264 MP4 at ``dst``, every frame kept (no drops or duplicates).

    Raises:
        OutputError: ffmpeg failed (its last line is named).
    """
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-map", "0:v:0",
           "-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p",
           "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2:out_range=tv,format=yuv420p", "-color_range", "tv",
           "-fps_mode", "passthrough",
           "-movflags", "+faststart", "-an", str(dst)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not dst.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OutputError(f"ffmpeg could not write {dst} from {src} ({last[:160]}); "
                          "run again, or pass --out a folder with free space")
