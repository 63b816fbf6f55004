"""The one run loop of the command lines (``au-edge camera``, ``python -m demo``): a source through the
detector into outputs, ending the same way after the last frame, a closed window, Ctrl-C or SIGTERM.

- Outputs are opened only once the engine and the source have opened and the first frame came
  (``open_outputs(source)``), so a failed start never touches an existing file.
- Each frame goes to every output inside ``INTERRUPTS.atomic()``: a signal waits until the JSONL
  line, the CSV rows and the recorded frame are all written, so the files agree frame for frame.
- The outputs are committed (the recording's index written, the partial files renamed into place) only
  when the run ends well: the source's end, a closed window, Ctrl-C or SIGTERM; all of them or none
  (``MultiOutput.close``). Any other end (a write error, a failing source or stage) removes the partial
  files and leaves every existing output as it was. Closing is shielded from a second signal.
- Partial files that killed runs left beside the targets are named in the summary (``RunStats.stale``).
- Files of an image folder that cannot be read go to the outputs (``write_skipped``: a JSONL record) in
  their place in the folder's order, and are named in the summary.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from runtime.detector import AUDetector
from runtime.errors import OutputError
from runtime.interrupts import INTERRUPTS, Terminated, exit_code, ignored
from runtime.outputs import Output, StatusLine
from runtime.results import FrameResult, SkippedFile
from runtime.shown import shown_name
from runtime.sources import FrameSource, open_source

OpenOutputs = Callable[[FrameSource], Output]
NAMES_SHOWN = 5  # skipped files named per reason in the summary line


@dataclass
class RunStats:
    """What a run saw: frames, frames with a face, faces, faces beyond ``max_faces``, and how it ended."""

    source: str = ""  # the source's name (a file name, ``camera0``, a URL's last part)
    frames: int = 0
    with_face: int = 0
    faces: int = 0  # faces processed, summed over frames (one CSV row each)
    beyond: int = 0  # faces found but not processed (over max_faces), summed over frames
    beyond_max: int = 0  # the most in one frame
    interrupted: KeyboardInterrupt | None = None  # Ctrl-C, or SIGTERM (Terminated)
    skipped_files: list[SkippedFile] = field(default_factory=list)  # written to the outputs, in order
    stale: list[str] = field(default_factory=list)  # partial files of killed runs beside the outputs

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.with_face += bool(result.faces)
        self.faces += len(result.faces)
        beyond = result.faces_beyond_max or 0  # None: no cap applied
        self.beyond += beyond
        self.beyond_max = max(self.beyond_max, beyond)

    @property
    def exit_code(self) -> int:
        """0, 130 after Ctrl-C, 143 after SIGTERM."""
        return exit_code(self.interrupted)

    def summary(self, skipped: Mapping[str, int], max_faces: int | None) -> str:
        """The closing line: frames, faces, every skipped frame by reason (skipped files by name), faces
        over the cap (``max_faces`` None: no cap), how it ended."""
        counts = ", ".join(f"{k}={v}{self._names(k)}" for k, v in sorted(skipped.items())) or "none"
        line = f"{self.frames} frames, {self.with_face} with a face, skipped: {counts}"
        if max_faces is None:
            line += ", no face cap"
        elif self.beyond:
            line += (f", {self.beyond} faces beyond --max-faces {max_faces} not processed (at most "
                     f"{self.beyond_max} in a frame; raise --max-faces)")
        else:
            line += f", faces beyond --max-faces {max_faces}: 0"
        if self.interrupted is not None:
            line += " (terminated)" if isinstance(self.interrupted, Terminated) else " (interrupted)"
        if self.stale:
            shown = ", ".join(self.stale[:3]) + (f" and {len(self.stale) - 3} more" if len(self.stale) > 3 else "")
            line += (f"; partial files left by killed runs beside the outputs: {shown} (incomplete; remove "
                     "them, or rename one to keep what it holds)")
        return line

    def _names(self, reason: str) -> str:
        names = [s.source for s in self.skipped_files if s.reason == reason]
        if not names:
            return ""
        more = f", +{len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        return f" ({', '.join(names[:NAMES_SHOWN])}{more})"


def run(det: AUDetector, source: str | int | os.PathLike, open_outputs: OpenOutputs, *,
        max_frames: int | None = None, status: StatusLine | None = None) -> RunStats:
    """Every frame of ``source`` through ``det`` into the outputs ``open_outputs(opened_source)`` returns.

    Args:
        det: the detector (its running mode, unless set, follows the source: ``detector.running_mode``).
        source: anything ``open_source`` takes.
        open_outputs: called once, after the first frame came, with the open source (its ``kind``,
            ``is_image`` and ``name`` say what it is).
        max_frames: stop after this many frames.
        status: the status line to update per frame.

    Returns:
        The run's ``RunStats`` (``interrupted`` set after Ctrl-C / SIGTERM; the outputs are closed then too).

    Raises:
        SourceError, OutputError, ValueError: a source, output or option that fails (one line each); the
        partial files are removed then and every existing output is left as it was.
    """
    stats = RunStats()
    src: FrameSource | None = None
    stream = outputs = None
    ended_well = False
    try:
        src = open_source(source)
        stats.source = src.name
        stream = det.stream_frames(src, max_frames=max_frames)
        for result, image in stream:
            if outputs is None:
                outputs = open_outputs(src)
                stats.stale = [shown_name(p.name) for p in outputs.stale]
            with INTERRUPTS.atomic():
                _write_skipped(outputs, src, stats, before=result.frame)
                outputs.write(result, image)
            stats.add(result)
            if status is not None:
                status.update(result)
            if outputs.quit_requested:
                break
        else:  # the source ended (or max_frames): the files after the last frame, when it was all read
            if outputs is not None and (max_frames is None or stats.frames < max_frames):
                with INTERRUPTS.atomic():
                    _write_skipped(outputs, src, stats, before=None)
        ended_well = True
    except KeyboardInterrupt as e:
        stats.interrupted = e
        ended_well = True
    except OutputError as e:
        raise OutputError(f"{e}; the run stopped after {stats.frames} frames and left every existing output as "
                          "it was") from e
    finally:
        with ignored():
            if stream is not None:
                stream.close()
            if src is not None:
                src.close()
            if outputs is not None:
                if ended_well:
                    _commit(outputs, stats)
                else:
                    outputs.abort()
    return stats


def _write_skipped(outputs: Output, src: FrameSource, stats: RunStats, before: int | None) -> None:
    """The source's skipped files not written yet that come before frame ``before`` (None: all of them;
    files with no frame number, e.g. a folder's non-images, come first)."""
    done = len(stats.skipped_files)
    for skipped in src.skipped_files[done:]:
        if before is not None and skipped.frame is not None and skipped.frame >= before:
            break
        outputs.write_skipped(skipped)
        stats.skipped_files.append(skipped)


def _commit(outputs: Output, stats: RunStats) -> None:
    """Commit every output, or (one could not be completed) none, with one line saying so."""
    try:
        outputs.close()
    except OutputError as e:
        raise OutputError(f"{e} (the run had {stats.frames} frames)") from e
