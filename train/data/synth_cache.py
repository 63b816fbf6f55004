"""Synthetic FACS warps of the London neutral faces (``train.data.synth``) -> an aligned cache
(label kind "synthetic"): ``python -m train.data synth`` and the smoke presets' data."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.aus import DEFAULT_MODEL_AUS, au_name
from train.data.cache import CacheData
from train.data.holdout import is_held_out
from train.data.records import LABEL_KINDS
from train.data.shards import ShardWriter, cache_meta, write_meta

SYNTH_CROP = 256  # crop side of the caches built without the face stage (warps of aligned faces)


def synth_cache(faces_dir: str | Path, out: str | Path, n: int, seed: int,
                aus: Sequence[int] = DEFAULT_MODEL_AUS, crop_size: int = SYNTH_CROP, shard_size: int = 256,
                progress: bool = True, render_aus: Sequence[int] | None = None, low: float = 1.0,
                max_active: int = 3, hold_out: bool = False) -> dict:
    """Render ``n`` synthetic expressions of the neutral faces into an aligned cache.

    Labels are exact (label_kind "synthetic", every AU of ``aus`` known; ``render_aus`` limits
    which of them are rendered, the others are then known negatives). The flow target of a render is the
    displacement of each pixel to where it was in the neutral face (``backward_map - grid``), the
    cache's one flow meaning (``train.data.cache``: to the earlier frame; the neutral face is the
    expression's earlier state, as frame t-k is for video). ``hold_out`` leaves out the held-out
    London identities (``train.data.holdout``), as every set a shipped model trains on must.
    """
    from tqdm import tqdm

    from train.data.manifest import label_counts, write_manifest
    from train.data.synth import STATIC_AUS, render_dataset

    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    names = [au_name(a) for a in aus]
    pool = [int(a) for a in (render_aus or STATIC_AUS)]
    # Subjects are named like the London photos' ("london_001"): a render is the same person, so
    # identity-exclusive folds keep a person's photos and renders on the same side.
    exclude = {p.stem for p in Path(faces_dir).glob("*.tem") if hold_out and is_held_out("london", p.stem)}
    faces = sorted(f"london_{p.stem}" for p in Path(faces_dir).glob("*.tem") if p.stem not in exclude)
    if not faces:
        raise FileNotFoundError(f"no .tem faces in {faces_dir}; point --faces at london/neutral of the open data")
    write_meta(out, cache_meta("synth", names, crop_size, faces, ["synth"], seed=seed, n=n, render_aus=pool,
                               low=low))
    grid = np.stack(np.meshgrid(np.arange(crop_size), np.arange(crop_size)), -1).astype(np.float32)
    samples = render_dataset(faces_dir, n, seed, pool, crop_size=crop_size, low=low, max_active=max_active,
                             exclude=exclude)
    shards = ShardWriter(out, len(names), crop_size, shard_size, skip_existing=True)
    for i, s in enumerate(tqdm(samples, total=n, desc="synth", unit="render", disable=not progress)):
        shards.add(image=cv2.cvtColor(s.image, cv2.COLOR_BGR2RGB), points5=s.landmarks5,
                   labels=[s.labels.get(a, 0) for a in names], mask=True,
                   intensity=[s.intensities.get(a, 0.0) for a in names], kind=LABEL_KINDS.index("synthetic"),
                   subject=faces.index(f"london_{s.face_id}"), frame=i, flow=s.backward_map - grid)
    shards.flush()
    labels, masks = shards.labels_and_masks()
    manifest = {"dataset": "synth", "frames": n, "frames_with_face": len(CacheData(out)), "subjects": len(faces),
                "labels": label_counts(labels, masks, names), "label_kind": "synthetic", "skipped": {}}
    write_manifest(manifest, out / "manifest.json")
    return manifest
