"""Parsers for what Jetson and Raspberry Pi tools print; pure functions, tested on recorded samples.

Formats (as NVIDIA's and the Raspberry Pi documentation describe them):

- ``/etc/nv_tegra_release``: ``# R36 (release), REVISION: 4.3, GCID: ..., BOARD: generic, ...``
- ``nvpmodel -q``: ``NV Power Mode: MAXN`` then the mode number on its own line (warnings may precede)
- ``tegrastats``: one line per interval, e.g. Orin ``RAM 2272/7620MB (lfb 4x4MB) ... CPU [0%@729,...]
  GR3D_FREQ 0% cpu@54.9C ... gpu@55.4C ... VDD_IN 4673mW/4673mW VDD_CPU_GPU_CV 527mW/527mW ...``
  (rails ``NAME current/average`` in mW; before JetPack 5 without the unit, ``POM_5V_IN 1750/1628``,
  and temperatures upper case, ``CPU@40C``)
- ``vcgencmd measure_temp``: ``temp=48.3'C``; ``vcgencmd get_throttled``: ``throttled=0x50005``
"""
from __future__ import annotations

import re

# JetPack release for an L4T release (NVIDIA's JetPack archive); the board's nvidia-jetpack package
# version, when installed, is preferred over this table.
JETPACK_FOR_L4T = {
    "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4", "32.7.5": "4.6.5",
    "32.7.6": "4.6.6", "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2",
    "35.5.0": "5.1.3", "35.6.0": "5.1.4", "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1",
    "36.4.3": "6.2", "36.4.4": "6.2.1",
}
# Raspberry Pi firmware `get_throttled` bits (documented on raspberrypi.com, "vcgencmd").
THROTTLED_BITS = {
    0: "under_voltage", 1: "arm_freq_capped", 2: "throttled", 3: "soft_temp_limit",
    16: "under_voltage_occurred", 17: "arm_freq_capped_occurred", 18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")  # the board input where the module has one


def parse_nv_tegra_release(text: str) -> dict | None:
    """``/etc/nv_tegra_release`` -> ``{"l4t": "36.4.3", "board": ..., "jetpack": "6.2" | None}``."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return None
    rev = m.group(2).split(".")
    l4t = ".".join([m.group(1)] + rev + ["0"] * (2 - len(rev)))
    board = re.search(r"BOARD:\s*([^,\s]+)", text)
    return {"l4t": l4t, "board": board.group(1) if board else None, "jetpack": JETPACK_FOR_L4T.get(l4t)}


def parse_nvpmodel(text: str) -> dict | None:
    """``nvpmodel -q`` -> ``{"name": "MAXN", "id": 0}`` (id None when not printed)."""
    m = re.search(r"NV Power Mode:\s*(.+)", text)
    if not m:
        return None
    after = text[m.end():].split()
    mode_id = int(after[0]) if after and after[0].isdigit() else None
    return {"name": m.group(1).strip(), "id": mode_id}


def parse_tegrastats(line: str) -> dict:
    """One tegrastats line -> RAM, CPU load, GPU load, temperatures (°C) and power rails (mW).

    Returns ``{"ram_used_mb", "ram_total_mb", "cpu_load_pct": [...], "gpu_load_pct", "temps_c": {...},
    "rails_mw": {name: [current, average]}, "power_mw": board total}`` with only the keys present; the
    board total is ``VDD_IN``/``POM_5V_IN`` when the module has that rail, else the sum of the rails.
    """
    out: dict = {}
    m = re.search(r"RAM (\d+)/(\d+)MB", line)
    if m:
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"CPU \[([^\]]*)\]", line)
    if m:
        out["cpu_load_pct"] = [int(c.split("%")[0]) if "%" in c else None for c in m.group(1).split(",")]
    m = re.search(r"GR3D_FREQ (\d+)%", line)
    if m:
        out["gpu_load_pct"] = int(m.group(1))
    temps = {k.lower(): float(v) for k, v in re.findall(r"\b([A-Za-z][\w]*)@(-?[\d.]+)C\b", line)}
    if temps:
        out["temps_c"] = temps
    rails = {name: [int(cur), int(avg)] for name, cur, avg in
             re.findall(r"\b([A-Z][A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?\b", line)
             if name not in ("RAM", "SWAP", "IRAM")}
    if rails:
        out["rails_mw"] = rails
        total = next((rails[r][0] for r in TOTAL_RAILS if r in rails), None)
        out["power_mw"] = total if total is not None else sum(v[0] for v in rails.values())
    return out


def parse_vcgencmd_temp(text: str) -> float | None:
    """``temp=48.3'C`` -> 48.3."""
    m = re.search(r"temp=(-?[\d.]+)'C", text)
    return float(m.group(1)) if m else None


def parse_throttled(text: str) -> dict | None:
    """``throttled=0x50005`` -> ``{"raw": "0x50005", "flags": [...names of the set bits]}``."""
    m = re.search(r"throttled=(0x[0-9a-fA-F]+)", text)
    if not m:
        return None
    value = int(m.group(1), 16)
    return {"raw": m.group(1), "flags": [name for bit, name in THROTTLED_BITS.items() if value >> bit & 1]}
