"""``--runner ray``: the same per-input function (``job.run_input``) as Ray tasks, on a local Ray
instance or a cluster (``--ray-address``). Ray is imported here only (extra ``au-edge[ray]``).

Each task asks for ``threads`` CPUs (1 by default) and its worker process keeps one detector for the
inputs it runs, as a local worker does. On a cluster every node needs au-edge installed and must see
the inputs and ``--out`` under the same paths (a shared file system); the manifest is written here, by
the driver. A task whose worker died is retried once (Ray's ``max_retries``), then recorded as failed.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence

from runtime.batch.job import THREAD_VARS, Job, Settings, failed, run_input
from runtime.batch.local import OnRow
from runtime.errors import AUEdgeError, MissingDependency

RAY_HINT = "pip install 'au-edge[ray]' (or: pip install 'ray>=2.9')"


def _ray():
    try:
        import ray
    except ImportError:
        raise MissingDependency("Ray (for --runner ray)", RAY_HINT) from None
    return ray


class RayRunner:
    """Runs jobs as Ray tasks, at most ``workers`` at a time (None: as many as the cluster has CPUs for).

    Args:
        address: ``ray.init(address=...)``: None starts a local instance (or joins the one ``RAY_ADDRESS``
            names), ``"auto"`` joins the cluster running on this machine, ``ray://HEAD:10001`` a remote
            one through Ray Client.
    """

    name = "ray"

    def __init__(self, settings: Settings, workers: int | None, address: str | None):
        self.settings, self.workers, self.address = settings, workers, address

    def run(self, jobs: Sequence[Job], on_row: OnRow) -> None:
        if not jobs:
            return
        ray = _ray()
        threads = self.settings.threads
        options: dict = {"address": self.address, "include_dashboard": False, "log_to_driver": False,
                         "logging_level": logging.WARNING}
        if self.address is None:
            # A local instance's workers inherit this environment (a runtime_env would start a slower worker
            # pool); on a cluster Ray sets OMP_NUM_THREADS to the task's num_cpus, and the engines and
            # OpenCV get ``threads`` from the settings either way.
            for var in THREAD_VARS:
                os.environ[var] = str(threads)
            if self.workers:
                options["num_cpus"] = self.workers * threads  # a local instance as large as asked
        try:
            ray.init(**options)
        except Exception as e:  # noqa: BLE001 - an address that does not answer, a local instance that did not start
            with contextlib.suppress(Exception):
                ray.shutdown()
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise AUEdgeError(f"cannot start or reach {where}: {' '.join(str(e).split())[:300]}; check `ray status` "
                              "(Ray gives a local instance 30 s to start: on a busy machine try again)") from None
        try:
            task = ray.remote(num_cpus=threads, max_retries=1)(run_input)
            settings = ray.put(self.settings)
            limit = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
            pending, running = list(reversed(jobs)), {}
            try:
                while pending or running:
                    while pending and len(running) < limit:
                        job = pending.pop()
                        running[task.remote(job, settings)] = job
                    (ref,), _ = ray.wait(list(running), num_returns=1)
                    job = running.pop(ref)
                    try:
                        row = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        row = failed(job, self.settings, "the Ray task failed: " + " ".join(str(e).split())[:300])
                    on_row(row)
            finally:
                for ref in running:
                    ray.cancel(ref, force=True)
        finally:
            ray.shutdown()
