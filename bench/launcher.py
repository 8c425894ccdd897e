"""Starting and stopping ``python -m bench run`` processes: the one launcher of suites, sweeps and
tuning studies.

A run is started in its own session (so its own process group): a Ctrl-C at the terminal reaches
only the controller, which then stops the run on purpose, and stopping a run stops everything it
started. On Linux the run also gets SIGTERM when the process that started it dies, so a
controller killed with SIGKILL leaves no orphan training behind. :func:`stop` sends the whole group
SIGTERM (the runner then writes its record with status ``failed``) and SIGKILL after a grace
period.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

# How a run is started; tests replace it with a stand-in script.
RUN_COMMAND: list[str] = [sys.executable, "-m", "bench", "run"]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 30.0
# What a run given --resume prints when its configuration already has a finished record in the
# output folder (it writes no new one); the suite takes that record's path from this line.
ALREADY_FINISHED = "note: this configuration already finished; its record is "
_PR_SET_PDEATHSIG = 1


def run_command(*, method: str, dataset: str, seed: int, out: str | os.PathLike,
                threads: int = 1, device: str = "cpu", epochs: int | None = None,
                time_limit: float | None = None, tags: Iterable[tuple[str, str]] = (),
                overrides: Iterable[str] = (), resume: bool = False) -> list[str]:
    """The ``bench run`` command line of one run; ``overrides`` are ``key=value`` strings and
    come last, in the order given."""
    argv = [*RUN_COMMAND, "--method", method, "--dataset", dataset, "--seed", str(seed),
            "--out", str(out), "--threads", str(threads), "--device", device, "--no-progress"]
    for key, value in tags:
        argv += ["--tag", f"{key}={value}"]
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    if time_limit is not None:
        argv += ["--time-limit", f"{time_limit:g}"]
    if resume:
        argv.append("--resume")
    for pair in overrides:
        argv += ["--set", pair]
    return argv


def run_env() -> dict[str, str]:
    """The environment of a run: this project first on the path, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _child_setup() -> None:
    """In the run's process, before it starts: SIGINT and SIGTERM at their defaults (the runner
    installs its own handlers) even when the controller ignores them (nohup, background), and
    SIGTERM when the controller dies."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


def start(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``command`` in its own process group with its output appended to ``log`` (whose
    first line is the command)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        handle.write("$ " + shlex.join(command) + "\n")
        handle.flush()
        return subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env or run_env(),
                                start_new_session=True, preexec_fn=_child_setup)


def stop(process: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the run's process group (the run writes its record), SIGKILL it after ``grace``
    seconds, and reap it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    _kill_group_leftovers(process.pid)


def _kill_group_leftovers(pgid: int) -> None:
    """SIGKILL whatever is left of a finished run's process group (a worker it forked)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait(process: subprocess.Popen, poll_s: float = 1.0, tick=None) -> int:
    """Wait for the run to end, calling ``tick()`` every ``poll_s`` seconds meanwhile (a tick
    returning True stops the run); on KeyboardInterrupt the run is stopped and the interrupt
    passed on. Returns the exit status."""
    try:
        while True:
            try:
                return process.wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                if tick is not None and tick():
                    stop(process)
                    return process.wait()
    except KeyboardInterrupt:
        stop(process)
        raise


def last_error_line(log: Path | None) -> str:
    """The message of the last ``error:`` line of a run's log (without the prefix), else its
    last exception line (``SomethingError: ...``), else its last line; the command line at the
    top of the log never counts. Empty when the log is missing or has nothing else."""
    if log is None:
        return ""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("$ ")]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line
    return lines[-1] if lines else ""


def describe_exit(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM a process group that this process did not start (an orphan of an earlier
    controller), then SIGKILL it if it outlives ``grace``."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pgid):
            return
        time.sleep(0.1)
    _kill_group_leftovers(pgid)


# ---------------------------------------------------------------------------------------------
# A running run's progress: ``OUT/progress/<run_key>.json``, rewritten by the runner after every
# epoch (run_key, run_id, method, dataset, seed, pid, status, epoch, epochs, valid_acc,
# best_valid_acc, seconds, wall_seconds, curve).


def progress_files(out: str | os.PathLike) -> list[Path]:
    """The progress files of the runs writing into ``out``, oldest first."""
    folder = Path(out) / "progress"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        try:
            found.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    return [path for _, path in sorted(found)]


def read_progress(path: str | os.PathLike) -> dict | None:
    """A progress file as a dict, or None while it cannot be read (not written yet, or of
    another shape). Plain JSON: reading it runs nothing and imports no framework."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("curve", []), list):
        return None
    return data


def progress_curve(out: str | os.PathLike) -> list[dict]:
    """The per-epoch rows so far of the one run writing into ``out`` (its latest progress
    file); empty until the first epoch ends."""
    files = progress_files(out)
    progress = read_progress(files[-1]) if files else None
    if progress is None:
        return []
    return [row for row in progress.get("curve") or [] if isinstance(row, dict)]
