"""The benchmark peer: MediaPipe FaceLandmarker with blendshapes (Tasks API, VIDEO mode).

Run as its own process by ``device_tests.pipeline`` so its memory and threads do not mix with
the au-edge runtime being measured. mediapipe is a benchmark/training dependency only; the
landmarker is ``train.data.landmarker``'s, the one wrapper the silver labels and the real check use.
"""
from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np

from runtime.cli import MAX_FRAMES
from train.cli import OneLineParser


def run_peer(task: str, source: str, max_frames: int | None = None, num_faces: int = 1) -> dict:
    from train.data.landmarker import FaceLandmarker

    cap = cv2.VideoCapture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    times, with_face, n = [], 0, 0
    landmarker = FaceLandmarker(task, "VIDEO", num_faces=num_faces)
    try:
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            image = landmarker.image(frame)  # colour conversion outside the timing, as for our decode
            t0 = time.perf_counter()
            result = landmarker.detect(image, int(round(n * 1000.0 / fps)))
            times.append((time.perf_counter() - t0) * 1e3)
            with_face += bool(result.face_landmarks)
            n += 1
    finally:
        landmarker.close()
        cap.release()
    t = np.asarray(times)
    return {"name": f"{landmarker.name} (VIDEO)", "frames": n,
            "frames_with_face": with_face, "mean_ms": float(t.mean()), "p50_ms": float(np.median(t)),
            "p99_ms": float(np.percentile(t, 99)), "fps": float(1e3 / t.mean())}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.peer_mediapipe")
    p.add_argument("--task", required=True, help="face_landmarker*.task bundle")
    p.add_argument("--source", required=True)
    p.add_argument("--max-frames", type=MAX_FRAMES)
    args = p.parse_args(argv)
    print(json.dumps(run_peer(args.task, args.source, args.max_frames)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
