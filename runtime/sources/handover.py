"""The hand-over between the capture thread and the consumer: two queue policies.

Files lose no frame (``Bounded``: the reader waits for the consumer); live sources keep the present
(``Newest``: a one-frame slot, a frame not taken before the next arrives is dropped and counted).
Besides frames, ``put`` carries the final item: ``END`` or the capture thread's exception.
"""
from __future__ import annotations

import queue
import threading

from runtime.sources.readers import Frame

END = object()


class Bounded:
    """Files: every frame in order; the reader waits while the queue is full (backpressure)."""

    dropped = 0

    def __init__(self, size: int):
        self._q: queue.Queue = queue.Queue(size)

    def put(self, item, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        while True:
            try:
                return self._q.get(timeout=0.5)
            except queue.Empty:
                continue


class Newest:
    """Live: a one-frame slot; a frame not taken before the next arrives is dropped (and counted)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._final = None  # END or an exception from the capture thread
        self.dropped = 0

    def put(self, item, stop: threading.Event) -> bool:
        with self._cond:
            if isinstance(item, Frame):
                self.dropped += self._frame is not None
                self._frame = item
            else:
                self._final = item
            self._cond.notify_all()
        return not stop.is_set()

    def get(self):
        with self._cond:
            while self._frame is None and self._final is None:
                self._cond.wait(0.5)
            if self._frame is not None:
                frame, self._frame = self._frame, None
                return frame
            return self._final
