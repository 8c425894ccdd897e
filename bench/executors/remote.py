"""What the cluster executors share: a round submits one job per cell and waits for all of them,
then reads each cell's record from the shared output folder."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bench.executors.cells import Outcome, existing_cells, outcome_of, record_names


class RemoteExecutor:
    """Subclasses provide ``submit(key, command, out, log) -> handle`` and
    ``result(handle) -> dict`` (the job's return value; raises when the job itself failed)."""

    name = "remote"

    def __init__(self, options):
        # Jobs run in other folders (and on other machines): the output folder by its full path.
        self.options = dataclasses.replace(options, out=str(Path(options.out).resolve()))
        self.out = Path(self.options.out)

    def run_round(self, cells: list, resume: set[str], report) -> list[Outcome]:
        before = record_names(self.out)
        started = time.monotonic()
        handles = []
        for cell in cells:
            log = self.out / "logs" / f"{cell.key}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            command = cell.command(self.options, resume=cell.key in resume)
            handles.append((cell, log, self.submit(cell.key, command, str(self.out), str(log))))
            report.starting(cell)
        outcomes = []
        for cell, log, handle in handles:
            outcome = self._outcome(cell, log, handle, before, started)
            report.finished(outcome)
            outcomes.append(outcome)
        return outcomes

    def _outcome(self, cell, log: Path, handle, before, started: float) -> Outcome:
        try:
            result = self.result(handle)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the job died (preempted, node lost): no exit status
            return Outcome(cell=cell, status="crashed", log=log,
                           note=f"job failed: {type(exc).__name__}: {str(exc)[-300:]}")
        seconds = time.monotonic() - started
        if result["state"] == "busy":
            return Outcome(cell=cell, status="not started", note="running elsewhere", log=log)
        if result["state"] == "done":
            record = existing_cells(self.out, warn=False).get(cell.key)
            return Outcome(cell=cell, status=(record or {}).get("status", "ok"), record=record,
                           note="finished elsewhere", skipped=True, log=log)
        return outcome_of(cell, self.out, result["code"], log, before, seconds=seconds)

    def submit(self, key: str, command: list[str], out: str, log: str):
        raise NotImplementedError

    def result(self, handle) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        pass
