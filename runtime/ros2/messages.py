"""One frame's results as REP-155 (ROS4HRI) messages: plain dataclasses, no ROS import.

``frame_messages(result, (width, height))`` is the one place that decides what au-edge publishes;
the bag writer (``--rosbag``) and the live node (``au-edge ros2``) only serialise its output.

Per frame, in this order:
- ``/humans/faces/tracked`` ``hri_msgs/msg/IdsList``: the ids of the faces in this frame (also when
  empty, so a subscriber sees faces leave).
- per face ``/humans/faces/<id>/roi`` ``sensor_msgs/msg/RegionOfInterest``: the face box in pixels
  of the source frame, edges rounded to the nearest pixel (halves up) and clipped to the frame;
  ``do_rectify`` False (the box is in the image as received).
- per face ``/humans/faces/<id>/facs`` ``hri_msgs/msg/FacialActionUnits``: ``confidence[code]`` is
  the calibrated probability ``au_prob`` of our AU with that FACS code (AU12 -> index 12),
  ``intensity[code]`` the 0-5 intensity where the model estimates it (``FaceAU.au_intensity``),
  0 everywhere else.

Face ids: ``f`` + the track id with at least five digits (``f00001``), the deterministic form of
ROS4HRI's hri_face_detect; a valid ROS name token, unique for the life of a track (REP-155 face
ids are not persistent); ``FaceIds`` keeps them unique where track ids start again from 1 (image
mode, a detector reset). Stamps: the frame's time (``FrameResult.time_s``, or ``stamp_s``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar

import numpy as np

from runtime.aus import au_number
from runtime.results import FaceAU, FrameResult
from runtime.ros2 import definitions as d


@dataclass(frozen=True)
class Time:
    """``builtin_interfaces/msg/Time``."""

    MSGTYPE: ClassVar[str] = d.TIME
    sec: int
    nanosec: int

    @classmethod
    def from_seconds(cls, t: float) -> Time:
        """Seconds -> (sec, nanosec) with ``0 <= nanosec < 1e9``, rounded to the nanosecond."""
        sec, nanosec = divmod(round(float(t) * 1e9), 1_000_000_000)
        return cls(int(sec), int(nanosec))

    def to_seconds(self) -> float:
        return self.sec + self.nanosec * 1e-9

    def to_nanoseconds(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


@dataclass(frozen=True)
class Header:
    """``std_msgs/msg/Header``."""

    MSGTYPE: ClassVar[str] = d.HEADER
    stamp: Time
    frame_id: str


@dataclass
class IdsList:
    """``hri_msgs/msg/IdsList``."""

    MSGTYPE: ClassVar[str] = d.IDS_LIST
    header: Header
    ids: list[str] = field(default_factory=list)


@dataclass
class RegionOfInterest:
    """``sensor_msgs/msg/RegionOfInterest`` (unsigned pixels; no header)."""

    MSGTYPE: ClassVar[str] = d.REGION_OF_INTEREST
    x_offset: int
    y_offset: int
    height: int
    width: int
    do_rectify: bool = False


@dataclass
class FacialActionUnits:
    """``hri_msgs/msg/FacialActionUnits``: two float32[99] arrays indexed by FACS code."""

    MSGTYPE: ClassVar[str] = d.FACIAL_ACTION_UNITS
    header: Header
    intensity: np.ndarray
    confidence: np.ndarray


Message = IdsList | RegionOfInterest | FacialActionUnits


@dataclass(frozen=True)
class TopicMessage:
    """One message and the topic it goes to."""

    topic: str
    msg: Message

    @property
    def msgtype(self) -> str:
        return self.msg.MSGTYPE


def face_id(track_id: int) -> str:
    """The REP-155 face id of a track: ``7`` -> ``"f00007"``.

    Raises:
        ValueError: a negative track id (no valid id can be made from it).
    """
    track_id = int(track_id)
    if track_id < 0:
        raise ValueError(f"track_id must be >= 0, got {track_id}")
    return f"f{track_id:05d}"


def face_topic(fid: str, leaf: str) -> str:
    """``("f00007", "facs")`` -> ``"/humans/faces/f00007/facs"``."""
    return f"{d.FACE_NAMESPACE}/{fid}/{leaf}"


def _edge(v: float, limit: int) -> int:
    """A box edge to the nearest pixel edge (halves up), clipped to [0, limit]."""
    if not math.isfinite(v):
        return 0
    return int(min(max(math.floor(v + 0.5), 0), limit))


def region_of_interest(bbox: tuple[float, float, float, float], width: int, height: int) -> RegionOfInterest:
    """An ``x, y, w, h`` box in frame pixels -> RegionOfInterest clipped to a ``width`` x ``height`` frame."""
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = _edge(x, width), _edge(y, height)
    x1, y1 = _edge(x + w, width), _edge(y + h, height)
    return RegionOfInterest(x_offset=x0, y_offset=y0, height=max(0, y1 - y0), width=max(0, x1 - x0))


def _by_code(values: dict[str, float] | None) -> np.ndarray:
    """``{"AU12": 0.8}`` -> float32[99] with 0.8 at index 12 and 0 elsewhere."""
    out = np.zeros(d.AU_SLOTS, np.float32)
    for name, value in (values or {}).items():
        code = au_number(name)
        if not 0 <= code < d.AU_SLOTS:
            raise ValueError(f"{name} has no slot in hri_msgs/FacialActionUnits (codes 0..{d.AU_SLOTS - 1})")
        out[code] = float(value)
    return out


def facial_action_units(face: FaceAU, header: Header) -> FacialActionUnits:
    """Our AUs of one face at their FACS codes: confidence = calibrated probability, intensity where estimated."""
    return FacialActionUnits(header=header, intensity=_by_code(getattr(face, "au_intensity", None)),
                             confidence=_by_code(face.au_prob))


def frame_messages(result: FrameResult, frame_size: tuple[int, int], *, frame_id: str = "camera",
                   stamp_s: float | Time | None = None, track_id_offset: int = 0) -> list[TopicMessage]:
    """The REP-155 messages of one frame (see the module docstring for what goes where).

    Args:
        result: the runtime's result for the frame.
        frame_size: ``(width, height)`` of the source frame in pixels (the ROI is clipped to it).
        frame_id: the header's frame id (the camera's optical frame in a robot's TF tree).
        stamp_s: the header stamp, in seconds or as a ``Time`` (exact, e.g. copied from the image
            message the result came from); default ``result.time_s`` (the frame's source time).
        track_id_offset: added to every track id before it becomes a face id (a node that restarts
            tracking keeps ids it has already published retired).

    Raises:
        ValueError: a frame size that is not two positive integers, or an AU name outside the catalog.
    """
    width, height = (int(v) for v in frame_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"frame_size must be (width, height) > 0, got {frame_size!r}")
    stamp = stamp_s if isinstance(stamp_s, Time) else Time.from_seconds(
        result.time_s if stamp_s is None else stamp_s)
    header = Header(stamp, str(frame_id))
    ids = [face_id(f.track_id + track_id_offset) for f in result.faces]
    out = [TopicMessage(d.TRACKED_TOPIC, IdsList(header, ids))]
    for fid, face in zip(ids, result.faces):
        out.append(TopicMessage(face_topic(fid, "roi"), region_of_interest(face.bbox, width, height)))
        out.append(TopicMessage(face_topic(fid, "facs"), facial_action_units(face, header)))
    return out


class FaceIds:
    """Keeps REP-155 face ids unique when the runtime's track ids start again from 1.

    That happens on every photo in image mode and after ``AUDetector.reset()``; a face id must still
    name one face, so after ``restart()`` ids continue above the highest one issued so far.
    """

    def __init__(self) -> None:
        self.offset = self.highest = 0

    def messages(self, result: FrameResult, frame_size: tuple[int, int], **kw: Any) -> list[TopicMessage]:
        """``frame_messages`` with the current offset (keywords as there, ``track_id_offset`` excepted)."""
        out = frame_messages(result, frame_size, track_id_offset=self.offset, **kw)
        for face in result.faces:
            self.highest = max(self.highest, face.track_id + self.offset)
        return out

    def restart(self) -> None:
        """Track ids start again from 1: the next ids continue after the highest one issued."""
        self.offset = self.highest


def build(msg: Any, message_class: Callable[[str], type]) -> Any:
    """One of our message dataclasses -> the same message as another library's class, recursively.

    ``message_class(msgtype)`` returns that library's class for ``"pkg/msg/Name"`` (rosbags' type
    store, or rclpy's generated classes); fields are passed as keywords, nested messages built first.
    """
    if not is_dataclass(msg):
        return msg
    values = {f.name: build(getattr(msg, f.name), message_class) for f in fields(msg)}
    return message_class(type(msg).MSGTYPE)(**values)
