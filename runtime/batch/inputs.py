"""What ``au-edge batch INPUT...`` names, as a list of media inputs with a unique output stem each.

- a video file, or an image file: one input;
- a folder of images (no videos and no subfolders in it): one input, read as the camera reads an image
  folder (sorted by name, image mode);
- any other folder is expanded: each of its video and image files is one input, each subfolder is taken
  the same way (an image subfolder one input, a subfolder with videos expanded again); other files
  (notes, subtitles) and hidden entries are left out and counted;
- a text file (``.txt``, ``.lst``, ``.list``): one path per line, relative paths from the list's own
  folder, blank lines and ``#`` comments skipped; each line taken as above. A listed path that does
  not exist becomes an input that fails (one line in the manifest), so one typo never stops a list.

The same file named twice is one input. Outputs are ``DIR/<stem>.jsonl`` and ``.csv``: the file's stem
(a folder's name); when two inputs share a stem (``a/clip.mp4``, ``b/clip.mp4``), or a stem is taken
by another input already in the manifest, ``<stem>-<8 hex of the input's path>`` (the same on every
run). A stem recorded in the manifest for an input stays that input's stem.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import SourceError
from runtime.shown import quoted, shown_name
from runtime.sources import IMAGE_SUFFIXES, URL_PREFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".mxf", ".y4m"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
RESERVED_STEMS = frozenset({"manifest"})  # DIR/manifest.csv is the batch's own file
_UNSAFE = re.compile(r"[^\w.+=@-]+")


@dataclass(frozen=True)
class Input:
    """One media input: ``path`` absolute; ``kind`` video | image | folder | missing; ``problem`` is the one
    line of a missing one (its row's error, naming the list and line that named it)."""

    path: str
    kind: str
    problem: str = ""

    @property
    def base_stem(self) -> str:
        p = Path(self.path)
        stem = p.name if self.kind == "folder" else p.stem
        stem = _UNSAFE.sub("_", shown_name(stem)).strip("._") or "input"
        return f"{stem}_" if stem.lower() in RESERVED_STEMS else stem


@dataclass
class Expansion:
    """The inputs found, in order, and how many files inside expanded folders were not media."""

    inputs: list[Input]
    ignored: int = 0


def expand(args: Iterable[str | os.PathLike]) -> Expansion:
    """The inputs named by the command-line arguments (see the module docstring).

    Raises:
        SourceError: an argument that does not exist, a camera or URL, or a list that cannot be read
            (one line naming it and the fix).
    """
    out = Expansion([])
    seen: set[str] = set()
    for arg in args:
        text = os.fspath(arg)
        if text.lower().startswith(URL_PREFIXES) or text.startswith("gst:") or text.strip().isdigit():
            raise SourceError(f"batch input {quoted(text)} is a stream or camera; batch takes files, folders and "
                              "lists of paths (use au-edge camera --source for live sources)")
        path = Path(text).expanduser()
        if not path.exists():
            raise SourceError(f"batch input not found: {quoted(text)}; check the path")
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for line_no, listed in _read_list(path):
                _add(out, seen, listed, f"listed in {quoted(path)} line {line_no}")
        else:
            _add(out, seen, path, "")
    return out


def _read_list(path: Path) -> list[tuple[int, Path]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot read the list {quoted(path)}: {e}; give a UTF-8 text file, one path a line") from e
    entries = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        entries.append((no, p if p.is_absolute() else path.parent / p))
    return entries


def _add(out: Expansion, seen: set[str], path: Path, where: str) -> None:
    """Append ``path``'s inputs to ``out`` (a folder expanded), each real path once."""
    if not path.exists():
        _append(out, seen, Input(os.path.abspath(path), "missing",
                                 f"not found: {quoted(path)} ({where}); check the path"))
        return
    if path.is_dir():
        _add_folder(out, seen, path)
        return
    suffix = path.suffix.lower()
    if where and suffix in LIST_SUFFIXES:
        _append(out, seen, Input(os.path.abspath(path), "missing", f"{quoted(path)} is a list inside a list "
                                 f"({where}); lists are read only from the command line"))
        return
    _append(out, seen, Input(os.path.abspath(path), "image" if suffix in IMAGE_SUFFIXES else "video"))


def _add_folder(out: Expansion, seen: set[str], folder: Path) -> None:
    entries = _visible(folder)
    if _is_image_folder(entries):
        _append(out, seen, Input(os.path.abspath(folder), "folder"))
        return
    for entry in entries:
        suffix = entry.suffix.lower()
        if entry.is_dir():
            _add_folder(out, seen, entry)
        elif suffix in VIDEO_SUFFIXES or suffix in IMAGE_SUFFIXES:
            _append(out, seen, Input(os.path.abspath(entry), "image" if suffix in IMAGE_SUFFIXES else "video"))
        else:
            out.ignored += 1


def _visible(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise SourceError(f"cannot list the folder {quoted(folder)}: {e}; check its permissions") from e


def _is_image_folder(entries: list[Path]) -> bool:
    """Images, and neither videos nor subfolders: one image sequence (else the folder is expanded)."""
    return (any(e.suffix.lower() in IMAGE_SUFFIXES and e.is_file() for e in entries)
            and not any(e.is_dir() or e.suffix.lower() in VIDEO_SUFFIXES for e in entries))


def _append(out: Expansion, seen: set[str], item: Input) -> None:
    key = os.path.realpath(item.path)
    if key not in seen:
        seen.add(key)
        out.inputs.append(item)


def assign_stems(inputs: Iterable[Input], recorded: Mapping[str, str]) -> dict[str, str]:
    """A unique output stem for each input's path (case-insensitively unique, for every file system).

    Args:
        inputs: this run's inputs.
        recorded: input path -> stem from the manifest (kept, and never given to another input).
    """
    inputs = list(inputs)
    taken = {stem.casefold(): path for path, stem in recorded.items()}
    counts: dict[str, int] = {}
    for item in inputs:
        counts[item.base_stem.casefold()] = counts.get(item.base_stem.casefold(), 0) + 1
    stems: dict[str, str] = {}
    for item in inputs:
        if item.path in recorded:
            stems[item.path] = recorded[item.path]
            continue
        stem = item.base_stem
        owner = taken.get(stem.casefold())
        if counts[stem.casefold()] > 1 or (owner is not None and owner != item.path):
            stem = f"{stem}-{hashlib.sha256(item.path.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
        while stem.casefold() in taken and taken[stem.casefold()] != item.path:
            stem += "_"
        taken[stem.casefold()] = item.path
        stems[item.path] = stem
    return stems
