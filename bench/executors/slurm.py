"""The slurm executor: one SLURM job per cell through submitit (``cluster="local"``: submitit's
local executor, processes on this machine, as SLURM would run them). Each job's own stdout and
stderr stay in ``OUT/submitit/``; the run's output goes to the cell's log as with every
executor."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.executors.job import run_cell_job
from bench.executors.remote import RemoteExecutor
from datasets.types import InputError


def load_submitit():
    """The submitit module, imported without letting it reconfigure this process's logging.

    Importing submitit runs ``logging.config.dictConfig``, which first closes every logging
    handler already installed in the process. Some handlers close their stream then (absl's, for
    one, installed by the jax-based methods, closes the ``sys.stderr`` of the moment it was
    installed when that is no longer ``sys.stderr``): the process loses an open file it still
    writes to. submitit's own switch ``SUBMITIT_LOG_LEVEL=NOCONFIG`` skips that configuration;
    it is set for the import only, so the jobs configure their logging as usual."""
    if "submitit" in sys.modules:
        return sys.modules["submitit"]
    previous = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        import submitit
    except ImportError:
        raise InputError("--executor slurm needs submitit: pip install 'snn-bench[cluster]'") from None
    finally:
        if previous is None:
            del os.environ["SUBMITIT_LOG_LEVEL"]
        else:
            os.environ["SUBMITIT_LOG_LEVEL"] = previous
    return submitit


class SlurmExecutor(RemoteExecutor):
    name = "slurm"

    def __init__(self, options, *, cluster: str = "slurm", partition: str | None = None,
                 cpus: int = 1, gpus: int = 0, minutes: int = 24 * 60):
        super().__init__(options)
        submitit = load_submitit()
        if cluster == "slurm" and submitit.SlurmExecutor.affinity() < 0:
            raise InputError("--executor slurm: no SLURM here (sbatch not found)")
        folder = Path(options.out) / "submitit" / "%j"
        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params = {"timeout_min": minutes, "cpus_per_task": cpus, "name": "bench-suite",
                  "tasks_per_node": 1, "nodes": 1}
        if gpus:
            params["gpus_per_node"] = gpus
        if partition:
            params["slurm_partition"] = partition
        self.executor.update_parameters(**params)

    def submit(self, key, command, out, log):
        return self.executor.submit(run_cell_job, key, command, out, log)

    def result(self, handle) -> dict:
        return handle.result()
