"""``python -m runtime.camera`` as a user runs it: real subprocesses, real files, exit codes."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from engine_factory import AUS


def run_cli(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.camera", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    for w in words:
        assert w in err, err


def test_pexels_clip_to_jsonl_on_stdout_and_csv(tiny_engines, face_model, media, tmp_path):
    """The issue's acceptance command: 472 records with a face in nearly every one."""
    proc = run_cli("--engine", tiny_engines["tflite_int8"], "--source", media / "WolfgangLanger_Pexels.mp4",
                   "--no-show", "--jsonl", "-", "--csv", tmp_path / "au.csv", "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 472 and [r["frame"] for r in records] == list(range(472))
    assert sum(bool(r["faces"]) for r in records) >= 460
    face = records[200]["faces"][0]
    assert set(face) == {"track_id", "bbox", "score", "landmarks5", "au_prob", "au_active"}
    assert list(face["au_prob"]) == AUS and all(0 <= v <= 1 for v in face["au_prob"].values())
    assert len(face["landmarks5"]) == 5 and len(face["bbox"]) == 4
    assert "472 frames" in proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "au.csv")))
    assert len(rows) == 472
    assert {"frame", "timestamp", "face_id", "confidence", "success", "AU12_p", "AU12_c"} <= set(rows[0])


def test_image_folder_and_record(tiny_engines, face_model, media, data_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("001.jpg", "002.jpg", "003.jpg"):
        (folder / name).write_bytes((data_dir / "london" / "smiling" / name).read_bytes())
    out = tmp_path / "ann.mp4"
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", folder, "--no-show", "--jsonl",
                   tmp_path / "o.jsonl", "--record", out, "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in open(tmp_path / "o.jsonl")]
    assert [r["source"] for r in recs] == ["001.jpg", "002.jpg", "003.jpg"]
    assert all(len(r["faces"]) == 1 for r in recs)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_bad_engines_and_sources_exit_2_with_one_line(tiny_engines, face_model, media, tmp_path):
    clip = media / "WolfgangLanger_Pexels.mp4"
    one_line_error(run_cli("--engine", tmp_path / "missing.onnx", "--source", clip, "--no-show"), "not found")
    corrupt = tmp_path / "c.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    one_line_error(run_cli("--engine", corrupt, "--source", clip, "--no-show"), "card")
    nocard = tmp_path / "nocard.onnx"
    nocard.write_bytes(tiny_engines["onnx"].read_bytes())
    one_line_error(run_cli("--engine", nocard, "--source", clip, "--no-show"), "model card", "not found")
    (tmp_path / "nocard.onnx.json").write_text(open(str(tiny_engines["tflite"]) + ".json").read())
    one_line_error(run_cli("--engine", nocard, "--source", clip, "--no-show"), "another engine")
    one_line_error(run_cli("--engine", "default", "--source", clip, "--no-show"), "default")
    eng = ("--engine", tiny_engines["onnx"], "--no-show", "--face-model", face_model)
    one_line_error(run_cli(*eng, "--source", tmp_path / "nope.mp4"), "nope.mp4")
    (tmp_path / "notvideo.mp4").write_text("hello")
    one_line_error(run_cli(*eng, "--source", tmp_path / "notvideo.mp4"), "notvideo.mp4")
    one_line_error(run_cli(*eng, "--source", "0"))  # no camera on this machine
    one_line_error(run_cli(*eng, "--source", clip, "--max-faces", "0"), "max_faces")
    one_line_error(run_cli(*eng, "--source", clip, "--publish", "udp://10.1.2.3:9999"), "10.1.2.3")
    one_line_error(run_cli("--engine", tiny_engines["onnx"], "--no-show", "--source", clip,
                           "--face-model", tmp_path / "nothing_here"), "nothing_here")


def test_no_face_video_writes_a_record_per_frame(tiny_engines, face_model, media):
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", media / "no_face.mp4", "--no-show",
                   "--jsonl", "-", "--face-model", face_model)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(recs) > 80 and all(r["faces"] == [] for r in recs)


def test_ctrl_c_closes_outputs_cleanly(tiny_engines, face_model, tmp_path):
    video = tmp_path / "long.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (96, 64))
    frame = np.full((64, 96, 3), 90, np.uint8)
    for _ in range(20000):
        w.write(frame)
    w.release()
    proc = subprocess.Popen([sys.executable, "-m", "runtime.camera", "--engine", str(tiny_engines["onnx"]),
                             "--source", str(video), "--no-show", "--jsonl", "-", "--face-model", face_model],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()  # it is running
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    for line in out.splitlines():
        json.loads(line)  # every line written is complete


@pytest.mark.skipif(os.environ.get("DISPLAY") is not None, reason="checks the no-display path")
def test_show_without_display_warns_and_runs(tiny_engines, face_model, media):
    proc = run_cli("--engine", tiny_engines["onnx"], "--source", media / "multi_face.jpg", "--show",
                   "--face-model", face_model, "--jsonl", "-")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
