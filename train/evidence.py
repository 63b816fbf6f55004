"""``python -m train.evidence``: where on the face a model finds an AU (occlusion sensitivity).

A model can be right for the wrong reason (a smile read from squinting eyes) or read the right place
on a face a coder scores otherwise (a crying mouth whose corners go up). This runs the engine as the
runtime does (its face stage and its one alignment), then, for each selected face, blurs one patch
of the aligned crop at a time and records how much each AU's calibrated probability falls: the
patches whose loss costs the AU most are its evidence (Zeiler & Fergus's occlusion maps).

Output (``--out DIR``): ``evidence.json`` (per frame: probabilities and the drop grid per AU; the mean
grid; the share of the drop in each horizontal band of the crop, placed by the alignment template's
eyes and mouth), ``evidence.md`` (the band shares) and ``evidence_AUxx.png`` (the mean drop over the
first selected crop). Reads no labels: it explains decisions, it does not score them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.align import template_points
from train.cli import OneLineParser, guarded

BANDS = ("brows", "eyes", "nose", "mouth", "chin")


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """``"A-B"`` (inclusive), ``"A-"`` or ``"A"`` -> (first, last); None -> every frame."""
    if not text:
        return 0, None
    first, sep, last = text.partition("-")
    try:
        a = int(first)
        b = (int(last) if last else None) if sep else a
    except ValueError:
        raise ValueError(f"--frames {text!r}: give A-B (inclusive), A- or A, e.g. --frames 0-60") from None
    if a < 0 or (b is not None and b < a):
        raise ValueError(f"--frames {text!r}: need 0 <= A <= B")
    return a, b


def patch_boxes(size: int, grid: int) -> list[tuple[int, int, int, int]]:
    """``grid`` x ``grid`` patches over a ``size`` crop, row by row: (x0, y0, x1, y1), each 1.5 cells
    wide so neighbours overlap and no feature falls between two patches."""
    cell = size / grid
    side = int(round(1.5 * cell))
    boxes = []
    for row in range(grid):
        for col in range(grid):
            x0, y0 = int(round(col * cell - 0.25 * cell)), int(round(row * cell - 0.25 * cell))
            boxes.append((max(x0, 0), max(y0, 0), min(x0 + side, size), min(y0 + side, size)))
    return boxes


def occluded(crop: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """One copy of ``crop`` per box with that box blurred (detail gone, colour and light kept)."""
    blur = cv2.GaussianBlur(crop, (0, 0), crop.shape[0] / 16)
    out = np.repeat(crop[None], len(boxes), axis=0)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        out[i, y0:y1, x0:x1] = blur[y0:y1, x0:x1]
    return out


def band_edges(alignment: dict, size: int) -> list[float]:
    """Row limits of ``BANDS`` in a ``size`` crop, from the template's eye and mouth heights (a band
    reaches 0.3 of the eye-mouth distance either side of its line)."""
    pts = template_points(int(alignment["crop_size"]), alignment["template"], float(alignment["scale"]))
    pts = pts * size / float(alignment["crop_size"])
    eyes, mouth = pts[:2, 1].mean(), pts[3:, 1].mean()
    d = 0.3 * (mouth - eyes)
    return [eyes - d, eyes + d, mouth - d, mouth + d]


def band_shares(drop: np.ndarray, edges: list[float], size: int) -> dict[str, float]:
    """Share of the positive drop whose cell centre falls in each band (sums to 1; zeros if none)."""
    grid = drop.shape[0]
    centres = (np.arange(grid) + 0.5) * size / grid
    band = np.searchsorted(np.asarray(edges), centres)  # 0 brows .. 4 chin, per row
    pos = np.clip(drop, 0, None).sum(axis=1)
    total = float(pos.sum())
    return {name: round(float(pos[band == i].sum()) / total, 3) if total > 0 else 0.0
            for i, name in enumerate(BANDS)}


def heatmap(crop_rgb: np.ndarray, drop: np.ndarray, scale: int = 3) -> np.ndarray:
    """The crop (BGR, enlarged) beside the same crop under its drop map (red = most evidence)."""
    size = crop_rgb.shape[0] * scale
    bgr = cv2.resize(crop_rgb[..., ::-1], (size, size), interpolation=cv2.INTER_CUBIC)
    top = max(float(drop.max()), 1e-6)
    heat = cv2.resize((drop / top).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    heat = np.clip(heat, 0, 1)  # after the resize: cubic overshoot must not wrap round in uint8
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.hconcat([bgr, cv2.addWeighted(bgr, 0.5, colour, 0.5, 0)])


def run(engine: str, source: str, aus: list[str], frames: tuple[int, int | None], step: int = 1,
        grid: int = 7, threads: int | None = None, face_model: str | None = None) -> tuple[dict, np.ndarray]:
    """The report, and the first selected crop (RGB) to draw the maps over."""
    from runtime.detector import AUDetector

    first, last = frames
    records: list[dict] = []
    first_crop, mode = None, None
    with AUDetector(engine, threads=threads, face_model=face_model) as det:
        known = list(det.engine.aus)
        missing = [a for a in aus if a not in known]
        if missing:
            raise ValueError(f"--au {','.join(missing)}: not an output of this engine; it has {','.join(known)}")
        size = int(det.engine.input_size[0])
        boxes = patch_boxes(size, grid)
        edges = band_edges(det.engine.card.alignment, size)
        cols = [known.index(a) for a in aus]
        for result, frame in det.stream_frames(source, max_frames=None if last is None else last + 1):
            i = int(result.frame)
            if i < first or (i - first) % step or not result.faces:
                continue
            crop = np.ascontiguousarray(det.aligned_crop(frame, result.faces[0].landmarks5))
            probs = det.engine.infer(np.concatenate([crop[None], occluded(crop, boxes)]))[:, cols]
            drop = (probs[0][None] - probs[1:]).T.reshape(len(aus), grid, grid)
            records.append({"frame": i, "prob": {a: round(float(p), 4) for a, p in zip(aus, probs[0])},
                            "drop": {a: np.round(d, 4).tolist() for a, d in zip(aus, drop)}})
            first_crop = crop if first_crop is None else first_crop
            mode = det.running_mode  # the source's mode, while the stream runs
    if not records:
        raise ValueError(f"no face in the selected frames of {source!r} (--frames {first}-{'' if last is None else last})")
    report = {"engine": str(engine), "source": str(source), "mode": mode, "grid": grid, "frames": len(records),
              "band_edges_px": [round(e, 1) for e in edges], "by_frame": records, "aus": {}}
    for a in aus:
        mean = np.mean([r["drop"][a] for r in records], axis=0)
        report["aus"][a] = {"mean_prob": round(float(np.mean([r["prob"][a] for r in records])), 4),
                            "mean_drop": np.round(mean, 4).tolist(), "max_drop": round(float(mean.max()), 4),
                            "bands": band_shares(mean, edges, size)}
    return report, first_crop


def markdown(report: dict) -> str:
    lines = [f"# Where {report['engine']} finds each AU ({report['frames']} faces of {report['source']})", "",
             "Share of the probability lost when each band of the aligned crop is blurred (occlusion, "
             f"{report['grid']}x{report['grid']} patches):", "",
             "| AU | mean prob | largest drop | " + " | ".join(BANDS) + " |", "|---" * (3 + len(BANDS)) + "|"]
    for a, r in report["aus"].items():
        lines.append(f"| {a} | {r['mean_prob']:.3f} | {r['max_drop']:.3f} | "
                     + " | ".join(f"{r['bands'][b]:.2f}" for b in BANDS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.evidence", description=__doc__.split("\n")[0])
    p.add_argument("--engine", default="default", help="engine file with its card, or 'default'")
    p.add_argument("--source", required=True, help="a video, a photo or a folder of photos")
    p.add_argument("--au", default="AU12", help="comma-separated AUs of the engine (default AU12)")
    p.add_argument("--frames", default=None, help="A-B (inclusive), A- or A; default every frame")
    p.add_argument("--step", type=int, default=1, help="every STEP-th frame of the range")
    p.add_argument("--grid", type=int, default=7, help="patches per side (default 7)")
    p.add_argument("--out", type=Path, default=None, help="write evidence.json, evidence.md and PNGs here")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--face-model", default=None)
    return guarded(_run, p.parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    if args.step < 1 or not 2 <= args.grid <= 32:
        raise ValueError(f"--step {args.step} / --grid {args.grid}: need step >= 1 and 2 <= grid <= 32")
    if not os.path.exists(args.source):
        raise FileNotFoundError(f"--source {args.source!r} not found; give a video, a photo or a folder")
    aus = [a.strip().upper() for a in args.au.split(",") if a.strip()]
    report, first_crop = run(args.engine, args.source, aus, parse_frames(args.frames), args.step, args.grid,
                        args.threads, args.face_model)
    text = markdown(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "evidence.json").write_text(json.dumps(report, indent=1))
        (args.out / "evidence.md").write_text(text)
        for a, r in report["aus"].items():
            cv2.imwrite(str(args.out / f"evidence_{a}.png"), heatmap(first_crop, np.asarray(r["mean_drop"])))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
