"""``--runner local``: N worker processes on this machine, each running ``job.run_input`` on one input
at a time.

The parent hands every worker one job, waits for its row, and hands it the next; it knows which input
each worker holds, so a worker that dies (out of memory, a decoder's crash) fails exactly that input
and is replaced. Workers are spawned (no fork of the parent's threads), ignore Ctrl-C (the terminal
sends it to the whole group: the parent decides), and end with their parent even when it is killed
(Linux ``PR_SET_PDEATHSIG``, else a watcher thread), so no orphan goes on writing after a SIGKILL.
Jobs and rows cross the pipe as JSON.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict
from multiprocessing.connection import Connection, wait

from runtime.batch.job import (
    THREAD_VARS,
    Job,
    Settings,
    failed,
    remove_stale_partials,
    run_input,
)
from runtime.batch.manifest import Row
from runtime.errors import AUEdgeError

OnRow = Callable[[Row], None]
WATCH_S = 0.5  # how often an orphaned worker notices (where PR_SET_PDEATHSIG is not available)


def worker_main(conn: Connection, settings_json: str, parent_pid: int) -> None:
    """A worker process: receive a job, send its row, until the parent sends b"" or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent(parent_pid)
    settings = Settings(**json.loads(settings_json))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not data:
            return
        row = run_input(Job(**json.loads(data)), settings)
        conn.send_bytes(json.dumps(row.as_dict()).encode())


def _end_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent ended before the line above
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCH_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class _Worker:
    def __init__(self, ctx, settings: Settings):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, json.dumps(asdict(settings)), os.getpid()),
                                name="au-edge-batch-worker", daemon=True)
        self.proc.start()
        child.close()
        self.job: Job | None = None

    def give(self, job: Job) -> bool:
        """Hand it ``job``; False when it is gone (it died while idle)."""
        self.job = job  # first: a signal right after the send must still find the job held (stop cleans up)
        try:
            self.conn.send_bytes(json.dumps(asdict(job)).encode())
        except OSError:
            self.job = None
            return False
        return True

    def take(self) -> Row | None:
        """The row of its job, or None when the worker died."""
        try:
            return Row(**json.loads(self.conn.recv_bytes()))
        except (EOFError, OSError):
            return None

    def death(self) -> str:
        self.proc.join(5)
        code = self.proc.exitcode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}" + (" (out of memory?)" if -code == 9 else "")
        return f"ended with exit code {code}"

    def stop(self) -> None:
        """End the worker: politely when idle, else at once (its partial files are removed after it)."""
        with contextlib.suppress(OSError):
            if self.job is None:
                self.conn.send_bytes(b"")
                self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()
        if self.job is not None:
            for target in (self.job.jsonl, self.job.csv):
                remove_stale_partials(target)


class LocalRunner:
    """Runs jobs in ``workers`` processes (``threads`` inference threads each, from ``settings``)."""

    name = "local"

    def __init__(self, settings: Settings, workers: int):
        self.settings, self.workers = settings, workers

    def run(self, jobs: Sequence[Job], on_row: OnRow) -> None:
        """Every job through a worker; ``on_row(row)`` in the parent as each ends (raising stops the rest).

        Ctrl-C / SIGTERM (a ``KeyboardInterrupt`` here) and any exception end every worker first.
        """
        if not jobs:
            return
        for var in THREAD_VARS:  # the spawned workers read these when numpy/OpenCV load
            os.environ[var] = str(self.settings.threads)
        ctx = mp.get_context("spawn")
        pending = deque(jobs)
        pool = [_Worker(ctx, self.settings) for _ in range(min(self.workers, len(jobs)))]
        try:
            while True:
                for i, w in enumerate(pool):
                    if w.job is None and pending:
                        if not w.give(pending[0]):  # it died while idle: a fresh one takes the job
                            w.stop()
                            pool[i] = w = _Worker(ctx, self.settings)
                            if not w.give(pending[0]):
                                raise AUEdgeError("cannot start a batch worker process (it ended at once); "
                                                  "check memory and process limits (ulimit -u)")
                        pending.popleft()
                busy = [w for w in pool if w.job is not None]
                if not busy:
                    return
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
                for i, w in enumerate(pool):
                    if w.job is None or (w.conn not in ready and w.proc.sentinel not in ready):
                        continue
                    job, row = w.job, w.take()
                    w.job = None
                    if row is None:
                        row = failed(job, self.settings, f"the worker process {w.death()} while processing it; "
                                     "nothing was written for it")
                        w.job = job
                        w.stop()  # removes what it left
                        pool[i] = _Worker(ctx, self.settings)
                    on_row(row)
        finally:
            for w in pool:
                w.stop()
