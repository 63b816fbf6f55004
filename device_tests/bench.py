"""``python -m device_tests.bench``: latency and throughput of one AU engine on this device.

Times ``Engine.infer`` on aligned-crop-shaped input (pre/post-processing included, face stage not;
``export.latency``), with the process's peak memory and what the device is.
"""
from __future__ import annotations

import json
import sys

from device_tests.sysinfo import device, rss_mb
from export.latency import time_engine
from runtime.cli import BATCH, TIMED_RUNS, threads_option
from train.cli import OneLineParser, guarded


def bench_engine(engine_path: str, runs: int = 200, batch: int = 1, threads: int | None = None,
                 warmup: int = 20) -> dict:
    """The bench JSON (CONTRACTS): the timing plus ``rss_mb`` and ``device``."""
    return {**time_engine(engine_path, runs, batch, threads, warmup), "rss_mb": rss_mb(), "device": device()}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.bench", description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True)
    p.add_argument("--runs", type=TIMED_RUNS, default=200)
    p.add_argument("--batch", type=BATCH, default=1)
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--json", metavar="OUT")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    res = bench_engine(args.engine, args.runs, args.batch, args.threads)
    text = json.dumps(res, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(f"{res['backend']} {res['precision']} batch {res['batch']}: p50 {res['p50_ms']:.2f} ms, "
          f"p99 {res['p99_ms']:.2f} ms, {res['throughput_per_s']:.0f} faces/s, RSS {res['rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
