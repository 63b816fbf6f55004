"""Frame sources on real media: files lose nothing, live streams keep the newest and come back."""
from __future__ import annotations

import http.server
import socketserver
import threading
import time
from itertools import pairwise

import cv2
import numpy as np
import pytest

from runtime.errors import SourceError
from runtime.sources import Frame, SourceSpec, classify, is_image_source, jetson_csi, open_source

PEXELS = "media/WolfgangLanger_Pexels.mp4"


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


# --- files ------------------------------------------------------------------------------------------

@pytest.mark.data
def test_video_file_delivers_every_frame_in_order(data_dir):
    """All 472 frames through the capture thread, even while the consumer is slower than the decoder."""
    with open_source(str(data_dir / PEXELS)) as src:
        assert (src.kind, src.is_live, src.name) == ("video", False, "WolfgangLanger_Pexels.mp4")
        assert src.fps == pytest.approx(23.976, abs=0.01)
        frames = []
        for frame in src:
            if len(frames) < 15:
                time.sleep(0.01)  # the queue fills; the reader must wait, not drop
            frames.append((frame.index, frame.time_s, frame.image.shape, frame.image.dtype, frame.name))
        assert src.skipped == {}
    assert [f[0] for f in frames] == list(range(472))
    times = [f[1] for f in frames]
    assert times[0] == 0.0 and all(b > a for a, b in pairwise(times))
    assert times[-1] == pytest.approx(471 / src.fps, abs=0.01)
    assert {f[2] for f in frames} == {(360, 640, 3)} and {f[3] for f in frames} == {np.dtype(np.uint8)}
    assert {f[4] for f in frames} == {"WolfgangLanger_Pexels.mp4"}


@pytest.mark.data
@pytest.mark.parametrize("name,frames,skipped", [
    ("face_noface.mov", 169, {}),  # HEVC, variable frame times
    ("no_face.mp4", 95, {"frame_count_shortfall": 3}),  # its edit list hides 3 of the 98 samples
])
def test_other_clips_and_their_counted_shortfall(data_dir, name, frames, skipped):
    with open_source(str(data_dir / "media" / name)) as src:
        got = [f.index for f in src]
        assert got == list(range(frames))
        assert src.skipped == skipped


@pytest.mark.data
def test_image_file(data_dir):
    with open_source(data_dir / "media/multi_face.jpg") as src:
        frames = list(src)
    assert src.kind == "image" and not src.is_live
    assert len(frames) == 1
    assert (frames[0].index, frames[0].time_s, frames[0].name) == (0, 0.0, "multi_face.jpg")
    assert frames[0].image.shape == (667, 1000, 3) and frames[0].image.dtype == np.uint8


def test_image_folder_sorted_with_counted_skips(tmp_path):
    color = np.zeros((40, 60, 3), np.uint8)
    color[:] = (10, 120, 230)
    cv2.imwrite(str(tmp_path / "b_gray.png"), np.full((30, 50), 77, np.uint8))
    cv2.imwrite(str(tmp_path / "a_color.jpg"), color)
    bgra = np.zeros((20, 20, 4), np.uint8)
    bgra[:] = (200, 100, 50, 128)
    cv2.imwrite(str(tmp_path / "c_rgba.png"), bgra)
    cv2.imwrite(str(tmp_path / "e_16bit.png"), np.full((10, 10, 3), 65535, np.uint16))
    (tmp_path / "d_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()  # folders are not frames and not skips

    with open_source(tmp_path) as src:
        frames = list(src)
        assert src.kind == "folder" and src.name == tmp_path.name and not src.is_live
        assert src.skipped == {"not_image": 1, "unreadable_image": 1}
    assert [f.name for f in frames] == ["a_color.jpg", "b_gray.png", "c_rgba.png", "e_16bit.png"]
    assert [f.index for f in frames] == [0, 1, 2, 4]  # the gap is the counted corrupt file
    assert frames[1].time_s == pytest.approx(1 / 30)
    for f in frames:
        assert f.image.ndim == 3 and f.image.shape[2] == 3 and f.image.dtype == np.uint8
    assert np.abs(frames[0].image.astype(int) - (10, 120, 230)).max() <= 4
    assert (frames[1].image == 77).all()
    assert tuple(frames[2].image[5, 5]) == (200, 100, 50)
    assert (frames[3].image == 255).all()


def test_empty_or_junk_folder_fails_early(tmp_path):
    with pytest.raises(SourceError) as e:
        open_source(tmp_path)
    assert "no readable images" in _one_line(e)
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "y.png").write_bytes(b"nope")
    with pytest.raises(SourceError) as e:
        open_source(tmp_path)
    assert "not_image=1" in _one_line(e) and "unreadable_image=1" in _one_line(e)


def _mjpg_avi(path, n=60, size=(160, 120)):
    """An MJPG AVI whose frame i is filled with grey 4*i; returns each frame's (offset, size) in the file."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 4 * i, np.uint8))
    writer.release()
    data = path.read_bytes()
    chunks, p = [], 0
    while (p := data.find(b"00dc", p)) >= 0:
        length = int.from_bytes(data[p + 4:p + 8], "little")
        if data[p + 8:p + 10] == b"\xff\xd8":  # a JPEG payload, not an index entry
            chunks.append((p + 8, length))
        p += 4
    assert len(chunks) == n
    return chunks


def test_corrupt_frame_in_a_video_is_counted_and_the_rest_arrive(tmp_path):
    path = tmp_path / "corrupt.avi"
    offset, size = _mjpg_avi(path)[30]
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = bytes(size)  # frame 30's JPEG is gone (zeros, same length)
    path.write_bytes(bytes(data))

    with open_source(path) as src:
        frames = list(src)
        assert src.skipped == {"corrupt_frame": 1}
    assert [f.index for f in frames] == [i for i in range(60) if i != 30]
    by_index = {f.index: f for f in frames}
    for i in (29, 31, 59):  # the frames around and after it are the right ones
        assert abs(int(by_index[i].image.mean()) - 4 * i) <= 3
    assert by_index[31].time_s == pytest.approx(31 / 25)


@pytest.mark.data
def test_a_file_played_live_keeps_the_newest_frame(data_dir):
    with open_source(str(data_dir / PEXELS), live=True) as src:
        assert src.is_live
        indices = []
        for frame in src:
            indices.append(frame.index)
            time.sleep(0.1)  # a slow consumer of a real-time (24 fps) playback
            if len(indices) == 8:
                break
        assert src.skipped.get("dropped", 0) >= 10
    assert all(b > a for a, b in pairwise(indices)) and indices[-1] >= 14


@pytest.mark.data
def test_close_stops_the_capture_thread(data_dir):
    before = {t for t in threading.enumerate() if t.name.startswith("au-edge capture")}
    src = open_source(str(data_dir / PEXELS), queue_size=2)
    next(src)
    src.close()
    with pytest.raises(StopIteration):
        next(src)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if not ({t for t in threading.enumerate() if t.name.startswith("au-edge capture")} - before):
            break
        time.sleep(0.05)
    else:
        pytest.fail("capture thread still running after close()")


def test_one_classifier_names_every_kind(data_dir, tmp_path):
    """``classify`` is what the readers, the live/file policy and the detector's mode all ask."""
    clip, photo = data_dir / PEXELS, data_dir / "media" / "multi_face.jpg"
    assert classify(3) == classify("3") == SourceSpec("camera", 3, "camera3", "camera 3")
    assert classify("gst:videotestsrc ! appsink") == SourceSpec("gst", "videotestsrc ! appsink", "videotestsrc",
                                                                "'videotestsrc ! appsink'")
    url = classify("rtsp://admin:pw@10.0.0.5:554/live/cam1")
    assert (url.kind, url.name, url.target) == ("url", "cam1", "rtsp://admin:pw@10.0.0.5:554/live/cam1")
    assert "pw" not in url.label and url.live
    assert (classify(clip).kind, classify(str(clip)).name, classify(clip).live) == \
        ("video", "WolfgangLanger_Pexels.mp4", False)
    assert (classify(photo).kind, classify(tmp_path).kind) == ("image", "folder")
    assert [is_image_source(s) for s in (photo, tmp_path, clip, "0", tmp_path / "gone.jpg")] == \
        [True, True, False, False, False]
    with pytest.raises(SourceError, match="empty gst"):
        classify("gst: ")


# --- sources that must fail early, in one line ------------------------------------------------------

@pytest.mark.parametrize("spec", [0, "0", 7])
def test_camera_without_a_camera_fails_in_one_line(spec):
    with pytest.raises(SourceError) as e:
        open_source(spec)
    assert f"camera {int(spec)}" in _one_line(e)


def test_missing_path_fails_in_one_line(tmp_path):
    with pytest.raises(SourceError) as e:
        open_source(tmp_path / "nope.mp4")
    assert "nope.mp4" in _one_line(e) and "not found" in _one_line(e)


def test_non_video_file_fails_in_one_line(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"definitely not a video" * 100)
    with pytest.raises(SourceError) as e:
        open_source(bad)
    assert "clip.mp4" in _one_line(e)


def test_gst_source_fails_cleanly_or_works():
    from cv2 import videoio_registry

    spec = "gst:videotestsrc num-buffers=5 ! videoconvert ! video/x-raw,format=BGR ! appsink"
    if videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        with open_source(spec, reconnect=False) as src:
            assert isinstance(next(src), Frame)
        return
    with pytest.raises(SourceError) as e:
        open_source(spec)
    assert "GStreamer" in _one_line(e) and "JetPack" in _one_line(e)


def test_url_credentials_never_appear_in_errors():
    with pytest.raises(SourceError) as e:
        open_source("rtsp://user:s3cret@127.0.0.1:1/stream", open_timeout_s=2)
    assert "s3cret" not in _one_line(e) and "user:***@127.0.0.1" in _one_line(e)


def test_bad_options_name_the_value():
    with pytest.raises(ValueError, match="queue_size"):
        open_source("x", queue_size=0)


# --- a live HTTP MJPEG stream that drops out and comes back ----------------------------------------

class MjpegServer:
    """multipart/x-mixed-replace JPEG frames on 127.0.0.1, like an IP camera. Frame colour: blue =
    40 * generation (which run of the server), green = frame counter, so the test can tell them apart."""

    def __init__(self, fps: float = 50.0):
        self.fps, self.port, self.generation = fps, 0, 0
        self._server = None
        self._up = threading.Event()
        self.stalled = threading.Event()  # set: connections stay open but no frame comes (a frozen camera)

    def start(self) -> None:
        outer = self
        self.generation += 1
        gen = self.generation

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while outer._up.is_set() and outer.generation == gen:
                        if outer.stalled.is_set():
                            time.sleep(0.02)
                            continue
                        image = np.zeros((96, 128, 3), np.uint8)
                        image[..., 0], image[..., 1] = 40 * gen, (5 * i) % 250
                        jpg = cv2.imencode(".jpg", image)[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        time.sleep(1 / outer.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._up.set()
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """The camera goes away: streams end and new connections are refused."""
        self._up.clear()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


@pytest.fixture
def mjpeg_server():
    server = MjpegServer()
    server.start()
    yield server
    if server._up.is_set():
        server.stop()


def test_live_http_mjpeg_keeps_newest_and_reconnects(mjpeg_server):
    lines: list[str] = []
    with open_source(mjpeg_server.url, reconnect_timeout_s=20, log=lines.append) as src:
        assert (src.kind, src.is_live, src.name) == ("url", True, "stream.mjpg")
        first = [next(src) for _ in range(3)]
        assert all(abs(int(f.image[..., 0].mean()) - 40) <= 3 for f in first)  # generation 1
        for _ in range(3):  # a slow consumer: the 1-slot buffer drops, and says so
            time.sleep(0.2)
            frame = next(src)
        assert src.skipped.get("dropped", 0) >= 5
        assert frame.index > first[-1].index + 5

        mjpeg_server.stop()
        threading.Timer(1.2, mjpeg_server.start).start()  # back on the same port 1.2 s later
        t_lost = time.monotonic()
        while True:
            frame = next(src)
            if abs(int(frame.image[..., 0].mean()) - 80) <= 3:  # generation 2: reconnected
                break
            assert time.monotonic() - t_lost < 15, "no frame from the restarted server"
        assert src.reconnects == 1
        assert frame.time_s > first[-1].time_s + 1.0  # the monotonic clock ran on through the outage
    attempts = [ln for ln in lines if "reconnect attempt" in ln]
    assert attempts and "attempt 1 in 0.5 s" in attempts[0]
    assert any("is back after" in ln for ln in lines)
    assert all("\n" not in ln for ln in lines)


def test_live_source_gives_up_after_its_timeout(mjpeg_server):
    lines: list[str] = []
    with open_source(mjpeg_server.url, reconnect_timeout_s=1.5, log=lines.append) as src:
        next(src)
        mjpeg_server.stop()
        t0 = time.monotonic()
        rest = list(src)  # ends by itself once the server stays away
        assert time.monotonic() - t0 < 6
        assert len(rest) < 60
        assert src.end_reason and "did not come back within 1.5 s" in src.end_reason
    assert lines[-1] == src.end_reason
    assert sum("reconnect attempt" in ln for ln in lines) >= 2  # 0.5 s, then 1.0 s


def test_a_frozen_stream_times_out_and_reconnects(mjpeg_server):
    """No frames but an open connection (a hung camera): the read timeout ends the wait, then reconnect."""
    lines: list[str] = []
    with open_source(mjpeg_server.url, read_timeout_s=1.0, reconnect_timeout_s=20, log=lines.append) as src:
        before = next(src)
        mjpeg_server.stalled.set()
        threading.Timer(1.5, mjpeg_server.stalled.clear).start()
        t0 = time.monotonic()
        frames = [next(src) for _ in range(40)]  # buffered frames first, then the reconnected stream
        assert time.monotonic() - t0 < 12
        assert src.reconnects == 1 and frames[-1].index > before.index
    assert any("reconnect attempt 1" in ln for ln in lines)


def test_live_source_without_reconnect_ends_with_a_line(mjpeg_server):
    lines: list[str] = []
    with open_source(mjpeg_server.url, reconnect=False, log=lines.append) as src:
        next(src)
        mjpeg_server.stop()
        list(src)
        assert src.reconnects == 0 and lines == [src.end_reason] and "reconnect is off" in lines[0]


def test_jetson_csi_pipeline_string():
    assert jetson_csi() == (
        "gst:nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! "
        "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")


@pytest.fixture
def file_server(data_dir):
    """A plain static file server (Python's http.server) on 127.0.0.1 serving the open media folder."""
    directory = str(data_dir / "media")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kw):
            super().__init__(*args, directory=directory, **kw)

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.data
def test_http_url_to_a_clip_is_read_as_a_file_every_frame_once(file_server, data_dir):
    """An http://.../clip.mp4 URL: all 472 frames in order, once, then the end (no drops, no replay)."""
    with open_source(str(data_dir / PEXELS)) as src:
        local = [(f.index, f.time_s, float(f.image.mean())) for f in src]
    lines: list[str] = []
    with open_source(f"{file_server}/WolfgangLanger_Pexels.mp4", log=lines.append) as src:
        assert (src.kind, src.is_live, src.name) == ("video", False, "WolfgangLanger_Pexels.mp4")
        got = []
        for frame in src:
            if len(got) < 10:
                time.sleep(0.02)  # a slow consumer: a file source waits instead of dropping
            got.append((frame.index, frame.time_s, float(frame.image.mean())))
        assert src.skipped == {} and src.reconnects == 0
    assert [g[0] for g in got] == list(range(472))
    assert [g[1] for g in got] == pytest.approx([x[1] for x in local], abs=1e-6)
    assert [g[2] for g in got] == pytest.approx([x[2] for x in local], abs=1e-6)  # the same pixels
    assert lines == []  # no reconnect attempts: it ended like a file
