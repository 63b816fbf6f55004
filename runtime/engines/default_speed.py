"""Which shipped engine is faster on this CPU: timed once, then remembered.

Why measure: the shipped LiteRT INT8 engine is several times faster than the FP32 ONNX where the CPU
has int8 dot products (AVX-512 VNNI), but on an AVX2 CPU without them the independent check found it
slower (5.2 vs 4.6 ms). Which one wins depends on the CPU, the thread count and both backends'
kernels, so ``--engine default`` times both the first time it runs where both backends are installed:
a few dozen inferences of each, alternated, well under a second. The answer is kept in
``$XDG_CACHE_HOME/au-edge/default_engine.json``, keyed by the CPU, the thread count and the shipped
files, so a machine keeps one engine (and one set of outputs) from run to run. Another engine
replaces the first-listed one (INT8, whose outputs the held-out read was made on) only when it is
``MARGIN`` faster in every one of the alternated rounds: on a shared 2-core AVX2 EPYC the two
engines' medians swung by 30-40 % from one timing to the next (INT8 2.6-4.5 ms, ONNX 2.8-4.2 ms),
so one pair of medians picked the ONNX once on a CPU where INT8 is as fast (``device_tests.bench``:
p50 2.15 vs 2.69 ms). The timing runs in a child process, so the engine not picked never takes
memory in the user's.
``AU_EDGE_DEFAULT_ENGINE=<file name>`` picks a shipped engine without timing.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from runtime.user_cache import user_cache

ENV_VAR = "AU_EDGE_DEFAULT_ENGINE"
ROUNDS, RUNS, WARMUP = 7, 10, 5  # alternated rounds of timed inferences per engine, after a warm-up
MARGIN = 0.10  # how much faster than the first-listed engine another must be, in every round, to replace it
RULE = f"{MARGIN:.0%} faster in each of {ROUNDS} rounds"  # in the cache key: picks made by another rule time again
CHILD_TIMEOUT_S = 120
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "sve")


def cache_file() -> Path:
    return user_cache("default_engine.json")


def cpu_signature() -> str:
    """The CPU as far as kernel speed goes: model name, the int8/vector flags it has, core count."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu part") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "features"):
                    flags |= set(value.split())
    except OSError:
        pass
    have = ",".join(f for f in CPU_FLAGS if f in flags)
    return f"{platform.machine()} | {model} | {have} | {os.cpu_count()} cores"


def files_key(paths: list[Path]) -> str:
    """The shipped engines as they are now (name, size, modification time): a reinstall times again."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def remembered(key: dict, names: list[str]) -> dict | None:
    """The cached pick for exactly this key, if there is a valid one."""
    try:
        cached = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("key") != key or cached.get("file") not in names:
        return None
    return cached


def remember(entry: dict) -> None:
    """Keep the pick; a cache that cannot be written only means timing again next time."""
    from runtime.atomic import atomic_write

    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "default engine pick", mode="w") as f:
            f.write(json.dumps(entry, indent=2))
    except OSError:
        pass


def time_engines(paths: list[Path], threads: int | None) -> dict[str, list[float]]:
    """Each engine's median ms per single-face inference in each round; rounds alternate between the
    engines so drift and other processes hit all alike."""
    from runtime.engines import load_engine

    engines = [load_engine(p, threads=threads) for p in paths]
    try:
        crops = []
        for eng in engines:
            h, w = eng.input_size
            ramp = (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(1, h, w, 3)  # not flat: no shortcut
            crops.append(ramp)
            for _ in range(WARMUP):
                eng.infer(ramp)
        rounds: list[list[float]] = [[] for _ in engines]
        for _ in range(ROUNDS):
            for eng, crop, per_round in zip(engines, crops, rounds):
                t = []
                for _ in range(RUNS):
                    t0 = time.perf_counter()
                    eng.infer(crop)
                    t.append((time.perf_counter() - t0) * 1e3)
                per_round.append(round(float(np.median(t)), 3))
        return {p.name: r for p, r in zip(paths, rounds)}
    finally:
        for eng in engines:
            eng.close()


def medians(rounds: dict[str, list[float]]) -> dict[str, float]:
    """One number per engine for people to read: the median of its round medians."""
    return {name: round(float(np.median(r)), 3) for name, r in rounds.items()}


def pick(paths: list[Path], rounds: dict[str, list[float]]) -> Path:
    """The first-listed engine unless another is ``MARGIN`` faster than it in every round (then the
    one of those with the lowest median): a win that noise made in some rounds is not a win."""
    first = rounds[paths[0].name]
    clear = [p for p in paths[1:] if all(t < (1.0 - MARGIN) * f for t, f in zip(rounds[p.name], first, strict=True))]
    return min(clear, key=lambda p: float(np.median(rounds[p.name]))) if clear else paths[0]


def time_in_child(paths: list[Path], threads: int | None) -> dict[str, list[float]] | None:
    """``time_engines`` in a child process (its memory goes with it); None when it cannot run."""
    cmd = [sys.executable, "-m", "runtime.engines.default_speed", *map(str, paths)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
        rounds = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None

    def valid(r: object) -> bool:
        return isinstance(r, list) and len(r) == ROUNDS and all(isinstance(t, (int, float)) and t > 0 for t in r)
    return rounds if isinstance(rounds, dict) and all(valid(rounds.get(p.name)) for p in paths) else None


def fastest(paths: list[Path], threads: int | None) -> tuple[Path, dict[str, float], bool]:
    """(the engine to run, the times it was picked on ({} when they could not be taken), whether
    they came from the cache). A failed timing picks the first-listed engine and is not remembered."""
    names = [p.name for p in paths]
    key = {"cpu": cpu_signature(), "threads": threads, "files": files_key(paths), "rule": RULE}
    cached = remembered(key, names)
    if cached is not None:
        return paths[names.index(cached["file"])], cached.get("ms", {}), True
    rounds = time_in_child(paths, threads)
    if rounds is None:
        return paths[0], {}, False
    best, ms = pick(paths, rounds), medians(rounds)
    remember({"key": key, "file": best.name, "ms": ms, "rounds": rounds, "margin": MARGIN,
              "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return best, ms, False


def main(argv: list[str] | None = None) -> int:
    """``python -m runtime.engines.default_speed ENGINE... [--threads N]``: one JSON line, each
    engine's median ms in each round."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m runtime.engines.default_speed")
    p.add_argument("engines", nargs="+", type=Path)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    print(json.dumps(time_engines(args.engines, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
