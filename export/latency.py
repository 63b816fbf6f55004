"""How long an engine takes: ``Engine.infer`` timed on aligned-crop-shaped input, pre/post-processing
included, face stage not. ``export.bench`` (per exported artifact) and ``device_tests.bench`` (one
engine on a board) both time with it; it needs the runtime alone (no torch)."""
from __future__ import annotations

import time

import numpy as np


def time_engine(engine_path: str, runs: int = 200, batch: int = 1, threads: int | None = None,
                warmup: int = 20) -> dict:
    """p50/p90/p99/mean ms and faces per second of ``runs`` calls on random crops, after ``warmup``.

    Raises:
        AUEdgeError: a bad engine or card (the runtime's one-line errors).
    """
    from runtime.engines import load_engine

    eng = load_engine(engine_path, threads=threads)
    try:
        h, w = eng.input_size
        crops = np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
        for _ in range(warmup):
            eng.infer(crops)
        times = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter()
            eng.infer(crops)
            times[i] = (time.perf_counter() - t0) * 1e3
        backend, precision = eng.backend, eng.precision
    finally:
        eng.close()
    return {"engine": str(engine_path), "backend": backend, "precision": precision, "batch": batch,
            "threads": threads, "p50_ms": float(np.percentile(times, 50)),
            "p90_ms": float(np.percentile(times, 90)), "p99_ms": float(np.percentile(times, 99)),
            "mean_ms": float(times.mean()), "throughput_per_s": float(batch * 1e3 / times.mean())}
