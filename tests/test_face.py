"""The face stage: BlazeFace + face mesh on LiteRT, tracking, and where the models come from.

Real models ($AU_DATA_DIR/models) on real media ($AU_DATA_DIR/media, london/); no network except
the ``slow`` PyPI test.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.errors import AUEdgeError
from runtime.face import FaceStage, models
from runtime.face.blazeface import SPECS, ssd_anchors, weighted_nms
from runtime.face.quality import RELIABLE, presence

pytestmark = pytest.mark.data

EYE_TOL_PX = 6.0    # five_points eye centre vs the hand-placed pupil (inter-ocular ~100 px)
IRIS_TOL_PX = 3.0   # the 478-point mesh's iris centre vs the pupil


@pytest.fixture(scope="module")
def mp_dir(data_dir) -> Path:
    """The three mediapipe 0.10.21 models (what the product fetches from PyPI)."""
    return data_dir / "models" / "mediapipe-0.10.21"


@pytest.fixture(scope="module")
def task_file(data_dir) -> Path:
    return data_dir / "models" / "face_landmarker_v2_with_blendshapes.task"


@pytest.fixture(scope="module")
def stage(mp_dir):
    with FaceStage(face_model=str(mp_dir), detector="full", max_faces=4) as s:
        yield s


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, f"cannot read {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    assert frames, f"OpenCV decoded no frame of {path} (codec missing from this OpenCV build?)"
    return frames


def pupils(tem: Path) -> np.ndarray:
    """The first two .tem points: the pupils, image-left first."""
    return np.loadtxt(tem, skiprows=1, max_rows=2)


def copy_cache(src: Path, cache: Path) -> None:
    cache.mkdir(parents=True)
    for name in models.WHEEL_FILES:
        shutil.copy(src / name, cache / name)


# --- decoding pieces -------------------------------------------------------------------------


def test_anchors_match_mediapipe_layouts():
    full = ssd_anchors(SPECS["full"])
    assert full.shape == (2304, 2)
    assert np.allclose(full[:2], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48]])  # x runs fastest
    short = ssd_anchors(SPECS["short"])
    assert short.shape == (896, 2)
    assert np.allclose(short[0], short[1]) and not np.allclose(short[1], short[2])  # 2 per cell at stride 8
    assert np.allclose(short[512:518], short[512])  # 6 per cell at stride 16
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8])


def test_weighted_nms_merges_a_cluster_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    pts = np.repeat(boxes[:, None, :2], 6, axis=1)
    b, s, p = weighted_nms(boxes, scores, pts, 0.3)
    assert len(s) == 2 and np.allclose(s, [0.9, 0.8])
    assert np.isclose(b[0, 0], 0.3 / 1.2) and np.allclose(b[1], boxes[2])
    assert np.isclose(p[0, 0, 0], 0.3 / 1.2)


# --- detection on images ---------------------------------------------------------------------


def test_multi_face_full_range_finds_all_five_short_range_fewer(data_dir, mp_dir):
    img = read_rgb(data_dir / "media" / "multi_face.jpg")
    counts = {}
    for kind in ("full", "short"):
        with FaceStage(face_model=str(mp_dir), detector=kind, max_faces=10) as s:
            faces = s.detect(img)
        counts[kind] = len(faces)
        for f in faces:
            assert f.landmarks.shape == (468, 3) and f.points5.shape == (5, 2)
            assert 0.0 <= f.score <= 1.0
            assert kind == "short" or f.score >= RELIABLE  # the short range's boxes are poorer
            x, y, w, h = f.bbox
            assert 0 <= x and 0 <= y and x + w <= img.shape[1] and y + h <= img.shape[0] and w > 40
        assert [f.track_id for f in faces] == list(range(1, len(faces) + 1))
    assert counts["full"] == 5
    assert 1 <= counts["short"] < 5


def test_max_faces_caps_the_result(data_dir, stage):
    assert len(stage.detect(read_rgb(data_dir / "media" / "multi_face.jpg"))) == 4


@pytest.mark.parametrize("name", ["001", "002", "003"])
def test_landmarks_land_on_hand_placed_pupils(data_dir, stage, name):
    img = read_rgb(data_dir / "london" / "neutral" / f"{name}.jpg")
    truth = pupils(data_dir / "london" / "neutral" / f"{name}.tem")
    faces = stage.detect(img)
    assert len(faces) == 1
    err = np.linalg.norm(faces[0].points5[:2] - truth, axis=1)
    assert err.max() < EYE_TOL_PX, err


def test_rotated_face_rotated_roi(data_dir, stage):
    """A 30-degree roll: the ROI turns with the eyes, so the mesh still hits the pupils."""
    img = read_rgb(data_dir / "london" / "neutral" / "001.jpg")
    truth = pupils(data_dir / "london" / "neutral" / "001.tem")
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0)
    faces = stage.detect(cv2.warpAffine(img, m, (w, h)))
    assert len(faces) == 1
    err = np.linalg.norm(faces[0].points5[:2] - (truth @ m[:, :2].T + m[:, 2]), axis=1)
    assert err.max() < EYE_TOL_PX, err


def test_task_bundle_is_a_model_source(data_dir, task_file):
    img = read_rgb(data_dir / "london" / "neutral" / "001.jpg")
    truth = pupils(data_dir / "london" / "neutral" / "001.tem")
    with FaceStage(face_model=str(task_file), detector="short") as s:
        assert s.num_landmarks == 478
        faces = s.detect(img)
    assert len(faces) == 1 and faces[0].landmarks.shape == (478, 3)
    iris = faces[0].landmarks[[468, 473], :2]  # iris centres: subject's right, left
    assert np.linalg.norm(iris - truth, axis=1).max() < IRIS_TOL_PX
    assert np.linalg.norm(faces[0].points5[:2] - truth, axis=1).max() < EYE_TOL_PX


def test_task_bundle_with_full_range_takes_the_detector_from_the_cache(task_file, mp_dir, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    copy_cache(mp_dir, tmp_path / "au-edge" / "face_models")
    found = models.resolve(str(task_file), "full")
    assert found.detector.origin.endswith(models.FULL_RANGE) and "face_models" in found.detector.origin
    assert found.mesh.origin.endswith("!" + models.TASK_MESH)
    assert "has no full-range detector" in capsys.readouterr().err


def test_a_folder_without_the_short_range_model_is_a_note_not_a_crash(mp_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty_cache"))
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (models.FULL_RANGE, models.MESH_468):
        shutil.copy(mp_dir / name, folder / name)
    found = models.resolve(str(folder), "full")
    assert found.close_up is None and found.detector.origin == str(folder / models.FULL_RANGE)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"has no {models.SHORT_RANGE}" in err and "closer than" in err, err


# --- tracking on video -----------------------------------------------------------------------


def test_clip_one_stable_track(data_dir, stage):
    stage.reset()
    frames = read_frames(data_dir / "media" / "WolfgangLanger_Pexels.mp4", limit=60)
    results = [stage.process(f) for f in frames]
    assert sum(bool(r) for r in results) >= len(frames) - 2
    assert {f.track_id for r in results for f in r} == {1}
    assert all(len(r) <= 1 for r in results)
    f = results[-1][0]
    assert f.bbox.shape == (4,) and f.landmarks.dtype == np.float32 and 0.5 <= f.score <= 1.0


def test_several_faces_keep_their_ids(data_dir, mp_dir):
    """A still of five people as a 12-frame clip: five tracks, the same ids every frame."""
    img = read_rgb(data_dir / "media" / "multi_face.jpg")
    with FaceStage(face_model=str(mp_dir), max_faces=5, detect_every=4) as s:
        frames = [s.process(img) for _ in range(12)]
    first = {f.track_id: f.bbox for f in frames[0]}
    assert sorted(first) == [1, 2, 3, 4, 5]
    for faces in frames[1:]:
        assert {f.track_id for f in faces} == set(first)
        for f in faces:  # each id stays on its own face
            assert np.abs(f.bbox[:2] - first[f.track_id][:2]).max() < 10


def test_no_face_clip_has_no_faces(data_dir, stage):
    stage.reset()
    frames = read_frames(data_dir / "media" / "no_face.mp4")
    assert all(stage.process(f) == [] for f in frames)


def test_lost_face_is_reacquired_with_a_new_id(data_dir, stage):
    """face_noface.mov (HEVC): a face for ~72 frames, then a cartoon with none. Playing its face
    part again after that checks re-acquisition: a returning face is a new track (new id), as
    the tracker does no re-identification."""
    stage.reset()
    frames = read_frames(data_dir / "media" / "face_noface.mov")
    ids = [[f.track_id for f in stage.process(fr)] for fr in frames + frames[:20]]
    assert all(i == [1] for i in ids[:60])
    assert all(i == [] for i in ids[80:len(frames)])
    assert all(i == [2] for i in ids[len(frames) + 1:])


@pytest.mark.parametrize("grace,want_after", [(None, 1), (0, 2)])
def test_a_face_missing_for_two_frames_keeps_its_id(data_dir, mp_dir, grace, want_after):
    """Two black frames in the clip: within the grace period the track is re-found (at its last
    ROI or by overlap with a new detection) under the same id; with no grace it is a new track."""
    frames = read_frames(data_dir / "media" / "WolfgangLanger_Pexels.mp4", limit=30)
    frames[12] = frames[13] = np.zeros_like(frames[12])
    kw = {} if grace is None else {"grace_frames": grace}
    with FaceStage(face_model=str(mp_dir), max_faces=1, **kw) as s:
        ids = [[f.track_id for f in s.process(fr)] for fr in frames]
    assert ids[:12] == [[1]] * 12 and ids[12:14] == [[], []]
    assert ids[14:] == [[want_after]] * 16


@pytest.mark.parametrize("grace,cuts,want_after", [(None, False, 1), (0, False, 2), (None, True, 2)])
def test_reassociation_by_overlap(data_dir, mp_dir, grace, cuts, want_after):
    """After 2 black frames the face is back where it was but turned 75 degrees (the robot's
    camera rolled): the mesh at the lost track's last ROI misses it (presence 0.2), the detector
    finds it, and its ROI overlaps the lost track's (IoU 0.7), so it is the same face, same id.
    With scene cuts on, a whole frame turned 75 degrees is another scene: a new id."""
    frames = read_frames(data_dir / "media" / "WolfgangLanger_Pexels.mp4", limit=24)
    kw = {} if grace is None else {"grace_frames": grace}
    with FaceStage(face_model=str(mp_dir), max_faces=1, scene_cuts=cuts, **kw) as s:
        ids = [[f.track_id for f in s.process(fr)] for fr in frames[:10]]
        roi = s._tracker.tracks[0].roi
        turn = cv2.getRotationMatrix2D((roi.cx, roi.cy), -75, 1.0)
        turned = [cv2.warpAffine(f, turn, f.shape[1::-1]) for f in frames[12:20]]
        assert presence(s.mesh.run(turned[0], roi)[1]) < 0.5  # the old ROI alone misses it
        ids += [[f.track_id for f in s.process(fr)] for fr in [np.zeros_like(frames[0])] * 2 + turned]
    assert ids[:10] == [[1]] * 10 and ids[10:12] == [[], []]
    assert ids[12:] == [[want_after]] * len(turned)


def test_detect_every_picks_up_a_newcomer(data_dir, mp_dir):
    """One face tracked, a second appears: detect_every=0 never looks (cheap), detect_every=1
    finds it on its first frame, detect_every=5 within 5 frames."""
    img = read_rgb(data_dir / "media" / "multi_face.jpg")
    one = img.copy()
    one[280:440, 660:810] = 0  # the right-most face hidden at first (a small change: not a scene cut)
    first = {}
    for every in (0, 1, 5):
        with FaceStage(face_model=str(mp_dir), max_faces=5, detect_every=every) as s:
            n0 = len(s.process(one))
            counts = [len(s.process(img)) for _ in range(6)]
        first[every] = next((i for i, c in enumerate(counts) if c > n0), None)
    assert first[0] is None and first[1] == 0 and first[5] is not None and first[5] <= 4


def test_beyond_max_is_counted(data_dir, mp_dir):
    img = read_rgb(data_dir / "media" / "multi_face.jpg")
    with FaceStage(face_model=str(mp_dir), max_faces=3) as s:
        assert len(s.detect(img)) == 3 and s.beyond_max == 2
        assert len(s.process(img)) == 3 and s.beyond_max == 2   # the detector ran (nothing tracked)
        assert len(s.process(img)) == 3 and s.beyond_max == 0   # it did not (3 of 3 tracked)


def test_bgr_frames_give_the_same_faces(data_dir, stage):
    """The runtime passes BGR frames (no full-frame conversion): same faces, same landmarks."""
    rgb = read_rgb(data_dir / "media" / "multi_face.jpg")
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    a, b = stage.detect(rgb), stage.detect(bgr, bgr=True)
    assert len(a) == len(b) == 4
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.landmarks, fb.landmarks) and fa.score == fb.score


def test_detect_does_not_touch_tracks(data_dir, stage):
    stage.reset()
    frames = read_frames(data_dir / "media" / "WolfgangLanger_Pexels.mp4", limit=3)
    stage.process(frames[0])
    assert [f.track_id for f in stage.detect(read_rgb(data_dir / "media" / "multi_face.jpg"))] == [1, 2, 3, 4]
    assert [f.track_id for f in stage.process(frames[1])] == [1]


def test_bad_options_and_frames_are_named(mp_dir, stage):
    for kwargs, word in [({"detector": "medium"}, "detector"), ({"max_faces": 0}, "max_faces"),
                         ({"detect_every": -1}, "detect_every"),
                         ({"grace_frames": -1}, "grace_frames"), ({"min_presence": 1.5}, "min_presence"),
                         ({"threads": 0}, "threads")]:
        with pytest.raises(ValueError, match=word):
            FaceStage(face_model=str(mp_dir), **kwargs)
    bad_frames = (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                  np.zeros((0, 5, 3), np.uint8), [[0]])
    for bad in bad_frames:
        with pytest.raises(ValueError, match="HxWx3 uint8"):
            stage.process(bad)
    s = FaceStage(face_model=str(mp_dir))
    s.close()
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.detect(np.zeros((64, 64, 3), np.uint8))


# --- model files -----------------------------------------------------------------------------


def _one_line_error(face_model, **kw) -> str:
    with pytest.raises(AUEdgeError) as e:
        FaceStage(face_model=face_model, **kw)
    msg = str(e.value)
    assert "\n" not in msg and isinstance(e.value, models.FaceModelError)
    return msg


def test_corrupt_model_is_one_line_error(mp_dir, tmp_path):
    (tmp_path / models.FULL_RANGE).write_bytes(b"\x00not a flatbuffer" * 64)
    shutil.copy(mp_dir / models.MESH_468, tmp_path / models.MESH_468)
    msg = _one_line_error(str(tmp_path))
    assert str(tmp_path / models.FULL_RANGE) in msg and "not a valid .tflite" in msg


def test_wrong_model_in_a_role_is_one_line_error(mp_dir, tmp_path):
    shutil.copy(mp_dir / models.SHORT_RANGE, tmp_path / models.FULL_RANGE)  # 128 px model, full's name
    shutil.copy(mp_dir / models.MESH_468, tmp_path / models.MESH_468)
    assert "not BlazeFace full range" in _one_line_error(str(tmp_path))


def test_missing_or_unusable_sources_are_one_line_errors(tmp_path):
    assert "does not exist" in _one_line_error(str(tmp_path / "nope"))
    assert "holds none of" in _one_line_error(str(tmp_path))
    (tmp_path / "x.task").write_bytes(b"not a zip")
    assert "neither a folder nor a readable .task bundle" in _one_line_error(str(tmp_path / "x.task"))


def test_env_var_names_the_source(mp_dir, monkeypatch):
    monkeypatch.setenv(models.ENV_VAR, str(mp_dir))
    found = models.resolve(None, "short")
    assert found.detector.origin == str(mp_dir / models.SHORT_RANGE)


def test_cache_is_used_and_a_corrupt_cache_file_is_fetched_again(mp_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(models.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "au-edge" / "face_models"
    copy_cache(mp_dir, cache)
    fetched = []
    monkeypatch.setattr(models, "fetch_from_pypi", lambda dest: (fetched.append(dest), shutil.rmtree(dest),
                                                                 copy_cache(mp_dir, dest)))
    found = models.resolve(None, "full")
    assert not fetched and found.detector.origin == str(cache / models.FULL_RANGE)
    (cache / models.MESH_468).write_bytes(b"truncated")
    found = models.resolve(None, "full")
    assert fetched == [cache] and models.sha256(found.mesh.data) == models.WHEEL_FILES[models.MESH_468][1]


@pytest.mark.slow
def test_models_come_from_pypi_into_the_cache(data_dir, tmp_path, monkeypatch):
    """Downloads the mediapipe wheel (~35 MB) from PyPI; the sha256-checked files then run."""
    monkeypatch.delenv(models.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    models.fetch_from_pypi(models.cache_dir())
    for name, (_, digest) in models.WHEEL_FILES.items():
        assert models.sha256((models.cache_dir() / name).read_bytes()) == digest
    with FaceStage() as s:
        assert len(s.detect(read_rgb(data_dir / "media" / "multi_face.jpg"))) == 4
