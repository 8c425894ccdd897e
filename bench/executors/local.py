"""The local executor: the cells run on this machine, one after another by default (runs that
share a machine disturb each other's clocks) or up to ``--jobs`` at once, each a ``bench run`` in
its own process group that the controller stops when it is stopped.

With several jobs, each run's record carries the tag ``suite_jobs`` (the number of runs the
suite let share the machine), so that its time figures are read as those of a shared machine."""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from bench import launcher
from bench.executors.cells import Outcome, SuiteLock, cell_lock, outcome_of, record_names


def run_one(cell, options, lock: SuiteLock | None = None, resume: bool = False,
            stopping: threading.Event | None = None) -> Outcome:
    """Run one cell in its own process and return what became of it; setting ``stopping`` stops
    the run (as an interrupt does)."""
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
            code = launcher.wait(process, tick=stopping.is_set if stopping else None)
        finally:
            if lock is not None:
                lock.remove_child(process.pid)
        return outcome_of(cell, out, code, log, before, seconds=time.monotonic() - started)
    finally:
        held.release()


class LocalExecutor:
    """Runs the cells on this machine, ``jobs`` at a time; a resubmission is simply a second run
    (with ``--resume``)."""

    name = "local"

    def __init__(self, options, lock: SuiteLock | None = None, jobs: int = 1):
        self.options, self.lock, self.jobs = options, lock, jobs

    def run_round(self, cells: list, resume: set[str], report) -> list[Outcome]:
        if self.jobs == 1:
            return self._one_at_a_time(cells, resume, report)
        return self._side_by_side(cells, resume, report)

    def _one_at_a_time(self, cells: list, resume: set[str], report) -> list[Outcome]:
        outcomes = []
        for cell in cells:
            report.starting(cell)
            outcome = run_one(cell, self.options, self.lock, resume=cell.key in resume)
            report.finished(outcome)
            outcomes.append(outcome)
            if report.should_stop(outcome):
                break
        return outcomes

    def _side_by_side(self, cells: list, resume: set[str], report) -> list[Outcome]:
        """Up to ``jobs`` runs at once. Once the suite must stop (``report.should_stop``: the
        output folder can no longer be written) no further run starts and the running ones
        finish; an interrupt, or a run that rejects its input, stops the running ones too."""
        outcomes: list[Outcome] = []
        queue = list(cells)
        running: dict[Future, object] = {}
        stopping = threading.Event()
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                while queue or running:
                    while queue and len(running) < self.jobs and not report.stopped:
                        cell = queue.pop(0)
                        report.starting(cell)
                        running[pool.submit(run_one, cell, self.options, self.lock,
                                            cell.key in resume, stopping)] = cell
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        del running[future]
                        outcome = future.result()
                        report.finished(outcome)
                        outcomes.append(outcome)
                        report.should_stop(outcome)
            except BaseException:  # an interrupt, or a run's bad input: stop the others
                stopping.set()
                raise
        return outcomes

    def close(self) -> None:
        pass
