"""``python -m train.data``: build aligned-face caches from benchmarks, the open data, or warps.

    python -m train.data prepare --dataset bp4d|bp4dplus|disfa|affwild2|gft|manifest --root PATH --out CACHE
    python -m train.data open --data $AU_DATA_DIR --out CACHE [--ict 2400]
    python -m train.data synth --faces DIR --out CACHE --n N --seed S
    python -m train.data pairs --video clip.mp4 [--video ...] --out CACHE [--every 2 --flow-k 3]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from train.cli import OneLineParser, guarded


def build_parser() -> argparse.ArgumentParser:
    from train.data.readers import READERS

    p = OneLineParser(prog="python -m train.data", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="datasets: " + ", ".join(READERS) + "; every command writes CACHE/manifest.json")
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="a benchmark in its published layout")
    prep.add_argument("--dataset", required=True, choices=sorted(READERS))
    prep.add_argument("--root", required=True, type=Path)
    prep.add_argument("--out", required=True, type=Path)
    prep.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="reader option, e.g. camera=right (DISFA) or aus=all")
    for sp in (prep,):
        sp.add_argument("--crop-size", type=int, default=256)
        sp.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 0))
        sp.add_argument("--flow-k", type=int, default=3, help="flow targets of video and image-sequence frames: frame t to t-k (0: none)")
    op = sub.add_parser("open", help="the open dataset v2: London and Canada photos, the Pexels clip, ICT FACS warps")
    op.add_argument("--data", type=Path, default=os.environ.get("AU_DATA_DIR"), help="the open data (AU_DATA_DIR)")
    op.add_argument("--out", required=True, type=Path)
    op.add_argument("--ict", type=int, default=2400, help="ICT-FaceKit FACS warps of the neutral photos (0: none)")
    op.add_argument("--ict-version", type=int, choices=(2, 3), default=None,
                    help="synthetic data version (default: train.data.ict.options.DEFAULT_VERSION)")
    op.add_argument("--labels", choices=("v2", "v3"), default="v3",
                    help="v3: real and eye-coded labels only, the clip unlabelled (no silver); v2: the shipped "
                         "v2 model's (silver from MediaPipe on London smiling and the clip)")
    op.add_argument("--limit", type=int, default=None, help="first N photos per folder and N clip frames (tests)")
    op.add_argument("--every", type=int, default=2, help="use every k-th frame of the clip")
    op.add_argument("--seed", type=int, default=0)
    op.add_argument("--workers", type=int, default=1)
    pairs = sub.add_parser("pairs", help="unlabeled video(s): aligned frames with DIS flow targets t -> t-k")
    pairs.add_argument("--video", required=True, action="append", type=Path, help="repeatable")
    pairs.add_argument("--out", required=True, type=Path)
    pairs.add_argument("--every", type=int, default=1, help="use every k-th frame")
    pairs.add_argument("--flow-k", type=int, default=3)
    pairs.add_argument("--crop-size", type=int, default=256)
    pairs.add_argument("--workers", type=int, default=1)
    syn = sub.add_parser("synth", help="synthetic FACS warps of neutral faces (.jpg + .tem)")
    syn.add_argument("--faces", required=True, type=Path)
    syn.add_argument("--out", required=True, type=Path)
    syn.add_argument("--n", type=int, required=True)
    syn.add_argument("--seed", type=int, default=0)
    for sp in (prep, op, pairs):
        sp.add_argument("--face-model", default=None, help="face models folder or .task (else AU_FACE_MODEL...)")
    return p


def _options(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--option {item!r} must look like key=value")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def main(argv: list[str] | None = None) -> int:
    return guarded(_run, build_parser().parse_args(argv))


def _run(args) -> int:
    if args.command == "prepare":
        from train.data.cache import CacheSpec, build_cache
        from train.data.readers import read_dataset

        res = read_dataset(args.dataset, args.root, **_options(args.option))
        manifest = build_cache(res.records, res.aus, args.out, args.dataset,
                               CacheSpec(crop_size=args.crop_size, flow_k=args.flow_k), workers=args.workers,
                               face_model=args.face_model, reader_skipped=res.skipped)
    elif args.command == "open":
        from train.data.open_data import open_cache

        if args.data is None:
            raise ValueError("--data is required (or set AU_DATA_DIR to the open data)")
        manifest = open_cache(args.data, args.out, args.ict, args.seed, args.every, args.workers,
                              args.face_model, limit=args.limit,
                              ict_options=None if args.ict_version is None else {"version": args.ict_version},
                              labels=args.labels)
    elif args.command == "pairs":
        from train.data.build import video_records
        from train.data.cache import CacheSpec, build_cache

        aus, records = video_records(args.video, args.every)
        manifest = build_cache(records, aus, args.out, "pairs",
                               CacheSpec(crop_size=args.crop_size, flow_k=args.flow_k), workers=args.workers,
                               face_model=args.face_model)
    else:
        from train.data.synth_cache import synth_cache

        manifest = synth_cache(args.faces, args.out, args.n, args.seed)
    short = {k: v for k, v in manifest.items() if k in ("dataset", "frames", "frames_with_face", "subjects",
                                                       "label_kind", "skipped")}
    print(json.dumps(short))
    return 0


if __name__ == "__main__":
    sys.exit(main())
