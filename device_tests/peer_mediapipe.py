"""The benchmark peer: MediaPipe FaceLandmarker with blendshapes (Tasks API, VIDEO mode).

Run as its own process by ``device_tests.pipeline`` so its memory and threads do not mix with
the au-edge runtime being measured. mediapipe is a benchmark/training dependency only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np


def run_peer(task: str, source: str, max_frames: int | None = None, num_faces: int = 1) -> dict:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=task),
                                        running_mode=vision.RunningMode.VIDEO, num_faces=num_faces,
                                        output_face_blendshapes=True)
    cap = cv2.VideoCapture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    times, with_face, n = [], 0, 0
    landmarker = vision.FaceLandmarker.create_from_options(opts)
    try:
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            t0 = time.perf_counter()
            result = landmarker.detect_for_video(image, int(round(n * 1000.0 / fps)))
            times.append((time.perf_counter() - t0) * 1e3)
            with_face += bool(result.face_landmarks)
            n += 1
    finally:
        landmarker.close()
        cap.release()
    t = np.asarray(times)
    return {"name": f"mediapipe {mp.__version__} FaceLandmarker+blendshapes (VIDEO)", "frames": n,
            "frames_with_face": with_face, "mean_ms": float(t.mean()), "p50_ms": float(np.median(t)),
            "p99_ms": float(np.percentile(t, 99)), "fps": float(1e3 / t.mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device_tests.peer_mediapipe")
    p.add_argument("--task", required=True, help="face_landmarker*.task bundle")
    p.add_argument("--source", required=True)
    p.add_argument("--max-frames", type=int)
    args = p.parse_args(argv)
    print(json.dumps(run_peer(args.task, args.source, args.max_frames)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
