"""``python -m runtime.camera``: live AU detection from a camera, file, folder, URL or GStreamer pipeline.

Exit codes: 0 at the end of a finite source, 2 with one line for a bad engine, card, source or
option, 130 after Ctrl-C (outputs are closed cleanly first).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EPILOG = """examples:
  python -m runtime.camera --engine au.tflite --source 0 --show
  python -m runtime.camera --engine au.onnx --source clip.mp4 --no-show --jsonl - --csv out.csv
  python -m runtime.camera --engine au.trt --source "gst:nvarguscamerasrc sensor-id=0 ! \\
      video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! \\
      video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.camera", description=__doc__.splitlines()[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", default="default", help="engine file (.onnx, .tflite, .trt/.engine/.plan) "
                   "with its <engine>.json card beside it, or 'default' (the shipped model)")
    p.add_argument("--source", default="0", help="camera index, video file, image file, image folder, "
                   "rtsp://, http(s):// URL, or gst:<pipeline> (default: 0)")
    p.add_argument("--jsonl", metavar="PATH|-", help="one JSON object per frame ('-' = stdout)")
    p.add_argument("--csv", metavar="PATH", help="OpenFace-style CSV, one row per face per frame")
    p.add_argument("--record", metavar="OUT.mp4", help="annotated video: boxes, 5 points, AU bars")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--show", dest="show", action="store_true", default=None, help="on-screen overlay")
    show.add_argument("--no-show", dest="show", action="store_false", help="no window (default off a display)")
    p.add_argument("--publish", metavar="udp://HOST:PORT", help="UDP JSON datagram per frame (127.0.0.1 only "
                   "unless --allow-remote)")
    p.add_argument("--allow-remote", action="store_true", help="let --publish send to a non-loopback host")
    p.add_argument("--max-faces", type=int, default=4, help="faces tracked at once (default 4)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--face-model", metavar="PATH", help="folder of face .tflite files or a face_landmarker "
                   ".task bundle (default: $AU_FACE_MODEL, then the user cache, then PyPI)")
    p.add_argument("--detector", choices=("full", "short"), default="full",
                   help="BlazeFace full range (across a room, default) or short range (close-ups)")
    p.add_argument("--no-smooth", action="store_true", help="raw per-frame probabilities, no hysteresis")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    p.add_argument("--quiet", action="store_true", help="no status line")
    return p


def _show_default(args: argparse.Namespace) -> bool:
    import os

    if args.show is not None:
        return args.show
    return bool(os.environ.get("DISPLAY")) and not args.jsonl


def run(args: argparse.Namespace) -> int:
    from runtime.detector import AUDetector
    from runtime.outputs import build_outputs
    from runtime.outputs.status import StatusLine

    source: str | int = int(args.source) if str(args.source).isdigit() else args.source
    det = AUDetector(args.engine, max_faces=args.max_faces, face_model=args.face_model,
                     detector=args.detector, smooth=not args.no_smooth, threads=args.threads)
    outputs = build_outputs(aus=det.aus, jsonl=args.jsonl, csv=args.csv, record=args.record,
                            show=_show_default(args), publish=args.publish, allow_remote=args.allow_remote)
    status = StatusLine(enabled=not args.quiet)
    frames = with_face = 0
    interrupted = finished = False
    try:
        for result, image in det.stream_frames(source, max_frames=args.max_frames):
            outputs.write(result, image)
            frames += 1
            with_face += bool(result.faces)
            status.update(result)
            if outputs.quit_requested:
                break
        finished = True
    except KeyboardInterrupt:
        interrupted = finished = True
    finally:
        outputs.close()
        det.close()
    if finished:  # after an error the one-line message is all that is printed
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(det.skipped.items())) or "none"
        status.finish(f"{frames} frames, {with_face} with a face, skipped: {skipped}"
                      + (" (interrupted)" if interrupted else ""))
    return 130 if interrupted else 0


def main(argv: Sequence[str] | None = None) -> int:
    import os

    # FFmpeg's own log lines ("moov atom not found") would come before our one-line error.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    from runtime.errors import AUEdgeError

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AUEdgeError as e:
        print(f"au-edge: error: {e}", file=sys.stderr)
        return e.exit_code
    except ValueError as e:  # bad option values from the constructors
        print(f"au-edge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
