"""ROS 2 output (REP-155 / ROS4HRI): the message function, ``--rosbag`` read back, the live node's publish path.

No ROS 2 runs here: bags are read back with ``rosbags``' AnyReader using only the type definitions
stored in the bag itself, and the node's publish path runs without rclpy (see ``FakePublisher``).
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from runtime.results import FaceAU, FrameResult
from runtime.ros2.images import image_to_bgr
from runtime.ros2.messages import (
    FaceIds,
    FacialActionUnits,
    IdsList,
    RegionOfInterest,
    Time,
    face_id,
    frame_messages,
)
from runtime.ros2.publish import FramePublisher

CLIP = "WolfgangLanger_Pexels.mp4"
FRAMES = 60
JSONL_PROB_TOL = 5e-5 + 1e-6  # the JSONL rounds au_prob to 4 decimals; the bag holds float32
JSONL_INTENSITY_TOL = 5e-4 + 1e-5  # ... and au_intensity (0-5) to 3
ROS_NAME_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # a valid ROS 2 topic name token


def _face(track_id, bbox, au_prob, au_intensity=None) -> FaceAU:
    face = FaceAU(track_id=track_id, bbox=bbox, score=0.9, landmarks5=np.zeros((5, 2), np.float32),
                  au_prob=au_prob, au_active=set())
    if au_intensity is not None:
        face.au_intensity = au_intensity  # a model that estimates intensity fills FaceAU.au_intensity
    return face


# --- the pure message function -------------------------------------------------------------------

def test_frame_messages_known_values():
    a = _face(7, (10.4, 20.5, 100.0, 60.2), {"AU01": 0.25, "AU12": 0.75, "AU45": 0.5}, {"AU12": 2.5})
    b = _face(12, (-15.0, 700.0, 50.0, 40.0), {"AU04": 1.0})  # no au_intensity attribute at all
    result = FrameResult(frame=3, time_s=12.3456789, faces=[a, b])
    msgs = frame_messages(result, (640, 720), frame_id="cam_optical")

    assert [(m.topic, m.msgtype) for m in msgs] == [
        ("/humans/faces/tracked", "hri_msgs/msg/IdsList"),
        ("/humans/faces/f00007/roi", "sensor_msgs/msg/RegionOfInterest"),
        ("/humans/faces/f00007/facs", "hri_msgs/msg/FacialActionUnits"),
        ("/humans/faces/f00012/roi", "sensor_msgs/msg/RegionOfInterest"),
        ("/humans/faces/f00012/facs", "hri_msgs/msg/FacialActionUnits"),
    ]
    tracked = msgs[0].msg
    assert isinstance(tracked, IdsList) and tracked.ids == ["f00007", "f00012"]
    assert (tracked.header.stamp.sec, tracked.header.stamp.nanosec) == (12, 345678900)
    assert tracked.header.frame_id == "cam_optical"
    # edges to the nearest pixel, halves up: x 10.4 -> 10, x+w 110.4 -> 110; y 20.5 -> 21, y+h 80.7 -> 81
    assert msgs[1].msg == RegionOfInterest(x_offset=10, y_offset=21, height=60, width=100, do_rectify=False)
    # clipped to the 640x720 frame: x -15 -> 0, x+w 35; y 700, y+h 740 -> 720
    assert msgs[3].msg == RegionOfInterest(x_offset=0, y_offset=700, height=20, width=35, do_rectify=False)

    facs = msgs[2].msg
    assert isinstance(facs, FacialActionUnits) and facs.header == tracked.header
    assert facs.confidence.dtype == np.float32 and facs.confidence.shape == (99,)
    assert facs.intensity.dtype == np.float32 and facs.intensity.shape == (99,)
    assert facs.confidence[1] == 0.25 and facs.confidence[12] == 0.75 and facs.confidence[45] == 0.5
    assert np.count_nonzero(facs.confidence) == 3
    assert facs.intensity[12] == 2.5 and np.count_nonzero(facs.intensity) == 1
    other = msgs[4].msg
    assert other.confidence[4] == 1.0 and np.count_nonzero(other.confidence) == 1
    assert not other.intensity.any()


def test_frame_messages_empty_frame_ids_and_bad_input():
    msgs = frame_messages(FrameResult(frame=0, time_s=0.0), (64, 48))
    assert len(msgs) == 1 and msgs[0].msg.ids == [] and msgs[0].msg.header.frame_id == "camera"
    assert msgs[0].msg.header.stamp == Time(0, 0)
    assert [face_id(0), face_id(42), face_id(123456)] == ["f00000", "f00042", "f123456"]
    assert all(ROS_NAME_TOKEN.match(face_id(n)) for n in (0, 1, 99999, 10**7))
    shifted = frame_messages(FrameResult(0, 1.0, [_face(2, (0, 0, 4, 4), {})]), (8, 8), track_id_offset=5)
    assert shifted[0].msg.ids == ["f00007"] and shifted[1].topic == "/humans/faces/f00007/roi"
    ids = FaceIds()  # image mode: every photo numbers its faces from 1
    first = ids.messages(FrameResult(0, 0.0, [_face(1, (0, 0, 4, 4), {}), _face(2, (4, 4, 4, 4), {})]), (8, 8))
    ids.restart()
    second = ids.messages(FrameResult(1, 1.0, [_face(1, (0, 0, 4, 4), {})]), (8, 8), frame_id="x")
    assert first[0].msg.ids == ["f00001", "f00002"] and second[0].msg.ids == ["f00003"]
    assert second[0].msg.header.frame_id == "x"
    exact = frame_messages(FrameResult(0, 1.0), (8, 8), stamp_s=Time(1733500000, 123456789))
    assert exact[0].msg.header.stamp == Time(1733500000, 123456789)  # an image's stamp, kept to the ns
    with pytest.raises(ValueError, match="track_id"):
        face_id(-1)
    with pytest.raises(ValueError, match="frame_size"):
        frame_messages(FrameResult(0, 0.0), (0, 480))
    with pytest.raises(ValueError, match="AU99"):
        frame_messages(FrameResult(0, 0.0, [_face(1, (0, 0, 4, 4), {"AU99": 0.5})]), (8, 8))


# --- --rosbag through the real CLI -------------------------------------------------------------------

def _camera(*args, prelude: str = "", timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m runtime.camera ARGS``; with ``prelude``, that code runs first in the same interpreter."""
    head = ["-c", f"import sys; {prelude}; from runtime.camera import main; sys.exit(main(sys.argv[1:]))"]
    return subprocess.run([sys.executable, *(head if prelude else ["-m", "runtime.camera"]), *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and err.startswith("au-edge: error:"), proc.stderr
    for w in words:
        assert w in err, err


def _read_bag(path: Path) -> tuple[dict[str, str], list[tuple[str, int, object]], dict[str, str]]:
    """(topic -> msgtype, [(topic, bag time ns, message)], topic -> embedded msgdef), types from the bag only."""
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:  # no default_typestore: every type must come from the bag
        types = {c.topic: c.msgtype for c in reader.connections}
        defs = {c.topic: c.msgdef.data for c in reader.connections}
        msgs = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]
    return types, msgs, defs


def _expected_roi(bbox: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """docs/ros2.md's rule, on the JSONL's box: edges to the nearest pixel (halves up), clipped."""
    def edge(v, hi):
        return min(max(math.floor(v + 0.5), 0), hi)
    x, y, w, h = bbox
    x0, y0, x1, y1 = edge(x, width), edge(y, height), edge(x + w, width), edge(y + h, height)
    return x0, y0, y1 - y0, x1 - x0


def _near_half(v: float) -> bool:
    """The JSONL rounds boxes to 0.01 px: within that of a .5 the exact box may round the other way."""
    return abs((v % 1.0) - 0.5) <= 0.006


def test_camera_rosbag_reads_back_as_rep155(face_model, media, tmp_path):
    clip = media / CLIP
    bag, jsonl = tmp_path / "out" / "bag", tmp_path / "au.jsonl"
    proc = _camera("--source", clip, "--max-frames", FRAMES, "--no-show", "--quiet", "--face-model", face_model,
                   "--jsonl", jsonl, "--rosbag", bag, "--ros-frame-id", "head_camera")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in bag.iterdir()) == ["bag.mcap", "metadata.yaml"]
    assert [p.name for p in bag.parent.iterdir()] == ["bag"]  # no partial left beside it
    assert (bag / "bag.mcap").read_bytes()[:8] == b"\x89MCAP0\r\n"
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == FRAMES and sum(bool(r["faces"]) for r in records) >= FRAMES - 2
    cap = cv2.VideoCapture(str(clip))
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()

    types, msgs, defs = _read_bag(bag)
    assert types["/humans/faces/tracked"] == "hri_msgs/msg/IdsList"
    track_ids = sorted({f["track_id"] for r in records for f in r["faces"]})
    for tid in track_ids:
        assert types[f"/humans/faces/f{tid:05d}/roi"] == "sensor_msgs/msg/RegionOfInterest"
        assert types[f"/humans/faces/f{tid:05d}/facs"] == "hri_msgs/msg/FacialActionUnits"
    assert len(types) == 1 + 2 * len(track_ids)
    assert "float32[99] confidence" in defs[f"/humans/faces/f{track_ids[0]:05d}/facs"]

    tracked = [(t, m) for topic, t, m in msgs if topic == "/humans/faces/tracked"]
    assert len(tracked) == FRAMES  # one per frame, faces or not
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in tracked]
    assert stamps == sorted(stamps) and len(set(stamps)) == FRAMES  # strictly increasing
    assert [t for t, _ in tracked] == stamps  # bag time = header stamp (the file's own timeline)
    for (_, m), rec in zip(tracked, records):
        assert list(m.ids) == [f"f{f['track_id']:05d}" for f in rec["faces"]]
        assert abs(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - rec["time_s"]) <= 5e-5 + 1e-9
        assert m.header.frame_id == "head_camera"

    by_frame: dict[tuple[str, int], object] = {(topic, t): m for topic, t, m in msgs}
    codes = {name: int(name[2:]) for name in records[0]["faces"][0]["au_prob"]}
    checked = 0
    for rec, stamp in zip(records, stamps):
        for f in rec["faces"]:
            fid = f"f{f['track_id']:05d}"
            facs = by_frame[(f"/humans/faces/{fid}/facs", stamp)]
            conf = np.asarray(facs.confidence)
            assert conf.shape == (99,) and conf.dtype == np.float32
            want = np.zeros(99)
            for name, p in f["au_prob"].items():
                want[codes[name]] = p
            np.testing.assert_allclose(conf, want, rtol=0, atol=JSONL_PROB_TOL)
            assert not np.asarray(facs.confidence)[[i for i in range(99) if i not in codes.values()]].any()
            intensity = {codes[k]: v for k, v in f.get("au_intensity", {}).items()}
            assert all(np.asarray(facs.intensity)[i] == pytest.approx(intensity.get(i, 0.0), abs=JSONL_INTENSITY_TOL)
                       for i in range(99))
            assert not np.asarray(facs.intensity)[[i for i in range(99) if i not in intensity]].any()
            roi = by_frame[(f"/humans/faces/{fid}/roi", stamp)]
            got = (roi.x_offset, roi.y_offset, roi.height, roi.width)
            want_roi = _expected_roi(f["bbox"], width, height)
            x, y, w, h = f["bbox"]
            if any(_near_half(v) for v in (x, y, x + w, y + h)):
                assert max(abs(g - e) for g, e in zip(got, want_roi)) <= 1, (got, want_roi)
            else:
                assert got == want_roi, (got, want_roi, f["bbox"])
            assert roi.do_rectify is False
            checked += 1
    assert checked == sum(len(r["faces"]) for r in records) >= FRAMES - 2


def test_rosbag_image_folder_ids_name_one_face_each(face_model, media, tmp_path):
    """Image mode numbers each photo's faces from 1; the bag's face ids continue across photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("lisa1.jpg", "lisa2.jpg"):
        (folder / name).write_bytes((media / "people" / name).read_bytes())
    (folder / "zz_multi.jpg").write_bytes((media / "multi_face.jpg").read_bytes())
    bag, jsonl = tmp_path / "bag", tmp_path / "o.jsonl"
    proc = _camera("--source", folder, "--no-show", "--quiet", "--face-model", face_model, "--jsonl", jsonl,
                   "--rosbag", bag)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    per_photo = [len(r["faces"]) for r in records]
    assert len(records) == 3 and per_photo[0] >= 1 and per_photo[2] >= 2, per_photo
    _, msgs, _ = _read_bag(bag)
    ids = [list(m.ids) for topic, _, m in msgs if topic == "/humans/faces/tracked"]
    flat = [i for frame in ids for i in frame]
    assert [len(frame) for frame in ids] == per_photo
    assert flat == [f"f{k:05d}" for k in range(1, sum(per_photo) + 1)]  # never one id for two faces


def test_rosbag_existing_folder_is_refused_and_untouched(face_model, media, tmp_path):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "keep.txt").write_text("mine")
    (tmp_path / "au.jsonl").write_text("old\n")
    proc = _camera("--source", media / CLIP, "--max-frames", 3, "--no-show", "--face-model", face_model,
                   "--jsonl", tmp_path / "au.jsonl", "--rosbag", bag)
    _one_line_error(proc, "--rosbag", "exists", "remove it or choose another name")
    assert [p.name for p in bag.iterdir()] == ["keep.txt"] and (bag / "keep.txt").read_text() == "mine"
    assert (tmp_path / "au.jsonl").read_text() == "old\n"  # the run wrote nothing anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == ["au.jsonl", "bag"]


def test_rosbag_without_rosbags_is_one_line(face_model, media, tmp_path):
    bag = tmp_path / "bag"
    proc = _camera("--source", media / CLIP, "--max-frames", 3, "--no-show", "--face-model", face_model,
                   "--rosbag", bag, prelude="sys.modules['rosbags'] = None")  # as if not installed
    _one_line_error(proc, "rosbags", "pip install 'au-edge[ros]'")
    assert not bag.exists() and list(tmp_path.iterdir()) == []


def test_rosbag_output_camera_stamps_wall_clock_and_abort_leaves_nothing(media, tmp_path):
    """A camera has no timeline of its own: stamps are the wall clock at the first frame plus its time."""
    from runtime.outputs.rosbag import RosbagOutput

    frame = np.zeros((48, 64, 3), np.uint8)
    before = time.time()
    out = RosbagOutput(tmp_path / "cam", source=0)  # camera index 0
    for i in range(3):
        out.write(FrameResult(frame=i, time_s=5.0 + 0.1 * i), frame)
    out.close()
    after = time.time()
    _, msgs, _ = _read_bag(tmp_path / "cam")
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, _, m in msgs]
    assert len(stamps) == 3 and before - 1e-3 <= stamps[0] <= after
    assert np.allclose(np.diff(stamps), 0.1, atol=1e-6)

    gone = RosbagOutput(tmp_path / "gone", source=str(media / CLIP))  # a file: its own timeline
    gone.write(FrameResult(frame=0, time_s=0.0), frame)
    gone.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam"]


# --- the live node, without ROS -----------------------------------------------------------------------

class FakePublisher:
    """Records what the node would publish. rclpy is absent here and ROS 2 cannot run on this machine,
    so this stands in for rclpy's publisher; everything before it (image decoding, detection, the
    REP-155 messages, which topics exist when) is the node's real code."""

    def __init__(self, log: list, msgtype: str, topic: str):
        self.log, self.msgtype, self.topic, self.destroyed = log, msgtype, topic, False

    def publish(self, msg) -> None:
        assert not self.destroyed, f"publish on destroyed {self.topic}"
        assert msg.MSGTYPE == self.msgtype
        self.log.append((self.topic, msg))

    def destroy(self) -> None:
        self.destroyed = True


def _image_msg(bgr: np.ndarray, stamp: Time, frame_id: str = "cam_optical", pad: int = 8) -> SimpleNamespace:
    """A sensor_msgs/Image as a camera driver sends it: rgb8 with padded rows."""
    h, w = bgr.shape[:2]
    rows = np.zeros((h, w * 3 + pad), np.uint8)
    rows[:, : w * 3] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).reshape(h, w * 3)
    header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp.sec, nanosec=stamp.nanosec), frame_id=frame_id)
    return SimpleNamespace(header=header, height=h, width=w, encoding="rgb8", step=w * 3 + pad,
                           is_bigendian=0, data=rows.tobytes())


def _clip_frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return frames


def test_node_image_callback_publishes_rep155_through_a_publisher(face_model, media):
    from runtime.detector import AUDetector
    from runtime.ros2.node import ImageHandler

    frames = _clip_frames(media / CLIP, 6)
    published, made, lines = [], [], []

    def factory(msgtype, topic):
        made.append(FakePublisher(published, msgtype, topic))
        return made[-1]

    det = AUDetector("default", face_model=face_model, mode="video")
    ref = AUDetector("default", face_model=face_model, mode="video")  # the same frames, called directly
    handler = ImageHandler(det, FramePublisher(factory), log=lines.append)
    t0 = Time(1733500000, 0)
    stamps = [Time(t0.sec + i // 4, (i % 4) * 250_000_000) for i in range(6)]
    for frame, stamp in zip(frames, stamps):
        handler(_image_msg(frame, stamp))
        want = ref.process(frame, stamp.to_seconds())
        tracked = [m for topic, m in published if topic == "/humans/faces/tracked"][-1]
        assert tracked.ids == [f"f{f.track_id:05d}" for f in want.faces] and want.faces
        assert (tracked.header.stamp, tracked.header.frame_id) == (stamp, "cam_optical")  # the image's own
        facs = [m for topic, m in published if topic.endswith("/facs")][-1]
        for name, p in want.faces[-1].au_prob.items():  # rgb8 + padding decoded to the same BGR pixels
            assert facs.confidence[int(name[2:])] == np.float32(p)
    assert {p.topic for p in made} == {"/humans/faces/tracked", "/humans/faces/f00001/roi",
                                       "/humans/faces/f00001/facs"}

    handler(_image_msg(frames[5], stamps[5]))  # the same stamp again: skipped
    bad = _image_msg(frames[0], Time(t0.sec + 9, 0))
    bad.encoding = "16UC1"
    handler(bad)
    handler(bad)
    assert handler.skipped == {"repeated_stamp": 1, "bad_image": 2} and len(lines) == 1 and "16UC1" in lines[0]

    handler(_image_msg(frames[0], t0))  # time went back (a bag replayed with --loop): a new track, a new id
    assert "tracking restarted" in lines[-1]
    assert [m for topic, m in published if topic == "/humans/faces/tracked"][-1].ids == ["f00002"]
    old = [p for p in made if p.topic.startswith("/humans/faces/f00001/")]
    assert len(old) == 2 and all(p.destroyed for p in old)  # the face that left has no topics any more
    det.close()
    ref.close()


def test_image_to_bgr_known_pixels():
    rgb_rows = bytes([10, 20, 30, 40, 50, 60, 0, 0,  # 2 pixels + 2 padding bytes per row
                      70, 80, 90, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(image_to_bgr(2, 2, "rgb8", 8, rgb_rows),
                                  [[[30, 20, 10], [60, 50, 40]], [[90, 80, 70], [3, 2, 1]]])
    np.testing.assert_array_equal(image_to_bgr(1, 2, "mono8", 2, bytes([5, 250])), [[[5, 5, 5], [250, 250, 250]]])
    np.testing.assert_array_equal(image_to_bgr(1, 1, "bgra8", 4, bytes([1, 2, 3, 255])), [[[1, 2, 3]]])
    with pytest.raises(ValueError, match="16UC1"):
        image_to_bgr(1, 1, "16UC1", 2, bytes(2))
    with pytest.raises(ValueError, match="needs 16"):
        image_to_bgr(2, 2, "rgb8", 8, rgb_rows[:10])


def test_ros2_node_without_rclpy_is_one_line(media):
    code = ("import sys; sys.modules['rclpy'] = None; from runtime.ros2.node import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "--source", str(media / CLIP), "--ros-args", "-r",
                           "__node:=faces"], check=False, capture_output=True, text=True, timeout=120)
    _one_line_error(proc, "rclpy", "source /opt/ros/jazzy/setup.bash")
    assert proc.stderr.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", "runtime.ros2.node"], check=False, capture_output=True, text=True,
                          timeout=120)
    _one_line_error(proc, "--image-topic", "--source")
