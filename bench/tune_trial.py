"""One trial of a tuning study: its ``bench run`` started through :mod:`bench.launcher`, its
per-epoch validation accuracy read from the run's progress file (``<scratch>/runs/progress/``)
and reported to the pruner, its record moved into the study's ``runs`` folder, and its outcome
told to the study.

A pruned run is stopped (SIGTERM: the run writes a record with status ``failed``) and its trial
marked PRUNED. A run that fails, diverges or times out marks its trial FAIL, never a score of 0.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import launcher
from bench.tune_storage import retry

POLL_S = 1.0


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def report_curve(trial, curve: list[dict], reported: int) -> int:
    """Report the epochs of ``curve`` past the first ``reported`` to the pruner."""
    for entry in curve[reported:]:
        value = entry.get("valid_acc")
        if isinstance(value, (int, float)) and value == value:
            retry(trial.report, float(value), int(entry.get("epoch", reported + 1)))
        reported += 1
    return reported


def watch(trial, proc, run_out: Path, *, prune: bool, beat: Callable[[], None] | None = None,
          beat_every: float = 10.0, poll_s: float = POLL_S) -> tuple[bool, int]:
    """Wait for the run, reporting each finished epoch's validation accuracy (from its progress
    file in ``run_out``) to the pruner; stop the run when the pruner says so (if ``prune``).
    Returns (pruned, epochs reported)."""
    state = {"reported": 0, "seen": None, "last_beat": time.monotonic(), "pruned": False}

    def tick() -> bool:
        if beat is not None and time.monotonic() - state["last_beat"] >= beat_every:
            beat()
            state["last_beat"] = time.monotonic()
        files = launcher.progress_files(run_out)
        if not files:
            return False
        try:
            stamp = files[-1].stat().st_mtime_ns
        except OSError:
            return False
        if stamp == state["seen"]:
            return False
        state["seen"] = stamp
        state["reported"] = report_curve(trial, launcher.progress_curve(run_out), state["reported"])
        if state["reported"] and prune and retry(trial.should_prune):
            state["pruned"] = True
            return True
        return False

    launcher.wait(proc, poll_s=poll_s, tick=tick)
    return state["pruned"], state["reported"]


def collect(run_out: Path, runs_dir: Path) -> tuple[dict | None, Path | None]:
    """Move the run's record into the study's runs directory; return it and its path."""
    from bench import records

    found = records.record_paths(run_out)
    if not found:
        return None, None
    source = found[-1]
    runs_dir.mkdir(parents=True, exist_ok=True)
    target = runs_dir / source.name
    os.link(source, target)  # never overwrites
    source.unlink()
    return records.read(target), target


@dataclass
class TrialResult:
    """What became of a trial's run."""

    outcome: str | None  # ok | pruned | interrupted | failed | diverged | timeout | error
    record: dict | None = None
    record_path: Path | None = None
    log_path: Path | None = None
    returncode: int | None = None
    error: str | None = None
    reported: int = 0
    run_wall: float | None = None
    value: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def run_trial(trial, command: list[str], run_out: Path, log_path: Path, *, prune: bool,
              beat=None, beat_every: float = 10.0) -> TrialResult:
    """Start the trial's run and watch it to its end (KeyboardInterrupt stops it and is passed
    on after the run's record is collected by the caller)."""
    run_out.mkdir(parents=True, exist_ok=True)
    launched = time.monotonic()
    proc = launcher.start(command, log_path)
    pruned, reported = watch(trial, proc, run_out, prune=prune, beat=beat, beat_every=beat_every)
    return TrialResult(outcome="pruned" if pruned else None, log_path=log_path,
                       returncode=proc.returncode, reported=reported,
                       run_wall=time.monotonic() - launched)


def judge(trial, result: TrialResult, started: float) -> TrialResult:
    """Fill in the outcome, value and user attributes of a finished trial from its record."""
    record = result.record
    attrs: dict[str, Any] = {"wall_seconds": round(time.monotonic() - started, 3)}
    if record is not None:
        if result.outcome != "interrupted":
            report_curve(trial, record.get("curve") or [], result.reported)  # epochs not seen
        metrics = record.get("metrics") or {}
        attrs.update(record=str(result.record_path), run_id=record.get("run_id"),
                     train_seconds=metrics.get("train_seconds"), status=record.get("status"))
        best = metrics.get("best_valid_acc")
        if result.outcome is None:
            if record.get("status") == "ok" and isinstance(best, (int, float)) and best == best:
                result.outcome, result.value = "ok", float(best)
            else:
                result.outcome = record.get("status") or "failed"
                result.error = record.get("error")
    elif result.outcome is None:
        result.outcome = "error"
        result.error = (launcher.last_error_line(result.log_path)
                        or f"run exited with code {result.returncode} and no record")
    attrs["outcome"] = result.outcome
    if result.error:
        attrs["error"] = str(result.error)[:500]
    if result.run_wall is not None:  # the run's process, start to exit; the rest is the tuner's
        attrs["run_wall_seconds"] = round(result.run_wall, 3)
    result.attrs = attrs
    return result


def scratch_folder(home: Path, number: int) -> Path:
    return home / "trials" / f"{number:05d}-{uuid.uuid4().hex[:6]}"


def progress_line(trial, result: TrialResult, best: float | None, wall: float,
                  overhead: float | None = None) -> str:
    text = f"trial {trial.number}: {result.outcome}"
    if result.value is not None:
        text += f", best valid acc {result.value:.4f}"
    if best is not None:
        text += f" (study best {best:.4f})"
    text += f", {wall:.1f} s"
    if overhead is not None:
        text += f" ({overhead:.2f} s outside the run)"
    if result.error and result.outcome not in ("ok", "pruned"):
        text += f": {result.error}"
        if result.log_path is not None:
            text += f" (log: {result.log_path})"
    return text


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
