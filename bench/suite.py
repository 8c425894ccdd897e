"""A grid of runs: ``python -m bench suite --methods a,b --datasets synthetic --seeds 0,1,2``.

The grid is methods x datasets x seeds x every combination of the ``--grid`` values. Each cell
is one ``python -m bench run`` in its own process (one allocator, one memory figure and one set of
framework globals per run; no fork of a process that imported a framework). A cell is named by a
stable hash of (method, dataset, seed, epochs, hyperparameter overrides, device), stored in its
record as the tag ``suite_cell``. A cell whose record exists with status ``ok`` or ``diverged`` is
skipped, so an interrupted suite resumes where it stopped; a failed or timed-out cell runs again,
and so does a cell whose record came from another version of the adapter's source file (the
record's ``method_source``), so that edited code is never represented by old results.

Each run's output goes to ``<out>/logs/<cell>.log``. Exit status: 0 when every cell ended ``ok`` or
``diverged``; 1 when some failed, timed out or crashed (they are named); 2 on bad input (a run
that rejects its arguments stops the suite); 130 when interrupted.

Cells run one after another: runs that share a machine disturb each other's clocks. To spread a
suite over machines, ``--dry-run`` prints one command per cell for an external scheduler (records
then go to shared storage and ``report`` reads them from there).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Container, Iterator

from bench import registry
from datasets.types import InputError
from bench.records import record_paths, source_hash, stable_hash

DEFAULT_OUT = "reports/runs"
DONE_STATUSES = ("ok", "diverged")
RUNNER_EXIT = {0: "ok", 1: "failed", 3: "diverged", 4: "timeout"}
# How a cell is started; tests replace it with a stand-in script.
RUN_COMMAND: list[str] = [sys.executable, "-m", "bench", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", required=True, help="comma-separated registered methods")
    parser.add_argument("--datasets", default="synthetic",
                        help="comma-separated datasets or dataset paths (default synthetic)")
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


def main(args: argparse.Namespace) -> int:
    cells = build_cells(methods=split_list(args.methods, "--methods"),
                        datasets=split_list(args.datasets, "--datasets"),
                        seeds=parse_seeds(args.seeds), epochs=args.epochs,
                        overrides=args.overrides, grid=args.grid, device=args.device)
    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    options = RunOptions(out=args.out, threads=args.threads, time_limit=args.time_limit)
    if args.dry_run:
        done = existing_cells(Path(args.out))
        for cell in cells:
            if cell.key not in done:
                print(shlex.join(cell.command(options)))
        return 0
    outcomes = run_cells(cells, options)
    return print_summary(outcomes)


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

    def command(self, options: "RunOptions") -> list[str]:
        argv = [*RUN_COMMAND, "--method", self.method, "--dataset", self.dataset,
                "--seed", str(self.seed), "--out", str(options.out),
                "--threads", str(options.threads), "--device", self.device, "--no-progress",
                "--tag", f"suite_cell={self.key}"]
        if self.grid:
            argv += ["--tag", "suite_grid=" + ",".join(f"{k}={v}" for k, v in self.grid)]
        for key, value in self.tags:
            argv += ["--tag", f"{key}={value}"]
        if self.epochs is not None:
            argv += ["--epochs", str(self.epochs)]
        for key, value in self.overrides:
            argv += ["--set", f"{key}={value}"]
        if options.time_limit is not None:
            argv += ["--time-limit", f"{options.time_limit:g}"]
        return argv


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
# Running


@dataclass
class RunOptions:
    out: str | Path = DEFAULT_OUT
    threads: int = 1
    time_limit: float | None = None


@dataclass
class Outcome:
    cell: Cell
    status: str  # ok | diverged | failed | timeout | crashed | skipped
    record: dict | None = None
    seconds: float = 0.0
    note: str = ""
    log: Path | None = None
    skipped: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status in DONE_STATUSES


def existing_cells(out: Path) -> dict[str, dict]:
    """suite_cell -> its latest finished record (ok or diverged) in ``out`` made by the current
    source of its adapter."""
    done: dict[str, dict] = {}
    sources: dict[str, str | None] = {}  # method -> hash of its adapter file now, read once
    for record in _json_records(out, warn=True):
        key = _cell_key(record)
        if key and record.get("status") in DONE_STATUSES and _current_source(record, sources):
            if key not in done or (record.get("finished_at") or "") >= (done[key].get("finished_at") or ""):
                done[key] = record
    return done


def _json_records(out: Path, skip: Container[str] = (), warn: bool = False) -> Iterator[dict]:
    """The records in ``out`` read as plain JSON, except the files named in ``skip``; an unreadable
    file is passed over (with a warning if ``warn``)."""
    for path in record_paths(out):
        if path.name in skip:
            continue
        try:
            yield json.loads(path.read_text())
        except (OSError, ValueError):
            if warn:
                print(f"warning: cannot read {path}; ignored", file=sys.stderr)


def _current_source(record: dict, sources: dict[str, str | None]) -> bool:
    """False when the record names an adapter source other than the one on disk now (records
    without ``method_source``, and methods no longer registered, count as current). ``sources``
    caches each method's hash."""
    recorded = record.get("method_source")
    method = str(record.get("method"))
    if not recorded:
        return True
    if method not in sources:
        try:
            sources[method] = source_hash(registry.method_module_file(method))
        except (KeyError, OSError):
            sources[method] = None
    return sources[method] is None or recorded == sources[method]


def _cell_key(record: dict) -> str | None:
    return (record.get("tags") or {}).get("suite_cell")


def _last_error_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    return lines[-1] if lines else ""


def run_one(cell: Cell, options: RunOptions) -> Outcome:
    """Run one cell in its own process and return what became of it."""
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{cell.key}.log"
    before = {p.name for p in out.glob("*.json")}
    command = cell.command(options)
    started = time.monotonic()
    with open(log, "w") as handle:
        handle.write("$ " + shlex.join(command) + "\n")
        handle.flush()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            _stop(process)
            raise
    seconds = time.monotonic() - started
    if code == 2:
        raise InputError(f"{cell.label}: {_last_error_line(log) or 'bad input'} (log: {log})")
    found = [r for r in _json_records(out, skip=before) if _cell_key(r) == cell.key]
    record = found[-1] if found else None
    if record is not None:
        status = record.get("status", "failed")
        note = "" if status == "ok" else str(record.get("error") or "")
    else:
        status = "crashed"
        reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        note = f"{reason}, no record: {_last_error_line(log)}"
    return Outcome(cell=cell, status=status, record=record, seconds=seconds, note=note, log=log)


def _stop(process: subprocess.Popen) -> None:
    """Let an interrupted run write its record (it handles SIGINT: a terminal's Ctrl-C reaches
    it too; otherwise it is sent one), then make sure it is gone."""
    for action, wait in ((None, 5), (signal.SIGINT, 30), (signal.SIGKILL, None)):
        if process.poll() is not None:
            return
        if action is not None:
            process.send_signal(action)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def run_cells(cells: list[Cell], options: RunOptions, title: str = "suite") -> list[Outcome]:
    """Run every cell not yet done, with an overall progress bar; return one outcome per cell."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    from rich.markup import escape

    console = Console(stderr=True)
    done = existing_cells(Path(options.out))
    outcomes: list[Outcome] = []
    todo = [c for c in cells if c.key not in done]
    for cell in cells:
        if cell.key in done:
            record = done[cell.key]
            outcomes.append(Outcome(cell=cell, status=record["status"], record=record,
                                    note="done before", skipped=True))
    if len(todo) < len(cells):
        console.print(f"{title}: {len(cells) - len(todo)} of {len(cells)} runs already done, "
                      f"{len(todo)} to run")
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[current]}")]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(title, total=len(todo), current="")
        for cell in todo:
            progress.update(task, current=escape(cell.label))
            try:
                outcome = run_one(cell, options)
            except KeyboardInterrupt:
                progress.console.print(f"{title} interrupted: run the same command again to resume")
                raise
            outcomes.append(outcome)
            progress.console.print(_outcome_line(outcome))
            progress.update(task, advance=1, current="")
    order = {cell.key: i for i, cell in enumerate(cells)}
    outcomes.sort(key=lambda o: order[o.cell.key])
    return outcomes


def _outcome_line(outcome: Outcome) -> str:
    from rich.markup import escape

    mark = "[green]done[/]" if outcome.succeeded else "[red]FAILED[/]"
    text = f"{outcome.cell.label}: {outcome.status}"
    metrics = (outcome.record or {}).get("metrics") or {}
    if outcome.status == "ok" and metrics.get("test_acc") is not None:
        text += f", test acc {metrics['test_acc']:.3f}"
    if metrics.get("seconds_per_epoch") is not None:
        text += f", {metrics['seconds_per_epoch']:.3g} s/epoch"
    if outcome.note and not outcome.skipped:
        text += f" ({outcome.note})"
    return f"{mark} {escape(text)}"


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
    ran = sum(1 for o in outcomes if not o.skipped)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(outcomes)} run{'' if len(outcomes) == 1 else 's'} ({ran} run now, "
          f"{len(outcomes) - ran} done before): {summary}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} run{'s' if len(failed) > 1 else ''} did not succeed: "
              + "; ".join(f"{o.cell.label} ({o.status})" for o in failed), file=sys.stderr)
        return 1
    return 0
