"""The ray executor: one Ray task per cell, on the cluster at ``address`` (or a Ray instance
started here for the suite, on the loopback interface). The task runs the cell's ``bench run``
command on whichever node Ray picks; its record goes to the suite's output folder, which must
be shared storage on a multi-node cluster."""

from __future__ import annotations

from bench.executors.job import run_cell_job
from bench.executors.remote import RemoteExecutor
from datasets.types import InputError


class RayExecutor(RemoteExecutor):
    name = "ray"

    def __init__(self, options, *, address: str | None = None, cpus: int = 1, gpus: int = 0):
        super().__init__(options)
        try:
            import ray
        except ImportError:
            raise InputError("--executor ray needs ray: pip install 'snn-bench[cluster]'") from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            kwargs = {"address": address} if address else {
                "_node_ip_address": "127.0.0.1", "include_dashboard": False}
            ray.init(log_to_driver=False, configure_logging=False, **kwargs)
        self.task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_cell_job)

    def submit(self, key, command, out, log):
        return self.task.remote(key, command, out, log)

    def result(self, handle) -> dict:
        return self.ray.get(handle)

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
