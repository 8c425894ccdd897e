"""The baseline file of ``bench compare``: per report row, the median over seeds of every metric of
:data:`bench.records.METRICS`, its seed standard deviation and n, the status counts, the method
version, the dataset hash and the CPU instruction-set level the runs used.

A file of the wrong shape (valid JSON such as ``[]``, a string where an entry's metrics should be) is
bad input: :func:`read_baseline` raises one-line InputErrors, which the CLI turns into exit 2.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench import records
from bench.results.formats import check_writable_dir, write_atomic
from bench.results.grouping import Group
from datasets.types import InputError

BASELINE_SCHEMA = 1
SOURCE_FIELDS = ("commit", "dirty", "machine", "cpu", "cpu_capability", "blas", "device", "threads")


def metric_specs(overrides: dict[str, dict] | None = None) -> dict[str, dict[str, Any]]:
    """``records.METRICS`` with the baseline's ``tolerances`` applied."""
    specs = {name: dict(spec) for name, spec in records.METRICS.items()}
    for name, override in (overrides or {}).items():
        if name not in specs:
            raise InputError(f"baseline tolerances: unknown metric {name!r}; known: "
                             f"{', '.join(specs)}")
        if not isinstance(override, dict):
            raise InputError(f"baseline tolerances: {name!r} must be an object, "
                             f"not a {type(override).__name__}")
        specs[name].update(override)
        if not _number(specs[name].get("tolerance")):
            raise InputError(f"baseline tolerances: {name!r} needs a numeric 'tolerance'")
    return specs


def _seed_std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise_group(group: Group) -> dict[str, Any]:
    """A baseline entry (also the current side of a comparison) for one report row."""
    metrics: dict[str, dict[str, float]] = {}
    for name in metric_specs():
        values = group.values(name)
        if values:
            metrics[name] = {"median": statistics.median(values), "std": _seed_std(values),
                             "n": len(values)}
    return {
        "method": group.method, "dataset": group.dataset, "variant": group.label,
        "method_version": group.method_version, "dataset_hash": group.dataset_hash,
        "device": group.device, "cpu_capability": group.env_value("cpu_capability"),
        "n": len(group.records), "statuses": dict(sorted(group.status_counts.items())),
        "metrics": metrics, "seeds": sorted(r.get("seed") for r in group.records),
        "test_acc_by_seed": {str(s): v for s, v in sorted(group.values_by_seed("test_acc").items())},
    }


def make_baseline(groups: list[Group], tolerances: dict | None = None) -> dict[str, Any]:
    env = (groups[0].records[0].get("env") or {}) if groups else {}
    return {
        "schema_version": BASELINE_SCHEMA,
        "created_at": records.now_iso(),
        "source": {k: env.get(k) for k in SOURCE_FIELDS},
        "tolerances": tolerances or {},
        "entries": {g.key(): summarise_group(g) for g in groups},
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def entry_problem(entry: Any) -> str | None:
    """Why ``entry`` is not a baseline entry, or None."""
    if not isinstance(entry, dict):
        return f"a {type(entry).__name__}, not an object"
    for name in ("method", "dataset"):
        if not isinstance(entry.get(name), str):
            return f"no {name!r} text"
    if not isinstance(entry.get("statuses"), dict) or \
            not all(_number(n) for n in entry["statuses"].values()):
        return "'statuses' is not an object of counts"
    if not isinstance(entry.get("metrics"), dict):
        return "'metrics' is not an object"
    for name, figures in entry["metrics"].items():
        if not isinstance(figures, dict) or not _number(figures.get("median")) \
                or not (figures.get("std") is None or _number(figures.get("std"))):
            return f"metric {name!r} has no numeric median and std"
    return None


def read_baseline(path: Path) -> dict[str, Any]:
    """The baseline at ``path``; InputError (one line) when it cannot be read or has the wrong
    shape."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read baseline {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("schema_version") != BASELINE_SCHEMA \
            or not isinstance(data.get("entries"), dict):
        raise InputError(f"{path}: not a baseline file of schema {BASELINE_SCHEMA}")
    if not isinstance(data.get("tolerances", {}), dict):
        raise InputError(f"{path}: 'tolerances' is not an object")
    for key, entry in data["entries"].items():
        if problem := entry_problem(entry):
            raise InputError(f"{path}: entry {key!r} is not a baseline entry ({problem})")
    metric_specs(data.get("tolerances"))  # unknown metric names are bad input
    return data


def check_baseline_target(path: Path) -> None:
    """InputError unless a baseline can be written at ``path``."""
    if path.is_dir():
        raise InputError(f"--update-baseline: {path} is a folder, not a file")
    check_writable_dir(path.parent if str(path.parent) else Path("."), "the baseline's folder")


def write_baseline(path: Path, baseline: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(baseline, indent=2, sort_keys=True) + "\n")
