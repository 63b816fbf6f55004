"""The per-input function every runner calls (a local worker process or a Ray task): one input through
the camera's own run loop (``runtime.loop.run``) into ``DIR/<stem>.jsonl`` and ``DIR/<stem>.csv``.

Each process keeps one ``AUDetector`` for all its inputs (``stream_frames`` resets the tracks per
source), single-threaded by default (``threads=1``, OpenCV's pool too), so N workers use N cores
and do not oversubscribe them. The outputs are written as the camera writes them: under partial
names, renamed into place together only when the input ended well; a failed input leaves no file.
Every fault of an input becomes its row's one-line ``error`` and the batch goes on; only a
detector that cannot be built (a bad engine or face model: every input would fail the same way) is
``fatal``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.batch.manifest import DONE, FAILED, Row
from runtime.errors import AUEdgeError
from runtime.shown import quoted

if TYPE_CHECKING:
    from runtime.detector import AUDetector

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Settings:
    """The detector and output options of a batch (the same for every input).

    ``engine`` is a resolved engine path (``"default"`` is resolved once by the CLI, so every worker runs
    the same file); ``threads`` is per worker.
    """

    engine: str
    face_model: str | None = None
    max_faces: int = 4
    max_frames: int | None = None
    detect_every: int | None = None
    mesh_every: int = 1
    detector: str = "full"
    smooth: bool = True
    mode: str | None = None
    calibrate_neutral: float | None = None
    person_baseline: bool = True
    csv_format: str = "default"
    threads: int = 1

    def key(self) -> str:
        """A hash of everything that changes the results (not ``threads``), the engine file's size and
        mtime included: an input done under other settings runs again."""
        d = asdict(self)
        d.pop("threads")
        if d["mesh_every"] == 1:  # the mesh on every frame, as before the option: earlier outputs stay done
            d.pop("mesh_every")
        with contextlib.suppress(OSError):
            st = os.stat(self.engine)
            d["engine_file"] = [st.st_size, st.st_mtime_ns]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One input to run: ``path`` (absolute), ``kind`` (``inputs.Input``), outputs ``out/stem.*``."""

    path: str
    kind: str
    stem: str
    out: str
    fingerprint: str
    problem: str = ""  # why a "missing" input cannot run (inputs.Input.problem)

    @property
    def jsonl(self) -> Path:
        return Path(self.out) / f"{self.stem}.jsonl"

    @property
    def csv(self) -> Path:
        return Path(self.out) / f"{self.stem}.csv"


_DETECTOR: tuple[Settings, AUDetector] | None = None  # this process's detector, kept across inputs


def detector(settings: Settings) -> AUDetector:
    """This process's detector for ``settings`` (built on first use, single-threaded as asked).

    Raises:
        AUEdgeError, ValueError: the engine, its card or the face model cannot be loaded.
    """
    global _DETECTOR
    if _DETECTOR is not None and _DETECTOR[0] == settings:
        return _DETECTOR[1]
    if _DETECTOR is not None:
        _DETECTOR[1].close()
        _DETECTOR = None
    from runtime.detector import AUDetector

    # OpenCV's own pool (resize, decode): one worker, its cores
    wanted: dict = {"mode": settings.mode, "opencv_threads": settings.threads, "mesh_every": settings.mesh_every}
    if settings.detect_every is not None:
        wanted["detect_every"] = settings.detect_every
    if settings.calibrate_neutral is not None:
        wanted["calibrate_neutral_s"] = settings.calibrate_neutral
    if not settings.person_baseline:
        wanted["person_baseline"] = False
    det = AUDetector(settings.engine, max_faces=settings.max_faces, face_model=settings.face_model,
                     detector=settings.detector, smooth=settings.smooth, threads=settings.threads, **wanted)
    _DETECTOR = (settings, det)
    return det


def run_input(job: Job, settings: Settings) -> Row:
    """Run one input; never raises for a fault of the input (it is the row's ``error``).

    Returns:
        The manifest row: ``done`` with frames, faces and fps, or ``failed`` with one line (``fatal`` when
        the detector itself cannot be built).
    """
    t0 = time.perf_counter()
    row = failed(job, settings, "")
    if job.kind == "missing":
        row.error = job.problem or f"not found: {quoted(job.path)}; check the path"
        return _finish(row, t0)
    try:
        det = detector(settings)
    except Exception as e:  # noqa: BLE001 - a bad engine/face model, or a bug: every input would fail alike
        row.error, row.fatal = _line(e), True
        return _finish(row, t0)
    t_run = time.perf_counter()  # fps without the detector's first build
    try:
        stats = _run(det, job, settings)
    except Exception as e:  # noqa: BLE001 - this input's fault (or a library's on it): recorded, the batch goes on
        row.error = _line(e)
    else:
        if stats.interrupted is not None:
            row.error = "interrupted"
        elif not stats.frames:
            row.error = f"{quoted(job.path)} gave no frames; nothing was written"
        else:
            row.status, row.frames, row.faces = DONE, stats.frames, stats.faces
    return _finish(row, t0, t_run)


def failed(job: Job, settings: Settings, error: str) -> Row:
    """A ``failed`` row for ``job`` (also what a runner records when the process running it died)."""
    return _finish(Row(job.path, FAILED, error=error, jsonl=job.jsonl.name, csv=job.csv.name,
                       fingerprint=job.fingerprint, settings=settings.key()), time.perf_counter())


def _run(det: AUDetector, job: Job, settings: Settings):
    from runtime.loop import run as run_loop
    from runtime.outputs import build_outputs

    for target in (job.jsonl, job.csv):
        remove_stale_partials(target)
    return run_loop(det, job.path, lambda src: build_outputs(
        aus=det.output_aus, jsonl=str(job.jsonl), csv=str(job.csv), csv_format=settings.csv_format,
        image_source=src.is_image, intensity_aus=det.intensity_aus), max_frames=settings.max_frames)


def remove_stale_partials(target: Path) -> None:
    """Remove the partial files of ``target`` that killed runs left (no process holds their lock)."""
    from runtime.atomic import siblings

    for stale in siblings(target)[1]:
        with contextlib.suppress(OSError):
            os.unlink(stale)


def _line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, (AUEdgeError, ValueError)) and text else f"{type(e).__name__}: {text}"


def _finish(row: Row, t0: float, t_run: float | None = None) -> Row:
    now = time.perf_counter()
    row.seconds = now - t0
    ran = now - (t_run if t_run is not None else t0)
    row.fps = row.frames / ran if row.frames and ran > 0 else 0.0
    row.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return row
