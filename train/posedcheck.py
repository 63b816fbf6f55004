"""``python -m train.posedcheck``: posed expressions we can make, read by the runtime and by MediaPipe.

The independent check's "posed" row asks whether a surprised face lights AU01+AU02, a happy one
AU06+AU12, an angry one AU04 and a disgusted one AU09 or AU10, with the AUs that contradict each
expression off; a fifth row, grief, asks the clip's sad-frames question (AU04 on, AU12 off) of
other people's faces and is reported apart from the four. The shared data has no posed
expressions besides smiles, so we make them: the ICT-FaceKit v3 warps (``train.data.ict``, every AU
of the prototype at intensity D) of the neutral photos of the deploy split's **validation**
identities (the checkpoint's own split: never trained on, and never the held-out identities of
``train.data.holdout``). Label kind: ``synthetic``; the faces are warps of real photos, read
through the runtime in image mode as a user's photos are.
Validation identities are not independent: other warps of the same photos set the run's thresholds,
calibration and best epoch, so this row informs, it does not certify (the held-out check does).

    python -m train.posedcheck --checkpoint out/default/student/best.pt --engine default --out out/default/posedcheck
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.cli import OneLineParser, guarded

INTENSITY_D = 0.8  # FACS D ("severe") as an ICT AU weight (facs: A..E = 0.2..1.0)


@dataclass(frozen=True)
class Posed:
    """An expression to render and what reading it right means."""

    render: tuple[int, ...]  # AUs rendered (FACS prototype, train.data.ict.facs.PROTOTYPES)
    all_on: tuple[str, ...] = ()  # every one of these must be active
    any_on: tuple[str, ...] = ()  # at least one of these must be active
    off: tuple[str, ...] = ()  # AUs that contradict the expression: none may be active
    issue_row: bool = True  # one of the independent check's four posed faces


EXPRESSIONS: dict[str, Posed] = {
    "surprise": Posed((1, 2, 5, 26), all_on=("AU01", "AU02"), off=("AU04", "AU09", "AU15")),
    "happiness": Posed((6, 12), all_on=("AU06", "AU12"), off=("AU04", "AU09", "AU10", "AU15")),
    "anger": Posed((4, 5, 7, 23), all_on=("AU04",), off=("AU02", "AU12")),
    "disgust": Posed((9, 10), any_on=("AU09", "AU10"), off=("AU02", "AU12")),
    # The clip's crying mouth without AU12 (AU6+14 lift the corners with the stretch as in the clip:
    # docs/geometry.md): the sad-frames goal row (AU04 on, AU12 off) on other people's faces.
    "grief": Posed((1, 4, 6, 14, 20), all_on=("AU04",), off=("AU12",), issue_row=False),
}


def read_right(expr: Posed, active: set[str] | None) -> bool:
    """Whether a face's active AUs read ``expr`` right (no face found: wrong)."""
    if active is None:
        return False
    return (all(a in active for a in expr.all_on) and (not expr.any_on or any(a in active for a in expr.any_on))
            and not any(a in active for a in expr.off))


def validation_photos(checkpoint: str, data_dir: Path, cache: str = "") -> list[Path]:
    """The neutral photos of the checkpoint run's validation identities (London neutral, Canada)."""
    from train.checkpoint import Checkpoint
    from train.data.cache import CacheData
    from train.data.holdout import is_held_out_subject
    from train.data.ict.cache import photo_subject
    from train.data.policy import split_indices_for

    ck = Checkpoint.read(checkpoint)
    data = CacheData(cache or ck.train_config.get("data", ""))
    idx = split_indices_for(data, ck.train_config, "val")
    names = {data.subjects[int(s)] for s in np.unique(np.asarray(data.field("subject"))[idx])}
    photos = sorted((data_dir / "london" / "neutral").glob("*.jpg")) + sorted((data_dir / "canada").glob("*.jpg"))
    chosen = [p for p in photos if photo_subject(p) in names and not is_held_out_subject(photo_subject(p))]
    if not chosen:
        raise ValueError(f"no validation identity of {data.root} has a neutral photo under {data_dir}; "
                         "pass the checkpoint of a deploy-split run on the open data")
    return chosen


def render_posed(photos: list[Path], data_dir: Path, out: Path, seed: int = 0) -> list[dict]:
    """Every expression on every photo, written as PNG under ``out``; one record per image."""
    import cv2

    from runtime.cv_path import decode_image
    from runtime.face import FaceStage
    from train.data.ict.model import load_ict
    from train.data.ict.projection import correspond
    from train.data.ict.render import points68, render_full

    ict = load_ict(data_dir / "ict_facekit" / "ict_face_model_light.npz")
    out.mkdir(parents=True, exist_ok=True)
    records = []
    with FaceStage(detector="full", max_faces=1) as stage:
        for i, photo in enumerate(photos):
            bgr = decode_image(photo)
            faces = stage.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if bgr is not None else []
            if not faces:
                continue
            mesh = faces[0].landmarks
            corr = correspond(ict, points68(mesh), bgr.shape[:2])
            for name, expr in EXPRESSIONS.items():
                r = render_full(bgr, mesh, {a: INTENSITY_D for a in expr.render}, np.random.default_rng((seed, i)),
                                model=ict, correspondence=corr, version=3)
                path = out / f"{name}_{photo.parent.name}_{photo.stem}.png"
                cv2.imwrite(str(path), r.image)
                records.append({"expression": name, "photo": str(photo), "image": str(path)})
    return records


def score(records: list[dict], key: str) -> dict:
    """Per expression: faces, read right, and how often each AU it names was active."""
    table = {}
    for name, expr in EXPRESSIONS.items():
        rows = [r for r in records if r["expression"] == name]
        act = [None if r[key] is None else set(r[key]) for r in rows]
        named = expr.all_on + expr.any_on + expr.off
        table[name] = {"faces": len(rows), "read_right": sum(read_right(expr, a) for a in act),
                       "found": sum(a is not None for a in act),
                       "active_rate": {au: round(float(np.mean([a is not None and au in a for a in act])), 3)
                                       for au in named} if rows else {}}
    four = [table[n] for n, e in EXPRESSIONS.items() if e.issue_row]
    table["issue_row"] = {"faces": sum(r["faces"] for r in four), "read_right": sum(r["read_right"] for r in four)}
    return table


def _ours(engine: str, records: list[dict], threads: int) -> None:

    from runtime.cv_path import decode_image
    from runtime.detector import AUDetector

    with AUDetector(engine, max_faces=1, mode="image", threads=threads) as det:
        for r in records:
            faces = det.process(decode_image(r["image"]), 0.0).faces
            r["ours"] = sorted(faces[0].au_active) if faces else None


def _peer(data_dir: Path, records: list[dict]) -> str:
    """MediaPipe blendshapes >= 0.5 as active AUs (the silver mapping); '' when it cannot run."""
    from train.realcheck import peer

    why = peer.available()
    task = data_dir / peer.TASK
    if why or not task.is_file():
        return why or f"{task} not found"
    got = peer.run_child(task, [r["image"] for r in records], None, None, False)
    wanted = sorted({int(a[2:]) for e in EXPRESSIONS.values() for a in e.all_on + e.any_on + e.off})
    for r, blend in zip(records, got["photos"]):
        s = peer.au_scores(blend, wanted)
        r["peer"] = None if s is None else sorted(f"AU{a:02d}" for a, v in s.items() if v >= peer.PEER_THRESHOLD)
    return ""


def markdown(report: dict) -> str:
    lines = ["| expression (rendered AUs) | read right: ours | MediaPipe | what counts |", "|---|---|---|---|"]
    for name, expr in EXPRESSIONS.items():
        o, p = report["ours"][name], report.get("peer", {}).get(name)
        need = " + ".join(expr.all_on) if expr.all_on else " or ".join(expr.any_on)
        peer_cell = f"{p['read_right']}/{p['faces']}" if p else "—"
        lines.append(f"| {name} ({'+'.join(map(str, expr.render))}) | {o['read_right']}/{o['faces']} | {peer_cell} | "
                     f"{need} on; {', '.join(expr.off)} off{'' if expr.issue_row else ' (not in the four)'} |")
    o, p = report["ours"]["issue_row"], report.get("peer", {}).get("issue_row")
    peer_cell = f"{p['read_right']}/{p['faces']}" if p else "—"
    lines.append(f"| the check's four | {o['read_right']}/{o['faces']} | {peer_cell} | |")
    return "\n".join(lines) + "\n"


def _run(args) -> int:
    if args.limit < 0 or not 1 <= args.threads <= 256:
        raise ValueError(f"--limit {args.limit} / --threads {args.threads}: give --limit >= 0 and --threads 1..256")
    data = args.data or os.environ.get("AU_DATA_DIR")
    if not data:
        raise ValueError("set --data or AU_DATA_DIR to the open data folder (london/, canada/, ict_facekit/)")
    data_dir = Path(data)
    out = Path(args.out)
    photos = validation_photos(args.checkpoint, data_dir, args.cache)[: args.limit or None]
    records = render_posed(photos, data_dir, out / "faces", seed=args.seed)
    _ours(args.engine, records, args.threads)
    why = "" if args.no_peer else _peer(data_dir, records)
    report = {"engine": args.engine, "label_kind": "synthetic", "identities": "validation (deploy split)",
              "photos": len(photos), "intensity": "D (ICT weight 0.8), ICT-FaceKit v3 warps",
              "ours": score(records, "ours"), "faces": records}
    if not args.no_peer and not why:
        report["peer"] = score(records, "peer")
    elif why:
        report["peer_skipped"] = why
    (out / "posedcheck.json").write_text(json.dumps(report, indent=2))
    (out / "posedcheck.md").write_text(markdown(report))
    print(markdown(report), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.posedcheck", description="Posed expressions made from validation "
                      "photos (ICT warps), read by an engine and by MediaPipe.")
    p.add_argument("--checkpoint", required=True, help="the run whose validation identities to use (its best.pt)")
    p.add_argument("--engine", default="default", help="engine to read them with (default: the shipped model)")
    p.add_argument("--out", required=True, help="folder for the faces, posedcheck.json and posedcheck.md")
    p.add_argument("--cache", default="", help="the run's cache (default: the one it recorded)")
    p.add_argument("--data", default="", help="the open data folder (default: $AU_DATA_DIR)")
    p.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-peer", action="store_true", help="skip MediaPipe")
    return guarded(_run, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
