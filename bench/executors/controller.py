"""The suite's controller: holds the output folder's lock, skips the cells already done, hands the
rest to an executor in rounds (every run with ``--resume``, so that a cell stopped mid-run
continues from its checkpoint), and resubmits a cell whose run failed or crashed, up to
``retries`` times. A cell found running elsewhere (a job of an earlier, killed
controller) is waited for, not run again. After a cell fails, the controller checks that the
output folder still takes a file; if not, it starts no further cell."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.executors.cells import (Outcome, SuiteLock, cell_lock, existing_cells, writable)

WAIT_POLL_S = 2.0
RETRIED = ("failed", "crashed")


class Reporter:
    """The progress bar on stderr and the one line per finished cell; decides when to stop."""

    def __init__(self, title: str, total: int, out: Path):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self.console = Console(stderr=True)
        self.title, self.out = title, out
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[current]}")]
        self.progress = Progress(*columns, console=self.console, transient=False)
        self.task = self.progress.add_task(title, total=total, current="")
        self.stopped = ""
        self.running: list[str] = []  # labels of the cells running now

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def starting(self, cell) -> None:
        self.running.append(cell.label)
        self._show_running()

    def finished(self, outcome: Outcome) -> None:
        if outcome.cell.label in self.running:
            self.running.remove(outcome.cell.label)
        self._show_running()
        if outcome.status == "not started":
            return
        self.progress.console.print(outcome_line(outcome))
        self.progress.update(self.task, advance=1)

    def _show_running(self) -> None:
        from rich.markup import escape

        self.progress.update(self.task, current=escape("; ".join(self.running)))

    def resubmitted(self) -> None:
        total = self.progress.tasks[0].total or 0
        self.progress.update(self.task, total=total + 1)

    def should_stop(self, outcome: Outcome) -> bool:
        if outcome.succeeded or outcome.status == "not started" or self.stopped:
            return bool(self.stopped)
        reason = writable(self.out)
        if reason is not None:
            self.stopped = f"the output folder {self.out} cannot be written ({reason})"
        return bool(self.stopped)

    def say(self, text: str) -> None:
        self.progress.console.print(text)


def run_cells(cells: list, options, title: str = "suite", executor: str = "local",
              retries: int = 0, engine_options: dict | None = None) -> list[Outcome]:
    """Run every cell not yet done; return one outcome per cell, in the grid's order."""
    from bench.executors import make_executor

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    lock = SuiteLock(out)
    lock.acquire()
    try:
        done = existing_cells(out)
        outcomes = [Outcome(cell=c, status=done[c.key]["status"], record=done[c.key],
                            note="done before", skipped=True) for c in cells if c.key in done]
        todo = [c for c in cells if c.key not in done]
        reporter = Reporter(title, len(todo), out)
        if len(todo) < len(cells):
            reporter.console.print(f"{title}: {len(cells) - len(todo)} of {len(cells)} runs "
                                   f"already done, {len(todo)} to run")
        engine = make_executor(executor, options, lock, engine_options or {})
        try:
            with reporter:
                outcomes += _rounds(engine, todo, out, retries, reporter, title)
        finally:
            engine.close()
    finally:
        lock.release()
    order = {cell.key: i for i, cell in enumerate(cells)}
    outcomes.sort(key=lambda o: order[o.cell.key])
    return outcomes


def _rounds(engine, todo: list, out: Path, retries: int, reporter: Reporter, title: str) -> list[Outcome]:
    attempts: dict[str, int] = {}
    # Every run starts with --resume: a cell stopped mid-run by an earlier invocation (Ctrl-C, a
    # killed job) continues from its last checkpoint; a cell without one starts from scratch.
    resume: set[str] = {cell.key for cell in todo}
    final: dict[str, Outcome] = {}
    pending = list(todo)
    while pending and not reporter.stopped:
        try:
            results = engine.run_round(pending, resume, reporter)
        except KeyboardInterrupt:
            reporter.say(f"{title} interrupted: run the same command again to resume")
            raise
        again = []
        for outcome in results:
            key = outcome.cell.key
            if outcome.status == "not started" and outcome.note == "running elsewhere":
                reporter.say(f"{outcome.cell.label}: running elsewhere; waiting for it")
                _wait_for(out, key)
                finished = existing_cells(out, warn=False).get(key)
                if finished is not None:
                    final[key] = Outcome(cell=outcome.cell, status=finished["status"],
                                         record=finished, note="finished elsewhere", skipped=True)
                    continue
                again.append(outcome.cell)
                continue
            attempts[key] = attempts.get(key, 0) + 1
            outcome.attempts = attempts[key]
            if (outcome.status in RETRIED and attempts[key] <= retries and not reporter.stopped):
                reporter.say(f"{outcome.cell.label}: {outcome.status}; resubmitted "
                             f"({attempts[key]} of {retries})")
                resume.add(key)
                reporter.resubmitted()
                again.append(outcome.cell)
            else:
                final[key] = outcome
        pending = again
    for cell in todo:
        if cell.key not in final:
            final[cell.key] = Outcome(cell=cell, status="not started",
                                      note=reporter.stopped or "not started")
    if reporter.stopped:
        print(f"error: {reporter.stopped}; no further run started", file=sys.stderr)
    return list(final.values())


def _wait_for(out: Path, key: str) -> None:
    """Wait until no one holds the cell's lock."""
    lock = cell_lock(out, key)
    while lock.is_held_elsewhere():
        time.sleep(WAIT_POLL_S)


def outcome_line(outcome: Outcome) -> str:
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
