"""The live node's publish path, free of ROS: one publisher per topic, created and retired with faces.

``FramePublisher(factory).publish(frame_messages(...))`` sends each message on its topic. The
``factory(msgtype, topic)`` makes a publisher (in the node: an rclpy publisher that converts our
dataclasses to rclpy messages); a face's publishers are created when the face first appears and
destroyed when it leaves ``/humans/faces/tracked`` (REP-155 face ids are not reused), as ROS4HRI's
hri_face_detect does. ``/humans/faces/tracked`` itself lives as long as the node.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from runtime.ros2.definitions import TRACKED_TOPIC
from runtime.ros2.messages import TopicMessage


class Publisher(Protocol):
    """What the factory returns: ``publish(msg)`` with one of our message dataclasses, ``destroy()``."""

    def publish(self, msg: Any) -> None: ...

    def destroy(self) -> None: ...


PublisherFactory = Callable[[str, str], Publisher]  # (msgtype, topic) -> Publisher


class FramePublisher:
    """Publishes each frame's REP-155 messages; keeps exactly the publishers of the faces now tracked."""

    def __init__(self, factory: PublisherFactory):
        self.factory = factory
        self.publishers: dict[str, Publisher] = {}
        self.frames = 0

    def _publisher(self, topic: str, msgtype: str) -> Publisher:
        pub = self.publishers.get(topic)
        if pub is None:
            pub = self.publishers[topic] = self.factory(msgtype, topic)
        return pub

    def publish(self, messages: Iterable[TopicMessage]) -> None:
        """Send one frame's messages in order, then retire the topics of faces that left."""
        live = set()
        for m in messages:
            self._publisher(m.topic, m.msgtype).publish(m.msg)
            live.add(m.topic)
        for topic in [t for t in self.publishers if t not in live and t != TRACKED_TOPIC]:
            self.publishers.pop(topic).destroy()
        self.frames += 1

    def close(self) -> None:
        """Destroy every publisher (the node is shutting down)."""
        while self.publishers:
            self.publishers.popitem()[1].destroy()
