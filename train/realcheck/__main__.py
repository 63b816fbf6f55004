"""``python -m train.realcheck``: the real-face check next to MediaPipe (see ``train.realcheck``)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from runtime.cli import threads_option
from train.cli import OneLineParser, guarded

USAGE_DATA = "set --data or AU_DATA_DIR to the open data folder (london/, canada/, media/, models/)"


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m train.realcheck",
                                description="AU12, false positives and clip agreement on held-out real faces, "
                                            "next to MediaPipe blendshapes.")
    p.add_argument("--engine", required=True, help="engine file with its card (.onnx, .tflite, .trt) or 'default'")
    p.add_argument("--data", default=None, help="open data folder (default: $AU_DATA_DIR)")
    p.add_argument("--out", default="out/realcheck", help="output folder (default: out/realcheck)")
    p.add_argument("--peer", choices=("mediapipe", "none"), default="mediapipe")
    p.add_argument("--limit", type=int, default=None,
                   help="at most N photos per group and N clip frames (a quick look; not the real check)")
    p.add_argument("--face-model", default=None, help="face models for the runtime (as runtime.camera)")
    p.add_argument("--threads", type=threads_option(), default=None,
                   help="CPU threads for inference (1 to 2 per CPU core)")
    p.add_argument("--record", default=None, metavar="EXPORT_DIR",
                   help="count this read in the cards of the engines in EXPORT_DIR (card 'heldout'; before install)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = _parser()
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit must be >= 1, got {args.limit}")
    return guarded(_run, args, "python -m train.realcheck " + " ".join(argv))


def _run(args: argparse.Namespace, command: str) -> int:
    from train.realcheck.check import run_check

    data = args.data or os.environ.get("AU_DATA_DIR")
    if not data or not Path(data).is_dir():
        raise FileNotFoundError(f"open data folder {data!r} not found: {USAGE_DATA}")
    if args.record:  # fail before reading the held-out faces, not after
        from train.realcheck.record import engine_cards

        if args.limit is not None:
            raise ValueError(f"--record counts a read of the held-out set; a --limit {args.limit} run is a quick look, "
                             "not one: drop --limit or --record")
        engine_cards(Path(args.record))
    report = run_check(args.engine, Path(data), Path(args.out), args.peer, args.limit, args.face_model,
                       args.threads, command=command)
    if args.record and report:
        from train.realcheck.record import record_read

        reads = record_read(report, _engine_file(args.engine), Path(args.record))
        print(f"realcheck: the held-out set read {reads} time(s) for the model in {args.record} (its cards' heldout)",
              file=sys.stderr)
    out = Path(args.out)
    print((out / "realcheck.md").read_text(), end="")
    print(f"realcheck: wrote {out / 'realcheck.json'}, {out / 'realcheck.md'}, {out / 'timeline.png'}",
          file=sys.stderr)
    return 0 if report else 1


def _engine_file(engine: str) -> Path:
    """The file an ``--engine`` names ('default': the runtime's pick)."""
    if engine == "default":
        from runtime.engines import default_engine_choice

        return Path(default_engine_choice().path)
    return Path(engine)


if __name__ == "__main__":
    sys.exit(main())
