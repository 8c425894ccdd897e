"""Where a suite's cells run: ``local`` (on this machine, one after another or ``--jobs`` at
once), ``slurm`` (one SLURM job per cell through submitit) or ``ray`` (one Ray task per cell).
Every executor runs the same ``bench run`` command of a cell, writing its record straight into the suite's output folder
(shared storage for the cluster executors); the controller (:mod:`bench.executors.controller`)
is the same for all."""

from __future__ import annotations

from datasets.types import InputError

EXECUTORS = ("local", "slurm", "ray")


def make_executor(name: str, options, lock, engine_options: dict):
    if name == "local":
        from bench.executors.local import LocalExecutor

        return LocalExecutor(options, lock, **engine_options)
    if name == "slurm":
        from bench.executors.slurm import SlurmExecutor

        return SlurmExecutor(options, **engine_options)
    if name == "ray":
        from bench.executors.ray_tasks import RayExecutor

        return RayExecutor(options, **engine_options)
    raise InputError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
