"""AUDetector running modes, track continuity, landmark smoothing and post-processing, on real
media with real face models and a real engine (ONNX Runtime)."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine_factory import AUS
from runtime import AUDetector

pytestmark = pytest.mark.data

PEXELS = "WolfgangLanger_Pexels.mp4"


def clip_frames(media: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(media / PEXELS))
    frames = []
    while len(frames) < n and (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    assert len(frames) == n
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 24.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def probs(face) -> np.ndarray:
    return np.array([face.au_prob[a] for a in AUS])


# --- image mode ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_folder(data_dir, tmp_path_factory) -> Path:
    """Four different people (London set, neutral and smiling) and a group photo."""
    folder = tmp_path_factory.mktemp("photos")
    london = data_dir / "london"
    for i, src in enumerate([london / "neutral" / "001.jpg", london / "smiling" / "002.jpg",
                             london / "neutral" / "005.jpg", data_dir / "media" / "multi_face.jpg",
                             london / "smiling" / "007.jpg"]):
        shutil.copy(src, folder / f"{i:02d}_{src.name}")
    return folder


def test_folder_in_image_mode_gives_each_photo_its_own_result(tiny_engines, face_model, photo_folder):
    """stream() picks image mode for a folder: every photo gives what it gives on its own, fresh
    detector. In forced video mode every photo is a scene cut: its faces get new ids and nothing
    (tracks, landmark and AU smoothing) carries over from the last photo's people."""
    with AUDetector(tiny_engines["onnx"], max_faces=6, face_model=face_model) as det:
        folder = list(det.stream(str(photo_folder)))
        assert det.running_mode == "video"  # process() outside stream() stays in video mode
    assert [r.source for r in folder] == sorted(p.name for p in photo_folder.iterdir())
    for r in folder:
        with AUDetector(tiny_engines["onnx"], max_faces=6, face_model=face_model, mode="image") as alone:
            want = alone.process(cv2.imread(str(photo_folder / r.source)))
        assert [f.track_id for f in r.faces] == list(range(1, len(want.faces) + 1))
        assert len(r.faces) == len(want.faces) >= 1
        for got, exp in zip(r.faces, want.faces):
            assert np.allclose(got.bbox, exp.bbox) and np.allclose(got.landmarks, exp.landmarks)
            assert np.abs(probs(got) - probs(exp)).max() < 1e-6
            assert got.au_active == exp.au_active
    with AUDetector(tiny_engines["onnx"], max_faces=6, face_model=face_model, mode="video") as det:
        video = list(det.stream(str(photo_folder)))
    ids = [{f.track_id for f in r.faces} for r in video]
    assert all(a and b and not a & b for a, b in itertools.pairwise(ids)), ids
    for v, f in zip(video, folder):
        assert len(v.faces) == len(f.faces)
        for got, exp in zip(v.faces, f.faces):
            assert np.allclose(got.landmarks, exp.landmarks) and np.abs(probs(got) - probs(exp)).max() < 1e-6


def test_the_mode_is_decided_in_one_place(tiny_engines, face_model, photo_folder, media):
    """``running_mode`` is what stream() and the CLI's ``--mode auto`` use: the source decides unless a
    mode was given, and a neutral calibration on photos is refused before anything runs."""
    from runtime.detector import running_mode

    assert [running_mode(None), running_mode(None, True), running_mode("video", True), running_mode("image")] == \
        ["video", "image", "video", "image"]
    with AUDetector(tiny_engines["onnx"], face_model=face_model, calibrate_neutral_s=1.0) as det:
        with pytest.raises(ValueError, match="calibrate_neutral_s=1.0 needs tracks"):
            next(det.stream(str(photo_folder)))
        assert det.running_mode == "video" and len(list(det.stream(str(media / PEXELS), max_frames=2))) == 2


def test_image_mode_counts_faces_beyond_max(tiny_engines, face_model, media):
    frame = cv2.imread(str(media / "multi_face.jpg"))
    with AUDetector(tiny_engines["onnx"], max_faces=2, face_model=face_model, mode="image") as det:
        res = det.process(frame)
    assert len(res.faces) == 2 and res.faces_beyond_max == 3
    with AUDetector(tiny_engines["onnx"], max_faces=6, face_model=face_model, mode="image") as det:
        assert det.process(frame).faces_beyond_max == 0


# --- video mode ------------------------------------------------------------------------------


def test_video_mode_rejects_non_increasing_timestamps(tiny_engines, face_model, media):
    frame = clip_frames(media, 1)[0]
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        det.process(frame, 1.0)
        for bad in (1.0, 0.5):
            with pytest.raises(ValueError) as e:
                det.process(frame, bad)
            msg = str(e.value)
            assert "\n" not in msg and f"got {bad} s after 1.0 s" in msg
        det.process(frame, 1.04)  # the detector is still usable
    with AUDetector(tiny_engines["onnx"], face_model=face_model, mode="image") as det:
        det.process(frame, 1.0)
        det.process(frame, 0.5)  # unrelated images: any time, or none
    with pytest.raises(ValueError, match="mode must be one of"):
        AUDetector(tiny_engines["onnx"], face_model=face_model, mode="stream")
    with pytest.raises(ValueError, match="calibrate_neutral_s"):
        AUDetector(tiny_engines["onnx"], face_model=face_model, mode="image", calibrate_neutral_s=2.0)


def test_face_hidden_for_two_frames_keeps_its_track(tiny_engines, face_model, media, tmp_path):
    """Pexels frames with frames 20 and 21 blanked, encoded to a real video file and decoded by the
    runtime: the face keeps id 1 (and so its smoothing and hysteresis) across the gap."""
    frames = clip_frames(media, 36)
    for i in (20, 21):
        frames[i] = np.zeros_like(frames[i])
    video = write_video(tmp_path / "blink.avi", frames)
    with AUDetector(tiny_engines["onnx"], face_model=face_model) as det:
        ids = [[f.track_id for f in r.faces] for r in det.stream(str(video))]
    assert len(ids) == 36
    assert ids[20] == [] and ids[21] == []
    assert all(i == [1] for k, i in enumerate(ids) if k not in (20, 21))


def _jitter(tiny_engine, face_model, media, smooth_landmarks: bool) -> tuple[float, float]:
    """Mean |frame-to-frame change| of the AU probabilities and of the aligned eye/mouth points
    (AU smoothing off, so only the landmark filter differs)."""
    with AUDetector(tiny_engine, face_model=face_model, smooth=False, smooth_landmarks=smooth_landmarks) as det:
        res = [r.faces[0] for r in det.stream(str(media / PEXELS), max_frames=80) if r.faces]
    p = np.stack([probs(f) for f in res])
    pts = np.stack([f.landmarks5 for f in res])
    return float(np.abs(np.diff(p, axis=0)).mean()), float(np.abs(np.diff(pts, n=2, axis=0)).mean())


def test_landmark_smoothing_lowers_jitter(tiny_engines, face_model, media):
    au_raw, lm_raw = _jitter(tiny_engines["onnx"], face_model, media, False)
    au_s, lm_s = _jitter(tiny_engines["onnx"], face_model, media, True)
    assert au_s < au_raw
    assert lm_s < 0.9 * lm_raw  # frame-to-frame acceleration of the 5 points (px): the jitter


def test_neutral_calibration_removes_a_constant_offset(tiny_engines, face_model, media):
    """The same clip, calibrated over its first second: the track's baseline is the median of its
    first-second probabilities, and afterwards the output is the raw output minus it."""
    kw = {"face_model": face_model, "smooth": False}
    with AUDetector(tiny_engines["onnx"], person_baseline=False, **kw) as det:
        raw = [r for r in det.stream(str(media / PEXELS), max_frames=48)]
    with AUDetector(tiny_engines["onnx"], calibrate_neutral_s=1.0, **kw) as det:
        cal = [r for r in det.stream(str(media / PEXELS), max_frames=48)]
        base = det.baseline.baseline(1)
    assert base is not None
    first = [probs(r.faces[0]) for r in raw if r.time_s < raw[0].time_s + 1.0 - 1e-9]
    assert np.allclose(base, np.median(np.stack(first), axis=0), atol=1e-6)
    late = [(probs(r.faces[0]), probs(c.faces[0])) for r, c in zip(raw, cal) if r.time_s >= 1.05]
    assert late
    for p_raw, p_cal in late:
        assert np.allclose(p_cal, np.clip(p_raw - base, 0, 1), atol=1e-6)
    # the tiny engine's steady per-AU level is a constant offset for this person: it drops
    assert np.mean([p.mean() for _, p in late]) < 0.5 * np.mean([p.mean() for p, _ in late])


def test_opencv_threads_are_one_by_default_left_alone_with_none_and_checked(tiny_engines, face_model):
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        with AUDetector(tiny_engines["onnx"], face_model=face_model, opencv_threads=None):
            assert cv2.getNumThreads() == 2
        with AUDetector(tiny_engines["onnx"], face_model=face_model):
            assert cv2.getNumThreads() == 1
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match=f"opencv_threads must be .*got {bad!r}"):
                AUDetector(tiny_engines["onnx"], face_model=face_model, opencv_threads=bad)
    finally:
        cv2.setNumThreads(before)
