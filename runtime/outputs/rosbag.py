"""``--rosbag DIR``: the REP-155 messages of every frame in a rosbag2 bag (MCAP storage).

Written with the pure-Python ``rosbags`` library (Apache-2.0; ``pip install 'au-edge[ros]'``), so no
ROS 2 install is needed to record; ``ros2 bag play DIR`` replays it. The hri_msgs definitions travel
inside the bag (MCAP schemas), so readers need not have hri_msgs installed. A face's topics are
created when the face first appears.

A bag is a folder. Like every au-edge output it appears under its name only when the run ends well: it
is written as ``.DIR.XXXXXXXX.partial/DIR`` beside the target (a folder created exclusively:
``runtime.atomic``) and renamed when the run's outputs close. An existing ``DIR`` is never overwritten (as ``ros2 bag record`` refuses it too): the run stops before
its first frame is written, with one line saying so.

Stamps (header and bag time): for a file or folder source, the frame's source time (``time_s``:
the video's timestamps from 0); for cameras, URLs and pipelines, the capture time on the wall clock
(``time_s`` is seconds since the source opened; the bag anchors it to the wall clock at the first
frame, so stamps compare with other bags recorded on the same machine).

Face ids: ``f`` + the JSONL ``track_id`` (``f00001``) in video mode. In image mode (photo folders)
every photo numbers its faces from 1, but a REP-155 face id must name one face, so there the ids
continue from photo to photo (the second photo's first face is ``f00004`` when the first had three).
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from runtime.atomic import Partial, reason, write_error
from runtime.errors import MissingDependency
from runtime.outputs.base import Output, OutputError
from runtime.shown import quoted
from runtime.results import FrameResult
from runtime.ros2 import definitions as d
from runtime.ros2.messages import FaceIds, build

ROSBAGS_HINT = "pip install 'au-edge[ros]' (or: pip install rosbags)"
# rosbag2 metadata version 8 (QoS profiles as a YAML string): the older of the two versions rosbags
# writes; rosbag2 reads older versions than its own. Humble is not claimed (see docs/ros2.md).
BAG_VERSION = 8


def typestore():
    """A ``rosbags`` type store (ROS 2 Jazzy's standard types) with the hri_msgs types registered.

    Raises:
        MissingDependency: rosbags is not installed (one line with the install command).
    """
    try:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    except ImportError:
        raise MissingDependency("rosbags (for --rosbag)", ROSBAGS_HINT) from None
    store = get_typestore(Stores.ROS2_JAZZY)
    for msgtype, text in d.HRI_MSGS.items():
        store.register(get_types_from_msg(text, msgtype))
    return store


def _offered_qos():
    """The QoS recorded for every topic, so ``ros2 bag play`` offers what the live node offers."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    unspecified = QosTime(0, 0)  # rmw's "default" for deadline, lifespan and lease (infinite)
    return Qos(QosHistory.KEEP_LAST, d.QOS_DEPTH, QosReliability.RELIABLE, QosDurability.VOLATILE,
               unspecified, unspecified, QosLiveliness.AUTOMATIC, unspecified, False)


def wall_clock_stamps(source: str | int | os.PathLike | None) -> bool:
    """True for a source without its own timeline (camera index, URL, gst: pipeline): stamp by the wall clock."""
    if source is None:
        return False
    return isinstance(source, int) or not os.path.exists(os.fspath(source))


class RosbagOutput(Output):
    """Writes ``frame_messages`` of every result to a new rosbag2 bag (MCAP) at ``path``.

    Args:
        path: the bag folder to create (must not exist).
        frame_id: header frame id of every message.
        source: the run's source spec; decides the stamps (``wall_clock_stamps``).
        image_mode: the detector runs in image mode (ids continue across photos, see above).

    Raises:
        OutputError: ``path`` exists or cannot be created (one line).
        MissingDependency: rosbags is not installed.
    """

    def __init__(self, path: str | Path, *, frame_id: str = "camera", source: str | int | None = None,
                 image_mode: bool = False):
        self.path = Path(path)
        self.image_mode = image_mode
        self.ids = FaceIds()
        self.frame_id = frame_id
        self.wall_clock = wall_clock_stamps(source)
        self._origin_s: float | None = None
        self._last_ns = -1
        self.store = typestore()
        from rosbags.rosbag2 import StoragePlugin, Writer

        if self.path.exists() or self.path.is_symlink():
            raise OutputError(f"--rosbag {quoted(self.path)} exists; a bag is written into a new folder "
                              "(as ros2 bag record does): remove it or choose another name")
        self._holder = Partial(self.path, "--rosbag", folder=True)
        self.stale = self._holder.stale
        self.tmp = self._holder.path / self.path.name  # the .mcap inside keeps the bag's own name
        try:
            self.writer = Writer(self.tmp, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
        except OSError as e:
            self._holder.discard()
            raise OutputError(f"cannot write rosbag {quoted(self.path)}: {reason(e)}; check the folder "
                              "exists and is writable") from e
        self.connections: dict[str, object] = {}
        self._qos = _offered_qos()
        self.frames = 0

    def _connection(self, topic: str, msgtype: str):
        conn = self.connections.get(topic)
        if conn is None:
            conn = self.connections[topic] = self.writer.add_connection(
                topic, msgtype, typestore=self.store, offered_qos_profiles=[self._qos])
        return conn

    def _stamp_s(self, result: FrameResult) -> float:
        if not self.wall_clock:
            return result.time_s
        if self._origin_s is None:
            self._origin_s = time.time() - result.time_s
        return self._origin_s + result.time_s

    def write(self, result: FrameResult, frame_bgr: np.ndarray | None = None) -> None:
        if self.writer is None:
            return
        if frame_bgr is None:
            raise OutputError("--rosbag needs each frame's size to clip the face boxes; none was given")
        height, width = frame_bgr.shape[:2]
        messages = self.ids.messages(result, (width, height), frame_id=self.frame_id, stamp_s=self._stamp_s(result))
        if self.image_mode:  # the next photo numbers its faces from 1 again
            self.ids.restart()
        # Bag time = header stamp; kept non-decreasing so players replay in frame order.
        ns = max(messages[0].msg.header.stamp.to_nanoseconds(), self._last_ns, 0)
        self._last_ns = ns
        try:
            for m in messages:
                data = self.store.serialize_cdr(build(m.msg, self.store.types.__getitem__), m.msgtype)
                self.writer.write(self._connection(m.topic, m.msgtype), ns, data)
        except OSError as e:
            raise OutputError(write_error("--rosbag", self.path, e)) from e
        self.frames += 1

    def prepare(self) -> None:
        """Finish the bag (index, metadata.yaml) in its partial folder; nothing is renamed yet."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        try:
            writer.close()
            self._holder.sync()
        except OSError as e:
            raise OutputError(write_error("--rosbag", self.path, e)) from e

    def close(self) -> None:
        """Finish the bag and move it to its name (an existing ``DIR`` that appeared meanwhile is kept)."""
        self.prepare()
        self._holder.commit(inner=self.path.name)

    def abort(self) -> None:
        """Give up: remove the partial bag; an existing bag at ``path`` was never touched."""
        writer, self.writer = self.writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # the bag is removed whatever state the writer is in
                writer.abort()
        self._holder.discard()
