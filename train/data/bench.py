"""``python -m train.data.bench --cache CACHE [--size 112] [--workers 2]``: cache build speed and
DataLoader throughput from a cache (goal: >= 2,000 aligned 112-px samples/s on 2 cores).

``--build-clip VIDEO`` also times building a cache of that clip (frames/s, per worker process).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from train.cli import OneLineParser, guarded


def loader_throughput(cache_dir: str, size: int, workers: int, batch: int = 64, seconds: float = 10.0,
                      train: bool = True) -> float:
    import torch
    from torch.utils.data import DataLoader

    from train.data.cache import CacheData
    from train.data.torch_data import CacheDataset

    torch.set_num_threads(1)
    cache = CacheData(cache_dir)
    ds = CacheDataset(cache, np.arange(len(cache)), size, train=train)
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                    drop_last=True)
    n, t0, warm = 0, None, 2
    while True:
        for i, b in enumerate(dl):
            if warm:
                warm -= 1
                if not warm:
                    t0 = time.perf_counter()
                continue
            n += len(b["image"])
            if time.perf_counter() - t0 > seconds:
                return n / (time.perf_counter() - t0)


def build_speed(video: str, workers: int, frames: int, face_model: str | None) -> dict:
    from runtime.aus import DEFAULT_MODEL_AUS, au_name
    from train.data.cache import CacheSpec, build_cache
    from train.data.records import FrameRecord

    aus = [au_name(a) for a in DEFAULT_MODEL_AUS]
    recs = [FrameRecord(dataset="bench", subject="s", video=Path(video).stem, frame=i, image_path=None,
                        video_path=video, video_index=i, labels=np.zeros(len(aus), np.float32),
                        mask=np.zeros(len(aus), bool), intensity=None) for i in range(frames)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m = build_cache(recs, aus, tmp, "bench", CacheSpec(shard_size=max(1, frames // workers)), workers=workers,
                        face_model=face_model, progress=False)
        dt = time.perf_counter() - t0
    return {"frames": frames, "workers": workers, "seconds": dt, "frames_per_s": frames / dt,
            "frames_per_s_per_worker": frames / dt / workers, "frames_with_face": m["frames_with_face"]}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m train.data.bench", description=__doc__.splitlines()[0])
    p.add_argument("--cache", required=True)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--build-clip", default=None)
    p.add_argument("--build-frames", type=int, default=472)
    p.add_argument("--face-model", default=None)
    p.add_argument("--json", type=Path, default=None)
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    res = {"size": args.size, "workers": args.workers,
           "loader_samples_per_s": loader_throughput(args.cache, args.size, args.workers, seconds=args.seconds)}
    print(f"DataLoader from cache: {res['loader_samples_per_s']:.0f} samples/s at {args.size} px, "
          f"{args.workers} workers (train augmentation on)")
    if args.build_clip:
        res["build"] = {str(w): build_speed(args.build_clip, w, args.build_frames, args.face_model) for w in (1, 2)}
        for w, b in res["build"].items():
            print(f"cache build, {w} worker(s): {b['frames_per_s']:.1f} frames/s "
                  f"({b['frames_per_s_per_worker']:.1f} per worker), DIS flow targets included")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
