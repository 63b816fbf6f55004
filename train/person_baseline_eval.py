"""``python -m train.person_baseline_eval``: what the per-person baseline (``runtime.neutral``) does, on
the Pexels clip and on still faces played as video, with it and without it (docs/person_baseline.md).

Faces: only identities that are NOT held out (``train.data.holdout``): London neutral, London smiling
and Canada photos of the non-held-out ids, each played as a video (the photo repeated, every frame
with a small seeded shift/rotation/zoom, at ``FPS``): a neutral face, a person who smiles from the
first frame, and a neutral face that starts to smile. The engine runs once per sequence through the
runtime (video mode, landmark smoothing on, AU post-processing off) and the runtime's own post chain
(``PersonBaseline`` -> ``TrackSmoother``, in ``AUDetector``'s order) is replayed on those outputs for
each setting. On the clip the real ``AUDetector`` also runs both ways, and the replay must equal it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from runtime.cli import number
from runtime.cv_path import decode_image
from train.cli import OneLineParser, guarded

FPS = 15.0  # the sequences' frame rate (the baseline's timing is in seconds; 15 fps halves the cost)
STILL_S = 12.0  # a still expression: past the baseline's 2 s warm-up and 8 s ramp
ONSET_S, SMILE_S = 4.0, 6.0  # neutral, then a smile
END_S = 2.0  # "at the end": the last 2 s (full shift)
CLIP = "media/WolfgangLanger_Pexels.mp4"
WINDOWS = {"sad 0-60": (0, 60), "laugh 312-456": (312, 456), "all": (0, 10 ** 9)}
# name -> PersonBaseline keywords (None: no baseline); "default" is the runtime's default.
SETTINGS: dict[str, dict | None] = {
    "off": None, "default": {},
    "max_shift 3": {"max_shift": 3.0}, "fast (warm-up 1 s, ramp 1 s)": {"warmup_s": 1.0, "ramp_s": 1.0},
    "fast, max_shift 3": {"warmup_s": 1.0, "ramp_s": 1.0, "max_shift": 3.0},
    "margin 1": {"margin": 1.0}, "quantile 0.05": {"quantile": 0.05}, "quantile 0.2": {"quantile": 0.2},
}


def jittered(photo: np.ndarray, n: int, seed: int) -> Iterator[np.ndarray]:
    """``n`` frames of ``photo``, each moved by a small random similarity (a head that is not a tripod)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    for _ in range(n):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-1.0, 1.0), 1.0 + rng.uniform(-0.015, 0.015))
        m[:, 2] += rng.uniform(-3.0, 3.0, 2)
        yield cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def open_ids(data: Path, dataset: str) -> list[str]:
    """The non-held-out ids of ``dataset`` (london | canada)."""
    from train.data.holdout import is_held_out

    folder = data / "london" / "neutral" if dataset == "london" else data / "canada"
    return [p.stem for p in sorted(folder.glob("*.jpg")) if not is_held_out(dataset, p.stem)]


def sequences(data: Path, limit: int | None = None) -> Iterator[tuple[str, str, list[np.ndarray], int]]:
    """(kind, id, frames, onset frame of the smile or -1) for every sequence (``limit``: ids per set)."""

    still_n, onset_n, smile_n = int(STILL_S * FPS), int(ONSET_S * FPS), int(SMILE_S * FPS)
    for i in open_ids(data, "london")[:limit]:
        seed = int(i)
        neutral = decode_image(data / "london" / "neutral" / f"{i}.jpg")
        smiling = decode_image(data / "london" / "smiling" / f"{i}.jpg")
        yield "london neutral", i, list(jittered(neutral, still_n, seed)), -1
        yield "london smiling from the first frame", i, list(jittered(smiling, still_n, seed + 1000)), 0
        yield ("london neutral, then smiling", i, list(jittered(neutral, onset_n, seed + 2000))
               + list(jittered(smiling, smile_n, seed + 3000)), onset_n)
    for i in open_ids(data, "canada")[:limit]:
        photo = decode_image(data / "canada" / f"{i}.jpg")
        yield "canada neutral", i, list(jittered(photo, still_n, int(i[:-1]) + 4000)), -1


def engine_outputs(det, frames: list[np.ndarray]) -> np.ndarray:
    """The engine's per-frame AU probabilities of the sequence's first face (NaN rows: no face)."""
    det.reset()
    rows = []
    for k, frame in enumerate(frames):
        r = det.process(frame, k / FPS)
        rows.append([r.faces[0].au_prob[a] for a in det.aus] if r.faces else [np.nan] * len(det.aus))
    return np.array(rows, np.float64)


def replay(probs: np.ndarray, times: np.ndarray, card, setting: dict | None) -> np.ndarray:
    """``au_active`` per frame (bool, frames x AUs) from the engine outputs, through the runtime's post
    chain as ``AUDetector`` runs it: baseline (``setting``; None: none), then One Euro + hysteresis."""
    from runtime.neutral import NeutralCalibration, PersonBaseline, card_reference
    from runtime.smoothing import TrackSmoother

    thr = np.array([card.threshold(a) for a in card.aus], np.float32)
    if setting is None:
        base = NeutralCalibration(0.0)
    else:
        quantile, reference = card_reference(card)
        base = PersonBaseline(thr, reference, **{"quantile": quantile, **setting})
    smoother = TrackSmoother(thr)
    out = np.zeros(probs.shape, bool)
    for k, (p, t) in enumerate(zip(probs, times)):
        if np.isnan(p).any():
            continue
        _, out[k] = smoother(1, base(1, p.astype(np.float32), float(t)), float(t))
    return out


def clip_rows(engine: str, clip: Path, face_model: str | None, **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame index, time, au_active or engine output) rows of the clip's first face, via ``AUDetector``."""
    from runtime import AUDetector

    idx, times, rows = [], [], []
    with AUDetector(engine, max_faces=1, face_model=face_model, **kw) as det:
        for r in det.stream(str(clip)):
            if r.faces:
                f = r.faces[0]
                idx.append(r.frame)
                times.append(r.time_s)
                rows.append([f.au_prob[a] for a in det.aus] if not kw.get("smooth", True) else
                            [a in f.au_active for a in det.aus])
    return np.array(idx), np.array(times), np.array(rows)


def summarise(active: dict[str, list[tuple[str, np.ndarray, int]]], aus: list[str]) -> dict:
    """Per kind of sequence, over its neutral stretch (all of a still face): AUs lit per face (the mean
    count of active AUs per frame), overall and in the last ``END_S``, faces with an AU lit then, and
    each AU's faces lit then; over its smile: the fraction of frames with AU12 on, overall and at the
    end, and the faces with AU12 on in the last frame."""
    end = int(END_S * FPS)
    out = {}
    k12 = aus.index("AU12")
    for kind, seqs in active.items():
        rest = [a[:onset] if onset > 0 else a for _, a, onset in seqs]
        row = {"faces": len(seqs), "aus_lit_per_face": float(np.mean([x.sum(1).mean() for x in rest])),
               "aus_lit_per_face_end": float(np.mean([x[-end:].sum(1).mean() for x in rest])),
               "faces_with_an_au_lit_end": int(sum(x[-end:].any() for x in rest)),
               "au_faces_lit_end": {a: int(sum(x[-end:, j].any() for x in rest)) for j, a in enumerate(aus)}}
        if any(onset >= 0 for *_, onset in seqs):
            smile = [a[onset:, k12] for _, a, onset in seqs]
            row["au12_on_during_smile"] = float(np.mean([s.mean() for s in smile]))
            row["au12_on_during_smile_end"] = float(np.mean([s[-end:].mean() for s in smile]))
            row["faces_au12_on_at_end"] = int(sum(s[-1] for s in smile))
        out[kind] = row
    return out


def run(args: argparse.Namespace) -> int:
    from runtime import AUDetector
    from runtime.engines import default_engine_choice

    data = Path(args.data or os.environ.get("AU_DATA_DIR", ""))
    if not (data / CLIP).is_file():
        raise ValueError(f"{data / CLIP} not found: set --data or AU_DATA_DIR to the open data folder")
    engine = args.engine
    if engine == "default":
        choice = default_engine_choice()
        print(choice.describe(), file=sys.stderr)
        engine = str(choice.path)
    report: dict = {"engine": Path(engine).name, "fps": FPS, "still_s": STILL_S, "onset_s": ONSET_S,
                    "smile_s": SMILE_S, "end_s": END_S, "settings": SETTINGS}
    # The clip: the real AUDetector both ways, and the replay of its raw outputs, which must agree.
    idx, times, raw = clip_rows(engine, data / CLIP, args.face_model, smooth=False, smooth_landmarks=True,
                                person_baseline=False)
    card = None
    with AUDetector(engine, max_faces=1, face_model=args.face_model, smooth=False, smooth_landmarks=True,
                    person_baseline=False) as det:
        card, aus = det.engine.card, det.aus
        clip = {}
        for name, setting in SETTINGS.items():
            act = replay(raw, times, card, setting)
            clip[name] = {w: {a: round(float(act[(idx >= lo) & (idx <= hi), j].mean()), 3) for j, a in enumerate(aus)}
                          for w, (lo, hi) in WINDOWS.items()}
            if name in ("off", "default"):
                _, _, real = clip_rows(engine, data / CLIP, args.face_model, person_baseline=name == "default")
                report[f"clip_replay_mismatch_{name}"] = int((real != act).sum())
        report["clip_active_fraction"] = clip
        active: dict[str, dict[str, list]] = {name: {} for name in SETTINGS}
        for kind, face_id, frames, onset in sequences(data, args.limit):
            probs = engine_outputs(det, frames)
            times_s = np.arange(len(frames)) / FPS
            for name, setting in SETTINGS.items():
                active[name].setdefault(kind, []).append((face_id, replay(probs, times_s, card, setting), onset))
    report["ids"] = {kind: [i for i, *_ in seqs] for kind, seqs in active["off"].items()}
    report["sequences"] = {name: summarise(a, aus) for name, a in active.items()}
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.person_baseline_eval", description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="default", help="engine file with its card, or 'default'")
    p.add_argument("--data", default=None, help="open data folder (default: $AU_DATA_DIR)")
    p.add_argument("--face-model", default=None, help="face models for the runtime (as runtime.camera)")
    p.add_argument("--json", default=None, help="also write the report here")
    p.add_argument("--limit", type=number(int, 1), default=None, help="at most N ids per photo set (a quick look)")
    return guarded(run, p.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
