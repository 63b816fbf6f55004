"""Result outputs, end to end: files that parse back, a video that decodes, datagrams that arrive."""
from __future__ import annotations

import csv
import io
import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.outputs import (
    CsvOutput,
    JsonlOutput,
    MultiOutput,
    OpenFaceCsvOutput,
    OutputError,
    ShowOutput,
    StatusLine,
    UdpPublisher,
    VideoRecorder,
    build_outputs,
    draw_result,
)
from runtime.results import FaceAU, FrameResult

AUS = ["AU01", "AU02", "AU04", "AU06", "AU12", "AU25"]
RECORD_KEYS = {"frame", "time_s", "source", "latency_ms", "faces"}
FACE_KEYS = {"track_id", "bbox", "score", "landmarks5", "au_prob", "au_active"}
REPO = Path(__file__).resolve().parents[1]


def face(track_id: int, x: float = 60, y: float = 40, size: float = 80, dense: bool = False) -> FaceAU:
    pts = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]) * size + (x, y)
    probs = {au: round(0.1 + 0.15 * i, 3) for i, au in enumerate(AUS)}
    mesh = np.random.default_rng(track_id).uniform(0, 640, (478, 3)) if dense else None
    return FaceAU(track_id=track_id, bbox=(x, y, size, size), score=0.97, landmarks5=pts, au_prob=probs,
                  au_active={"AU12", "AU25"}, landmarks=mesh)


def result(i: int, faces: list[FaceAU]) -> FrameResult:
    return FrameResult(frame=i, time_s=i / 25, faces=faces, latency_ms=3.2, source="clip.mp4",
                       stages_ms={"decode": 1.0, "face": 2.0, "align": 0.2, "au": 0.9, "post": 0.1})


def results() -> list[FrameResult]:
    return [result(0, [face(1), face(2, x=200)]), result(1, []), result(2, [face(1)])]


# --- JSONL ----------------------------------------------------------------------------------------

def test_jsonl_file_round_trips_with_the_contract_keys(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"  # the folder is created
    with JsonlOutput(path) as out:
        for r in results():
            out.write(r, None)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(", " not in ln and ": " not in ln for ln in lines)  # compact
    recs = [json.loads(ln) for ln in lines]
    assert [r["frame"] for r in recs] == [0, 1, 2]
    assert all(set(r) == RECORD_KEYS for r in recs)
    assert recs[1]["faces"] == []
    f = recs[0]["faces"][1]
    assert set(f) == FACE_KEYS and f["track_id"] == 2 and f["au_active"] == ["AU12", "AU25"]
    assert f["bbox"] == [200, 40, 80, 80] and len(f["landmarks5"]) == 5 and set(f["au_prob"]) == set(AUS)
    assert recs[0]["source"] == "clip.mp4" and recs[2]["time_s"] == 0.08


CHILD = """
import sys
from runtime.outputs import JsonlOutput
from runtime.results import FrameResult
out = JsonlOutput("-")
out.write(FrameResult(frame=0, time_s=0.0, source="cam"), None)
sys.stdin.readline()          # hold on: the first line must already be readable by the parent
out.write(FrameResult(frame=1, time_s=0.04, source="cam"), None)
out.close()
"""


def test_jsonl_stdout_is_live_through_a_pipe():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert got, "the first JSONL line did not reach the pipe while the writer was still running"
        assert json.loads(got[0])["frame"] == 0
        out, err = proc.communicate("go\n", timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out.strip())["frame"] == 1


def test_jsonl_to_a_closed_pipe_requests_quit_quietly():
    child = ("from runtime.outputs import JsonlOutput\nfrom runtime.results import FrameResult\n"
             "out = JsonlOutput('-')\nn = 0\nwhile not out.quit_requested and n < 100000:\n"
             "    out.write(FrameResult(frame=n, time_s=0.0), None); n += 1\nprint(n, file=__import__('sys').stderr)\n")
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=20) == 0
    assert "Traceback" not in err and int(err.split()[-1]) < 100000


# --- CSV ------------------------------------------------------------------------------------------

def test_csv_header_rows_and_the_no_face_row(tmp_path):
    path = tmp_path / "out.csv"
    with CsvOutput(path, AUS) as out:
        for r in results():
            out.write(r, None)
    rows = list(csv.reader(path.open()))
    assert rows[0] == (["frame", "timestamp", "face_id", "confidence", "success"]
                       + [f"{a}_p" for a in AUS] + [f"{a}_c" for a in AUS]
                       + ["pitch", "yaw", "roll", "tx", "ty", "tz"])  # new columns at the end
    body = rows[1:]
    assert [r[0] for r in body] == ["0", "0", "1", "2"]  # two faces, one no-face row, one face
    assert [r[2] for r in body] == ["1", "2", "", "1"]
    no_face = body[2]
    assert no_face[1] == "0.040" and no_face[3:5] == ["0", "0"] and all(v == "" for v in no_face[5:])
    one = dict(zip(rows[0], body[0]))
    assert one["success"] == "1" and float(one["confidence"]) == pytest.approx(0.97)
    assert float(one["AU12_p"]) == pytest.approx(0.7) and one["AU12_c"] == "1" and one["AU01_c"] == "0"


def test_a_probability_just_below_one_half_is_never_written_as_one_half(tmp_path):
    """au_prob is calibrated: 0.5 is every AU's decision point, so an AU that is off at 0.49996
    must not read 0.5 in JSONL, CSV or the OpenFace CSV (4 decimals); 0.5 itself stays 0.5."""
    f = face(1)
    f.au_prob = {"AU01": 0.49996, "AU02": 0.5, "AU04": 0.50004, "AU06": 0.49994, "AU12": 0.99996, "AU25": 0.0}
    f.au_active = {"AU02", "AU04", "AU12"}
    r = result(0, [f])
    paths = {"jsonl": tmp_path / "o.jsonl", "csv": tmp_path / "o.csv", "openface": tmp_path / "of.csv"}
    for kind, out in (("jsonl", JsonlOutput(paths["jsonl"])), ("csv", CsvOutput(paths["csv"], AUS)),
                      ("openface", OpenFaceCsvOutput(paths["openface"], AUS))):
        with out:
            out.write(r, None)
    want = {"AU01": 0.4999, "AU02": 0.5, "AU04": 0.5, "AU06": 0.4999, "AU12": 1.0, "AU25": 0.0}
    assert json.loads(paths["jsonl"].read_text())["faces"][0]["au_prob"] == want
    for kind in ("csv", "openface"):
        row = next(csv.DictReader(paths[kind].open(), skipinitialspace=True))
        assert {a: float(row[f"{a}_p"]) for a in AUS} == want, kind


def test_csv_rejects_unknown_au_names(tmp_path):
    with pytest.raises(ValueError, match="AU99"):
        CsvOutput(tmp_path / "x.csv", ["AU01", "AU99"])


def test_unwritable_output_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as e:
        JsonlOutput(blocker / "out.jsonl")  # a file where a folder should be
    assert "\n" not in str(e.value) and "out.jsonl" in str(e.value)


# --- annotated video ------------------------------------------------------------------------------

def _frame(i: int) -> np.ndarray:
    image = np.full((240, 320, 3), 90, np.uint8)
    cv2.circle(image, (100 + i, 80), 30, (200, 180, 160), -1)
    return image


def test_recorder_writes_a_decodable_mp4_with_every_frame(tmp_path):
    path = tmp_path / "rec" / "out.mp4"
    with VideoRecorder(path, AUS) as rec:
        for i in range(20):
            r = result(i, [face(1, x=60 + i)] if i != 7 else [])
            rec.write(r, _frame(i))
        rec.write(result(20, [face(1)]), np.zeros((100, 400, 3), np.uint8))  # another size: letterboxed
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25, abs=0.5)  # measured from the timestamps
    n = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        if n == 0:
            assert np.abs(image.astype(int) - _frame(0)).mean() > 2  # the overlay is in the video
        n += 1
    assert n == 21


def test_overlay_draws_boxes_points_and_bars():
    image = _frame(0)
    drawn = draw_result(image, result(0, [face(1, x=40, y=40, size=100)]), AUS)
    assert drawn.shape == image.shape and (image == _frame(0)).all()  # the input is untouched
    changed = np.any(drawn != image, axis=2)
    assert changed[40, 40:140].any()  # the box's top edge
    assert changed[50:150, 150:260].sum() > 500  # the AU panel to the right of the face


def test_recorder_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(OutputError) as e:
        VideoRecorder(tmp_path / "out.xyz", AUS)
    assert ".mp4" in str(e.value) and "\n" not in str(e.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        VideoRecorder(blocker / "out.mp4", AUS)


# --- window ---------------------------------------------------------------------------------------

def test_show_without_a_display_warns_once_and_continues(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = ShowOutput(AUS)
    for i in range(3):
        out.write(result(i, [face(1)]), _frame(i))
    out.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--show disabled" in err[0] and "DISPLAY" in err[0]
    assert not out.enabled and not out.quit_requested


# --- UDP ------------------------------------------------------------------------------------------

@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_udp_datagrams_reach_a_loopback_socket(receiver):
    port = receiver.getsockname()[1]
    for url in (f"udp://127.0.0.1:{port}", f"udp://:{port}", f"udp://localhost:{port}"):
        with UdpPublisher(url) as pub:
            for r in results():
                pub.write(r, None)
        got = [json.loads(receiver.recv(65536)) for _ in range(3)]
        assert [g["frame"] for g in got] == [0, 1, 2] and set(got[0]) == RECORD_KEYS


@pytest.mark.parametrize("url", ["udp://0.0.0.0:5005", "udp://10.1.2.3:5005", "udp://192.168.1.20:5005"])
def test_udp_refuses_non_loopback_hosts_unless_allowed(url):
    with pytest.raises(ValueError, match="allow-remote"):
        UdpPublisher(url)
    UdpPublisher(url, allow_remote=True).close()


@pytest.mark.parametrize("url", ["udp://127.0.0.1", "tcp://127.0.0.1:5005", "127.0.0.1:5005", "udp://h:99999"])
def test_udp_rejects_malformed_urls(url):
    with pytest.raises(ValueError, match="udp://HOST:PORT"):
        UdpPublisher(url)


def test_udp_drops_dense_fields_then_faces_to_fit_a_datagram(receiver):
    port = receiver.getsockname()[1]
    with UdpPublisher(f"udp://127.0.0.1:{port}", landmarks=True) as pub:
        pub.write(result(0, [face(1, dense=True)]), None)  # small: dense landmarks travel
        pub.write(result(1, [face(i, dense=True) for i in range(1, 13)]), None)  # ~150 KB with them
        pub.write(result(2, [face(i) for i in range(1, 301)]), None)  # too many faces even without
    small, dense, many = (receiver.recv(65536) for _ in range(3))
    assert len(json.loads(small)["faces"][0]["landmarks"]) == 478
    d = json.loads(dense)
    assert len(dense) <= 60_000 and d["truncated"] == ["landmarks"] and len(d["faces"]) == 12
    m = json.loads(many)
    assert len(many) <= 60_000 and m["truncated"] == ["faces"] and m["faces_total"] == 300
    assert 20 < len(m["faces"]) < 300 and m["faces"][0]["track_id"] == 1


# --- fan-out and status ---------------------------------------------------------------------------

def test_build_outputs_fans_out_to_everything(tmp_path, receiver, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    port = receiver.getsockname()[1]
    out = build_outputs(aus=AUS, jsonl=str(tmp_path / "o.jsonl"), csv=str(tmp_path / "o.csv"),
                        record=str(tmp_path / "o.mp4"), show=True, publish=f"udp://127.0.0.1:{port}")
    assert isinstance(out, MultiOutput) and len(out.outputs) == 5
    for i in range(5):
        out.write(result(i, [face(1)]), _frame(i))
    assert not out.quit_requested
    out.close()
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 5
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 6
    assert cv2.VideoCapture(str(tmp_path / "o.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 5
    assert json.loads(receiver.recv(65536))["frame"] == 0
    assert capsys.readouterr().err.count("--show disabled") == 1
    with pytest.raises(ValueError, match="stdout"):
        build_outputs(aus=AUS, jsonl="-", csv="-")


def test_status_line_and_summary():
    buf = io.StringIO()
    status = StatusLine(stream=buf, interval_s=0.0)
    for r in results():
        status.update(r)
    status.finish("3 frames, 2 with a face")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4  # not a terminal: plain lines, then the summary
    assert "fps" in lines[0] and all(f"{k} " in lines[0] for k in ("decode", "face", "align", "au", "post"))
    assert lines[-1].startswith("au-edge: 3 frames, 2 with a face |") and "mean ms decode 1.0" in lines[-1]
    quiet = io.StringIO()
    q = StatusLine(enabled=False, stream=quiet)
    q.update(results()[0])
    q.finish("x")
    assert quiet.getvalue() == ""


# --- files appear only when complete ----------------------------------------------------------------

def test_files_are_written_under_a_partial_name_and_renamed_on_close(tmp_path):
    for make, name in ((lambda p: JsonlOutput(p), "o.jsonl"), (lambda p: CsvOutput(p, AUS), "o.csv"),
                       (lambda p: OpenFaceCsvOutput(p, AUS), "of.csv")):
        path = tmp_path / name
        path.write_text("the user's old file\n")
        out = make(path)
        out.write(results()[0], None)
        assert path.read_text() == "the user's old file\n"
        partial = out._partial.path
        assert re.fullmatch(rf"\.{path.stem}\.[a-z0-9_]{{8}}\.partial{path.suffix}", partial.name), partial.name
        assert partial.parent == tmp_path and partial.stat().st_size > 0
        out.close()
        assert "the user's old file" not in path.read_text()
        assert not partial.exists()
        path.write_text("kept\n")
        aborted = make(path)
        aborted.write(results()[0], None)
        aborted.abort()  # the run never started: the old file stays, nothing else is left
        assert path.read_text() == "kept\n"
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_recorder_replaces_the_old_file_only_when_closed(tmp_path):
    path = tmp_path / "rec.mp4"
    path.write_bytes(b"old")
    rec = VideoRecorder(path, AUS, fps=25)
    for i in range(5):
        rec.write(result(i, [face(1)]), _frame(i))
    assert path.read_bytes() == b"old"
    rec.close()
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == 5
    path.write_bytes(b"old")
    rec = VideoRecorder(path, AUS, fps=25)
    rec.write(result(0, [face(1)]), _frame(0))
    rec.abort()
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["rec.mp4"]


# --- OpenFace 2 CSV -----------------------------------------------------------------------------------

def _openface_file(tmp_path, **kw) -> Path:
    path = tmp_path / "openface.csv"
    with OpenFaceCsvOutput(path, list(reversed(AUS)), **kw) as out:  # given unsorted: OpenFace sorts
        for r in [result(0, [face(7), face(9, x=200)]), result(1, []), result(2, [face(9, x=200)]),
                  result(3, [face(11), face(7)])]:
            out.write(r, None)
    return path


def test_openface_csv_has_openface_2_columns_and_conventions(tmp_path):
    path = _openface_file(tmp_path)
    lines = path.read_text().splitlines()
    # OpenFace 2 RecorderCSV: the sequence header, then AUxx_c sorted; ", " between every value
    assert lines[0] == ", ".join(["frame", "face_id", "timestamp", "confidence", "success"]
                                 + ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
                                 + [f"{a}_c" for a in AUS] + [f"{a}_p" for a in AUS])
    assert all(", " in ln and ",," not in ln for ln in lines)
    assert not any("_r" in c for c in lines[0].split(", "))  # no intensity model: no AUxx_r, never invented
    rows = [ln.split(", ") for ln in lines[1:]]
    assert [r[0] for r in rows] == ["1", "1", "2", "3", "4", "4"]  # frame from 1
    assert [r[1] for r in rows] == ["0", "1", "0", "1", "2", "0"]  # face_id from 0, one per track
    assert rows[0][2:5] == ["0.000", "0.97", "1"] and rows[3][2] == "0.080"
    assert rows[2][3:] == ["0.00", "0"] + ["0"] * (6 + 2 * len(AUS))  # a failed frame: success 0, zeros
    head = lines[0].split(", ")
    one = dict(zip(head, rows[0]))
    assert one["AU12_c"] == "1" and one["AU01_c"] == "0" and one["AU12_p"] == "0.7000"  # _c: ints, as OpenFace
    assert [one[c] for c in head[5:11]] == ["0"] * 6  # no head pose here: zeros (numbers for every reader)


def test_openface_csv_reads_back_as_openface_readers_read_it(tmp_path):
    """pandas with skipinitialspace (the usual OpenFace recipe), py-feat's read_openface recipe (read with
    sep=',' and strip the column names) and the csv module with skipinitialspace agree on every value."""
    import pandas as pd  # the dev extra has it
    path = _openface_file(tmp_path)
    a = pd.read_csv(path, skipinitialspace=True)
    b = pd.read_csv(path, sep=",")
    b.columns = b.columns.str.strip(" ")
    assert list(a.columns) == list(b.columns) and (a.to_numpy() == b.to_numpy()).all()
    assert a["frame"].tolist() == [1, 1, 2, 3, 4, 4] and a["success"].tolist() == [1, 1, 0, 1, 1, 1]
    assert a["face_id"].dtype.kind == "i" and a["AU12_c"].dtype.kind == "i"
    assert a["timestamp"].tolist() == pytest.approx([0, 0, 0.04, 0.08, 0.12, 0.12])
    ok = a[a["success"] == 1]
    assert set(ok["AU12_c"]) == {1} and set(ok["AU01_c"]) == {0}
    assert ok["AU25_p"].tolist() == pytest.approx([0.85] * 5)
    rows = list(csv.DictReader(path.open(), skipinitialspace=True))
    assert rows[0]["AU12_p"] == "0.7000" and rows[2]["success"] == "0"


def test_openface_csv_intensity_and_file_columns_only_when_real(tmp_path):
    f = face(1)
    f.au_intensity = {"AU12": 2.5}  # a model that estimates intensity fills FaceAU.au_intensity
    path = tmp_path / "x.csv"
    with OpenFaceCsvOutput(path, AUS, intensity_aus=["AU12"], image_source=True) as out:
        out.write(FrameResult(frame=0, time_s=0.0, faces=[f], source="a,b.jpg"), None)
        out.write(FrameResult(frame=1, time_s=1 / 30, faces=[face(5), face(6)], source="c.png"), None)
    rows = list(csv.DictReader(path.open(), skipinitialspace=True))
    assert list(rows[0])[11] == "AU12_r" and list(rows[0])[-1] == "file"
    assert rows[0]["AU12_r"] == "2.50" and rows[0]["file"] == "a_b.jpg"
    assert [r["face_id"] for r in rows[1:]] == ["0", "1"] and rows[1]["file"] == "c.png"  # per image


def test_build_outputs_picks_the_csv_format(tmp_path):
    out = build_outputs(aus=AUS, csv=str(tmp_path / "a.csv"), csv_format="openface")
    assert isinstance(out.outputs[0], OpenFaceCsvOutput)
    out.close()
    with pytest.raises(ValueError, match="csv-format"):
        build_outputs(aus=AUS, csv=str(tmp_path / "b.csv"), csv_format="excel")


def test_a_fifo_output_is_written_directly(tmp_path):
    import os

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(fifo.read_text().splitlines()))
    reader.start()
    out = JsonlOutput(fifo)
    out.write(results()[0], None)
    out.close()
    reader.join(timeout=10)
    assert len(got) == 1 and json.loads(got[0])["frame"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.jsonl"]
