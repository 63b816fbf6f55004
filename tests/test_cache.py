"""The aligned-face cache: built through the runtime's face stage and alignment, exact manifests,
round trip against a direct alignment call, resume after a kill."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import fixtures_datasets as fx
from runtime.align import align_face, transform_points
from runtime.aus import BP4D_AUS, DISFA_AUS, au_name
from runtime.face import FaceStage
from train.data.cache import CacheData, CacheSpec, build_cache
from train.data.readers import read_dataset


def prepare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.data", "prepare", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def london_csv(data_dir, tmp_path_factory):
    """A manifest-CSV dataset of 6 real London photos (AU12 real) and one image with no face."""
    root = tmp_path_factory.mktemp("london_manifest")
    rows = ["path,subject,AU12"]
    for kind, label in (("neutral", 0), ("smiling", 1)):
        for fid in ("001", "002", "003"):
            dst = root / f"{kind}_{fid}.jpg"
            shutil.copy(data_dir / "london" / kind / f"{fid}.jpg", dst)
            rows.append(f"{dst.name},london_{fid},{label}")
    cv2.imwrite(str(root / "blank.jpg"), np.full((200, 200, 3), 120, np.uint8))
    rows.append("blank.jpg,nobody,1")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_cli_help_lists_every_dataset():
    out = subprocess.run([sys.executable, "-m", "train.data", "--help"], capture_output=True, text=True).stdout
    for name in ("bp4d", "disfa", "affwild2", "gft", "manifest", "prepare", "open", "synth"):
        assert name in out


def test_manifest_counts_and_round_trip(london_csv, face_model, tmp_path):
    out = tmp_path / "cache"
    proc = prepare("--dataset", "manifest", "--root", london_csv, "--out", out, "--face-model", face_model,
                   "--workers", "1", "--crop-size", "128")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert (m["frames"], m["frames_with_face"], m["subjects"]) == (7, 6, 4)
    assert m["skipped"] == {"no_face": 1}
    assert m["labels"]["AU12"] == {"pos": 4, "neg": 3, "unknown": 0}  # counts are over the records
    assert m["label_kind"] == "real"

    cache = CacheData(out)
    assert len(cache) == 6
    with FaceStage(face_model=face_model, max_faces=1) as stage:
        for i in range(len(cache)):
            s = cache.sample(i)
            name = f"{'smiling' if s['labels'][0] else 'neutral'}_{cache.subjects[s['subject']][-3:]}.jpg"
            rgb = cv2.cvtColor(cv2.imread(str(london_csv.parent / name)), cv2.COLOR_BGR2RGB)
            face = stage.detect(rgb)[0]
            crop, mat = align_face(rgb, face.points5, 128)
            assert np.abs(crop.astype(int) - s["image"].astype(int)).max() <= 1
            lm = transform_points(face.landmarks[:, :2], mat)
            assert np.abs(lm - s["landmarks"][: len(lm)].astype(np.float64)).max() < 0.5
            assert np.abs(transform_points(face.points5, mat) - s["points5"]).max() < 0.5


def test_resume_after_a_kill_gives_the_same_cache(london_csv, face_model, tmp_path):
    res = read_dataset("manifest", london_csv)
    spec = CacheSpec(crop_size=64, shard_size=2)
    full = tmp_path / "full"
    m1 = build_cache(res.records, res.aus, full, "manifest", spec, face_model=face_model, progress=False)
    # a kill mid-build leaves finished shards, a half-written .tmp shard and no manifest
    (full / "manifest.json").unlink()
    shutil.rmtree(full / "shards" / "00002")
    (full / "shards" / "00002.tmp").mkdir()
    (full / "shards" / "00002.tmp" / "image.npy").write_bytes(b"partial")
    m2 = build_cache(res.records, res.aus, full, "manifest", spec, face_model=face_model, progress=False)
    assert m1 == m2
    fresh = tmp_path / "fresh"
    build_cache(res.records, res.aus, fresh, "manifest", spec, face_model=face_model, progress=False)
    a, b = CacheData(full), CacheData(fresh)
    assert len(a) == len(b) == 6
    for i in range(len(a)):
        assert all(np.array_equal(a.sample(i)[f], b.sample(i)[f], equal_nan=True)
                   for f in ("image", "labels", "mask", "subject"))


def _faces(data_dir, n: int) -> list[np.ndarray]:
    return [cv2.resize(cv2.imread(str(data_dir / "london" / "neutral" / f"{i:03d}.jpg")), (180, 180))
            for i in (1, 2, 3, 5, 6, 7, 8, 9)[:n]]


def test_prepare_bp4d_tree_manifest_is_exact(data_dir, face_model, tmp_path):
    root = tmp_path / "BP4D"
    rows = fx.make_bp4d(root)["rows"]
    faces = _faces(data_dir, 4)
    for k, jpg in enumerate(sorted((root / "Sequences").rglob("*.jpg"))):
        cv2.imwrite(str(jpg), faces[k % len(faces)])
    out = tmp_path / "cache"
    proc = prepare("--dataset", "bp4d", "--root", root, "--out", out, "--face-model", face_model, "--workers", "2",
                   "--flow-k", "1")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "manifest.json").read_text())
    kept = [r for r in rows if r["image"] and any(v != 9 for n, v in r["codes"].items() if n in BP4D_AUS)]
    assert m["frames"] == m["frames_with_face"] == len(kept)
    assert m["subjects"] == len({r["subject"] for r in kept})
    assert m["skipped"] == {"missing_image": len(fx.BP4D_NO_IMAGE), "unannotated": 1}
    for n in BP4D_AUS:
        want = {"pos": sum(r["codes"][n] == 1 for r in kept), "neg": sum(r["codes"][n] == 0 for r in kept),
                "unknown": sum(r["codes"].get(n, 9) == 9 for r in kept)}
        assert m["labels"][au_name(n)] == want
    # image sequences carry flow targets: every frame whose predecessor image exists (labelled or not)
    cache = CacheData(out)
    images = {(r["video"], r["frame"]) for r in rows if r["image"]}
    videos = cache.meta["videos"]
    got = {(videos[v], int(f)): bool(ok) for v, f, ok in zip(cache.field("video"), cache.field("frame"),
                                                             cache.field("flow_valid"))}
    assert got == {(r["video"], r["frame"]): (r["video"], r["frame"] - 1) in images for r in kept}
    assert sum(got.values()) >= len(kept) // 2


def test_prepare_disfa_tree_manifest_is_exact(data_dir, face_model, tmp_path):
    root = tmp_path / "DISFA"
    info = fx.make_disfa(root)
    faces = _faces(data_dir, 3)
    for avi in (root / "Videos_LeftCamera").glob("*.avi"):  # same frame counts, real faces
        n = int(cv2.VideoCapture(str(avi)).get(cv2.CAP_PROP_FRAME_COUNT))
        w = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (180, 180))
        for i in range(n):
            w.write(faces[i % 3])
        w.release()
    out = tmp_path / "cache"
    proc = prepare("--dataset", "disfa", "--root", root, "--out", out, "--face-model", face_model,
                   "--flow-k", "1")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "manifest.json").read_text())
    frames = [(s, f) for s, table in info["intensity"].items() for f in table
              if info["videos"][s]["left"] and f <= info["videos"][s]["left"]]
    assert m["frames"] == m["frames_with_face"] == len(frames)
    for n in DISFA_AUS:
        vals = [info["intensity"][s][f].get(n) for s, f in frames]
        want = {"pos": sum(v is not None and v >= 2 for v in vals), "neg": sum(v is not None and v < 2 for v in vals),
                "unknown": sum(v is None for v in vals)}
        assert m["labels"][au_name(n)] == want
    cache = CacheData(out)
    assert cache.field("flow_valid").sum() > 0  # video frames carry DIS flow targets to t+1


def test_pairs_from_a_real_video_have_useful_flow(media, face_model, tmp_path):
    """Unlabeled pairs: the stored DIS flow (t -> t-3, in frame t's aligned crop) explains frame
    t-3: warping it by the flow is closer to frame t than no warp; the first 3 frames have none."""
    from runtime.align import alignment_matrix
    from train.data.flow import upsample_flow, warp_by_flow

    clip = media / "WolfgangLanger_Pexels.mp4"
    out = tmp_path / "pairs"
    proc = subprocess.run([sys.executable, "-m", "train.data", "pairs", "--video", str(clip), "--out", str(out),
                           "--every", "40", "--face-model", face_model], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    cache = CacheData(out)
    valid = cache.field("flow_valid")
    assert len(cache) >= 11 and not cache.field("mask").any()
    assert valid.tolist() == [int(f) >= 3 for f in cache.field("frame")]
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while (r := cap.read())[0]:
        frames.append(cv2.cvtColor(r[1], cv2.COLOR_BGR2RGB))
    better = 0
    for i in np.flatnonzero(valid):
        s = cache.sample(int(i))
        t = int(s["frame"])
        crop_t = s["image"]
        # frame t's alignment, recovered from its stored 5 points (crop) and a fresh detection
        with FaceStage(face_model=face_model, max_faces=1) as stage:
            pts = stage.detect(frames[t])[0].points5
        m = alignment_matrix(pts, crop_t.shape[0])
        earlier = cv2.warpAffine(frames[t - 3], m, crop_t.shape[:2][::-1])
        flow = upsample_flow(s["flow"].transpose(1, 2, 0), crop_t.shape[:2])
        back = warp_by_flow(earlier, flow)
        err_warp = np.abs(back.astype(float) - crop_t).mean()
        err_none = np.abs(earlier.astype(float) - crop_t).mean()
        better += err_warp < err_none
    assert better >= 0.8 * valid.sum()
