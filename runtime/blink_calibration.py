"""How ``runtime.blink.SCALES`` were measured, re-runnable: ``python -m runtime.blink_calibration DATA``.

Only open data that the AU45 check (tests/data/clip_eye_AU43.csv, on WolfgangLanger_Pexels.mp4) does
not use:

- ``open``: median openness of ``canada/*.jpg`` (30 neutral faces, eyes open), image mode;
- ``closed``: ``media/face_noface.mov`` frames 26 and 27 (a blink; both eyes seen shut by eye), over
  the same person's median of frames 0-15 (neutral, eyes open), tracked as in video mode, on the
  mesh before One Euro smoothing (what the detector gives ``runtime.blink``);
- ``open_low``: the lowest ratio of open eyes narrowed by smiling: ``media/multi_face.jpg`` (five
  smiling people, image mode, over ``open``) and ``face_noface.mov`` frames 32-61 (smiling, over
  the frames 0-15 reference).

Prints one ``MeshScale`` line per face model to paste into ``runtime/blink.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from runtime.blink import MeshScale, eye_openness

BLINK_FRAMES = (26, 27)
NEUTRAL_FRAMES = range(16)
SMILE_FRAMES = range(32, 62)


def calibrate(data: Path, face_model: str | None = None) -> tuple[int, MeshScale]:
    """(mesh points, its MeshScale) for one face model (``None``: the runtime's default)."""
    import cv2

    from runtime.cv_path import decode_image, open_video
    from runtime.face import FaceStage

    with FaceStage(face_model=face_model, max_faces=8) as stage:
        canada = [eye_openness(stage.detect(decode_image(p), bgr=True)[0].landmarks).mean()
                  for p in sorted((data / "canada").glob("*.jpg"))]
        population = float(np.median(canada))
        smiles = [eye_openness(f.landmarks).mean() / population
                  for f in stage.detect(decode_image(data / "media" / "multi_face.jpg"), bgr=True)]
        cap = open_video(data / "media" / "face_noface.mov")
        series = {}
        for i in range(max(SMILE_FRAMES) + 1):
            ok, frame = cap.read()
            faces = stage.process(frame, bgr=True) if ok else []
            if faces:
                series[i] = eye_openness(faces[0].landmarks).mean()
        cap.release()
        points = stage.num_landmarks
    own = float(np.median([series[i] for i in NEUTRAL_FRAMES if i in series]))
    closed = float(np.mean([series[i] for i in BLINK_FRAMES])) / own
    smiles += [series[i] / own for i in SMILE_FRAMES if i in series]
    return points, MeshScale(open=round(population, 3), closed=round(closed, 3),
                             open_low=round(float(min(smiles)), 3))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.exit("usage: python -m runtime.blink_calibration DATA_DIR [FACE_MODEL ...]")
    data = Path(args[0])
    for model in args[1:] or [None]:
        points, scale = calibrate(data, model)
        print(f"    {points}: {scale!r},  # face model: {model or 'default'}")


if __name__ == "__main__":
    main()
