"""Live-stream mode, as MediaPipe's LIVE_STREAM: ``detect_async`` hands a frame to one worker thread
and returns at once; the result comes back through a callback.

A robot's camera callback must not wait for inference, and a backlog of old frames is worth less than
the present: while the worker is busy, a new frame is dropped (counted), never queued (MediaPipe's
flow limiter does the same). Timestamps must increase from call to call, dropped frames included.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from runtime.results import FrameResult

ResultCallback = Callable[[FrameResult, np.ndarray, float], None]


class LiveWorker:
    """One worker thread and a one-frame slot.

    Args:
        run: processes one frame (BGR, timestamp in seconds) and returns its result.
        callback: called on the worker thread with ``(result, frame_bgr, timestamp_s)`` per frame run.
        name: the thread's name (shown by debuggers and ``py-spy``).

    An exception raised by ``run`` or the callback stops nothing else: it is kept and raised by the
    next ``submit`` or by ``close``, so a failing callback is never silent.
    """

    def __init__(self, run: Callable[[np.ndarray, float], FrameResult], callback: ResultCallback, name: str):
        self._run, self._callback = run, callback
        self._cond = threading.Condition()
        self._job: tuple[np.ndarray, float] | None = None
        self._busy = False  # a frame was accepted and its callback has not returned yet
        self._stopping = False
        self._error: BaseException | None = None
        self.dropped = 0
        self.last_t: float | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def submit(self, frame: np.ndarray, timestamp_s: float) -> bool:
        """Hand ``frame`` to the worker unless it is busy.

        Returns:
            True when the frame will be run, False when it was dropped (the worker was busy).

        Raises:
            ValueError: a timestamp not after the last one, or the worker is closed.
            Exception: what the last frame's ``run`` or callback raised (raised once).
        """
        with self._cond:
            self._raise_kept()
            if self._stopping:
                raise ValueError("this AUDetector is closed; create a new one")
            if self.last_t is not None and not timestamp_s > self.last_t:
                raise ValueError(f"live mode needs increasing timestamps: got {timestamp_s} s after {self.last_t} s; "
                                 "pass each frame's capture time")
            self.last_t = timestamp_s
            if self._busy:
                self.dropped += 1
                return False
            self._busy = True
            self._job = (frame, timestamp_s)
            self._cond.notify_all()
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._stopping:
                    self._cond.wait()
                if self._job is None:  # stopping, nothing accepted is left
                    return
                frame, t = self._job
                self._job = None
            try:
                self._callback(self._run(frame, t), frame, t)
            except BaseException as e:  # noqa: BLE001 - kept and raised in the caller's thread
                with self._cond:
                    self._error = self._error or e
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _raise_kept(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Run the frame already accepted (its callback included), then stop the thread.

        Raises:
            Exception: what a frame's ``run`` or callback raised and no ``submit`` has raised yet.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():  # close() from inside the callback: no self-join
            self._thread.join()
        with self._cond:
            self._raise_kept()
