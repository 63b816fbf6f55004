"""The demo's numbers, read back from the JSONL it wrote: one face's AU probabilities over time.

Reading the file (not the in-memory results) makes the plot, the summary and the report describe
exactly what was written. The face shown is the track seen in the most frames.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Series:
    aus: list[str]
    time_s: np.ndarray        # F
    prob: np.ndarray          # F x A, NaN where the track is not in the frame
    active: np.ndarray        # F x A bool (the runtime's thresholds + hysteresis)
    track: int | None         # the track shown (most frames), None when no face was seen
    frames: int
    with_face: int
    tracks: int

    def spans(self, au: str) -> list[tuple[float, float]]:
        """Active spans of ``au`` as (start, end) seconds; a span ends where the next frame starts."""
        on = self.active[:, self.aus.index(au)].astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], on, [0]])))
        t = self.time_s
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        return [(float(t[a]), float(t[b]) if b < len(t) else float(t[-1]) + step)
                for a, b in zip(edges[::2], edges[1::2])]


def load_series(jsonl: Path, aus: list[str]) -> Series:
    """Parse the demo's JSONL (one record per frame, CONTRACTS format)."""
    records = [json.loads(line) for line in Path(jsonl).read_text(encoding="utf-8").splitlines() if line.strip()]
    counts = Counter(f["track_id"] for r in records for f in r["faces"])
    track = counts.most_common(1)[0][0] if counts else None
    n, a = len(records), len(aus)
    prob = np.full((n, a), np.nan, np.float32)
    active = np.zeros((n, a), bool)
    for i, r in enumerate(records):
        face = next((f for f in r["faces"] if f["track_id"] == track), None)
        if face is None:
            continue
        prob[i] = [face["au_prob"].get(x, np.nan) for x in aus]
        active[i] = [x in face["au_active"] for x in aus]
    return Series(aus=list(aus), time_s=np.array([r["time_s"] for r in records], np.float64), prob=prob,
                  active=active, track=track, frames=n, with_face=sum(bool(r["faces"]) for r in records),
                  tracks=len(counts))


def most_active(series: Series, top: int = 3) -> list[tuple[str, float, list[tuple[float, float]]]]:
    """The ``top`` AUs by share of the track's frames active: (au, share, spans longest first)."""
    seen = ~np.isnan(series.prob[:, 0]) if series.frames else np.zeros(0, bool)
    if not seen.any():
        return []
    share = series.active[seen].mean(axis=0)
    order = [i for i in np.argsort(-share, kind="stable") if share[i] > 0][:top]
    return [(series.aus[i], float(share[i]),
             sorted(series.spans(series.aus[i]), key=lambda s: s[0] - s[1])) for i in order]
