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
resumes by skipping finished shards (``train.data.shards``, the writer every cache builder uses).
Shards are independent, so a process pool builds them.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.cv_path import decode_image, open_video
from train.data.flow import dis_flow
from train.data.readers.common import index_frames
from train.data.records import LABEL_KINDS, FrameRecord
from train.data.shards import FIELDS, ShardWriter, cache_meta, shard_dir, write_meta


@dataclass(frozen=True)
class CacheSpec:
    crop_size: int = 256
    template: str = "default"
    scale: float = 1.0
    shard_size: int = 512
    flow_k: int = 3  # video / image-sequence frames: flow target from t to t-k (0 = none)


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
            return decode_image(rec.image_path)
        return self.read_index(rec.video_path, int(rec.video_index))

    def read_index(self, path: str, idx: int) -> np.ndarray | None:
        if path != self._path:
            self.close()
            self._cap, self._path, self._pos = open_video(path), path, -1
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
        return decode_image(path) if path else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap, self._path = None, None


def _build_shard(out: Path, index: int, records: Sequence[FrameRecord], subjects: dict[str, int],
                 videos: dict[str, int], n_aus: int, spec: CacheSpec, face_model: str | None) -> dict:
    """Detect, align and store one shard; returns its counts (faces, skipped reasons)."""
    from runtime.align import align_face, transform_points
    from runtime.face import FaceStage

    shard = ShardWriter(out, n_aus, spec.crop_size, len(records), first=index, single=True)
    skipped: Counter[str] = Counter()
    reader, earlier = _FrameReader(), _FrameReader()  # earlier: frame t-k for the flow target
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
            flow = None
            before = earlier.read_earlier(rec, spec.flow_k) if spec.flow_k > 0 else None
            if before is not None:  # frame t-k in frame t's alignment (see the module docstring)
                warped = cv2.warpAffine(cv2.cvtColor(before, cv2.COLOR_BGR2RGB), m,
                                        (spec.crop_size, spec.crop_size), flags=cv2.INTER_LINEAR)
                flow = dis_flow(crop, warped)
            shard.add(image=crop, points5=transform_points(face.points5, m),
                      landmarks=transform_points(face.landmarks[:, :2], m), labels=rec.labels, mask=rec.mask,
                      intensity=rec.intensity, kind=record_kinds(rec, n_aus), subject=subjects[rec.subject],
                      frame=rec.frame, video=videos[rec.video], flow=flow)
    reader.close()
    earlier.close()
    n = shard.count
    shard.flush(skipped, always=True)
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
    write_meta(out, cache_meta(dataset, aus, spec.crop_size, list(subjects), list(videos), template=spec.template,
                               scale=spec.scale), must_match=True)
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
