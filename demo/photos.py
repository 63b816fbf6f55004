"""The demo for a photo or a folder of photos: a per-photo table and chart instead of a time axis.

Photos are unrelated pictures (image mode: each on its own, ids 1..n per photo), so a timeline of one
"face track" over 0.3 s of folder clock says nothing. Here each face of each photo is one row: the
summary lists every photo with its faces' active AUs, and ``timeline.png`` becomes a photos x AUs
chart of the probabilities. Read back from the JSONL, like the video demo (``demo.series``).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHOTO_FPS = 1.0  # the annotated photos as a slideshow: one per second
TABLE_ROWS = 40  # photos listed in the summary (all of them are in demo.csv)
CHART_ROWS = 60  # faces drawn in the chart
ROW_IN, EXTRA_IN, WIDTH_IN, DPI = 0.3, 1.6, 12.0, 100


@dataclass
class Photo:
    """One photo: its file name, its faces (JSONL face records) or why it was skipped."""

    name: str
    faces: list[dict] = field(default_factory=list)
    skipped: str | None = None


def load_photos(jsonl: Path) -> list[Photo]:
    """Every record of the demo's JSONL as a photo, in the folder's order (skipped files included)."""
    records = [json.loads(line) for line in Path(jsonl).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Photo(str(r["source"]), list(r["faces"]), r.get("skipped")) for r in records]


def summary_lines(photos: Sequence[Photo], *, wall_s: float, source: str, engine: str,
                  video_note: str = "") -> list[str]:
    """Counts, then one line per photo: its faces and each face's active AUs."""
    done = [p for p in photos if p.skipped is None]
    skipped = [p for p in photos if p.skipped is not None]
    faces = sum(len(p.faces) for p in done)
    rate = len(done) / wall_s if wall_s > 0 else 0.0
    counts = (f"{len(done)} photo{'s' * (len(done) != 1)}, {sum(bool(p.faces) for p in done)} with a face, "
              f"{faces} face{'s' * (faces != 1)}")
    if skipped:
        counts += f", {len(skipped)} skipped ({', '.join(f'{p.name}: {p.skipped}' for p in skipped[:5])}" + (
            f", +{len(skipped) - 5} more)" if len(skipped) > 5 else ")")
    lines = [f"source {source}, engine {engine}",
             counts + f"; {rate:.1f} photos/s end to end ({wall_s:.1f} s)"
             + (f"; slideshow video {video_note}" if video_note else "")]
    width = min(32, max([len(p.name) for p in photos] + [5]))
    lines.append("per photo (active AUs of each face, by face id):")
    for p in list(photos)[:TABLE_ROWS]:
        if p.skipped is not None:
            what = f"skipped: {p.skipped}"
        elif not p.faces:
            what = "no face"
        else:
            what = " | ".join(f"{f['track_id']}: {' '.join(f['au_active']) or '-'}" for f in p.faces)
        faces = f"{len(p.faces)} face{'s' * (len(p.faces) != 1)}"
        lines.append(f"  {p.name[:width]:<{width}}  {faces:<8} {what}")
    if len(photos) > TABLE_ROWS:
        lines.append(f"  ... +{len(photos) - TABLE_ROWS} more photos (demo.csv has every face)")
    return lines


def pick_photo(photos: Sequence[Photo]) -> str | None:
    """The photo with the face with the most AUs active (the first such), or the first photo with a
    face when none is active; None when no photo has a face."""
    with_face = [p for p in photos if p.faces]
    if not with_face:
        return None
    return max(with_face, key=lambda p: max(len(f["au_active"]) for f in p.faces)).name


def plot_photos(photos: Sequence[Photo], aus: Sequence[str], path: Path) -> Path:
    """``timeline.png`` for photos: one row per face (``photo #id``), one column per AU, the colour
    the probability, a dot where the runtime called the AU active."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    rows = [(p.name, f) for p in photos for f in p.faces]
    shown = rows[:CHART_ROWS]
    n = max(1, len(shown))
    prob = np.full((n, len(aus)), np.nan)
    for i, (_, f) in enumerate(shown):
        prob[i] = [f["au_prob"].get(a, np.nan) for a in aus]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, ROW_IN * n + EXTRA_IN), dpi=DPI)
    im = ax.imshow(prob, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    for i, (_, f) in enumerate(shown):
        for j, a in enumerate(aus):
            if a in f["au_active"]:
                ax.plot(j, i, "o", color="#ff9f1c", ms=5, mec="black", mew=0.6)
    ax.set_xticks(range(len(aus)), list(aus), fontsize=9)
    ax.set_yticks(range(len(shown)), [f"{name[:28]} #{f['track_id']}" for name, f in shown], fontsize=9)
    ax.xaxis.tick_top()
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="AU probability")
    done = sum(p.skipped is None for p in photos)
    more = f" (first {CHART_ROWS} of {len(rows)} faces)" if len(rows) > CHART_ROWS else ""
    title = (f"AU probability per face, {done} photo{'s' * (done != 1)}{more}; dot: active" if rows
             else f"no face was found in {done} photo{'s' * (done != 1)}")
    fig.suptitle(title, fontsize=12, x=0.02, ha="left")
    fig.subplots_adjust(left=0.22, right=0.94, top=1 - 0.9 / fig.get_figheight(), bottom=0.3 / fig.get_figheight())
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
