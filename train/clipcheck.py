"""``python -m train.clipcheck``: the Pexels clip read by eye, as validation (never training) data.

The clip's AUs are never trained on (open data labels v3: its frames serve the unlabelled tasks
only), so it can decide between models. Two readings, both label kind ``eye``:

- **Windows** (issue 18's goals): frames 0-60 are a sad face (AU12 on <= 10 % of them, AU04 on
  >= 50 %), frames 312-456 a laugh (AU12 >= 90 %, AU06 >= 70 %, AU25 >= 80 %).
- **Codes**: every 8th frame coded by two coders (``train.data.eye``, kappa >= 0.6 AUs only):
  accuracy and F1 of the runtime's decisions (``au_active``) where both coders agreed.

The engine runs through the runtime in video mode with its defaults, as a user runs it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from train.cli import OneLineParser, guarded

CLIP = Path("media") / "WolfgangLanger_Pexels.mp4"
# (first frame, last frame, AU, "max"|"min", goal fraction of the window's frames with a face)
WINDOWS = (("sad", 0, 60, "AU12", "max", 0.10), ("sad", 0, 60, "AU04", "min", 0.50),
           ("laugh", 312, 456, "AU12", "min", 0.90), ("laugh", 312, 456, "AU06", "min", 0.70),
           ("laugh", 312, 456, "AU25", "min", 0.80))
READ_AS = {"AU43": "AU45"}  # eyes closed (coded) is read from the runtime's eye closure output


def window_rows(frames: list[dict]) -> list[dict]:
    """Per window and AU: the fraction of frames with a face where the AU is active, and the goal."""
    rows = []
    for name, first, last, au, side, goal in WINDOWS:
        seen = [f for f in frames if first <= f["frame"] <= last and f["active"] is not None]
        on = sum(au in f["active"] for f in seen)
        frac = on / len(seen) if seen else None
        met = None if frac is None else (frac <= goal if side == "max" else frac >= goal)
        rows.append({"window": f"{name} {first}-{last}", "au": au, "frames": len(seen), "on": on,
                     "fraction": None if frac is None else round(frac, 3),
                     "goal": f"{'<=' if side == 'max' else '>='} {goal:.2f}", "met": met})
    return rows


def code_rows(frames: list[dict], codes: dict[int, dict[str, int]]) -> dict[str, dict]:
    """Per eye-coded AU: n, positives, accuracy and F1 of the decisions on the coded frames (AU43,
    eyes closed, is read from the runtime's eye closure AU45; an AU the run does not output is
    named, not scored)."""
    by_frame = {f["frame"]: f for f in frames}
    output = set().union(*(f["prob"] for f in frames if f["prob"] is not None))
    out = {}
    for coded in sorted({a for c in codes.values() for a in c}):
        au = READ_AS.get(coded, coded)
        if au not in output:
            out[coded] = {"n": 0, "note": f"{au} not output by this run"}
            continue
        pairs = [(c[coded], au in by_frame[i]["active"]) for i, c in codes.items()
                 if coded in c and i in by_frame and by_frame[i]["active"] is not None]
        if not pairs:
            out[coded] = {"n": 0}
            continue
        tp = sum(y == 1 and p for y, p in pairs)
        fp = sum(y == 0 and p for y, p in pairs)
        fn = sum(y == 1 and not p for y, p in pairs)
        acc = sum((y == 1) == p for y, p in pairs) / len(pairs)
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        out[coded] = {"n": len(pairs), "pos": sum(y for y, _ in pairs), "accuracy": round(acc, 3),
                      "f1": None if f1 is None else round(f1, 3), "read_as": au}
    return out


def markdown(report: dict) -> str:
    lines = [f"# Clip by eye: {report['engine']}", "", "| window | AU | frames | on | fraction | goal | met |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['window']} | {r['au']} | {r['frames']} | {r['on']} | {r['fraction']} | {r['goal']} | "
              f"{'yes' if r['met'] else 'no'} |" for r in report["windows"]]
    lines += ["", "| AU (eye codes, every 8th frame) | read as | n | positives | accuracy | F1 |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {a} | {r.get('read_as', r.get('note', '-'))} | {r['n']} | {r.get('pos', '-')} | "
              f"{r.get('accuracy', '-')} | {r.get('f1', '-')} |" for a, r in report["codes"].items()]
    return "\n".join(lines) + "\n"


def run(engine: str, data: Path, threads: int | None = None, face_model: str | None = None) -> dict:
    from train.data.eye import clip_codes
    from train.realcheck.ours import run_clip

    clip = data / CLIP
    if not clip.is_file():
        raise FileNotFoundError(f"{clip} not found: --data must be the open data folder (AU_DATA_DIR)")
    frames, mode = run_clip(engine, clip, None, face_model, threads)
    return {"engine": str(engine), "clip": str(clip), "mode": mode, "label_kind": "eye",
            "frames": len(frames), "frames_with_face": sum(f["active"] is not None for f in frames),
            "windows": window_rows(frames), "codes": code_rows(frames, clip_codes())}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.clipcheck", description=__doc__.split("\n")[0])
    p.add_argument("--engine", required=True, help="engine file with its card, or 'default'")
    p.add_argument("--data", default=os.environ.get("AU_DATA_DIR"), help="open data folder (AU_DATA_DIR)")
    p.add_argument("--out", type=Path, default=None, help="write clipcheck.json and clipcheck.md here")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--face-model", default=None)
    return guarded(_run, p.parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    if not args.data or not Path(args.data).is_dir():
        raise FileNotFoundError(f"open data folder {args.data!r} not found: set --data or AU_DATA_DIR")
    report = run(args.engine, Path(args.data), args.threads, args.face_model)
    text = markdown(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "clipcheck.json").write_text(json.dumps(report, indent=1))
        (args.out / "clipcheck.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
