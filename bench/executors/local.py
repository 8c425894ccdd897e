"""The local executor: the cells run one after another on this machine (runs that share a
machine disturb each other's clocks), each a ``bench run`` in its own process group that the
controller stops when it is stopped."""

from __future__ import annotations

import time
from pathlib import Path

from bench import launcher
from bench.executors.cells import Outcome, SuiteLock, cell_lock, outcome_of, record_names


def run_one(cell, options, lock: SuiteLock | None = None, resume: bool = False) -> Outcome:
    """Run one cell in its own process and return what became of it."""
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "logs" / f"{cell.key}.log"
    before = record_names(out)
    held = cell_lock(out, cell.key)
    if not held.try_acquire():
        return Outcome(cell=cell, status="not started", note="running elsewhere", log=log)
    try:
        started = time.monotonic()
        process = launcher.start(cell.command(options, resume=resume), log)
        if lock is not None:
            lock.add_child(process.pid)
        try:
            code = launcher.wait(process)
        finally:
            if lock is not None:
                lock.remove_child(process.pid)
        return outcome_of(cell, out, code, log, before, seconds=time.monotonic() - started)
    finally:
        held.release()


class LocalExecutor:
    """Runs the cells in turn; a resubmission is simply a second run (with ``--resume``)."""

    name = "local"

    def __init__(self, options, lock: SuiteLock | None = None):
        self.options, self.lock = options, lock

    def run_round(self, cells: list, resume: set[str], report) -> list[Outcome]:
        outcomes = []
        for cell in cells:
            report.starting(cell)
            outcome = run_one(cell, self.options, self.lock, resume=cell.key in resume)
            report.finished(outcome)
            outcomes.append(outcome)
            if report.should_stop(outcome):
                break
        return outcomes

    def close(self) -> None:
        pass
