"""What a suite knows about its cells on disk: which are done (their records), which are running
(their locks), and whether the output folder can still take a record.

- ``OUT/locks/suite.lock``: held (fcntl) by the one suite controller working on ``OUT``; it names
  the controller's pid and the process groups of the runs it started, so that a later controller
  can stop a run an earlier one left behind.
- ``OUT/locks/cell-<key>.lock``: held by whoever runs the cell (the controller, or a job that a
  cluster engine started) for as long as it runs: a cell is never run twice at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import uuid
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import launcher
from bench.records import method_sources, source_hash
from bench.results import loader
from datasets.types import InputError

DONE_STATUSES = ("ok", "diverged")


@dataclass
class Outcome:
    cell: object  # bench.suite.Cell
    status: str  # ok | diverged | failed | timeout | crashed | not started
    record: dict | None = None
    seconds: float = 0.0
    note: str = ""
    log: Path | None = None
    skipped: bool = False
    attempts: int = 1

    @property
    def succeeded(self) -> bool:
        return self.status in DONE_STATUSES


def cell_key(record: dict) -> str | None:
    tags = record.get("tags")
    return tags.get("suite_cell") if isinstance(tags, dict) else None


def json_records(out: Path, skip: Container[str] = (), warn: bool = False) -> Iterator[tuple[str, dict]]:
    """(file name, record) of the records in ``out`` through the one record loader
    (:func:`bench.results.loader.iter_records`), except the files named in ``skip``; an unreadable
    or wrong-shaped file is passed over (with one warning line if ``warn``)."""
    for record in loader.iter_records(out, skip=skip, quiet=not warn):
        yield Path(record["_path"]).name, record


def _current_source(record: dict, sources: dict[str, str | None]) -> bool:
    """False when the record names an adapter source other than the one on disk now (records
    without ``method_source``, and methods no longer registered, count as current)."""
    recorded = record.get("method_source")
    method = str(record.get("method"))
    if not recorded:
        return True
    if method not in sources:
        try:
            sources[method] = source_hash(method_sources(method))
        except (KeyError, OSError):
            sources[method] = None
    return sources[method] is None or recorded == sources[method]


def existing_cells(out: Path, warn: bool = True) -> dict[str, dict]:
    """suite_cell -> its latest finished record (ok or diverged) in ``out`` made by the current
    source of its adapter."""
    done: dict[str, dict] = {}
    sources: dict[str, str | None] = {}
    for _, record in json_records(Path(out), warn=warn):
        key = cell_key(record)
        if key and record.get("status") in DONE_STATUSES and _current_source(record, sources):
            if key not in done or (record.get("finished_at") or "") >= (done[key].get("finished_at") or ""):
                done[key] = record
    return done


def new_record(out: Path, key: str, before: Container[str]) -> dict | None:
    """The latest record of cell ``key`` among the files not in ``before``."""
    found = [r for name, r in json_records(Path(out), skip=before) if cell_key(r) == key]
    found.sort(key=lambda r: r.get("finished_at") or "")
    return found[-1] if found else None


def record_names(out: Path) -> set[str]:
    return {p.name for p in Path(out).glob("*.json")}


def outcome_of(cell, out: Path, code: int, log: Path, before: Container[str],
               seconds: float = 0.0) -> Outcome:
    """What became of a cell whose run exited with ``code``; exit status 2 (bad input) is an
    InputError that stops the suite."""
    if code == 2:
        raise InputError(f"{cell.label}: {launcher.last_error_line(log) or 'bad input'} (log: {log})")
    record = new_record(out, cell.key, before)
    finished = finished_before(log) if record is None and code == 0 else None
    if record is not None:
        status = record.get("status", "failed")
        note = "" if status == "ok" else str(record.get("error") or "")
    elif finished is not None:  # the same configuration's record, made outside this cell
        record, status, note = finished, finished.get("status", "ok"), "finished before"
    else:
        status = "crashed"
        note = f"{launcher.describe_exit(code)}, no record: {launcher.last_error_line(log)}"
    return Outcome(cell=cell, status=status, record=record, seconds=seconds, note=note, log=log)


def finished_before(log: Path) -> dict | None:
    """The record a resumed run named as already finished in its log (launcher.ALREADY_FINISHED),
    or None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(launcher.ALREADY_FINISHED):
            path = line[len(launcher.ALREADY_FINISHED):].split(". Nothing to do", 1)[0].strip()
            try:
                return json.loads(Path(path).read_text())
            except (OSError, ValueError):
                return None
    return None


def writable(folder: Path) -> str | None:
    """None when a file can be created, written and renamed in ``folder``; else why not."""
    tmp = Path(folder) / f".write-check-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        tmp.write_text("ok")
        os.replace(tmp, tmp.with_suffix(".done"))
        tmp.with_suffix(".done").unlink()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


# ---------------------------------------------------------------------------------------------
# Locks


class FileLock:
    """An flock lock on ``path`` (tied to this open file, so reading the file elsewhere in the
    process does not drop it; Linux's NFS client maps it onto fcntl byte-range locks), taken
    without waiting; the file holds a JSON note of its holder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def note(self) -> dict:
        try:
            if self.fd is not None:
                text = os.pread(self.fd, 1 << 20, 0).decode()
            else:
                text = self.path.read_text()
            data = json.loads(text or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, note: dict) -> None:
        assert self.fd is not None
        data = json.dumps(note).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def is_held_elsewhere(self) -> bool:
        if not self.try_acquire():
            return True
        self.release()
        return False


def cell_lock(out: Path, key: str) -> FileLock:
    return FileLock(Path(out) / "locks" / f"cell-{key}.lock")


class SuiteLock(FileLock):
    """The controller's lock on its output folder."""

    def __init__(self, out: Path):
        super().__init__(Path(out) / "locks" / "suite.lock")
        self.children: dict[str, str] = {}
        self._guard = threading.Lock()  # `--jobs`: runs start and end on several threads

    def acquire(self) -> None:
        if not self.try_acquire():
            pid = self.note().get("pid", "?")  # not held here: reading the file is harmless
            raise InputError(f"a suite is already running in {self.path.parent.parent} (pid {pid})")
        stop_orphans(self.note().get("children") or {})
        self.write({"pid": os.getpid(), "children": {}})

    def add_child(self, pid: int) -> None:
        with self._guard:
            self.children[str(pid)] = _start_time(pid) or ""
            self.write({"pid": os.getpid(), "children": self.children})

    def remove_child(self, pid: int) -> None:
        with self._guard:
            self.children.pop(str(pid), None)
            self.write({"pid": os.getpid(), "children": self.children})


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a process from a
    later one that reuses its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def stop_orphans(children: dict) -> None:
    """Stop the runs (process groups) an earlier, killed controller left running."""
    for pid_text, started in children.items():
        try:
            pid = int(pid_text)
        except ValueError:
            continue
        if launcher.pid_alive(pid) and started and _start_time(pid) == started:
            print(f"note: stopping run pid {pid} left by an earlier suite", file=sys.stderr)
            launcher.kill_group(pid)
