"""``python -m device_tests.jitter``: how steady the AU probabilities are on a clip, with the
per-track AU smoothing and the landmark smoothing each on and off.

Jitter is the mean over frames of mean |p_t - p_(t-1)| over AUs, for the largest face, on
consecutive frames that both have it. A steady face should move little; the number says what the
One Euro filters buy on this clip. Also reports the track ids seen (one id: no identity switch).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from device_tests.sysinfo import device
from runtime.cli import MAX_FRAMES, threads_option
from train.cli import OneLineParser, guarded


def clip_jitter(engine: str, source: str, smooth: bool, smooth_landmarks: bool, threads: int | None = None,
                max_frames: int | None = None, face_model: str | None = None) -> dict:
    from runtime.detector import AUDetector

    det = AUDetector(engine, max_faces=1, smooth=smooth, smooth_landmarks=smooth_landmarks, threads=threads,
                     face_model=face_model, mode="video")
    probs, ids = [], []
    try:
        for result in det.stream(source, max_frames=max_frames):
            face = result.faces[0] if result.faces else None
            probs.append(None if face is None else np.array([face.au_prob[a] for a in det.aus]))
            if face is not None:
                ids.append(face.track_id)
    finally:
        det.close()
    steps = [float(np.abs(b - a).mean()) for a, b in zip(probs, probs[1:]) if a is not None and b is not None]
    return {"au_smoothing": smooth, "landmark_smoothing": smooth_landmarks, "frames": len(probs),
            "steps": len(steps), "jitter": float(np.mean(steps)) if steps else None,
            "track_ids": sorted(set(ids))}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.jitter", description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="default")
    p.add_argument("--source", required=True)
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--max-frames", type=MAX_FRAMES, default=None)
    p.add_argument("--face-model", default=None)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if args.max_frames is not None and args.max_frames < 2:
        p.error(f"--max-frames must be >= 2 (jitter needs consecutive frames), got {args.max_frames}")
    return guarded(_run, args)


def _run(args) -> int:
    rows = [clip_jitter(args.engine, args.source, s, lm, args.threads, args.max_frames, args.face_model)
            for s in (False, True) for lm in (False, True)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": args.engine, "source": args.source, "rows": rows, "device": device()}, f, indent=2)
    for r in rows:
        j = "n/a" if r["jitter"] is None else f"{r['jitter']:.4f}"
        print(f"AU smoothing {'on ' if r['au_smoothing'] else 'off'}, landmark smoothing "
              f"{'on ' if r['landmark_smoothing'] else 'off'}: jitter {j} over {r['steps']} frame pairs, "
              f"track ids {r['track_ids']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
