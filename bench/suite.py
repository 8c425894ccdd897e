"""A grid of runs: ``python -m bench suite --methods a,b --datasets synthetic --seeds 0,1,2``.

The grid is methods x datasets x seeds x every combination of the ``--grid`` values. Each cell
is one ``python -m bench run`` in its own process (one allocator, one memory figure and one set of
framework globals per run; no fork of a process that imported a framework). A cell is named by a
stable hash of (method, dataset, seed, epochs, hyperparameter overrides, device), stored in its
record as the tag ``suite_cell``. A cell whose record exists with status ``ok`` or ``diverged`` is
skipped, so an interrupted suite resumes where it stopped (every run is started with
``--resume``: a cell stopped mid-run continues from its last checkpoint, one without a
checkpoint starts from scratch, and one whose configuration already has a finished record in the
folder, made outside the suite, counts as done); a failed or timed-out cell runs again,
and so does a cell whose record came from another version of the adapter's source file (the
record's ``method_source``), so that edited code is never represented by old results.

Each run's output goes to ``<out>/logs/<cell>.log``. Exit status: 0 when every cell ended ``ok`` or
``diverged``; 1 when some failed, timed out or crashed (they are named), or when the output folder
could no longer be written (no cell is started after that); 2 on bad input (a run that rejects its
arguments stops the suite, and so does another suite already working on the same ``--out``); 130
when interrupted (SIGINT or SIGTERM: the running cell is stopped too).

With the default ``--executor local`` cells run one after another: runs that share a machine
disturb each other's clocks. ``--jobs N`` runs up to N at once instead (each run's record then
carries the tag ``suite_jobs``, so its time figures are known to come from a shared machine).
``--executor slurm|ray`` hands each cell to a cluster engine (:mod:`bench.executors`,
docs/cluster.md); ``--dry-run`` prints one command per cell for any other scheduler.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import launcher
from bench.executors import EXECUTORS
from bench.executors.cells import DONE_STATUSES, Outcome, existing_cells  # noqa: F401
from bench.records import stable_hash
from datasets.catalog import DEFAULT_DATASET
from datasets.types import InputError

DEFAULT_OUT = "reports/runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", required=True, help="comma-separated registered methods")
    parser.add_argument("--datasets", default=DEFAULT_DATASET,
                        help=f"comma-separated datasets or dataset paths (default {DEFAULT_DATASET})")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every run")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="hyperparameter of every run (repeatable)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="hyperparameter to vary: one run per value (repeatable: all "
                             "combinations)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="directory for run records")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each run")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="wall-clock limit of each run (status timeout)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the command of every cell still to run, and run nothing")
    add_executor_arguments(parser)
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="local: run up to N cells at once (default 1; each uses --threads "
                             "threads, and their time figures are those of a shared machine)")


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the runs go (see docs/cluster.md); shared by `suite` and `tune`."""
    group = parser.add_argument_group("executor")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: one run after another on this machine (default); slurm: one "
                            "SLURM job per run (submitit); ray: one Ray task per run")
    group.add_argument("--retries", type=int, default=None, metavar="N",
                       help="resubmit a failed or crashed run up to N times, resuming from its "
                            "checkpoint (default: 0 with the local executor, 2 with the others)")
    group.add_argument("--partition", default=None, help="slurm: the partition")
    group.add_argument("--gpus-per-run", type=int, default=0, help="slurm, ray: GPUs per run")
    group.add_argument("--cpus-per-run", type=int, default=None,
                       help="slurm, ray: CPUs per run (default: --threads)")
    group.add_argument("--time", type=int, default=None, metavar="MINUTES",
                       help="slurm: the job's time limit (default: 4 x --time-limit, else 24 h)")
    group.add_argument("--slurm-cluster", choices=("slurm", "local"), default="slurm",
                       help="slurm: 'local' runs the jobs as processes on this machine, as SLURM "
                            "would (submitit's local executor; for testing)")
    group.add_argument("--ray-address", default=None,
                       help="ray: address of a running Ray cluster (default: start a local one)")


def engine_options(args: argparse.Namespace) -> dict:
    """The executor's keyword arguments from the command line."""
    if args.retries is None:
        args.retries = 0 if args.executor == "local" else 2
    for name in ("retries", "gpus_per_run"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name.replace('_', '-')} must be 0 or more")
    cpus = args.cpus_per_run if args.cpus_per_run is not None else args.threads
    if cpus < 1:
        raise InputError("--cpus-per-run must be at least 1")
    if args.time is not None and args.time < 1:
        raise InputError("--time must be at least 1 minute")
    jobs = getattr(args, "jobs", 1)
    if jobs < 1:
        raise InputError("--jobs must be at least 1")
    if jobs > 1 and args.executor != "local":
        raise InputError(f"--jobs is for the local executor; {args.executor} runs cells side by "
                         "side already")
    if args.executor == "slurm":
        minutes = args.time or (int(4 * args.time_limit / 60) + 10 if args.time_limit else 24 * 60)
        return {"cluster": args.slurm_cluster, "partition": args.partition, "cpus": cpus,
                "gpus": args.gpus_per_run, "minutes": minutes}
    if args.executor == "ray":
        return {"address": args.ray_address, "cpus": cpus, "gpus": args.gpus_per_run}
    return {"jobs": jobs}


def main(args: argparse.Namespace) -> int:
    cells = build_cells(methods=split_list(args.methods, "--methods"),
                        datasets=split_list(args.datasets, "--datasets"),
                        seeds=parse_seeds(args.seeds), epochs=args.epochs,
                        overrides=args.overrides, grid=args.grid, device=args.device)
    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    options = RunOptions(out=args.out, threads=args.threads, time_limit=args.time_limit,
                         jobs=args.jobs)
    engine = engine_options(args)
    if args.dry_run:
        done = existing_cells(Path(args.out))
        for cell in cells:
            if cell.key not in done:
                print(shlex.join(cell.command(options)))
        return 0
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        outcomes = run_cells(cells, options, executor=args.executor, retries=args.retries,
                             engine_options=engine)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return print_summary(outcomes)


def _terminate(signum, frame):  # SIGTERM stops the suite like Ctrl-C: its running cell too
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# The grid


def split_list(text: str, option: str) -> list[str]:
    items = []
    for item in text.split(","):
        item = item.strip()
        if item and item not in items:
            items.append(item)
    if not items:
        raise InputError(f"{option} is empty")
    return items


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for item in split_list(text, "--seeds"):
        try:
            seeds.append(int(item))
        except ValueError:
            raise InputError(f"--seeds expects integers, got {item!r}") from None
    return seeds


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"{option} expects key=value, got {pair!r}")
        key, value = (part.strip() for part in pair.split("=", 1))
        if not key:
            raise InputError(f"{option} expects key=value, got {pair!r}")
        values[key] = value
    return values


def parse_grid(pairs: list[str]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--grid expects key=v1,v2,..., got {pair!r}")
        key, values = pair.split("=", 1)
        key = key.strip()
        if key in grid:
            raise InputError(f"--grid {key} given twice")
        grid[key] = split_list(values, f"--grid {key}")
    return grid


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    method: str
    dataset: str
    seed: int
    epochs: int | None = None
    overrides: tuple[tuple[str, str], ...] = ()  # sorted (key, value), grid values included
    grid: tuple[tuple[str, str], ...] = ()  # the grid's share of overrides, for the label
    device: str = "cpu"
    tags: tuple[tuple[str, str], ...] = ()  # extra record tags (e.g. a scale sweep's)

    @property
    def key(self) -> str:
        identity: dict[str, Any] = {"method": self.method, "dataset": self.dataset,
                                    "seed": self.seed, "epochs": self.epochs,
                                    "overrides": dict(self.overrides), "device": self.device}
        if self.tags:
            identity["tags"] = dict(self.tags)
        return stable_hash(identity)

    @property
    def label(self) -> str:
        text = f"{self.method} on {self.dataset}, seed {self.seed}"
        if self.grid:
            text += " [" + ", ".join(f"{k}={v}" for k, v in self.grid) + "]"
        return text

    def command(self, options: "RunOptions", resume: bool = False) -> list[str]:
        tags = [("suite_cell", self.key)]
        if options.jobs > 1:  # the run shares the machine with up to jobs - 1 others
            tags.append(("suite_jobs", str(options.jobs)))
        if self.grid:
            tags.append(("suite_grid", ",".join(f"{k}={v}" for k, v in self.grid)))
        return launcher.run_command(
            method=self.method, dataset=self.dataset, seed=self.seed, out=options.out,
            threads=options.threads, device=self.device, epochs=self.epochs,
            time_limit=options.time_limit, tags=[*tags, *self.tags], resume=resume,
            overrides=[f"{k}={v}" for k, v in self.overrides])


def build_cells(*, methods: list[str], datasets: list[str], seeds: list[int],
                epochs: int | None = None, overrides: list[str] | None = None,
                grid: list[str] | None = None, device: str = "cpu",
                tags: dict[str, str] | None = None) -> list[Cell]:
    """The grid in run order: dataset, method, grid values, seed."""
    from bench import registry

    unknown = [m for m in methods if m not in registry.METHODS]
    if unknown:
        raise InputError(f"unknown method {unknown[0]!r}; known: {', '.join(registry.method_names())}")
    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    fixed = parse_pairs(overrides or [], "--set")
    axes = parse_grid(grid or [])
    if "epochs" in axes or "epochs" in fixed:
        raise InputError("use --epochs, not a hyperparameter override, for epochs")
    combos = [tuple(zip(axes, values)) for values in itertools.product(*axes.values())] or [()]
    cells = []
    for dataset in datasets:
        for method in methods:
            for combo in combos:
                merged = {**fixed, **dict(combo)}
                for seed in seeds:
                    cells.append(Cell(method=method, dataset=dataset, seed=seed, epochs=epochs,
                                      overrides=tuple(sorted(merged.items())), grid=combo,
                                      device=device, tags=tuple(sorted((tags or {}).items()))))
    return cells


# ---------------------------------------------------------------------------------------------
# Running (bench/executors/)


@dataclass
class RunOptions:
    out: str | Path = DEFAULT_OUT
    threads: int = 1
    time_limit: float | None = None
    jobs: int = 1  # cells run at once by the local executor


def run_cells(cells: list[Cell], options: RunOptions, title: str = "suite", executor: str = "local",
              retries: int = 0, engine_options: dict | None = None) -> list[Outcome]:
    """Run every cell not yet done (see :mod:`bench.executors.controller`); one outcome per cell."""
    from bench.executors.controller import run_cells as control

    return control(cells, options, title=title, executor=executor, retries=retries,
                   engine_options=engine_options)


def print_summary(outcomes: list[Outcome]) -> int:
    """The final table and the exit status (1 when a run failed, timed out or crashed)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title="suite summary")
    for name in ("run", "status", "test acc", "s / epoch", "note"):
        table.add_column(name)
    for outcome in outcomes:
        metrics = (outcome.record or {}).get("metrics") or {}
        acc = metrics.get("test_acc")
        spe = metrics.get("seconds_per_epoch")
        note = outcome.note if not outcome.skipped else "done before (skipped)"
        if not outcome.succeeded and outcome.log is not None:
            note = f"{note} (log: {outcome.log})"
        table.add_row(escape(outcome.cell.label), outcome.status,
                      "—" if acc is None else f"{acc:.3f}", "—" if spe is None else f"{spe:.3g}",
                      escape(note))
    console.print(table)
    return exit_status(outcomes)


def exit_status(outcomes: list[Outcome]) -> int:
    """Print the counts and name the runs that did not succeed; 1 if there are any."""
    failed = [o for o in outcomes if not o.succeeded]
    ran = sum(1 for o in outcomes if not o.skipped and o.status != "not started")
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(outcomes)} run{'' if len(outcomes) == 1 else 's'} ({ran} run now, "
          f"{sum(o.skipped for o in outcomes)} done before): {summary}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} run{'s' if len(failed) > 1 else ''} did not succeed: "
              + "; ".join(f"{o.cell.label} ({o.status})" for o in failed), file=sys.stderr)
        return 1
    return 0
