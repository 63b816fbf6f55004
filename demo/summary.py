"""The few lines printed at the end (and shown in the report): frames, faces, fps, the AUs most active."""
from __future__ import annotations

from demo.series import Series, most_active
from runtime.aus import CATALOG, au_number


def summary_lines(series: Series, *, wall_s: float, source: str, engine: str, video_note: str = "") -> list[str]:
    fps = series.frames / wall_s if wall_s > 0 else 0.0
    lines = [f"source {source}, engine {engine}",
             f"{series.frames} frames, {series.with_face} with a face, {series.tracks} face track(s), "
             f"{fps:.1f} fps end to end ({wall_s:.1f} s)" + (f"; video {video_note}" if video_note else "")]
    top = most_active(series)
    if series.track is None:
        lines.append("no face was found, so no AU was scored")
    elif not top:
        lines.append(f"no AU was active on face track {series.track}")
    else:
        lines.append(f"most active AUs (face track {series.track}, share of its frames, longest spans):")
        for au, share, spans in top:
            when = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in spans[:3])
            more = f" (+{len(spans) - 3} more)" if len(spans) > 3 else ""
            lines.append(f"  {au} {CATALOG[au_number(au)].label:<22} {share:4.0%}  {when}{more}")
    return lines
