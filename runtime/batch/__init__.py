"""``au-edge batch``: folders of recordings through the detector, on every core or on a Ray cluster.

Modules: ``inputs`` (what the INPUT arguments name, unique output stems), ``manifest`` (``DIR/manifest.csv``,
what makes a batch resumable), ``job`` (the one per-input function: the camera's run loop into a JSONL
and a CSV), ``local`` (worker processes), ``ray_runner`` (Ray tasks; Ray is imported there only),
``progress`` (tqdm or plain lines), ``command`` (the CLI). See docs/batch.md.
"""
