"""``au-edge ros2`` / ``python -m runtime.ros2.node``: a live ROS 2 node publishing REP-155 face topics.

Two ways in: ``--image-topic /camera/image_raw`` subscribes to a ``sensor_msgs/Image`` topic (results
carry that image's stamp and frame_id, as ROS perception nodes do), or ``--source SRC`` reads a camera,
file, folder, URL or gst: pipeline itself, as ``au-edge camera`` does (stamps: the node's clock at the
first frame plus the source's time). Out: ``/humans/faces/tracked``, ``/humans/faces/<id>/roi`` and
``/humans/faces/<id>/facs`` (``runtime.ros2.messages``), reliable, keep last 10.

rclpy and the message packages come from a sourced ROS 2 install (``source /opt/ros/jazzy/setup.bash``;
hri_msgs: ``sudo apt install ros-jazzy-hri-msgs``); without them the command exits 2 with one line.
ROS arguments go after ``--ros-args`` (``--ros-args -r __node:=faces -p use_sim_time:=true``).
One detector serves the node from a single-threaded executor, so frames are processed one at a time;
images that arrive meanwhile are dropped by the subscription's depth-1 queue (the newest is kept).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from runtime.errors import AUEdgeError, MissingDependency, print_error
from runtime.ros2.definitions import QOS_DEPTH
from runtime.ros2.images import image_to_bgr
from runtime.ros2.messages import FaceIds, Time, build
from runtime.ros2.publish import FramePublisher

PROG = "au-edge ros2"
ROS_HINT = ("source a ROS 2 install first, e.g. `source /opt/ros/jazzy/setup.bash`, in the shell that runs "
            "au-edge (same Python version as the ROS install; see docs/ros2.md)")
HRI_MSGS_HINT = "sudo apt install ros-$ROS_DISTRO-hri-msgs (after sourcing the ROS 2 setup)"
EPILOG = """examples:
  source /opt/ros/jazzy/setup.bash
  au-edge ros2 --image-topic /camera/image_raw
  au-edge ros2 --source 0 --frame-id camera_color_optical_frame --ros-args -r __node:=au_faces
"""


def build_parser() -> argparse.ArgumentParser:
    from runtime.cli import (
        DETECT_EVERY,
        MAX_FACES,
        MAX_FRAMES,
        MESH_EVERY,
        OneLineParser,
        threads_option,
    )

    p = OneLineParser(prog=PROG, description=__doc__.splitlines()[0], epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image-topic", metavar="TOPIC", help="subscribe to this sensor_msgs/Image topic")
    src.add_argument("--source", metavar="SRC", help="read frames directly: camera index, video file, image "
                     "folder, URL or gst:<pipeline> (as au-edge camera --source)")
    p.add_argument("--engine", default="default", help="engine file with its card beside it, or 'default'")
    p.add_argument("--frame-id", metavar="ID", default=None, help="header frame_id (default: the image's own "
                   "frame_id with --image-topic, 'camera' with --source)")
    p.add_argument("--node-name", default="au_edge", help="ROS node name (default au_edge)")
    p.add_argument("--max-faces", type=MAX_FACES, default=4, help="faces tracked at once (default 4)")
    p.add_argument("--max-frames", type=MAX_FRAMES, default=None, help="with --source: stop after N frames")
    p.add_argument("--detect-every", type=DETECT_EVERY, default=None, metavar="N",
                   help="face detector every N frames while fewer than --max-faces are tracked (default 10)")
    p.add_argument("--mesh-every", type=MESH_EVERY, default=1, metavar="N",
                   help="the face mesh at least every N frames on a well-tracked face, optical flow "
                   "following the head between (default 1: every frame; 3: ~15 %% less per frame on the clip, "
                   "docs/face_stage.md)")
    p.add_argument("--face-model", metavar="PATH", help="folder of face .tflite files or a .task bundle")
    p.add_argument("--detector", choices=("full", "short"), default="full", help="BlazeFace range (default full)")
    p.add_argument("--no-smooth", action="store_true", help="raw per-frame probabilities, no hysteresis")
    p.add_argument("--no-person-baseline", action="store_true", help="no per-person baseline (on by default; "
                   "docs/person_baseline.md)")
    p.add_argument("--threads", type=threads_option(), default=None, help="CPU threads for inference")
    return p


def split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``[ours..., "--ros-args", ros...]`` -> (ours, ["--ros-args", ros...]); ROS's own arguments stay whole."""
    argv = list(argv)
    if "--ros-args" not in argv:
        return argv, []
    i = argv.index("--ros-args")
    return argv[:i], argv[i:]


def import_rclpy():
    """rclpy, or MissingDependency with how to get it (one line)."""
    try:
        import rclpy
    except ImportError:
        raise MissingDependency("ROS 2 (rclpy)", ROS_HINT) from None
    return rclpy


@cache
def ros_message_class(msgtype: str) -> type:
    """``"hri_msgs/msg/IdsList"`` -> rclpy's generated class ``hri_msgs.msg.IdsList``.

    Raises:
        MissingDependency: the message package is not installed in the sourced ROS 2.
    """
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        hint = HRI_MSGS_HINT if package == "hri_msgs" else ROS_HINT
        raise MissingDependency(f"the ROS 2 message package {package} ({msgtype})", hint) from None


class _RclpyPublisher:
    """One rclpy publisher that takes our message dataclasses."""

    def __init__(self, node: Any, msgtype: str, topic: str):
        self.node = node
        self.pub = node.create_publisher(ros_message_class(msgtype), topic, QOS_DEPTH)

    def publish(self, msg: Any) -> None:
        self.pub.publish(build(msg, ros_message_class))

    def destroy(self) -> None:
        self.node.destroy_publisher(self.pub)


class ImageHandler:
    """The ``sensor_msgs/Image`` callback: detect, then publish with the image's stamp and frame_id.

    ROS-free (it reads the message's fields only), so it runs here with any object that has them.
    A repeated stamp is skipped; a stamp earlier than the last (a bag replayed with ``--loop``, a
    simulated clock reset) restarts tracking, and ids continue after the highest one published so
    far, so a face id is never reused for another face.
    """

    def __init__(self, det: Any, publisher: FramePublisher, frame_id: str | None = None,
                 log: Callable[[str], None] = print):
        self.det, self.publisher, self.frame_id, self.log = det, publisher, frame_id, log
        self.last_t: float | None = None
        self.ids = FaceIds()
        self.skipped: Counter[str] = Counter()
        self._warned: set[str] = set()

    def _warn_once(self, key: str, line: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log(line)

    def __call__(self, msg: Any) -> None:
        try:
            frame = image_to_bgr(msg.height, msg.width, msg.encoding, msg.step, msg.data)
        except ValueError as e:
            self.skipped["bad_image"] += 1
            self._warn_once(f"bad:{msg.encoding}", f"au-edge: skipping images: {e}")
            return
        stamp = Time(int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
        t = stamp.to_seconds()
        if self.last_t is not None and t == self.last_t:
            self.skipped["repeated_stamp"] += 1
            return
        if self.last_t is not None and t < self.last_t:
            self.det.reset()
            self.ids.restart()
            self.log(f"au-edge: image time went back ({self.last_t:.3f} s -> {t:.3f} s): tracking restarted")
        self.last_t = t
        result = self.det.process(frame, t)
        frame_id = self.frame_id or msg.header.frame_id or "camera"
        self.publisher.publish(self.ids.messages(result, (frame.shape[1], frame.shape[0]), frame_id=frame_id,
                                                 stamp_s=stamp))


def _detector(args: argparse.Namespace, mode: str | None):
    from runtime.detector import AUDetector

    extra = {} if args.detect_every is None else {"detect_every": args.detect_every}
    return AUDetector(args.engine, max_faces=args.max_faces, face_model=args.face_model, detector=args.detector,
                      smooth=not args.no_smooth, threads=args.threads, mode=mode,
                      person_baseline=not args.no_person_baseline, mesh_every=args.mesh_every, **extra)


def _run_source(rclpy: Any, node: Any, det: Any, frames: FramePublisher, args: argparse.Namespace) -> None:
    source: str | int = int(args.source) if str(args.source).isdigit() else args.source
    origin_ns: int | None = None
    ids = FaceIds()
    for result, image in det.stream_frames(source, max_frames=args.max_frames):
        if not rclpy.ok():
            break
        if origin_ns is None:  # the source's clock, anchored to the node's clock at the first frame
            origin_ns = node.get_clock().now().nanoseconds - round(result.time_s * 1e9)
        ns = origin_ns + round(result.time_s * 1e9)
        frames.publish(ids.messages(result, (image.shape[1], image.shape[0]), frame_id=args.frame_id or "camera",
                                    stamp_s=Time(*divmod(ns, 1_000_000_000))))
        if det.running_mode == "image":  # the next photo numbers its faces from 1 again
            ids.restart()
        rclpy.spin_once(node, timeout_sec=0.0)


def _run_topic(rclpy: Any, node: Any, det: Any, frames: FramePublisher, args: argparse.Namespace) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    handler = ImageHandler(det, frames, args.frame_id, log=node.get_logger().warning)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches reliable publishers too
    node.create_subscription(ros_message_class("sensor_msgs/msg/Image"), args.image_topic, handler, qos)
    node.get_logger().info(f"au-edge: AUs of the faces on {args.image_topic} -> /humans/faces/...")
    from rclpy.executors import ExternalShutdownException

    try:
        rclpy.spin(node)
    except ExternalShutdownException:  # `ros2 lifecycle`/launch shut the context down: a normal end
        pass


def run(args: argparse.Namespace, ros_args: list[str]) -> int:
    """The node's life: ROS up, detector, publish until the source ends or the node is shut down."""
    rclpy = import_rclpy()
    for msgtype in ("hri_msgs/msg/IdsList", "hri_msgs/msg/FacialActionUnits", "sensor_msgs/msg/Image"):
        ros_message_class(msgtype)  # a missing package is one line now, not an error at the first face
    det = _detector(args, mode="video" if args.image_topic else None)
    rclpy.init(args=[PROG, *ros_args])
    node = rclpy.create_node(args.node_name)
    frames = FramePublisher(lambda msgtype, topic: _RclpyPublisher(node, msgtype, topic))
    try:
        (_run_topic if args.image_topic else _run_source)(rclpy, node, det, frames, args)
    finally:
        frames.close()
        det.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ours, ros_args = split_ros_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)
    try:
        return run(args, ros_args)
    except (AUEdgeError, ValueError) as e:
        return print_error(e)  # the one error line, secrets redacted
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
