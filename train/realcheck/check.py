"""``run_check``: the held-out photos and the Pexels clip through our engine and MediaPipe, into
``realcheck.json`` (every number and every per-face / per-frame output), ``realcheck.md`` and
``timeline.png``.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from runtime.aus import au_name, au_number
from train.data.holdout import HELD_OUT, held_out_files
from train.data.silver import (
    BLENDSHAPES_FOR_AU,
    NEG,
    POS,
    POSITIVES_ONLY,
    blendshapes_to_au,
)
from train.realcheck import ours as ours_mod
from train.realcheck import peer as peer_mod
from train.realcheck.plot import timeline
from train.realcheck.rows import clip_rows, markdown, photo_rows

CLIP = Path("media") / "WolfgangLanger_Pexels.mp4"


def _log(line: str) -> None:
    print(f"realcheck: {line}", file=sys.stderr, flush=True)


def _limited(faces: list, limit: int | None) -> list:
    """At most ``limit`` photos of each group (dataset, expression), in the fixed order."""
    if limit is None:
        return faces
    seen: dict = defaultdict(int)
    kept = []
    for f in faces:
        if seen[(f.dataset, f.expression)] < limit:
            seen[(f.dataset, f.expression)] += 1
            kept.append(f)
    return kept


def _au_names(probs: dict[int, float] | None) -> dict[str, float] | None:
    return None if probs is None else {au_name(a): v for a, v in probs.items()}


def _silver_series(scores: list, aus: list[str], n: int) -> dict[str, list]:
    """Per AU (those with a blendshape) per frame: 1.0 / 0.0 / None (unknown)."""
    nums = [au_number(a) for a in aus if au_number(a) in BLENDSHAPES_FOR_AU]
    series: dict[str, list] = {au_name(a): [] for a in nums}
    for i in range(n):
        s = scores[i] if i < len(scores) else None
        labels, mask = blendshapes_to_au(s, nums) if s is not None else (None, None)
        for j, a in enumerate(nums):
            series[au_name(a)].append(None if s is None or not mask[j] else float(labels[j]))
    return series


def run_check(engine: str, data_dir: Path, out_dir: Path, peer: str = "mediapipe", limit: int | None = None,
              face_model: str | None = None, threads: int | None = None, command: str = "") -> dict:
    """Run the whole check and write its three files; returns the report dict.

    Raises:
        AUEdgeError: a bad engine or card (the runtime's one-line errors).
        FileNotFoundError: the open data folder lacks a held-out photo or the clip.
    """
    eng = ours_mod.open_engine(engine, threads)
    card, backend, precision = eng.card, eng.backend, eng.precision
    eng.close()
    aus = list(card.aus)
    thr = {a: card.threshold(a) for a in aus}
    faces = _limited(held_out_files(data_dir), limit)
    clip = data_dir / CLIP
    if not clip.is_file():
        raise FileNotFoundError(f"{clip} not found: --data must be the open data folder (AU_DATA_DIR)")

    _log(f"{len(faces)} held-out photos through {engine} ({backend} {precision})")
    our_probs, photo_mode = ours_mod.run_photos(engine, faces, face_model, threads)
    _log(f"clip {clip.name} in video mode" + (f" (first {limit} frames)" if limit else ""))
    our_frames, clip_mode = ours_mod.run_clip(engine, clip, limit, face_model, threads)

    skip = None if peer == "mediapipe" else "not requested (--peer none)"
    silver_skip = peer_mod.available()
    task = data_dir / peer_mod.TASK
    if silver_skip is None and not task.is_file():
        silver_skip = f"{task} not found (the MediaPipe bundle of the open data)"
    skip = skip or silver_skip
    child = None
    if silver_skip is None:
        _log("MediaPipe in a child process" + (" (silver labels only)" if skip else " (peer and silver labels)"))
        try:
            child = peer_mod.run_child(task, [] if skip else [str(f.path) for f in faces], str(clip), limit,
                                       video_mode=not skip)
        except RuntimeError as e:
            silver_skip = str(e)
            skip = skip or silver_skip
    if skip:
        _log(f"MediaPipe peer skipped: {skip}")

    peer_aus = [au_number(a) for a in aus if au_number(a) in BLENDSHAPES_FOR_AU]
    peer_thr = {au_name(a): peer_mod.PEER_THRESHOLD for a in peer_aus}
    face_rows = [{**{k: str(v) for k, v in asdict(f).items()}, "label_AU12": int(f.expression == "smiling"),
                  "label_kind": "real", "ours": p} for f, p in zip(faces, our_probs)]
    peer_probs = None
    if not skip:
        peer_probs = [_au_names(peer_mod.au_scores(s, peer_aus)) for s in child["photos"]]
        for r, p, b in zip(face_rows, peer_probs, child["photos"]):
            r["peer"], r["peer_blendshapes"] = p, b
    rows = {"ours": photo_rows(face_rows, our_probs, thr),
            "peer": None if skip else photo_rows(face_rows, peer_probs, peer_thr)}

    n = len(our_frames)
    frame_idx = [f["frame"] for f in our_frames]
    times = [f["time_s"] for f in our_frames]
    series_ours = {a: [None if f["prob"] is None else f["prob"][a] for f in our_frames] for a in aus}
    clip_report: dict = {"source": str(clip), "frames": n, "mode": clip_mode,
                         "frames_with_face": {"ours": sum(f["prob"] is not None for f in our_frames)},
                         "silver_skipped": silver_skip, "per_au": {},
                         "series": {"frame": frame_idx, "time_s": times, "ours": series_ours}}
    series_peer = None
    if child is not None:
        image_scores = child["clip_image"]
        aligned = [image_scores[i] if i < len(image_scores) else None for i in frame_idx]
        silver = _silver_series(aligned, aus, n)
        clip_report["silver"] = {"frames_with_face": sum(s is not None for s in aligned),
                                 "rule": {"pos": POS, "neg": NEG, "mode": "IMAGE",
                                          "positives_only": sorted(au_name(a) for a in POSITIVES_ONLY),
                                          "source": "train.data.silver"},
                                 "per_au": {a: {"pos": sum(v == 1.0 for v in s), "neg": sum(v == 0.0 for v in s),
                                                "unknown": sum(v is None for v in s)} for a, s in silver.items()}}
        clip_report["series"]["silver"] = silver
        per_o, sum_o = clip_rows(silver, [f["prob"] for f in our_frames], thr)
        rows["ours"].update(sum_o)
        clip_report["per_au"] = {a: {"ours": r} for a, r in per_o.items()}
        if not skip:
            video = child["clip_video"]
            peer_frames = [_au_names(peer_mod.au_scores(video[i] if i < len(video) else None, peer_aus))
                           for i in frame_idx]
            clip_report["frames_with_face"]["peer"] = sum(p is not None for p in peer_frames)
            series_peer = {a: [None if p is None else p[a] for p in peer_frames] for a in peer_thr}
            clip_report["series"]["peer"] = series_peer
            per_p, sum_p = clip_rows(silver, peer_frames, peer_thr)
            rows["peer"].update(sum_p)
            for a, r in per_p.items():
                clip_report["per_au"].setdefault(a, {})["peer"] = r
    report = {
        "engine": str(engine), "backend": backend, "precision": precision, "model": dict(card.model),
        "training": {k: card.training.get(k) for k in ("datasets", "label_kinds", "recipe")},
        "thresholds": thr, "data": str(data_dir), "limit": limit, "command": command,
        "held_out": {k: sorted(v) for k, v in HELD_OUT.items()} | {"people": "every media/people/*.jpg"},
        "photos": {"total": len(faces), "mode": photo_mode, "faces": face_rows},
        "peer": {"name": child["name"] if child and not skip else "mediapipe", "skipped": skip,
                 "threshold": peer_mod.PEER_THRESHOLD, "threshold_note":
                 "blendshape scores used as probabilities, positive at >= 0.5 (silver positives start at "
                 f"{POS}); AUs without a blendshape (e.g. AU23, AU25) are not output by the peer",
                 "clip_mode": "VIDEO"},
        "rows": rows, "clip": clip_report,
        "label_kinds": {"AU12 on London": "real (smiling photo = AU12 present, neutral = absent)",
                        "neutral": "real (posed neutral faces: no AU active)",
                        "clip": "silver (MediaPipe blendshapes, IMAGE mode, dead zone)"},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "realcheck.json").write_text(json.dumps(report, indent=1))
    (out_dir / "realcheck.md").write_text(markdown(report))
    title = f"{clip.name}: {card.model.get('name', engine)}"
    try:
        timeline(out_dir / "timeline.png", times, series_ours, series_peer,
                 clip_report["series"].get("silver", {}), thr, title)
    except RuntimeError as e:
        _log(f"timeline skipped: {e}")
    return report
