"""``DIR/manifest.csv``: one row per input, what makes a batch resumable.

Columns: ``input, status, frames, faces, fps, error`` (CONTRACTS), then ``seconds, jsonl, csv,
fingerprint, settings, finished``. ``status`` is ``done`` or ``failed``; ``frames`` the frames written
(JSONL lines), ``faces`` the faces in them (default CSV rows with a face), ``fps`` frames per second of
the input's own run, ``error`` the one line of a failed input. ``fingerprint`` is the input's size and
mtime (a folder: a hash of its files' names, sizes and mtimes), ``settings`` a hash of the options that
change the results (engine file, face model, --max-faces, --csv-format, ...).

An input is skipped when its row is ``done`` with the same fingerprint and settings and both its
output files are still there; everything else runs again. The file is rewritten whole after every
input, atomically (``runtime.atomic``), so a killed batch leaves the rows of every input it finished.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from runtime.atomic import atomic_write
from runtime.errors import AUEdgeError
from runtime.shown import quoted

NAME = "manifest.csv"
DONE, FAILED = "done", "failed"


@dataclass
class Row:
    """One input's result (``fatal``: the run cannot go on, e.g. the engine does not load; not a column)."""

    input: str
    status: str
    frames: int = 0
    faces: int = 0
    fps: float = 0.0
    error: str = ""
    seconds: float = 0.0
    jsonl: str = ""
    csv: str = ""
    fingerprint: str = ""
    settings: str = ""
    finished: str = ""
    fatal: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


COLUMNS = tuple(f.name for f in fields(Row) if f.name != "fatal")
_INTS, _FLOATS = ("frames", "faces"), ("fps", "seconds")


def fingerprint(path: str | os.PathLike, kind: str) -> str:
    """What tells a changed input from the one processed: size + mtime (ns) of a file; for a folder a hash
    of every visible file's name, size and mtime; "" for a missing one (never up to date)."""
    try:
        if kind == "folder":
            h = hashlib.sha256()
            for e in sorted(os.scandir(path), key=lambda e: e.name):
                if not e.name.startswith(".") and e.is_file():
                    st = e.stat()
                    h.update(f"{e.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
            return "dir-" + h.hexdigest()[:16]
        st = os.stat(path)
        return f"{st.st_size}-{st.st_mtime_ns}"
    except OSError:
        return ""


class Manifest:
    """The rows of ``DIR/manifest.csv`` by input path (rows of inputs not in this run are kept)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / NAME
        self.rows: dict[str, Row] = {}

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Manifest:
        """The manifest in ``folder`` (empty when there is none).

        Raises:
            AUEdgeError: a file that is not a batch manifest (one line: move it away or use another --out).
        """
        m = cls(folder)
        if not m.path.exists():
            return m
        fix = "move it away to start afresh, or choose another --out"
        try:
            with open(m.path, newline="", encoding="utf-8", errors="surrogateescape") as f:
                reader = csv.DictReader(f)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise AUEdgeError(f"{quoted(m.path)} is not an au-edge batch manifest (no column "
                                      f"{', '.join(missing)}); {fix}")
                for n, rec in enumerate(reader, 2):
                    m.rows[rec["input"]] = _row(rec, m.path, n, fix)
        except (OSError, csv.Error) as e:
            raise AUEdgeError(f"cannot read {quoted(m.path)}: {e}; {fix}") from e
        return m

    def stems(self) -> dict[str, str]:
        """Input path -> the stem of its recorded outputs."""
        return {k: Path(r.jsonl).stem for k, r in self.rows.items() if r.jsonl}

    def is_current(self, input_path: str, fp: str, settings: str) -> bool:
        """Done before with this fingerprint and these settings, and both outputs still there."""
        r = self.rows.get(input_path)
        return (r is not None and r.status == DONE and bool(fp) and r.fingerprint == fp and r.settings == settings
                and all(name and (self.folder / name).is_file() for name in (r.jsonl, r.csv)))

    def record(self, row: Row) -> None:
        """Add or replace ``row`` and rewrite the file (atomic: whole or not at all; rows sorted by input)."""
        self.rows[row.input] = row
        self.save()

    def save(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for _, r in sorted(self.rows.items()):  # by input path: the same order on every run and runner
            d = r.as_dict()
            d["fps"], d["seconds"] = f"{r.fps:.1f}", f"{r.seconds:.2f}"
            d["error"] = " ".join(str(r.error).split())
            w.writerow(d)
        with atomic_write(self.path, "batch manifest") as f:  # paths of any bytes come back as they went in
            f.write(buf.getvalue().encode("utf-8", "surrogateescape"))


def _row(rec: dict, path: Path, line: int, fix: str) -> Row:
    try:
        values = {c: rec[c] or "" for c in COLUMNS}
        for c in _INTS:
            values[c] = int(values[c] or 0)
        for c in _FLOATS:
            values[c] = float(values[c] or 0.0)
    except (TypeError, ValueError) as e:
        raise AUEdgeError(f"{quoted(path)} line {line} is not a manifest row ({e}); {fix}") from e
    return Row(**values)
