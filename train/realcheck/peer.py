"""MediaPipe FaceLandmarker blendshapes on the real-check faces, in a child process.

The parent (``train.realcheck``) runs the au-edge runtime; mediapipe brings its own TFLite/XNNPACK
and threads, so, as ``device_tests.pipeline`` does for its peer, it runs here in its own process
(in one process the two do run, but mediapipe's landmarker then fails in its ``__del__`` at exit).
Two jobs, one landmarker per mode:
- photos and clip frames in IMAGE mode: the peer's scores on photos, and the silver labels of the
  clip (``train.data.silver`` labels in IMAGE mode, so the same scores the open data is built from);
- clip frames in VIDEO mode: the peer's scores on the clip, as a user would run MediaPipe on video.

Child CLI (internal): ``python -m train.realcheck.peer --task T --jobs JOBS.json --out OUT.json``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from train.cli import OneLineParser
from train.data.landmarker import blendshape_scores
from train.data.silver import BLENDSHAPES_FOR_AU

TASK = Path("models") / "face_landmarker_v2_with_blendshapes.task"
PEER_THRESHOLD = 0.5  # blendshape scores used as probabilities; silver positives start at 0.4


def au_scores(blendshapes: dict[str, float] | None, aus: list[int]) -> dict[int, float] | None:
    """Blendshape scores -> one score per AU (L/R averaged, the silver mapping); AUs without a
    blendshape (AU23, AU25) are absent. ``None`` (no face) stays ``None``."""
    if blendshapes is None:
        return None
    return {a: float(np.mean([blendshapes.get(n, 0.0) for n in BLENDSHAPES_FOR_AU[a]]))
            for a in aus if a in BLENDSHAPES_FOR_AU}


def available() -> str | None:
    """None when the peer can run, else the one-line reason it cannot."""
    if importlib.util.find_spec("mediapipe") is None:
        return "mediapipe is not installed (pip install 'au-edge[peer]')"
    return None


def run_child(task: Path, photos: list[str], clip: str | None, max_frames: int | None,
              video_mode: bool) -> dict:
    """Run the child process; returns its JSON (``photos``, ``clip_image``, ``clip_video``, ``fps``,
    ``name``).

    Raises:
        RuntimeError: the child failed (its last stderr line is in the message).
    """
    with tempfile.TemporaryDirectory() as tmp:
        jobs, out = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs.write_text(json.dumps({"photos": photos, "clip": clip, "max_frames": max_frames,
                                    "video_mode": video_mode}))
        cmd = [sys.executable, "-m", "train.realcheck.peer", "--task", str(task), "--jobs", str(jobs),
               "--out", str(out)]
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the mediapipe child failed (exit {proc.returncode}): {last}")
        return json.loads(out.read_text())


def _child(task: str, jobs: dict) -> dict:
    import cv2

    from runtime.cv_path import decode_image, open_video
    from train.data.landmarker import FaceLandmarker

    out: dict = {"name": "", "photos": [], "clip_image": [], "clip_video": [], "fps": None}
    with FaceLandmarker(task, "IMAGE") as lm:
        out["name"] = lm.name
        for path in jobs["photos"]:
            bgr = decode_image(path)
            out["photos"].append(None if bgr is None else lm.scores(bgr))
        if jobs["clip"]:
            cap = open_video(jobs["clip"])
            out["fps"] = cap.get(cv2.CAP_PROP_FPS) or 30.0
            lv = FaceLandmarker(task, "VIDEO") if jobs["video_mode"] else None
            try:
                n, limit = 0, jobs["max_frames"]
                while limit is None or n < limit:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    img = lm.image(bgr)
                    out["clip_image"].append(blendshape_scores(lm.detect(img)))
                    if lv is not None:
                        t_ms = round(n * 1000.0 / out["fps"])
                        out["clip_video"].append(blendshape_scores(lv.detect(img, t_ms)))
                    n += 1
            finally:
                cap.release()
                if lv is not None:
                    lv.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.realcheck.peer")
    p.add_argument("--task", required=True)
    p.add_argument("--jobs", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    result = _child(args.task, json.loads(Path(args.jobs).read_text()))
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
