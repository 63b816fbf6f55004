"""``python -m runtime.camera`` / ``au-edge camera``: AU detection from a camera, file, folder, URL or gst: pipeline.

Exit codes: 0 at the end of a finite source; 2 with one line for a bad engine, card, source or option;
130 after Ctrl-C and 143 after SIGTERM (how systemd and docker stop a process): in both cases the
outputs are closed first (the recording playable, the JSONL complete) and the summary is printed.
Outputs are opened only once the engine and the source have opened, and written under a partial
name renamed into place when closed, so a failed start never touches an existing file.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runtime.cli import (
    CALIBRATE_NEUTRAL_S,
    DETECT_EVERY,
    MAX_FACES,
    MAX_FRAMES,
    MESH_EVERY,
    OneLineParser,
    run_command,
    threads_option,
)
from runtime.errors import AUEdgeError

EPILOG = """examples:
  au-edge camera --engine au.tflite --source 0 --show
  python -m runtime.camera --engine au.onnx --source clip.mp4 --no-show --jsonl - --csv out.csv
  python -m runtime.camera --engine au.onnx --source photos/ --csv au.csv --csv-format openface
  au-edge camera --source photos/ --jsonl au.jsonl --csv au.csv --save-annotated annotated/
  python -m runtime.camera --engine au.trt --source "gst:nvarguscamerasrc sensor-id=0 ! \\
      video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! \\
      video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
"""
OPENCV_HINT = ("OpenCV (cv2) is not installed: pip install opencv-python-headless (desktop, Raspberry Pi); on a "
               "Jetson keep JetPack's OpenCV with GStreamer (sudo apt install python3-opencv) and install "
               "au-edge[runtime-core]")
MODES = ("auto", "image", "video")


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
    p.add_argument("--openface-csv", metavar="PATH", help="an OpenFace 2 CSV as well (e.g. beside a default --csv)")
    p.add_argument("--record", metavar="OUT.mp4", help="annotated video: boxes, 5 points, AU bars")
    p.add_argument("--save-annotated", metavar="DIR", help="one annotated image per photo, named as the photo "
                   "(image files and folders; videos: use --record)")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--show", dest="show", action="store_true", default=None, help="on-screen overlay")
    show.add_argument("--no-show", dest="show", action="store_false", help="no window (default off a display)")
    p.add_argument("--publish", metavar="udp://HOST:PORT", help="UDP JSON datagram per frame (127.0.0.1 only "
                   "unless --allow-remote)")
    p.add_argument("--allow-remote", action="store_true", help="let --publish send to a non-loopback host")
    p.add_argument("--rosbag", metavar="DIR", help="ROS 2 bag (rosbag2, MCAP) of the REP-155 topics "
                   "/humans/faces/...; DIR must not exist (needs au-edge[ros]; see docs/ros2.md)")
    p.add_argument("--ros-frame-id", default="camera", metavar="ID", help="header frame_id of the --rosbag "
                   "messages (default: camera)")
    p.add_argument("--max-faces", type=MAX_FACES, default=None, help="faces processed per frame (default: "
                   "every face in image mode, 4 in video mode)")
    p.add_argument("--max-frames", type=MAX_FRAMES, default=None, help="stop after N frames (N >= 1)")
    p.add_argument("--detect-every", type=DETECT_EVERY, default=None, metavar="N",
                   help="run the face detector every N frames while fewer than --max-faces are tracked "
                   "(default 10; 0: only while a face is missing)")
    p.add_argument("--mesh-every", type=MESH_EVERY, default=None, metavar="N",
                   help="video: the face mesh at least every N frames on a well-tracked face, optical flow "
                   "following the head between (default 1: every frame; 3: ~15 %% less per frame on the clip, "
                   "docs/face_stage.md)")
    p.add_argument("--calibrate-neutral", type=CALIBRATE_NEUTRAL_S, default=None, metavar="SECONDS",
                   help="instead of the running per-person baseline, subtract each track's median over its "
                   "first SECONDS, which must show a neutral face (off by default)")
    p.add_argument("--no-person-baseline", action="store_true", help="video: no per-person baseline (on by "
                   "default: each track's resting AU level, a running low percentile, is kept below the "
                   "decision; docs/person_baseline.md); images are never changed")
    p.add_argument("--face-model", metavar="PATH", help="folder of face .tflite files or a face_landmarker "
                   ".task bundle (default: $AU_FACE_MODEL, then the user cache, then PyPI)")
    p.add_argument("--detector", choices=("full", "short"), default="full",
                   help="BlazeFace full range (across a room, default) or short range (close-ups)")
    p.add_argument("--no-smooth", action="store_true", help="raw per-frame probabilities, no hysteresis")
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--quiet", action="store_true", help="no status line")
    return p


def _show_default(args: argparse.Namespace) -> bool:
    import os

    if args.show is not None:
        return args.show
    return bool(os.environ.get("DISPLAY")) and not args.jsonl


def _detector_options(args: argparse.Namespace) -> dict:
    """The AUDetector keywords for --mode/--detect-every/--mesh-every/--calibrate-neutral/--no-person-baseline
    (defaults: AUDetector's).

    ``--mode auto`` is ``mode=None``: the detector decides from the source (``detector.running_mode``).
    """
    wanted = {"mode": None if args.mode == "auto" else args.mode}
    if args.detect_every is not None:
        wanted["detect_every"] = args.detect_every
    if args.mesh_every is not None:
        wanted["mesh_every"] = args.mesh_every
    if args.calibrate_neutral is not None:
        wanted["calibrate_neutral_s"] = args.calibrate_neutral
    if args.no_person_baseline:
        wanted["person_baseline"] = False
    return wanted


def max_faces(args: argparse.Namespace) -> int | None:
    """--max-faces, else the default of the mode the source will run in (no cap for photos)."""
    from runtime.detector import default_max_faces

    if args.max_faces is not None:
        return args.max_faces
    return default_max_faces(args.source, None if args.mode == "auto" else args.mode)


def run(args: argparse.Namespace) -> int:
    """The command's body (inside ``runtime.cli.guarded``): its exit code."""
    try:
        import cv2  # noqa: F401 - the runtime's one hard dependency beyond numpy
    except ImportError:
        raise AUEdgeError(OPENCV_HINT) from None
    from runtime.detector import AUDetector
    from runtime.engines import default_engine_choice
    from runtime.loop import run as run_loop
    from runtime.outputs import build_outputs
    from runtime.outputs.status import StatusLine

    status = StatusLine(enabled=not args.quiet)
    engine = args.engine
    if str(engine) == "default":  # say which shipped engine this machine runs
        choice = default_engine_choice(threads=args.threads)
        status.note(choice.describe())
        engine = choice.path
    cap = max_faces(args)
    det = AUDetector(engine, max_faces=cap, face_model=args.face_model,
                     detector=args.detector, smooth=not args.no_smooth, threads=args.threads,
                     **_detector_options(args))
    try:
        stats = run_loop(det, args.source, lambda src: build_outputs(
            aus=det.output_aus, jsonl=args.jsonl, csv=args.csv, record=args.record, show=_show_default(args),
            publish=args.publish, allow_remote=args.allow_remote, csv_format=args.csv_format,
            openface_csv=args.openface_csv,
            image_source=src.is_image, intensity_aus=det.intensity_aus, rosbag=args.rosbag,
            ros_frame_id=args.ros_frame_id, source=args.source, image_mode=det.running_mode == "image",
            save_annotated=args.save_annotated), max_frames=args.max_frames, status=status)
    finally:
        det.close()
    status.finish(stats.summary(det.skipped, cap))
    return stats.exit_code


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_command(build_parser(), run, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
