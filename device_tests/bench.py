"""``python -m device_tests.bench``: latency and throughput of one AU engine on this device.

Times ``Engine.infer`` on aligned-crop-shaped input (pre/post-processing included, face stage not).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from device_tests.sysinfo import device, rss_mb


def bench_engine(engine_path: str, runs: int = 200, batch: int = 1, threads: int | None = None,
                 warmup: int = 20) -> dict:
    from runtime.engines import load_engine

    eng = load_engine(engine_path, threads=threads)
    h, w = eng.input_size
    crops = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    for _ in range(warmup):
        eng.infer(crops)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        eng.infer(crops)
        times[i] = (time.perf_counter() - t0) * 1e3
    return {"engine": str(engine_path), "backend": eng.backend, "precision": eng.precision, "batch": batch,
            "threads": threads, "p50_ms": float(np.percentile(times, 50)),
            "p90_ms": float(np.percentile(times, 90)), "p99_ms": float(np.percentile(times, 99)),
            "mean_ms": float(times.mean()), "throughput_per_s": float(batch * 1e3 / times.mean()),
            "rss_mb": rss_mb(), "device": device()}


def main(argv: list[str] | None = None) -> int:
    from runtime.errors import AUEdgeError

    p = argparse.ArgumentParser(prog="python -m device_tests.bench", description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    try:
        res = bench_engine(args.engine, args.runs, args.batch, args.threads)
    except AUEdgeError as e:
        print(f"au-edge: error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(res, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(f"{res['backend']} {res['precision']} batch {res['batch']}: p50 {res['p50_ms']:.2f} ms, "
          f"p99 {res['p99_ms']:.2f} ms, {res['throughput_per_s']:.0f} faces/s, RSS {res['rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
