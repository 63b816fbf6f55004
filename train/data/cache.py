"""The aligned-face cache: every frame detected and aligned ONCE, stored as numpy shards.

Layout (``CACHE/``):
    manifest.json                 counts, as the project CONTRACTS.md defines them
    meta.json                     AU list, crop size, alignment, subjects, label kinds
    shards/NNNNN/<field>.npy      one folder per shard of up to ``shard_size`` faces; each field
                                  is a plain .npy that ``np.load(mmap_mode="r")`` maps, so
                                  DataLoader workers read crops without copies or pickles
Fields: image (N,S,S,3) uint8 RGB, points5 (N,5,2) f32 and landmarks (N,P,2) f16 in crop pixels,
labels (N,A) f32, mask (N,A) bool, intensity (N,A) f16 (NaN unknown), kind (N,A) uint8 (index into
LABEL_KINDS, per AU: a London photo has a real AU12 and silver other AUs), subject (N,) int32 (index into meta subjects), frame (N,) int32, video (N,) int32,
flow (N,2,S/4,S/4) f16 and flow_valid (N,) bool: RTATL's single-image flow target, with ONE
meaning for every source: for each pixel of this crop, the displacement to where that face point
was k frames EARLIER (``crop(p) ~ earlier(p + flow(p))``, the ``dis_flow(crop, earlier)``
convention): the motion that brought the face to this frame. Video and image-sequence frames
(BP4D, GFT, Aff-Wild2: frame ``frame - k`` of the same folder, by frame number): OpenCV DIS flow
to frame t-k warped by frame t's alignment; synthetic warps: the exact displacement to the
neutral face they were warped from (an expression's earlier state). Stored by
``flow.downsample_flow`` (area-averaged to 1/4, vectors in pixels of that quarter grid;
``flow.upsample_flow`` inverts it). A frame without an earlier frame has ``flow_valid`` False.

A shard folder is written under a temporary name and renamed when complete, so a killed build
resumes by skipping finished shards. Shards are independent, so a process pool builds them.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from train.data.flow import dis_flow, downsample_flow
from train.data.readers.common import index_frames
from train.data.records import LABEL_KINDS, FrameRecord
FIELDS = ("image", "points5", "landmarks", "labels", "mask", "intensity", "kind", "subject", "frame", "video",
          "flow", "flow_valid")
N_LANDMARKS = 478  # 468-point meshes are padded with NaN rows


@dataclass(frozen=True)
class CacheSpec:
    crop_size: int = 256
    template: str = "default"
    scale: float = 1.0
    shard_size: int = 512
    flow_k: int = 3  # video / image-sequence frames: flow target from t to t-k (0 = none)


def shard_dir(out: Path, i: int) -> Path:
    return out / "shards" / f"{i:05d}"


def empty_arrays(n: int, n_aus: int, s: int) -> dict[str, np.ndarray]:
    return {"image": np.zeros((n, s, s, 3), np.uint8), "points5": np.zeros((n, 5, 2), np.float32),
            "landmarks": np.full((n, N_LANDMARKS, 2), np.nan, np.float16),
            "labels": np.zeros((n, n_aus), np.float32), "mask": np.zeros((n, n_aus), bool),
            "intensity": np.full((n, n_aus), np.nan, np.float16), "kind": np.zeros((n, n_aus), np.uint8),
            "subject": np.zeros(n, np.int32), "frame": np.zeros(n, np.int32), "video": np.zeros(n, np.int32),
            "flow": np.zeros((n, 2, s // 4, s // 4), np.float16), "flow_valid": np.zeros(n, bool)}


def quarter_flow(flow: np.ndarray) -> np.ndarray:
    """HxWx2 flow (pixels) -> the stored 2 x H/4 x W/4 float16 (see the module docstring)."""
    return downsample_flow(flow, 4).transpose(2, 0, 1)


def write_shard(out: Path, index: int, arrays: dict[str, np.ndarray], n: int, skipped: dict[str, int]) -> None:
    """Write the first ``n`` rows of every field under a temporary name, then rename (atomic)."""
    final = shard_dir(out, index)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr[:n])
    (tmp / "skipped.json").write_text(json.dumps(dict(skipped)))
    os.replace(tmp, final)


def record_kinds(rec: FrameRecord, n_aus: int) -> np.ndarray:
    """Per-AU label-kind codes: ``rec.au_kinds`` (per-AU names) when set, else ``rec.label_kind``."""
    if rec.au_kinds is not None:
        return np.array([LABEL_KINDS.index(k) for k in rec.au_kinds], np.uint8)
    return np.full(n_aus, LABEL_KINDS.index(rec.label_kind), np.uint8)


class _FrameReader:
    """Reads record frames, keeping one video open while consecutive records come from it."""

    def __init__(self):
        self._path: str | None = None
        self._cap = None
        self._pos = -1
        self._folders: dict[str, dict[int, str]] = {}

    def read(self, rec: FrameRecord) -> np.ndarray | None:
        if rec.image_path:
            return cv2.imread(rec.image_path, cv2.IMREAD_COLOR)
        return self.read_index(rec.video_path, int(rec.video_index))

    def read_index(self, path: str, idx: int) -> np.ndarray | None:
        if path != self._path:
            self.close()
            self._cap, self._path, self._pos = cv2.VideoCapture(path), path, -1
        if idx != self._pos + 1:  # seek only when not reading sequentially
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
        ok, frame = self._cap.read()
        self._pos = idx if ok else -2
        return frame if ok else None

    def read_earlier(self, rec: FrameRecord, k: int) -> np.ndarray | None:
        """Frame ``k`` frames before ``rec`` in its video or image sequence (None: there is none)."""
        if rec.video_path:
            idx = int(rec.video_index) - k
            return self.read_index(rec.video_path, idx) if idx >= 0 else None
        if not rec.sequence:
            return None  # a still photo (London, a manifest CSV): no neighbouring frames
        folder = os.path.dirname(rec.image_path)
        if folder not in self._folders:  # one listing per sequence folder, not a stat per frame
            self._folders = {folder: index_frames(Path(folder))}
        path = self._folders[folder].get(int(rec.frame) - k)
        return cv2.imread(path, cv2.IMREAD_COLOR) if path else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap, self._path = None, None


def _build_shard(out: Path, index: int, records: Sequence[FrameRecord], subjects: dict[str, int],
                 videos: dict[str, int], n_aus: int, spec: CacheSpec, face_model: str | None) -> dict:
    """Detect, align and store one shard; returns its counts (faces, skipped reasons)."""
    from runtime.align import align_face, transform_points
    from runtime.face import FaceStage

    arrays = empty_arrays(len(records), n_aus, spec.crop_size)
    skipped: Counter[str] = Counter()
    reader, earlier = _FrameReader(), _FrameReader()  # earlier: frame t-k for the flow target
    n = 0
    with FaceStage(face_model=face_model, max_faces=1, threads=1) as faces:
        for rec in records:
            bgr = reader.read(rec)
            if bgr is None:
                skipped["unreadable_frame"] += 1
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            found = faces.detect(rgb)
            if not found:
                skipped["no_face"] += 1
                continue
            face = max(found, key=lambda f: f.bbox[2] * f.bbox[3])
            crop, m = align_face(rgb, face.points5, spec.crop_size, spec.template, spec.scale)
            arrays["image"][n] = crop
            arrays["points5"][n] = transform_points(face.points5, m)
            lm = transform_points(face.landmarks[:, :2], m)
            arrays["landmarks"][n, : len(lm)] = lm
            arrays["labels"][n], arrays["mask"][n] = rec.labels, rec.mask
            if rec.intensity is not None:
                arrays["intensity"][n] = rec.intensity
            arrays["kind"][n] = record_kinds(rec, n_aus)
            arrays["subject"][n] = subjects[rec.subject]
            arrays["frame"][n] = rec.frame
            arrays["video"][n] = videos[rec.video]
            before = earlier.read_earlier(rec, spec.flow_k) if spec.flow_k > 0 else None
            if before is not None:  # frame t-k in frame t's alignment (see the module docstring)
                warped = cv2.warpAffine(cv2.cvtColor(before, cv2.COLOR_BGR2RGB), m,
                                        (spec.crop_size, spec.crop_size), flags=cv2.INTER_LINEAR)
                arrays["flow"][n] = quarter_flow(dis_flow(crop, warped))
                arrays["flow_valid"][n] = True
            n += 1
    reader.close()
    earlier.close()
    write_shard(out, index, arrays, n, skipped)
    return {"faces": n, "skipped": dict(skipped)}


def build_cache(records: Sequence[FrameRecord], aus: Sequence[str], out: str | Path, dataset: str,
                spec: CacheSpec = CacheSpec(), workers: int = 1, face_model: str | None = None,
                reader_skipped: dict[str, int] | None = None, progress: bool = True) -> dict:
    """Build (or resume) a cache from frame records and write ``manifest.json``.

    Returns the manifest.
    """
    from train.data.manifest import build_manifest, write_manifest

    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    subjects = {s: i for i, s in enumerate(sorted({r.subject for r in records}))}
    videos = {v: i for i, v in enumerate(sorted({r.video for r in records}))}
    meta = {"dataset": dataset, "aus": list(aus), "crop_size": spec.crop_size, "template": spec.template,
            "scale": spec.scale, "subjects": list(subjects), "videos": list(videos),
            "label_kinds": list(LABEL_KINDS), "n_landmarks": N_LANDMARKS}
    meta_path = out / "meta.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()) != meta:
        raise ValueError(f"{out} holds a cache built from other records or settings; use a new --out "
                         "or delete it")
    meta_path.write_text(json.dumps(meta, indent=1))
    chunks = [records[i:i + spec.shard_size] for i in range(0, len(records), spec.shard_size)]
    todo = [i for i in range(len(chunks)) if not shard_dir(out, i).is_dir()]
    bar = _progress(len(chunks), len(chunks) - len(todo), f"caching {dataset}", progress)
    args = (subjects, videos, len(aus), spec, face_model)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_build_shard, out, i, chunks[i], *args) for i in todo]
            for fut in as_completed(futures):
                fut.result()
                bar.update(1)
    else:
        for i in todo:
            _build_shard(out, i, chunks[i], *args)
            bar.update(1)
    bar.close()
    skipped: Counter[str] = Counter(reader_skipped or {})
    for i in range(len(chunks)):
        skipped.update(json.loads((shard_dir(out, i) / "skipped.json").read_text()))
    data = CacheData(out)
    manifest = build_manifest(dataset, records, aus, frames_with_face=len(data), skipped=dict(skipped))
    write_manifest(manifest, out / "manifest.json")
    return manifest


def _progress(total: int, done: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=desc, unit="shard", disable=not enabled)


class CacheData:
    """All shards of a cache, memory-mapped; ``arrays[field]`` lists per-shard arrays.

    A cache whose meta.json lists ``parts`` (the open dataset: real photos/video + synthetic
    warps) is the concatenation of those sub-caches; subject ids are re-indexed into one list.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = self.root / "meta.json"
        if not meta.is_file():
            raise FileNotFoundError(f"{self.root} is not an au-edge cache (no meta.json); build it with "
                                    "`python -m train.data prepare|open|synth`")
        self.meta = json.loads(meta.read_text())
        self.arrays: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
        self._subject_map: list[np.ndarray] = []  # per shard: local subject index -> global
        subjects: list[str] = []
        for part in self.meta.get("parts") or [None]:
            proot = self.root / part if part else self.root
            pmeta = json.loads((proot / "meta.json").read_text()) if part else self.meta
            for s in pmeta["subjects"]:
                if s not in subjects:
                    subjects.append(s)
            remap = np.array([subjects.index(s) for s in pmeta["subjects"]], np.int32)
            shards = proot / "shards"
            dirs = sorted(p for p in shards.iterdir() if p.is_dir() and not p.name.endswith(".tmp")) \
                if shards.is_dir() else []
            for d in dirs:
                for f in FIELDS:
                    self.arrays[f].append(np.load(d / f"{f}.npy", mmap_mode="r"))
                self._subject_map.append(remap)
        self.meta["subjects"] = subjects
        sizes = [len(a) for a in self.arrays["frame"]]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        shard = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return shard, i - int(self.offsets[shard])

    def field(self, name: str) -> np.ndarray:
        """A small field for all samples, concatenated (labels, subject, ...; not images)."""
        parts = self.arrays[name]
        if name == "subject":
            parts = [m[np.asarray(a)] for m, a in zip(self._subject_map, parts)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def sample(self, i: int) -> dict[str, np.ndarray]:
        s, j = self.locate(i)
        out = {f: np.asarray(self.arrays[f][s][j]) for f in FIELDS}
        out["subject"] = self._subject_map[s][out["subject"]]
        return out

    @property
    def aus(self) -> list[str]:
        return list(self.meta["aus"])

    @property
    def subjects(self) -> list[str]:
        return list(self.meta["subjects"])

    def indices_for_subjects(self, subjects: Iterable[str]) -> np.ndarray:
        wanted = [self.meta["subjects"].index(s) for s in subjects if s in self.meta["subjects"]]
        return np.flatnonzero(np.isin(self.field("subject"), wanted))
