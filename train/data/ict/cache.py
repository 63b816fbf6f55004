"""ICT-driven FACS warps of real neutral photos -> an aligned cache part (label kind "synthetic").

Each render (``ICTBatch``) is aligned the way the runtime aligns a tracked face: the five points
of its own (moved) face mesh, ``runtime.align``'s one template and warp. Its flow target (where
each pixel was in the neutral photo, the cache's "to the earlier frame" meaning) is carried into
crop coordinates by the same matrix. Subjects are named ``<dataset>_<id>`` (``london_001``,
``canada_049f``) like the real photos', so identity-exclusive folds keep a person's photos and
renders on one side; the held-out identities (``train.data.holdout``) are never rendered.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.align import alignment_matrix, five_points, transform_points, warp
from runtime.aus import DEFAULT_MODEL_AUS, au_name
from train.data.cache import CacheData
from train.data.holdout import is_held_out_subject
from train.data.records import LABEL_KINDS
from train.data.shards import ShardWriter, cache_meta, write_meta

DATASET_OF_FOLDER = {"neutral": "london", "smiling": "london", "canada": "canada", "people": "people"}


def photo_subject(path: Path) -> str:
    """``london/neutral/001.jpg`` -> ``london_001``; ``canada/049f.jpg`` -> ``canada_049f``."""
    dataset = DATASET_OF_FOLDER.get(path.parent.name, path.parent.name)
    return f"{dataset}_{path.stem}"


def trainable(path: Path) -> bool:
    """False for a held-out identity's photo (``media/people`` is held out entirely)."""
    return not is_held_out_subject(photo_subject(path))


def align_sample(image_bgr: np.ndarray, mesh: np.ndarray, flow: np.ndarray,
                 crop_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(RGB crop, five points in the photo, mesh x/y in crop pixels, crop flow) of one render."""
    p5 = five_points(mesh)
    m = alignment_matrix(p5, crop_size)
    crop = cv2.cvtColor(warp(image_bgr, m, crop_size), cv2.COLOR_BGR2RGB)
    points = transform_points(np.asarray(mesh, np.float64)[:, :2], m)
    moved = cv2.warpAffine(flow.astype(np.float32), m, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    crop_flow = moved @ m[:, :2].T.astype(np.float32)  # displacement vectors through the linear part
    return crop, p5.astype(np.float32), points.astype(np.float32), crop_flow


def ict_folders(data_dir: str | Path, options: dict | None = None) -> list[Path]:
    """The open data's photo folders an ICT version renders: London neutral and Canada; v3 also
    London smiling (``train.data.ict.options``)."""
    from train.data.ict.options import ict_options

    data_dir = Path(data_dir)
    folders = [data_dir / "london" / "neutral", data_dir / "canada"]
    return folders + ([data_dir / "london" / "smiling"] if ict_options(options).version >= 3 else [])


def ict_cache(folders: Sequence[str | Path], out: str | Path, n: int, seed: int, *, model: str | Path,
              face_model: str | None = None, aus: Sequence[int] = DEFAULT_MODEL_AUS, crop_size: int = 256,
              shard_size: int = 256, progress: bool = True, options: dict | None = None) -> dict:
    """Render ``n`` ICT-driven expressions of the trainable photos in ``folders`` into ``out``.

    Every AU of ``aus`` is labelled (kind "synthetic"), exactly or, where v3 hides its region or
    a smiling base photo leaves it open, unknown (mask 0); intensities are the rendered weights on
    the FACS 0-5 scale (NaN where unknown). ``options``: ``train.data.ict.options`` (a dict;
    ``{"version": 3}`` for synthetic v3; None: ``DEFAULT_VERSION``). Returns the manifest (also
    written to ``out/manifest.json``).
    """
    from tqdm import tqdm

    from train.data.ict.batch import ICTBatch
    from train.data.manifest import label_counts, write_manifest

    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    names = [au_name(a) for a in aus]
    from train.data.ict.options import ict_options

    opts = ict_options(options)
    batch = ICTBatch(folders, n, seed, model=model, face_model=face_model, keep=trainable, options=opts)
    subjects = sorted({photo_subject(p) for p in batch.photos})
    write_meta(out, cache_meta("ict", names, crop_size, subjects, ["ict"], seed=seed, n=n, ict=opts.as_dict()))
    shards = ShardWriter(out, len(names), crop_size, shard_size)
    for s in tqdm(batch, total=n, desc="ICT warps", unit="render", disable=not progress):
        crop, p5, points, flow = align_sample(s.image, s.points, s.flow, crop_size)
        shards.add(image=crop, points5=p5, landmarks=points, labels=[s.labels.get(a, 0) for a in names],
                   mask=[a in s.labels for a in names],
                   intensity=[s.intensity.get(a, np.nan) for a in names],
                   kind=LABEL_KINDS.index("synthetic"),
                   subject=subjects.index(photo_subject(Path(s.face_id + ".jpg"))), frame=s.index, flow=flow)
    shards.flush()
    labels, masks = shards.labels_and_masks()
    manifest = {"dataset": "ict", "frames": n, "frames_with_face": len(CacheData(out)), "subjects": len(subjects),
                "labels": label_counts(labels, masks, names), "label_kind": "synthetic",
                "skipped": dict(batch.skipped), "ict_version": opts.version}
    write_manifest(manifest, out / "manifest.json")
    return manifest
