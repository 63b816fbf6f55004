"""``python -m device_tests.soak``: the whole pipeline for many frames; does memory or latency creep?

A robot runs for days. This loops a file source through ``AUDetector`` for N frames (default 10,000),
sampling the resident memory and the per-frame latency (``FrameResult.latency_ms``: detection to
hysteresis, decode excluded) as it goes. After a warm-up (allocators, caches, first inferences) it
fails when RSS grows more than 5% or the p99 latency of the last stretch is more than 20% above the
first stretch's. A stretch is a quarter of the run after warm-up, and its p99 is the median of the
p99s of its windows (``windows`` per run), so one burst of load from another process on the board
does not read as drift, while a real creep (it rises window after window) does.

JSON: ``{"frames", "rss_warm_mb", "rss_end_mb", "rss_growth", "p99_first_ms", "p99_last_ms", "passed"}``
plus ``p99_drift``, the limits, and ``series`` (per window: frame, p50/p99 ms, RSS MB) for the report's
plot. Exit 1 when a check fails (after writing the JSON).
"""
from __future__ import annotations

import sys

import numpy as np

from device_tests.results import finish
from device_tests.sysinfo import current_rss_mb, device
from runtime.cli import FRAME_COUNT, MAX_FRAMES, threads_option
from train.cli import OneLineParser, guarded

RSS_GROWTH_MAX = 0.05
P99_DRIFT_MAX = 0.20


def run_soak(engine: str, source: str, frames: int = 10_000, *, warmup: int | None = None,
             windows: int = 20, threads: int | None = None, face_model: str | None = None,
             detector=None) -> dict:
    """Process ``frames`` frames of ``source`` (looped) and judge memory and latency drift.

    Args:
        warmup: frames before the RSS baseline (default: 10% of ``frames``, at least 50).
        windows: how many windows the run after warm-up is cut into (a p99 each); the median p99 of the
            first quarter of them is compared with that of the last quarter.
        detector: an already built ``AUDetector``-like object (``stream(source)`` of FrameResults);
            built from ``engine`` when None.

    Raises:
        ValueError: frames/warmup/windows that leave fewer than 4 windows of at least 10 frames.
    """
    warmup = max(50, frames // 10) if warmup is None else warmup
    per_window = (frames - warmup) // max(1, windows)
    if windows < 4 or warmup < 0 or per_window < 10:
        raise ValueError(f"--frames {frames} with warm-up {warmup} leaves fewer than 4 windows of >= 10 frames "
                         f"({windows} windows); use more frames")
    if detector is None:
        from runtime.detector import AUDetector

        detector = AUDetector(engine, max_faces=1, threads=threads, face_model=face_model)
    latency = np.empty(frames)
    series: list[dict] = []
    rss_warm = None
    n = 0
    while n < frames:
        start = n
        for result in detector.stream(source, max_frames=frames - n):
            latency[n] = result.latency_ms
            n += 1
            if n == warmup:
                rss_warm = current_rss_mb()
            if n > warmup and (n - warmup) % per_window == 0:
                lat = latency[n - per_window:n]
                series.append({"frame": n, "p50_ms": float(np.percentile(lat, 50)),
                               "p99_ms": float(np.percentile(lat, 99)), "rss_mb": current_rss_mb()})
        if n == start:
            raise ValueError(f"source {source} gave no frame; soak needs a file with frames")
    rss_end = current_rss_mb()
    rss_warm = rss_warm if rss_warm is not None else rss_end
    q = max(1, len(series) // 4)
    p99_first = float(np.median([w["p99_ms"] for w in series[:q]]))
    p99_last = float(np.median([w["p99_ms"] for w in series[-q:]]))
    growth = (rss_end - rss_warm) / rss_warm if rss_warm > 0 else 0.0
    drift = (p99_last - p99_first) / p99_first if p99_first > 0 else 0.0
    rss_ok, latency_ok = bool(growth <= RSS_GROWTH_MAX), bool(drift <= P99_DRIFT_MAX)
    return {"frames": n, "rss_warm_mb": rss_warm, "rss_end_mb": rss_end, "rss_growth": growth,
            "p99_first_ms": p99_first, "p99_last_ms": p99_last, "passed": rss_ok and latency_ok,
            "rss_ok": rss_ok, "latency_ok": latency_ok, "p99_drift": drift, "limits": {"rss_growth": RSS_GROWTH_MAX, "p99_drift": P99_DRIFT_MAX},
            "warmup_frames": warmup, "window_frames": per_window, "engine": str(engine), "source": str(source),
            "series": series, "device": device()}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.soak", description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True)
    p.add_argument("--source", required=True, help="a video file (looped until --frames)")
    p.add_argument("--frames", type=MAX_FRAMES, default=10_000)
    p.add_argument("--warmup", type=FRAME_COUNT, default=None, help="frames before the RSS baseline (default 10%%)")
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--face-model", default=None)
    p.add_argument("--json", metavar="OUT")
    return guarded(_run, p.parse_args(argv))


def _run(args) -> int:
    res = run_soak(args.engine, args.source, args.frames, warmup=args.warmup, threads=args.threads,
                   face_model=args.face_model)
    verdict = "passed" if res["passed"] else "FAILED"
    return finish(res, args.json, f"soak {verdict}: {res['frames']} frames, RSS {res['rss_warm_mb']:.1f} -> "
                  f"{res['rss_end_mb']:.1f} MB "
                  f"({100 * res['rss_growth']:+.1f}%, limit +{100 * RSS_GROWTH_MAX:.0f}%), p99 {res['p99_first_ms']:.2f} -> "
                  f"{res['p99_last_ms']:.2f} ms ({100 * res['p99_drift']:+.1f}%, limit +{100 * P99_DRIFT_MAX:.0f}%)")


if __name__ == "__main__":
    sys.exit(main())
