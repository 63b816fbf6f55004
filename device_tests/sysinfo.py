"""What a benchmark ran on (read only: clocks, fans and power modes are never changed), and its memory.

``python -m device_tests.sysinfo [--json OUT]`` prints the facts: CPU model, cores, frequency governor;
on a Jetson the board model (/proc/device-tree/model), L4T and JetPack release, nvpmodel mode and one
tegrastats sample (power, temperatures); on a Raspberry Pi the model and ``vcgencmd`` temperature and
throttling. Every probe that is absent is left out; none needs root.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from device_tests.board_parsers import (
    parse_nv_tegra_release,
    parse_nvpmodel,
    parse_tegrastats,
    parse_throttled,
    parse_vcgencmd_temp,
)
from train.cli import OneLineParser


def rss_mb() -> float:
    """Peak resident set size of this process, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def current_rss_mb() -> float:
    """Resident set size now, in MB (what a leak makes grow; the peak never comes down)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:
        return rss_mb()


def rss_kinds_mb() -> dict[str, float] | None:
    """Resident memory now by kind, in MB (Linux): ``anon`` is the process's own (heap, tensors,
    frames); ``file`` is pages of mapped files (the shared libraries), which the kernel shares and
    reclaims and whose count depends on the page cache (the same run reads 55 or 102 MB of them
    in two checkouts of one commit). None where /proc/self/status has no such lines."""
    text = _read("/proc/self/status") or ""
    kb = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile") and value.split():
            kb[key] = int(value.split()[0])
    if len(kb) < 2:
        return None
    return {"anon": kb["RssAnon"] / 1024, "file": kb["RssFile"] / 1024}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _run(cmd: list[str], timeout: float = 3.0) -> str | None:
    """A read-only query's stdout, or None when the tool is absent or fails."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _tegrastats_line(timeout: float = 4.0) -> str | None:
    """The first line tegrastats prints (it runs until stopped, so it is stopped after one)."""
    if shutil.which("tegrastats") is None:
        return None
    try:
        proc = subprocess.Popen(["tegrastats", "--interval", "500"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None
    try:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        return proc.stdout.readline().strip() if sel.select(timeout) else None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_facts() -> dict:
    info = {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version(),
            "cpus": os.cpu_count()}
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("model name", "Model", "Hardware") and "cpu" not in info:
            info["cpu"] = line.split(":", 1)[1].strip()
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        info["governor"] = governor
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_khz and max_khz.isdigit():
        info["cpu_max_mhz"] = int(max_khz) // 1000
    return info


def jetson_facts() -> dict | None:
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    facts: dict = {"release": parse_nv_tegra_release(release)}
    package = _run(["dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack"])
    if package and facts["release"] is not None:
        facts["release"]["jetpack"] = package.split("-")[0].split("+")[0]
    mode = _run(["nvpmodel", "-q"])
    if mode:
        facts["nvpmodel"] = parse_nvpmodel(mode)
    line = _tegrastats_line()
    if line:
        facts["tegrastats"] = parse_tegrastats(line)
    return facts


def raspberry_pi_facts(model: str | None) -> dict | None:
    if not model or "raspberry pi" not in model.lower():
        return None
    facts: dict = {}
    temp = _run(["vcgencmd", "measure_temp"])
    if temp:
        facts["temp_c"] = parse_vcgencmd_temp(temp)
    throttled = _run(["vcgencmd", "get_throttled"])
    if throttled:
        facts["throttled"] = parse_throttled(throttled)
    return facts


def device() -> dict:
    """Everything known about this machine, read only."""
    info = cpu_facts()
    model = _read("/proc/device-tree/model")  # Jetson / Raspberry Pi board name
    if model:
        info["board"] = model
    jetson = jetson_facts()
    if jetson is not None:
        info["jetson"] = jetson
    pi = raspberry_pi_facts(model)
    if pi is not None:
        info["raspberry_pi"] = pi
    return info


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m device_tests.sysinfo", description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="OUT", help="also write the facts to this file")
    args = p.parse_args(argv)
    text = json.dumps({"device": device()}, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
