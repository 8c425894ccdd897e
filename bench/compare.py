"""Current runs against a baseline: ``python -m bench compare --baseline FILE``.

The baseline (JSON) holds, per row of the report (method and dataset, plus the variant when runs of
one method differ in hyperparameters), the median over seeds of every metric of
:data:`bench.records.METRICS`, its seed standard deviation and n, the status counts, the method
version and the dataset hash.

Rules, per row and metric:

* a change is a regression only when it goes the bad way (the metric's direction) by more than
  ``max(tolerance, 2 x seed std)``; the tolerance is absolute, or a fraction of the baseline median
  for metrics marked ``relative``; the seed std is the larger of the baseline's and the current
  runs' (sample std over seeds; 0 with one seed);
* the same change the good way is an improvement; anything smaller is noise;
* runs whose method version (adapter source + hyperparameters) or dataset hash differ from the
  baseline's are *not comparable*: listed, never a regression;
* a run that fails, diverges or times out where the baseline's did not (a larger share of bad runs
  than in the baseline) is a regression, comparable or not;
* rows only in the baseline (*missing*) or only in the current runs (*new*) are listed.

Exit status: 1 if any regression, else 0 (2 on bad input). ``--update-baseline`` writes the
baseline from the current runs instead, keeping the file's ``tolerances`` section: per-metric
overrides of METRICS, e.g. ``{"seconds_per_epoch": {"tolerance": 2.0, "relative": true}}`` for
a baseline recorded on another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import records, report
from datasets.types import InputError
from bench.report import plural

BASELINE_SCHEMA = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", required=True, metavar="FILE", help="baseline JSON file")
    parser.add_argument("--runs", action="append", default=None, metavar="DIR",
                        help="directory of current run records (repeatable; default reports/runs)")
    parser.add_argument("--update-baseline", action="store_true",
                        help="write the baseline file from the current runs instead of comparing")


def main(args: argparse.Namespace) -> int:
    dirs = args.runs or ["reports/runs"]
    runs, _ = report.load_runs(dirs)
    if not runs:
        raise InputError(f"no run records in {', '.join(map(str, dirs))}")
    runs = [r for r in runs if not report.is_scale(r)] or runs
    groups = report.group_runs(runs)
    path = Path(args.baseline)
    if args.update_baseline:
        old = read_baseline(path) if path.exists() else {}
        baseline = make_baseline(groups, tolerances=old.get("tolerances", {}))
        write_baseline(path, baseline)
        print(f"wrote baseline {args.baseline}: {plural(len(baseline['entries']), 'entry')} from "
              f"{plural(len(runs), 'run')}")
        for key in sorted(baseline["entries"]):
            entry = baseline["entries"][key]
            print(f"  {_title(entry)}: n={entry['n']} ({_statuses(entry['statuses'])})")
        return 0
    if not path.exists():
        raise InputError(f"no baseline file {args.baseline} (create it with --update-baseline)")
    baseline = read_baseline(path)
    result = compare(baseline, groups)
    print(f"baseline {args.baseline}: {plural(len(baseline['entries']), 'entry')}; current: "
          f"{plural(len(runs), 'run')} in {plural(len(groups), 'group')}")
    print(result.text())
    return 1 if result.regressions else 0


# ---------------------------------------------------------------------------------------------
# Baseline file


def metric_specs(overrides: dict[str, dict] | None = None) -> dict[str, dict[str, Any]]:
    specs = {name: dict(spec) for name, spec in records.METRICS.items()}
    for name, override in (overrides or {}).items():
        if name not in specs:
            raise InputError(f"baseline tolerances: unknown metric {name!r}; known: "
                             f"{', '.join(specs)}")
        specs[name].update(override)
    return specs


def _seed_std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise_group(group: report.Group) -> dict[str, Any]:
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
        "device": group.device, "n": len(group.records),
        "statuses": dict(sorted(group.status_counts.items())), "metrics": metrics,
        "seeds": sorted(r.get("seed") for r in group.records),
    }


def make_baseline(groups: list[report.Group], tolerances: dict | None = None) -> dict[str, Any]:
    env = (groups[0].records[0].get("env") or {}) if groups else {}
    return {
        "schema_version": BASELINE_SCHEMA,
        "created_at": records.now_iso(),
        "source": {k: env.get(k) for k in ("commit", "dirty", "machine", "cpu", "device", "threads")},
        "tolerances": tolerances or {},
        "entries": {g.key(): summarise_group(g) for g in groups},
    }


def read_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read baseline {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("schema_version") != BASELINE_SCHEMA \
            or not isinstance(data.get("entries"), dict):
        raise InputError(f"{path}: not a baseline file of schema {BASELINE_SCHEMA}")
    metric_specs(data.get("tolerances"))  # unknown metric names are bad input
    return data


def write_baseline(path: Path, baseline: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(baseline, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Comparison


@dataclass
class MetricChange:
    name: str
    base: float
    current: float
    allowed: float
    noise_bound: bool  # the allowance came from the seed spread, not the tolerance
    verdict: str  # "ok" | "better" | "worse"
    unit: str
    relative: bool


@dataclass
class RowResult:
    title: str
    verdict: str  # regression | improved | ok | not comparable | new | missing | still failing
    notes: list[str] = field(default_factory=list)
    changes: list[MetricChange] = field(default_factory=list)
    regressed: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    rows: list[RowResult]

    @property
    def regressions(self) -> list[RowResult]:
        return [row for row in self.rows if row.regressed]

    def text(self) -> str:
        lines: list[str] = []
        for row in self.rows:
            lines.append(f"{row.title}: {row.verdict}")
            lines += [f"  {note}" for note in row.notes]
            lines += [f"  {format_change(change)}" for change in row.changes]
        regressions = self.regressions
        if regressions:
            lines.append(f"{len(regressions)} regression{'s' if len(regressions) > 1 else ''}: "
                         + "; ".join(f"{r.title}: {', '.join(r.regressed)}" for r in regressions))
        else:
            lines.append("no regressions")
        return "\n".join(lines)


def _title(entry: dict) -> str:
    title = f"{entry['method']} on {entry['dataset']}"
    return title + (f" [{entry['variant']}]" if entry.get("variant") else "")


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _bad_share(entry: dict) -> float:
    total = sum(entry["statuses"].values())
    bad = sum(n for status, n in entry["statuses"].items() if status != "ok")
    return bad / total if total else 0.0


def compare(baseline: dict[str, Any], groups: list[report.Group]) -> Comparison:
    specs = metric_specs(baseline.get("tolerances"))
    current = {g.key(): (g, summarise_group(g)) for g in groups}
    entries = baseline["entries"]
    rows: list[RowResult] = []
    for key in sorted(set(entries) | set(current)):
        if key not in current:
            rows.append(RowResult(_title(entries[key]), "missing",
                                  ["in the baseline, not among the current runs"]))
            continue
        group, now = current[key]
        if key not in entries:
            rows.append(RowResult(_title(now), "new", ["not in the baseline"]))
            continue
        rows.append(_compare_row(entries[key], now, group, specs))
    return Comparison(rows)


def _compare_row(base: dict, now: dict, group, specs: dict) -> RowResult:
    row = RowResult(_title(now), "ok")
    bad_now = [r for r in group.records if r.get("status") != "ok"]
    if bad_now:
        worse = _bad_share(now) > _bad_share(base)
        kind = "newly failing" if worse and _bad_share(base) == 0 else "failing"
        row.notes.append(f"{kind}: {_statuses(now['statuses'])} "
                         f"(baseline {_statuses(base['statuses'])})")
        for record in bad_now:
            row.notes.append(f"seed {record.get('seed')} {record.get('status')}: "
                             f"{record.get('error') or 'no error message'}")
        if worse:
            row.regressed.append(kind)
    differences = [f"{name} {base.get(name)} -> {now.get(name)}"
                   for name in ("method_version", "dataset_hash") if base.get(name) != now.get(name)]
    if differences:
        row.notes.append("not comparable: " + "; ".join(differences))
        row.verdict = "regression" if row.regressed else "not comparable"
        return row
    for name, spec in specs.items():
        if name not in base["metrics"] or name not in now["metrics"]:
            if name in base["metrics"] and now["statuses"].get("ok"):
                row.notes.append(f"{name}: no current value")
            continue
        change = _judge(name, spec, base["metrics"][name], now["metrics"][name])
        row.changes.append(change)
        if change.verdict == "worse":
            row.regressed.append(name)
    if row.regressed:
        row.verdict = "regression"
    elif bad_now:
        row.verdict = "still failing"
    elif any(c.verdict == "better" for c in row.changes):
        row.verdict = "improved"
    return row


def _judge(name: str, spec: dict, base: dict, now: dict) -> MetricChange:
    relative = bool(spec.get("relative"))
    tolerance = float(spec["tolerance"]) * (abs(base["median"]) if relative else 1.0)
    noise = 2.0 * max(float(base.get("std") or 0.0), float(now.get("std") or 0.0))
    allowed = max(tolerance, noise)
    delta = now["median"] - base["median"]
    gain = delta if spec["higher_is_better"] else -delta
    verdict = "better" if gain > allowed else "worse" if -gain > allowed else "ok"
    return MetricChange(name=name, base=base["median"], current=now["median"], allowed=allowed,
                        noise_bound=noise > tolerance, verdict=verdict,
                        unit=spec.get("unit", ""), relative=relative)


def _value(value: float, unit: str) -> str:
    if unit == "fraction":
        return f"{value:.4f}"
    if unit == "B":
        return report.fmt_bytes(value)
    if unit == "s":
        return report.fmt_seconds(value)
    if unit == "ops":
        return report.fmt_count(value)
    return f"{value:.4g}"


def format_change(change: MetricChange) -> str:
    delta = change.current - change.base
    if change.relative and change.base:
        shown_delta = f"{100 * delta / abs(change.base):+.1f}%"
        shown_allowed = f"{100 * change.allowed / abs(change.base):.1f}%"
    elif change.unit == "fraction":
        shown_delta, shown_allowed = f"{delta:+.4f}", f"{change.allowed:.4f}"
    else:
        shown_delta, shown_allowed = f"{delta:+.4g}", f"{change.allowed:.4g}"
    where = "within" if change.verdict == "ok" else "beyond"
    why = " (2 x seed std)" if change.noise_bound else ""
    label = {"ok": "ok", "better": "improvement", "worse": "REGRESSION"}[change.verdict]
    return (f"{change.name:<18} {_value(change.base, change.unit):>10} -> "
            f"{_value(change.current, change.unit):<10} {shown_delta:>8}  {where} "
            f"{shown_allowed}{why}  {label}")
