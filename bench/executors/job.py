"""What a cluster job does for one cell, wherever the engine placed it: take the cell's lock in
the shared output folder (another holder means the cell is running elsewhere: nothing to do),
check that the cell is not done meanwhile, and run its ``bench run`` command through the
launcher, its output in the cell's log. Plain arguments in, a plain dict out, so that any
engine can ship it."""

from __future__ import annotations

from pathlib import Path


def run_cell_job(key: str, command: list[str], out: str, log: str) -> dict:
    """{"key", "state": "ran" | "busy" | "done", "code": exit status or None}."""
    from bench import launcher
    from bench.executors.cells import cell_lock, existing_cells

    lock = cell_lock(Path(out), key)
    if not lock.try_acquire():
        return {"key": key, "state": "busy", "code": None}
    try:
        if key in existing_cells(Path(out), warn=False):
            return {"key": key, "state": "done", "code": None}
        process = launcher.start(command, Path(log))
        return {"key": key, "state": "ran", "code": launcher.wait(process)}
    finally:
        lock.release()
