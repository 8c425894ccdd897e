"""The one loader of run records, used by ``report``, ``compare`` and ``suite``.

A record directory holds one JSON file per run (``bench.records`` writes them). Reading is lenient
in one way only: a file that cannot be read, is not JSON, or is JSON of the wrong shape (``[]``, a
string where ``metrics`` should be a table, an unknown status) is skipped with one warning line on
stderr, so one damaged file never hides the others.

Reruns of one configuration (same method version, dataset, seed, device; see :func:`run_identity`)
count once. The record kept is the latest ``ok`` one when there is one, else the latest of all: a
later failed or interrupted rerun never hides a finished result. Failed reruns newer than the kept
``ok`` record are returned beside it (:attr:`Loaded.failed_reruns`), so that a report can count them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Container, Iterable, Iterator

from bench import records
from datasets.types import InputError

# field -> the JSON types it may have (None allowed for every optional field)
_SHAPE: dict[str, tuple[type, ...]] = {
    "method": (str,), "dataset": (str,), "status": (str,), "run_id": (str,),
    "metrics": (dict,), "inference": (dict,), "extra": (dict,), "env": (dict,), "tags": (dict,),
    "hparams": (dict,), "curve": (list,), "dataset_info": (dict,), "seed": (int,),
}
_REQUIRED = ("method", "dataset", "status", "metrics")


def shape_error(record: Any) -> str | None:
    """Why ``record`` is not a run record (one short phrase), or None when it is one."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    for name in _REQUIRED:
        if record.get(name) is None:
            return f"no {name!r}"
    for name, types in _SHAPE.items():
        value = record.get(name)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            return f"{name!r} is a {type(value).__name__}"
    if record["status"] not in records.STATUSES:
        return f"unknown status {record['status']!r}"
    if any(not isinstance(point, dict) for point in record.get("curve") or []):
        return "'curve' holds something other than objects"
    return None


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def read_record(path: Path) -> dict:
    """One record, migrated to the current schema; ValueError (one line) when it cannot be used."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    problem = shape_error(data)
    if problem:
        raise ValueError(f"not a run record ({problem})")
    return records.migrate(data)


def iter_records(directory: str | Path, skip: Container[str] = (),
                 quiet: bool = False) -> Iterator[dict]:
    """The usable records in ``directory`` (files named in ``skip`` left out), each with its file
    in ``_path``; every other file gets one warning line unless ``quiet``."""
    for path in records.record_paths(directory):
        if path.name in skip:
            continue
        try:
            record = read_record(path)
        except ValueError as exc:
            if not quiet:
                warn(f"skipped {path}: {exc}")
            continue
        record["_path"] = str(path)
        yield record


def is_scale(record: dict) -> bool:
    """A record of a ``bench scale`` sweep (tag ``scale``)."""
    value = (record.get("tags") or {}).get("scale")
    return value not in (None, "", "0", 0, False, "false")


def run_identity(record: dict) -> tuple:
    """What makes two records the same run: the runner's ``run_key`` (a hash of the whole
    configuration) where the record has one, else method version, dataset, seed and device; plus the
    sweep tags that keep repeats side by side."""
    env = record.get("env") or {}
    repeat = (record.get("tags") or {}).get("repeat")  # `bench scale --repeats`: kept side by side
    if record.get("run_key"):
        return ("key", record["run_key"], is_scale(record), repeat)
    return (record.get("method"), record.get("dataset"), record.get("dataset_hash"),
            record.get("seed"), record.get("method_version"), env.get("device", "cpu"),
            is_scale(record), repeat)


def order(record: dict) -> tuple:
    """Sort key of reruns: when the record was finished (or started), then its run id."""
    return (str(record.get("finished_at") or record.get("started_at") or ""),
            str(record.get("run_id", "")))


@dataclass
class Loaded:
    """The runs kept (one record per configuration) and what was set aside."""

    runs: list[dict]
    superseded: int = 0  # older records of a configuration that was run again
    failed_reruns: list[dict] = field(default_factory=list)  # bad reruns newer than a kept ok record


def keep_one_per_run(found: Iterable[dict]) -> Loaded:
    """One record per configuration: the latest ok record if any, else the latest record."""
    by_run: dict[tuple, list[dict]] = {}
    for record in found:
        by_run.setdefault(run_identity(record), []).append(record)
    kept, failed_reruns, superseded = [], [], 0
    for group in by_run.values():
        group.sort(key=order)
        ok = [r for r in group if r.get("status") == "ok"]
        chosen = ok[-1] if ok else group[-1]
        later_bad = [r for r in group if order(r) > order(chosen) and r.get("status") != "ok"]
        for record in later_bad:
            record["_rerun_of"] = chosen.get("run_id")
        kept.append(chosen)
        failed_reruns += later_bad
        superseded += len(group) - 1 - len(later_bad)
    kept.sort(key=lambda r: (str(r.get("method")), str(r.get("dataset")), str(r.get("seed")),
                             order(r)))
    return Loaded(kept, superseded, failed_reruns)


def load_runs(dirs: Iterable[str | Path]) -> Loaded:
    """The records under the directories, one per configuration (see :func:`keep_one_per_run`).
    A directory that does not exist is an InputError."""
    found: list[dict] = []
    for directory in dirs:
        if not Path(directory).is_dir():
            raise InputError(f"no such run directory: {directory}")
        found += iter_records(directory)
    return keep_one_per_run(found)


def load_frame(run_dir: str | Path):
    """All usable records under ``run_dir`` as a pandas DataFrame, one row per record, nested
    fields dotted (``metrics.test_acc``, ``env.commit``, ``hparams.hidden``); ``curve`` kept as
    lists."""
    import pandas as pd

    rows = [{k: v for k, v in r.items() if k != "_path"} for r in iter_records(run_dir)]
    if not rows:
        return pd.DataFrame()
    flat = pd.json_normalize([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    flat["curve"] = [r.get("curve", []) for r in rows]
    return flat
