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
    <figcaption>{video_caption}
      Duration: <span id="video-duration">loading</span></figcaption>
  </figure>
  <figure>
    <a href="{timeline}"><img id="timeline" src="{timeline}" alt="{timeline_alt}"></a>
    <figcaption>{timeline_caption}</figcaption>
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


CAPTIONS = {  # (video caption, chart alt text, chart caption) per kind of source
    "video": ("Annotated video: face boxes, 5 landmarks, one bar per AU (bright: active).",
              "AU probability over time, active spans shaded",
              "AU probability over time; shaded: active (threshold + hysteresis); dotted: threshold."),
    "photos": ("The annotated photos, one per second (each is also in photos/, under its own name).",
               "AU probability per face of every photo",
               "AU probability per face (one row per face of each photo); dot: active."),
}


def write_report(path: Path, *, title: str, video: str, timeline: str, summary: Sequence[str],
                 data_files: Sequence[str], kind: str = "video") -> Path:
    """Write the page; ``video``, ``timeline`` and ``data_files`` are names relative to its folder;
    ``kind`` ("video" | "photos") picks the captions."""
    links = ", ".join(f'<a href="{html.escape(f, quote=True)}">{html.escape(f)}</a>' for f in data_files)
    video_caption, alt, caption = CAPTIONS[kind]
    page = PAGE.format(title=html.escape(title), video=html.escape(video, quote=True),
                       timeline=html.escape(timeline, quote=True), summary=html.escape("\n".join(summary)),
                       links=links, video_caption=html.escape(video_caption), timeline_alt=html.escape(alt),
                       timeline_caption=html.escape(caption))
    path.write_text(page, encoding="utf-8")
    return path
