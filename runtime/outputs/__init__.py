"""Where results go: JSONL, OpenFace-style CSV, an annotated video, a window, UDP datagrams.

Every output has ``write(result, frame_bgr)`` and ``close()``; ``MultiOutput`` fans out to several.
``build_outputs`` maps the ``python -m runtime.camera`` flags onto them; ``StatusLine`` is the stderr
status line. Recorder and window share one ``Annotator``, so a frame is drawn once.
"""
from __future__ import annotations

from collections.abc import Sequence

from runtime.outputs.base import MultiOutput, Output, OutputError
from runtime.outputs.csvfile import CsvOutput
from runtime.outputs.draw import Annotator, draw_result
from runtime.outputs.jsonl import JsonlOutput
from runtime.outputs.show import ShowOutput
from runtime.outputs.status import StatusLine
from runtime.outputs.udp import UdpPublisher
from runtime.outputs.video import VideoRecorder

__all__ = ["Annotator", "CsvOutput", "JsonlOutput", "MultiOutput", "Output", "OutputError", "ShowOutput",
           "StatusLine", "UdpPublisher", "VideoRecorder", "build_outputs", "draw_result"]


def build_outputs(*, aus: Sequence[str], jsonl: str | None = None, csv: str | None = None,
                  record: str | None = None, show: bool = False, publish: str | None = None,
                  allow_remote: bool = False, record_fps: float | None = None) -> MultiOutput:
    """The outputs the CLI flags ask for, opened now so bad paths/hosts fail before the first frame.

    Raises:
        OutputError, ValueError: an output that cannot be opened or a bad value (one line each).
    """
    if jsonl == "-" and csv == "-":
        raise ValueError("--jsonl - and --csv - both want stdout; send one of them to a file")
    outputs: list[Output] = []
    annotator = Annotator(aus)
    try:
        if jsonl:
            outputs.append(JsonlOutput(jsonl))
        if csv:
            outputs.append(CsvOutput(csv, aus))
        if publish:
            outputs.append(UdpPublisher(publish, allow_remote=allow_remote))
        if record:
            outputs.append(VideoRecorder(record, aus, fps=record_fps, annotator=annotator))
        if show:
            outputs.append(ShowOutput(aus, annotator=annotator))
    except BaseException:
        MultiOutput(outputs).close()
        raise
    return MultiOutput(outputs)
