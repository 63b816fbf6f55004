"""``CACHE/manifest.json``: what a data command read, in the form the project CONTRACTS.md fixes:

    {"dataset", "frames", "frames_with_face", "subjects", "labels": {"AU01": {"pos", "neg",
     "unknown"}, ...}, "label_kind": "real"|"silver"|"synthetic"|"mixed", "skipped": {reason: n}}

``frames`` counts the records the readers produced (labelled frames that exist); ``labels`` counts
over those records; ``frames_with_face`` comes from the caller that ran face detection;
``subjects`` is the number of distinct subjects, and the extra key ``subject_ids`` lists them.
Written atomically (temporary file + rename) so a reader never sees half a manifest.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from train.data.records import LABEL_KINDS, FrameRecord

REQUIRED_KEYS = ("dataset", "frames", "frames_with_face", "subjects", "labels", "label_kind", "skipped")


def build_manifest(dataset: str, records: Sequence[FrameRecord], aus: Sequence[str], frames_with_face: int,
                   skipped: Mapping[str, int] | None = None, label_kind: str | None = None) -> dict:
    """The manifest dict for ``records`` whose label arrays follow ``aus``.

    Args:
        frames_with_face: frames in which face detection found a face (from the cache build).
        skipped: counted skips, reader's and cache's together ({reason: count}).
        label_kind: override the kind derived from the records (needed when there are none).

    Returns:
        The manifest: ``label_kind`` is the one kind all records (and their per-AU kinds) share,
        or "mixed".

    Raises:
        ValueError: a record whose labels do not have len(aus) entries, or a bad count.
    """
    n = len(records)
    labels = np.zeros((n, len(aus)), np.float32)
    mask = np.zeros((n, len(aus)), bool)
    kinds: set[str] = set()
    for i, rec in enumerate(records):
        if rec.labels.shape != (len(aus),):
            raise ValueError(f"record {rec.video}:{rec.frame} has {rec.labels.shape} labels for {len(aus)} AUs")
        labels[i], mask[i] = rec.labels, rec.mask
        kinds.update(rec.au_kinds or (rec.label_kind,))
    if label_kind is None:
        label_kind = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "real"
    if label_kind not in (*LABEL_KINDS, "mixed"):
        raise ValueError(f"label_kind {label_kind!r} is not one of {LABEL_KINDS} or 'mixed'")
    skipped = {str(k): int(v) for k, v in sorted((skipped or {}).items())}
    if any(v < 0 for v in skipped.values()) or frames_with_face < 0:
        raise ValueError(f"counts must be non-negative (frames_with_face={frames_with_face}, skipped={skipped})")
    subject_ids = sorted({r.subject for r in records})
    return {"dataset": dataset, "frames": n, "frames_with_face": int(frames_with_face),
            "subjects": len(subject_ids), "labels": label_counts(labels, mask, aus),
            "label_kind": label_kind, "skipped": skipped, "subject_ids": subject_ids}


def label_counts(labels: np.ndarray, mask: np.ndarray, aus: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per-AU known positives, known negatives and unknowns (masked entries are never negative)."""
    positive = labels > 0.5
    return {a: {"pos": int((positive[:, j] & mask[:, j]).sum()), "neg": int((~positive[:, j] & mask[:, j]).sum()),
                "unknown": int((~mask[:, j]).sum())} for j, a in enumerate(aus)}


def write_manifest(manifest: Mapping, path: str | Path) -> Path:
    """Write ``manifest`` as JSON at ``path`` atomically (temporary file in the same folder, then
    rename). Raises ValueError when a CONTRACTS key is missing."""
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"manifest lacks {missing}; build it with build_manifest")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a manifest is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict:
    """Load a manifest.json. Raises ValueError when a CONTRACTS key is missing."""
    manifest = json.loads(Path(path).read_text())
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"{path}: manifest lacks {missing}; rebuild the cache")
    return manifest
