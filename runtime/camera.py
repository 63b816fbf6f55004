"""``python -m runtime.camera`` / ``au-edge camera``: AU detection from a camera, file, folder, URL or gst: pipeline.

Exit codes: 0 at the end of a finite source; 2 with one line for a bad engine, card, source or option;
130 after Ctrl-C and 143 after SIGTERM (how systemd and docker stop a process): in both cases the
outputs are closed first (the recording playable, the JSONL complete) and the summary is printed.
Outputs are opened only once the engine and the source have opened, and written under a partial
name renamed into place when closed, so a failed start never touches an existing file.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
from collections.abc import Sequence

EPILOG = """examples:
  au-edge camera --engine au.tflite --source 0 --show
  python -m runtime.camera --engine au.onnx --source clip.mp4 --no-show --jsonl - --csv out.csv
  python -m runtime.camera --engine au.onnx --source photos/ --csv au.csv --csv-format openface
  python -m runtime.camera --engine au.trt --source "gst:nvarguscamerasrc sensor-id=0 ! \\
      video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! \\
      video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
"""
OPENCV_HINT = ("OpenCV (cv2) is not installed: pip install opencv-python-headless (desktop, Raspberry Pi); on a "
               "Jetson keep JetPack's OpenCV with GStreamer (sudo apt install python3-opencv) and install "
               "au-edge[runtime-core]")
MODES = ("auto", "image", "video")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``au-edge: error: ...``) and exit 2, no usage block."""

    def error(self, message: str):
        self.exit(2, f"au-edge: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, lo: float, lo_open: bool = False, what: str = ""):
    """An argparse type: ``kind`` (int|float), finite, >= lo (> lo when ``lo_open``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < lo or (lo_open and value == lo):
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {'>' if lo_open else '>='} "
                                             f"{kind(lo)}{what}")
        return value
    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    from runtime import __version__

    p = OneLineParser(prog="python -m runtime.camera", description=__doc__.splitlines()[0],
                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"au-edge {__version__}")
    p.add_argument("--engine", default="default", help="engine file (.onnx, .tflite, .trt/.engine/.plan) "
                   "with its <engine>.json card beside it, or 'default' (the shipped model: LiteRT INT8 when "
                   "LiteRT is installed, else the FP32 ONNX; it prints which)")
    p.add_argument("--source", default="0", help="camera index, video file, image file, image folder, "
                   "rtsp://, http(s):// URL, or gst:<pipeline> (default: 0)")
    p.add_argument("--mode", choices=MODES, default="auto", help="image: every frame an unrelated photo (no "
                   "tracking or smoothing between them); video: track and smooth; auto (default): image for "
                   "image files and folders, else video")
    p.add_argument("--jsonl", metavar="PATH|-", help="one JSON object per frame ('-' = stdout)")
    p.add_argument("--csv", metavar="PATH", help="CSV, one row per face per frame (see --csv-format)")
    p.add_argument("--csv-format", choices=("default", "openface"), default="default",
                   help="default: frame, timestamp, face_id, confidence, success, AUxx_p, AUxx_c; openface: OpenFace "
                   "2 FeatureExtraction columns and conventions (frame from 1, ', ' separators) + AUxx_p")
    p.add_argument("--record", metavar="OUT.mp4", help="annotated video: boxes, 5 points, AU bars")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--show", dest="show", action="store_true", default=None, help="on-screen overlay")
    show.add_argument("--no-show", dest="show", action="store_false", help="no window (default off a display)")
    p.add_argument("--publish", metavar="udp://HOST:PORT", help="UDP JSON datagram per frame (127.0.0.1 only "
                   "unless --allow-remote)")
    p.add_argument("--allow-remote", action="store_true", help="let --publish send to a non-loopback host")
    p.add_argument("--max-faces", type=_number(int, 1), default=4, help="faces tracked at once (default 4)")
    p.add_argument("--max-frames", type=_number(int, 1), default=None, help="stop after N frames (N >= 1)")
    p.add_argument("--detect-every", type=_number(int, 0), default=None, metavar="N",
                   help="run the face detector every N frames while fewer than --max-faces are tracked "
                   "(default 10; 0: only while a face is missing)")
    p.add_argument("--calibrate-neutral", type=_number(float, 0), default=None, metavar="SECONDS",
                   help="per-person neutral baseline from each track's first SECONDS (off by default)")
    p.add_argument("--face-model", metavar="PATH", help="folder of face .tflite files or a face_landmarker "
                   ".task bundle (default: $AU_FACE_MODEL, then the user cache, then PyPI)")
    p.add_argument("--detector", choices=("full", "short"), default="full",
                   help="BlazeFace full range (across a room, default) or short range (close-ups)")
    p.add_argument("--no-smooth", action="store_true", help="raw per-frame probabilities, no hysteresis")
    p.add_argument("--threads", type=_number(int, 1, what=" (CPU threads for inference)"), default=None,
                   help="CPU threads for inference (>= 1)")
    p.add_argument("--quiet", action="store_true", help="no status line")
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the run ends exactly as after Ctrl-C."""


class _Interrupts:
    """Ctrl-C and SIGTERM, held back while one frame goes to every output so the files agree frame for frame.

    A signal that lands between the JSONL line and the recorded frame would otherwise leave the recording one
    frame short of the JSONL; inside ``atomic()`` it is kept and raised when the frame is written everywhere.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending: KeyboardInterrupt | None = None

    def handler(self, signum, frame) -> None:
        exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.depth:
            self.pending = self.pending or exc
            return
        raise exc

    @contextlib.contextmanager
    def atomic(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending is not None:
                exc, self.pending = self.pending, None
                raise exc


_INTERRUPTS = _Interrupts()


def _show_default(args: argparse.Namespace) -> bool:
    import os

    if args.show is not None:
        return args.show
    return bool(os.environ.get("DISPLAY")) and not args.jsonl


def _detector_options(args: argparse.Namespace, image_source: bool) -> dict:
    """The AUDetector keywords for --mode/--detect-every/--calibrate-neutral (defaults: AUDetector's)."""
    wanted = {"mode": ("image" if image_source else "video") if args.mode == "auto" else args.mode}
    if args.detect_every is not None:
        wanted["detect_every"] = args.detect_every
    if args.calibrate_neutral is not None:
        wanted["calibrate_neutral_s"] = args.calibrate_neutral
    return wanted


def run(args: argparse.Namespace) -> int:
    from runtime.detector import AUDetector
    from runtime.engines import default_engine_choice
    from runtime.outputs import build_outputs
    from runtime.outputs.status import StatusLine
    from runtime.sources import is_image_source

    source: str | int = int(args.source) if str(args.source).isdigit() else args.source
    image_source = is_image_source(source)
    status = StatusLine(enabled=not args.quiet)
    engine = args.engine
    if str(engine) == "default":  # say which shipped engine this machine runs
        choice = default_engine_choice()
        status.note(choice.describe())
        engine = choice.path
    det = AUDetector(engine, max_faces=args.max_faces, face_model=args.face_model,
                     detector=args.detector, smooth=not args.no_smooth, threads=args.threads,
                     **_detector_options(args, image_source))
    frames = with_face = beyond = beyond_max = 0
    interrupted: BaseException | None = None
    finished = False
    outputs = None
    stream = det.stream_frames(source, max_frames=args.max_frames)
    try:
        for result, image in stream:
            if outputs is None:  # engine and source are open (the first frame came): now the outputs
                outputs = build_outputs(aus=det.output_aus, jsonl=args.jsonl, csv=args.csv, record=args.record,
                                        show=_show_default(args), publish=args.publish,
                                        allow_remote=args.allow_remote, csv_format=args.csv_format,
                                        image_source=image_source, intensity_aus=det.intensity_aus)
            with _INTERRUPTS.atomic():
                outputs.write(result, image)
            frames += 1
            with_face += bool(result.faces)
            extra = result.faces_beyond_max
            beyond, beyond_max = beyond + extra, max(beyond_max, extra)
            status.update(result)
            if outputs.quit_requested:
                break
        finished = True
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
        interrupted, finished = e, True
    finally:
        # A second signal must not cut the closing short (the recording would lose its index).
        old = _ignore_signals()
        try:
            stream.close()
            if outputs is not None:
                outputs.close()
            det.close()
        finally:
            _restore_signals(old)
    if finished:  # after an error the one-line message is all that is printed
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(det.skipped.items())) or "none"
        line = f"{frames} frames, {with_face} with a face, skipped: {skipped}"
        line += (f", {beyond} faces beyond --max-faces {args.max_faces} not processed (at most {beyond_max} in "
                 f"a frame; raise --max-faces)" if beyond else f", faces beyond --max-faces {args.max_faces}: 0")
        if interrupted is not None:
            line += " (terminated)" if isinstance(interrupted, Terminated) else " (interrupted)"
        status.finish(line)
    if isinstance(interrupted, Terminated):
        return 143
    return 130 if interrupted is not None else 0


def _ignore_signals() -> dict:
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread (run() called from a library thread)
            pass
    return old


def _restore_signals(old: dict) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    import os

    # FFmpeg's own log lines ("moov atom not found") would come before our one-line error.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    from runtime.errors import AUEdgeError

    parser = build_parser()
    if prog:
        parser.prog = prog
    args = parser.parse_args(argv)
    try:
        import cv2  # noqa: F401 - the runtime's one hard dependency beyond numpy
    except ImportError:
        print(f"au-edge: error: {OPENCV_HINT}", file=sys.stderr)
        return 2
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _INTERRUPTS.handler)
        except ValueError:  # not the main thread
            pass
    try:
        return run(args)
    except AUEdgeError as e:
        print(f"au-edge: error: {e}", file=sys.stderr)
        return e.exit_code
    except ValueError as e:  # bad option values from the constructors
        print(f"au-edge: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        return 143
    except KeyboardInterrupt:
        return 130
    finally:
        _restore_signals(previous)


if __name__ == "__main__":
    sys.exit(main())
