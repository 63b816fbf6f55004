"""What a benchmark ran on, and how much memory it held."""
from __future__ import annotations

import os
import platform
import resource


def rss_mb() -> float:
    """Peak resident set size of this process, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return rss_mb()


def device() -> dict:
    info = {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version(),
            "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/device-tree/model") as f:  # Jetson / Raspberry Pi board name
            info["board"] = f.read().strip("\x00\n")
    except OSError:
        pass
    return info
