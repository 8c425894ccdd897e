"""``bench tune --executor slurm|ray --workers N``: N ordinary tune workers (``python -m bench
tune`` with the same arguments) started by the engine, one job or task each, sharing one study
in a storage that suits shared file systems (a journal file, the default here, or a database
URL; never a SQLite file, whose locking network file systems break). When they are done, this
process prints the study's summary. A rerun of the same command resumes the study."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import launcher
from bench.tune_storage import storage_url
from datasets.types import InputError

_FLAGS = {"method": "--method", "dataset": "--dataset", "trials": "--trials",
          "budget_epochs": "--budget-epochs", "study": "--study", "sampler": "--sampler",
          "pruner": "--pruner", "seed": "--seed", "threads": "--threads", "device": "--device",
          "params": "--params", "time_limit": "--time-limit", "out": "--out"}


def shared_storage(args: argparse.Namespace, name: str) -> str:
    """The study's storage URL for workers on several machines."""
    if args.storage is None:
        return storage_url(Path(args.out).resolve() / f"{name}.log", args.out, name)
    url = storage_url(args.storage, args.out, name)
    if url.startswith("sqlite"):
        raise InputError("--executor slurm|ray: a SQLite file cannot be shared between machines; "
                         "use --storage journal:///PATH or a database URL")
    return url


def worker_command(args: argparse.Namespace, url: str) -> list[str]:
    """The ``bench tune`` command line of one worker (local executor, the shared storage)."""
    argv = [sys.executable, "-m", "bench", "tune", "--storage", url]
    for name, flag in _FLAGS.items():
        value = getattr(args, name)
        if value is not None:
            argv += [flag, str(Path(value).resolve()) if name == "out" else str(value)]
    for pair in args.overrides:
        argv += ["--set", pair]
    return argv


def run_command_job(command: list[str], log: str) -> int:
    """One worker, wherever the engine placed it."""
    return launcher.wait(launcher.start(command, Path(log)))


def run_workers(args: argparse.Namespace, name: str) -> str:
    """Start ``--workers`` workers through the executor and wait for them; return the storage."""
    from bench.suite import engine_options

    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    url = shared_storage(args, name)
    options = engine_options(args)
    command = worker_command(args, url)
    logs = Path(args.out).resolve() / name / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    jobs = [(logs / f"worker-{i}.log") for i in range(args.workers)]
    if args.executor == "slurm":
        from bench.executors.slurm import load_submitit

        submitit = load_submitit()
        executor = submitit.AutoExecutor(folder=Path(args.out).resolve() / "submitit" / "%j",
                                         cluster=options["cluster"])
        params = {"timeout_min": options["minutes"], "cpus_per_task": options["cpus"],
                  "name": f"tune-{name}"}
        if options["gpus"]:
            params["gpus_per_node"] = options["gpus"]
        if options["partition"]:
            params["slurm_partition"] = options["partition"]
        executor.update_parameters(**params)
        handles = [executor.submit(run_command_job, command, str(log)) for log in jobs]
        codes = [h.result() for h in handles]
    else:
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(**({"address": options["address"]} if options["address"] else
                        {"_node_ip_address": "127.0.0.1", "include_dashboard": False}),
                     log_to_driver=False, configure_logging=False)
        try:
            task = ray.remote(num_cpus=options["cpus"], num_gpus=options["gpus"])(run_command_job)
            codes = ray.get([task.remote(command, str(log)) for log in jobs])
        finally:
            if started:
                ray.shutdown()
    for log, code in zip(jobs, codes):
        print(f"worker {log.stem}: exit status {code} (log: {log})", file=sys.stderr)
    return url
