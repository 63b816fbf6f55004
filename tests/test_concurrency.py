"""One AUDetector shared by threads, live-stream mode, and native wrappers built in threads at once.

Real LiteRT interpreters (the shipped INT8 model and the face models), real photos and a real clip.
"""
from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime import AUDetector, FrameResult

ROOT = Path(__file__).resolve().parents[1]
CLIP = "WolfgangLanger_Pexels.mp4"


@pytest.fixture(scope="module")
def photos(data_dir) -> list[np.ndarray]:
    london = data_dir / "london"
    paths = [london / "neutral" / "001.jpg", london / "smiling" / "002.jpg", data_dir / "media" / "multi_face.jpg",
             london / "neutral" / "005.jpg"]
    return [cv2.imread(str(p)) for p in paths]


@pytest.fixture(scope="module")
def clip(media) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(media / CLIP))
    frames = [cap.read()[1] for _ in range(24)]
    cap.release()
    return frames


def same(a: FrameResult, b: FrameResult) -> bool:
    """Faces, boxes, points and every AU probability bit for bit (frame numbers and latency aside)."""
    return len(a.faces) == len(b.faces) and all(
        fa.track_id == fb.track_id and fa.bbox == fb.bbox and np.array_equal(fa.landmarks5, fb.landmarks5)
        and fa.au_prob == fb.au_prob and fa.au_active == fb.au_active for fa, fb in zip(a.faces, b.faces))


def run_threads(n: int, target) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - collected and asserted on
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# --- several threads, one detector -------------------------------------------------------------


def test_four_threads_on_one_detector_give_the_serial_results(photos, face_model):
    """A ROS 2 multi-threaded executor shares one detector: before the lock, 3 of 4 threads died with
    LiteRT's "There is at least 1 reference to internal data"."""
    with AUDetector("default", face_model=face_model, mode="image") as det:
        serial = [det.process(p) for p in photos]
        assert sum(len(r.faces) for r in serial) == 1 + 1 + 5 + 1  # every face of the group photo too
        got: dict[tuple[int, int], FrameResult] = {}

        def work(i: int) -> None:
            for rep in range(3):
                for k in range(len(photos)):
                    j = (k + i) % len(photos)  # each thread in its own order
                    got[i, rep, j] = det.process(photos[j])

        assert run_threads(4, work) == []
    assert len(got) == 4 * 3 * len(photos)
    assert all(same(r, serial[j]) for (_, _, j), r in got.items())


def test_video_mode_from_threads_runs_in_order_or_says_why(clip, face_model):
    """Video mode tracks from call to call, so the calls of several threads run one at a time in the
    order they take the lock; a frame whose time is not after the last one run is refused (one line)."""
    with AUDetector("default", face_model=face_model) as det:
        det.process(clip[0], 2.0)
        e = run_threads(1, lambda i: det.process(clip[1], 1.0))
        assert len(e) == 1 and isinstance(e[0], ValueError) and "\n" not in str(e[0])
        assert "video mode needs increasing timestamps: got 1.0 s after 2.0 s" in str(e[0])

    with AUDetector("default", face_model=face_model) as det:
        lock, stamps, done = threading.Lock(), iter(range(1, 10_000)), []

        def work(i: int) -> None:
            for _ in range(6):
                with lock:
                    t = next(stamps) / 24  # a shared clock: increasing, but threads may arrive out of order
                try:
                    done.append(det.process(clip[int(t * 24) % len(clip)], t))
                except ValueError as e:
                    assert "video mode needs increasing timestamps" in str(e)

        assert run_threads(4, work) == []
    assert done
    in_run_order = sorted(done, key=lambda r: r.frame)  # frame = the order the detector ran them
    assert [r.frame for r in in_run_order] == list(range(len(done)))
    times = [r.time_s for r in in_run_order]
    assert all(b > a for a, b in itertools.pairwise(times))


def test_stream_owns_the_detector_and_a_closed_one_says_so(clip, face_model, media):
    det = AUDetector("default", face_model=face_model)
    stream = det.stream(str(media / CLIP), max_frames=3)
    next(stream)
    e = run_threads(1, lambda i: det.process(clip[0], 100.0))
    assert len(e) == 1 and "running stream() in another thread" in str(e[0])
    stream.close()
    det.process(clip[0], 100.0)  # the stream is over: process() works again
    det.close()
    det.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        det.process(clip[0], 101.0)


# --- live-stream mode ------------------------------------------------------------------------


def test_live_mode_returns_at_once_drops_while_busy_and_equals_video_mode(clip, face_model):
    calls: list[tuple[FrameResult, np.ndarray, float]] = []
    det = AUDetector("default", face_model=face_model, mode="live",
                     result_callback=lambda r, f, t: calls.append((r, f, t)))
    assert det.running_mode == "live"
    accepted, waits = [], []
    for i, source in enumerate(clip):
        frame = source.copy()
        t0 = time.perf_counter()
        if det.detect_async(frame, i / 24):
            accepted.append(i)
        waits.append(time.perf_counter() - t0)
        frame[:] = 0  # the caller reuses its buffer at once: the detector kept its own copy
        if i % 2:  # an odd frame came while the even one before it ran: wait for that one's result
            deadline = time.monotonic() + 10
            while len(calls) < len(accepted) and time.monotonic() < deadline:
                time.sleep(0.002)
    det.close()  # waits for the worker: every accepted frame's callback has run
    assert accepted == list(range(0, len(clip), 2))  # each odd frame came while the worker was busy
    assert len(calls) == len(accepted) and det.skipped["dropped"] == len(clip) // 2
    assert max(waits) < 0.05  # detect_async never waits for inference (a frame takes ~20 ms or more)
    assert [t for _, _, t in calls] == [i / 24 for i in accepted]
    assert all(isinstance(r, FrameResult) and f.shape == clip[0].shape and f.any() for r, f, _ in calls)

    # The same frames through video mode, serially: the same faces, tracks and probabilities.
    with AUDetector("default", face_model=face_model, mode="video") as ref:
        for (r, f, t) in calls:
            assert same(r, ref.process(f, t))


def test_live_mode_misuse_is_one_clear_error_each(clip, face_model, media):
    frame = clip[0]
    with pytest.raises(ValueError, match="mode='live' needs result_callback"):
        AUDetector("default", face_model=face_model, mode="live")
    with pytest.raises(ValueError, match="result_callback is for mode='live' only"):
        AUDetector("default", face_model=face_model, mode="video", result_callback=print)
    for mode in ("video", "image"):
        with AUDetector("default", face_model=face_model, mode=mode) as det, \
                pytest.raises(ValueError, match=f"detect_async\\(\\) needs mode='live' .*mode='{mode}'"):
            det.detect_async(frame, 0.0)
    det = AUDetector("default", face_model=face_model, mode="live", result_callback=lambda *a: None)
    try:
        with pytest.raises(ValueError, match="process\\(\\) is not available in mode='live'"):
            det.process(frame, 0.0)
        with pytest.raises(ValueError, match="stream\\(\\) is not available in mode='live'"):
            next(det.stream(str(media / CLIP)))
        with pytest.raises(ValueError, match="timestamp in seconds"):
            det.detect_async(frame, None)
        det.detect_async(frame, 1.0)
        for bad in (1.0, 0.5):
            with pytest.raises(ValueError, match=f"live mode needs increasing timestamps: got {bad} s after 1.0 s"):
                det.detect_async(frame, bad)
    finally:
        det.close()
    with pytest.raises(ValueError, match="closed"):
        det.detect_async(frame, 2.0)


def test_live_close_waits_for_the_worker_and_a_failing_callback_is_raised(clip, face_model):
    finished = threading.Event()

    def slow(result, frame, t):
        time.sleep(0.3)
        finished.set()

    det = AUDetector("default", face_model=face_model, mode="live", result_callback=slow)
    assert det.detect_async(clip[0], 0.0)
    det.close()
    assert finished.is_set()

    def failing(result, frame, t):
        raise RuntimeError("callback broke")

    det = AUDetector("default", face_model=face_model, mode="live", result_callback=failing)
    det.detect_async(clip[0], 0.0)
    with pytest.raises(RuntimeError, match="callback broke"):
        det.close()  # not lost: raised where the caller sees it


# --- native wrappers built and closed in threads -------------------------------------------------

BUILD_IN_THREADS = """
import os, sys, threading
from runtime import AUDetector
from runtime.engines import default_engine_choice

onnx = str(default_engine_choice().path.with_name("au_default.onnx"))
errors = []

def work(i):
    try:
        det = AUDetector("default" if i % 2 else onnx, face_model=sys.argv[1])
        det.close()
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
os.write(2, b"fd2 still reaches stderr\\n")
print("sys.stderr too", file=sys.stderr)
print(errors)
"""


def test_detectors_built_in_eight_threads_leave_stderr_working(face_model, tmp_path):
    """LiteRT's first interpreter is made with fd 2 pointed at /dev/null (to hide its INFO line);
    threads that saved and restored fd 2 around their own interpreters at once left it at /dev/null."""
    script = tmp_path / "build.py"
    script.write_text(BUILD_IN_THREADS)
    for _ in range(3):  # the race was a race: several fresh processes
        proc = subprocess.run([sys.executable, str(script), face_model], capture_output=True, text=True,
                              timeout=120, cwd=ROOT, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "[]"
        assert "fd2 still reaches stderr" in proc.stderr and "sys.stderr too" in proc.stderr
        assert "XNNPACK" not in proc.stderr  # still hidden
