"""``report.html``: one self-contained page, the video beside the timeline, relative links only.

No external resources (fonts, scripts, CDNs): the page works offline and from any folder it is
copied to. A few lines of inline script write the video's duration once the browser has decoded
its header, so a reader (and the test) sees that the video really plays.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>au-edge demo: {title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 1.2em; color: #222; background: #fafafa; }}
  h1 {{ font-size: 1.3em; margin: 0 0 0.6em; }}
  .row {{ display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }}
  .row > figure {{ margin: 0; flex: 1 1 480px; }}
  video, img {{ width: 100%; height: auto; background: #000; border: 1px solid #ccc; }}
  img {{ background: #fff; }}
  figcaption {{ font-size: 0.9em; color: #555; margin-top: 0.3em; }}
  pre {{ background: #fff; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }}
</style>
</head>
<body>
<h1>au-edge demo: {title}</h1>
<div class="row">
  <figure>
    <video id="video" src="{video}" controls muted playsinline preload="metadata"></video>
    <figcaption>Annotated video: face boxes, 5 landmarks, one bar per AU (bright: active).
      Duration: <span id="video-duration">loading</span></figcaption>
  </figure>
  <figure>
    <a href="{timeline}"><img id="timeline" src="{timeline}" alt="AU probability over time, active spans shaded"></a>
    <figcaption>AU probability over time; shaded: active (threshold + hysteresis); dotted: threshold.</figcaption>
  </figure>
</div>
<h2>Summary</h2>
<pre id="summary">{summary}</pre>
<p>Per-frame data: {links}</p>
<script>
  const v = document.getElementById("video"), d = document.getElementById("video-duration");
  const show = () => {{ if (isFinite(v.duration)) d.textContent = v.duration.toFixed(2) + " s"; }};
  v.addEventListener("loadedmetadata", show);
  v.addEventListener("error", () => {{ d.textContent = "this browser cannot play the video"; }});
  show();
</script>
</body>
</html>
"""


def write_report(path: Path, *, title: str, video: str, timeline: str, summary: Sequence[str],
                 data_files: Sequence[str]) -> Path:
    """Write the page; ``video``, ``timeline`` and ``data_files`` are names relative to its folder."""
    links = ", ".join(f'<a href="{html.escape(f, quote=True)}">{html.escape(f)}</a>' for f in data_files)
    page = PAGE.format(title=html.escape(title), video=html.escape(video, quote=True),
                       timeline=html.escape(timeline, quote=True), summary=html.escape("\n".join(summary)),
                       links=links)
    path.write_text(page, encoding="utf-8")
    return path
