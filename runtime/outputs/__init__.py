"""Where results go: JSONL, CSV (ours or OpenFace 2's), an annotated video, annotated photos, a window,
UDP datagrams, a ROS 2 bag (REP-155 topics).

Every output has ``write(result, frame_bgr)`` and ``close()``; ``MultiOutput`` fans out to several.
``build_outputs`` maps the ``python -m runtime.camera`` flags onto them; ``StatusLine`` is the stderr
status line. Recorder and window share one ``Annotator``, so a frame is drawn once. Files are written
under a partial name (``runtime.atomic``) and renamed into place by ``close()`` when the run ended well;
``abort()`` removes them instead. ``stale`` names partial files that killed runs left beside the targets.
"""
from __future__ import annotations

import os

from collections.abc import Sequence

from runtime.outputs.base import MultiOutput, Output, OutputError
from runtime.outputs.csvfile import CsvOutput
from runtime.outputs.draw import Annotator, draw_result
from runtime.outputs.jsonl import JsonlOutput
from runtime.outputs.openface import OpenFaceCsvOutput
from runtime.outputs.photos import AnnotatedImages
from runtime.outputs.rosbag import RosbagOutput
from runtime.outputs.show import ShowOutput
from runtime.outputs.status import StatusLine
from runtime.outputs.udp import UdpPublisher
from runtime.outputs.video import VideoRecorder

__all__ = [
    "CSV_FORMATS",
    "AnnotatedImages",
    "Annotator",
    "CsvOutput",
    "JsonlOutput",
    "MultiOutput",
    "OpenFaceCsvOutput",
    "Output",
    "OutputError",
    "RosbagOutput",
    "ShowOutput",
    "StatusLine",
    "UdpPublisher",
    "VideoRecorder",
    "build_outputs",
    "draw_result",
]
CSV_FORMATS = ("default", "openface")


def _one_file_each(paths: dict[str, str | None]) -> None:
    """Refuse two outputs on one file (the second would replace the first) or on stdout."""
    seen: dict[str, str] = {}
    for flag, path in paths.items():
        if not path:
            continue
        key = "-" if path == "-" else os.path.realpath(path)
        if key in seen:
            where = "stdout" if key == "-" else f"the same file {path!r}"
            raise ValueError(f"{seen[key]} and {flag} both write to {where}; give each its own path")
        seen[key] = flag


def build_outputs(*, aus: Sequence[str], jsonl: str | None = None, csv: str | None = None,
                  record: str | None = None, show: bool = False, publish: str | None = None,
                  allow_remote: bool = False, record_fps: float | None = None, csv_format: str = "default",
                  image_source: bool = False, intensity_aus: Sequence[str] = (), rosbag: str | None = None,
                  ros_frame_id: str = "camera", source: str | int | None = None, image_mode: bool = False,
                  save_annotated: str | None = None, openface_csv: str | None = None) -> MultiOutput:
    """The outputs the CLI flags ask for, opened now so bad paths/hosts fail before the first frame.

    Args:
        csv_format: ``"default"`` (CONTRACTS.md) or ``"openface"`` (OpenFace 2 FeatureExtraction).
        image_source: the source is an image file or folder (both CSVs then name the file).
        rosbag: a new rosbag2 (MCAP) folder for the REP-155 topics; ``ros_frame_id`` is its header
            frame id, ``source`` (the source spec) decides its stamps and ``image_mode`` (the detector's
            running mode is "image") its face ids (``outputs.rosbag``).
        intensity_aus: AUs the model estimates intensity for (CSV ``AUxx_r``; ``AUDetector.intensity_aus``).
        save_annotated: a folder for one annotated image per photo (image sources only).
        openface_csv: an OpenFace 2 CSV beside ``csv`` (both formats from one run).

    Raises:
        OutputError, ValueError: an output that cannot be opened or a bad value (one line each).
    """
    _one_file_each({"--jsonl": jsonl, "--csv": csv, "--openface-csv": openface_csv, "--record": record})
    if csv_format not in CSV_FORMATS:
        raise ValueError(f"--csv-format {csv_format!r}: use one of {', '.join(CSV_FORMATS)}")
    if save_annotated and not image_source:
        raise OutputError("--save-annotated writes one image per photo, for image files and folders; for a "
                          "video, camera or stream use --record OUT.mp4")
    outputs: list[Output] = []
    annotator = Annotator(aus)
    try:
        if jsonl:
            outputs.append(JsonlOutput(jsonl))
        if csv:
            outputs.append(OpenFaceCsvOutput(csv, aus, intensity_aus=intensity_aus, image_source=image_source)
                           if csv_format == "openface"
                           else CsvOutput(csv, aus, intensity_aus=intensity_aus, image_source=image_source))
        if openface_csv:
            outputs.append(OpenFaceCsvOutput(openface_csv, aus, intensity_aus=intensity_aus, image_source=image_source))
        if publish:
            outputs.append(UdpPublisher(publish, allow_remote=allow_remote))
        if rosbag:
            outputs.append(RosbagOutput(rosbag, frame_id=ros_frame_id, source=source, image_mode=image_mode))
        if record:
            outputs.append(VideoRecorder(record, aus, fps=record_fps, annotator=annotator))
        if save_annotated:
            outputs.append(AnnotatedImages(save_annotated, aus, source=source, annotator=annotator))
        if show:
            outputs.append(ShowOutput(aus, annotator=annotator))
    except BaseException:
        MultiOutput(outputs).abort()  # nothing was written yet: leave every existing file as it was
        raise
    return MultiOutput(outputs)
