"""Head pose from the mesh (runtime.head_pose): MediaPipe's geometry, checked against MediaPipe itself
and against photos rotated by known angles."""
from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime import AUDetector
from runtime.head_pose import (
    canonical_face,
    head_pose,
    pose_from_matrix,
    transformation_matrix,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLE = "face_landmarker_v2_with_blendshapes.task"
CLIP = "WolfgangLanger_Pexels.mp4"
GOAL_DEG = 3.0  # issue 20: median angle difference to MediaPipe <= 3 degrees

# MediaPipe FaceLandmarker in video mode with its transformation matrices, in a child process (mediapipe
# brings its own TFLite runtime; the runtime under test never imports it).
MEDIAPIPE_CHILD = """
import sys, cv2, numpy as np, mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision
bundle, clip, out = sys.argv[1:4]
opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=bundle), num_faces=1,
                                    running_mode=vision.RunningMode.VIDEO,
                                    output_facial_transformation_matrixes=True)
cap = cv2.VideoCapture(clip)
fps = cap.get(cv2.CAP_PROP_FPS)
frames, mats, marks = [], [], []
size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
with vision.FaceLandmarker.create_from_options(opts) as lm:
    i = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
        r = lm.detect_for_video(image, int(round(i * 1000 / fps)))
        if r.facial_transformation_matrixes:
            frames.append(i)
            mats.append(np.array(r.facial_transformation_matrixes[0]))
            marks.append([[p.x, p.y, p.z] for p in r.face_landmarks[0]])
        i += 1
np.savez(out, frames=np.array(frames), mats=np.array(mats), marks=np.array(marks), size=np.array(size))
"""


@pytest.fixture(scope="module")
def mediapipe_clip(data_dir, tmp_path_factory) -> dict:
    pytest.importorskip("mediapipe")
    out = tmp_path_factory.mktemp("mp") / "mp.npz"
    proc = subprocess.run([sys.executable, "-c", MEDIAPIPE_CHILD, str(data_dir / "models" / BUNDLE),
                           str(data_dir / "media" / CLIP), str(out)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out) as d:
        return {k: d[k] for k in d.files}


def _angles(pose: dict) -> np.ndarray:
    return np.array([pose["pitch"], pose["yaw"], pose["roll"]])


def _parse_fields(buf: bytes):
    """The (field, value) pairs of a protobuf message (varint, 32-bit and length-delimited fields only)."""
    def varint(i):
        shift = value = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, i
    i = 0
    while i < len(buf):
        key, i = varint(i)
        kind = key & 7
        if kind == 0:
            value, i = varint(i)
        elif kind == 5:
            value, i = struct.unpack("<f", buf[i:i + 4])[0], i + 4
        elif kind == 2:
            n, i = varint(i)
            value, i = buf[i:i + n], i + n
        else:
            raise AssertionError(f"unexpected wire type {kind}")
        yield key >> 3, value


def test_shipped_canonical_face_is_mediapipes(data_dir):
    """runtime/data/canonical_face.npz holds exactly the bundle's geometry_pipeline_metadata_landmarks
    (GeometryPipelineMetadata: 1 canonical_mesh {3 vertex_buffer: x y z u v ...}, 2 procrustes_landmark_basis
    {1 landmark_id, 2 weight})."""
    with zipfile.ZipFile(data_dir / "models" / BUNDLE) as z:
        meta = z.read("geometry_pipeline_metadata_landmarks.binarypb")
    fields = list(_parse_fields(meta))
    mesh = next(v for f, v in fields if f == 1)
    vertices = np.array([v for f, v in _parse_fields(mesh) if f == 3], np.float32).reshape(-1, 5)[:, :3]
    basis = [dict(_parse_fields(v)) for f, v in fields if f == 2]
    ids = np.array([b.get(1, 0) for b in basis])
    weights = np.array([b[2] for b in basis], np.float32)
    canon = canonical_face()
    assert vertices.shape == (468, 3) and np.array_equal(canon.vertices.astype(np.float32), vertices)
    assert np.array_equal(canon.ids, ids) and len(ids) == 33
    assert np.array_equal(canon.weights.astype(np.float32), weights)


def test_same_numbers_as_mediapipe_on_its_own_landmarks(mediapipe_clip):
    """The recipe is MediaPipe's: fed MediaPipe's landmarks, the matrix equals MediaPipe's up to float32
    round-off (measured: 3e-5 at most over the clip's 472 frames)."""
    h, w = (int(v) for v in mediapipe_clip["size"])
    assert len(mediapipe_clip["frames"]) > 400
    for marks, want in zip(mediapipe_clip["marks"], mediapipe_clip["mats"]):
        pixels = np.stack([marks[:, 0] * w - 0.5, marks[:, 1] * h - 0.5, marks[:, 2] * w], axis=1)
        got = transformation_matrix(pixels, w, h)
        assert np.abs(got - want).max() < 1e-3
        assert np.abs(_angles(pose_from_matrix(got)) - _angles(pose_from_matrix(want))).max() < 0.01


def test_runtime_pose_agrees_with_mediapipe_on_the_clip(mediapipe_clip, data_dir, face_model):
    """The runtime's own tracked mesh (the default 468-point model, One Euro-smoothed) against MediaPipe
    FaceLandmarker's matrices (478-point v2 mesh, its own tracking): median |difference| per axis within
    the issue's 3 degree goal. Measured here: pitch 1.5, yaw 0.9, roll 0.6 degrees."""
    ref = {int(i): _angles(pose_from_matrix(m)) for i, m in zip(mediapipe_clip["frames"], mediapipe_clip["mats"])}
    diffs = []
    with AUDetector("default", max_faces=1, face_model=face_model) as det:
        for res in det.stream(str(data_dir / "media" / CLIP)):
            if res.faces and res.frame in ref:
                assert res.faces[0].head_pose is not None
                diffs.append(_angles(res.faces[0].head_pose) - ref[res.frame])
    diffs = np.abs(np.array(diffs))
    median = np.median(diffs, axis=0)
    print(f"\nhead pose vs MediaPipe on {len(diffs)} frames: median |diff| pitch {median[0]:.2f} yaw {median[1]:.2f} "
          f"roll {median[2]:.2f} deg; p90 {np.round(np.percentile(diffs, 90, axis=0), 2).tolist()}")
    assert len(diffs) >= 460
    assert (median <= GOAL_DEG).all(), median


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """R = Rx(pitch) Ry(yaw) Rz(roll) (degrees), the convention of runtime.head_pose."""
    p, y, r = (math.radians(v) for v in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _euler(r: np.ndarray) -> np.ndarray:
    return np.degrees([math.atan2(-r[1, 2], r[2, 2]), math.asin(r[0, 2]), math.atan2(-r[0, 1], r[0, 0])])


def test_roll_follows_photos_rotated_in_plane(data_dir, face_model):
    """Real photos rotated by known angles about the image centre (a camera rolled about its axis).
    Roll must change by minus the angle (cv2 turns counterclockwise; roll > 0 is clockwise), and pitch
    and yaw must stay what a camera roll leaves them: Rz(-a) @ R(upright) (for a face that is not
    exactly frontal, a roll turns some pitch into yaw). Both within the issue's 3 degree goal; measured
    here over these 10 photos x 4 angles: roll within 1.5, pitch/yaw within 2.1 degrees."""
    photos = sorted((data_dir / "london" / "neutral").glob("*.jpg"))[:8]
    photos += [data_dir / "media" / "people" / "lisa1.jpg", data_dir / "media" / "people" / "zoom_30cm.jpg"]
    worst = np.zeros(3)
    with AUDetector("default", mode="image", max_faces=1, face_model=face_model) as det:
        for path in photos:
            image = cv2.imread(str(path))
            h, w = image.shape[:2]
            upright = None
            for angle in (0, -30, -15, 15, 30):
                m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
                faces = det.process(cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)).faces
                assert len(faces) == 1, (path.name, angle)
                got = _angles(faces[0].head_pose)
                if upright is None:
                    upright = got
                    continue
                want = _euler(_rotation(0, 0, -angle) @ _rotation(*upright))
                assert abs((got[2] - upright[2]) + angle) <= GOAL_DEG, (path.name, angle, got, upright)
                worst = np.maximum(worst, np.abs(got - want))
    print(f"\nrotated photos: worst |measured - camera-roll prediction| pitch, yaw, roll {np.round(worst, 2)}")
    assert (worst <= GOAL_DEG).all(), worst


def test_convention_on_synthetic_meshes():
    """The canonical face itself, posed by a known rotation and put in front of the virtual camera,
    reads back that rotation: the sign conventions of the docstring (pitch > 0 nose down, yaw > 0 the
    subject's right, roll > 0 clockwise in the image) hold exactly."""
    canon = canonical_face().vertices
    w, h = 640, 480
    f = (h / 2) / math.tan(math.radians(63.0) / 2)  # the pipeline's virtual camera, in pixels
    for pitch, yaw, roll in ((20, 0, 0), (0, 25, 0), (0, 0, 30), (-10, 15, -20)):
        # canonical (x right, y up, z towards the viewer) -> OpenCV camera axes, posed, 60 cm away
        model = canon * np.array([1.0, -1.0, -1.0])
        cam = model @ _rotation(pitch, yaw, roll).T + np.array([0.0, 0.0, 60.0])
        px = np.stack([f * cam[:, 0] / cam[:, 2] + w / 2 - 0.5, f * cam[:, 1] / cam[:, 2] + h / 2 - 0.5,
                       f * (cam[:, 2] - 60.0) / 60.0], axis=1)
        pose = head_pose(px, w, h)
        assert np.abs(_angles(pose) - (pitch, yaw, roll)).max() < 1.0, (pitch, yaw, roll, pose)
        nose = px[4]  # landmark 4: the nose tip
        centre = px[:, :2].mean(axis=0)
        if pitch > 0 and yaw == 0:
            assert nose[1] > centre[1]  # pitch > 0: the nose points down in the image
        if yaw > 0 and pitch == 0:
            assert nose[0] < centre[0]  # yaw > 0: the nose points to the image left


def test_degenerate_meshes_give_no_pose_not_nan():
    assert head_pose(np.zeros((468, 3), np.float32), 640, 480) is None
    with pytest.raises(ValueError, match="468"):
        transformation_matrix(np.zeros((68, 3)), 640, 480)
    pose = head_pose(np.random.default_rng(0).uniform(0, 400, (478, 3)), 640, 480)
    assert pose is None or all(math.isfinite(v) for v in pose.values())
    json.dumps(pose, allow_nan=False)
