"""Current runs against a baseline: ``python -m bench compare --baseline FILE``.

The baseline file (:mod:`bench.results.baseline`) holds, per row of the report (method and
dataset, plus the variant when runs of one method differ in hyperparameters), the median over
seeds of every metric of :data:`bench.records.METRICS`, its seed standard deviation and n, the
status counts, the method version, the dataset hash and the CPU instruction-set level
(``env.cpu_capability``: the vector instructions torch's kernels used).

Rules, per row and metric:

* a change is a regression only when it goes the bad way (the metric's direction) by more than
  ``max(tolerance, 2 x seed std)``; the tolerance is absolute, or a fraction of the baseline median
  for metrics marked ``relative``; the seed std is the larger of the baseline's and the current
  runs' (sample std over seeds; 0 with one seed);
* the same change the good way is an improvement; anything smaller is noise;
* runs whose method version (adapter source + hyperparameters) or dataset hash differ from the
  baseline's are *not comparable*: listed, never a regression;
* runs made at another instruction-set level than the baseline's round differently, and a
  training run amplifies that, so their accuracies are not compared (*accuracy not comparable*)
  unless ``--any-cpu``; costs are compared still;
* a run that fails, diverges or times out where the baseline's did not (a larger share of bad runs
  than in the baseline) is a regression, comparable or not; a failed rerun of a configuration
  whose ok record exists is listed, the ok record being what is compared;
* rows only in the baseline (*missing*) or only in the current runs (*new*) are listed.

Exit status: 1 if any regression, or with ``--strict`` if a baseline entry has no comparable run
(missing, not comparable, or accuracy not comparable); else 0; 2 on bad input.
``--update-baseline`` writes the baseline from the current runs instead, keeping the file's
``tolerances`` section: per-metric overrides of METRICS, e.g.
``{"seconds_per_epoch": {"tolerance": 2.0, "relative": true}}`` for a noisy machine.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from bench.results import baseline as baseline_file
from bench.results.baseline import metric_specs, summarise_group
from bench.results.formats import fmt_bytes, fmt_count, fmt_seconds, plural
from bench.results.grouping import Group, group_runs
from bench.results.loader import is_scale, load_runs
from datasets.types import InputError

ACCURACY_METRICS = ("test_acc", "best_valid_acc")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", required=True, metavar="FILE", help="baseline JSON file")
    parser.add_argument("--runs", action="append", default=None, metavar="DIR",
                        help="directory of current run records (repeatable; default reports/runs)")
    parser.add_argument("--update-baseline", action="store_true",
                        help="write the baseline file from the current runs instead of comparing")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 also when a baseline entry has no comparable current run")
    parser.add_argument("--any-cpu", action="store_true",
                        help="compare accuracies of runs made at another CPU instruction-set "
                             "level than the baseline's (env.cpu_capability)")


def main(args: argparse.Namespace) -> int:
    dirs = args.runs or ["reports/runs"]
    path = Path(args.baseline)
    if args.update_baseline:
        baseline_file.check_baseline_target(path)
        old = baseline_file.read_baseline(path) if path.exists() else {}
    elif not path.exists():
        raise InputError(f"no baseline file {args.baseline} (create it with --update-baseline)")
    else:
        old = baseline_file.read_baseline(path)
    loaded = load_runs(dirs)
    runs = loaded.runs
    if not runs:
        raise InputError(f"no run records in {', '.join(map(str, dirs))}")
    main_runs = [r for r in runs if not is_scale(r)]
    runs = main_runs or runs
    groups = group_runs(runs, loaded.failed_reruns)
    if args.update_baseline:
        new = baseline_file.make_baseline(groups, tolerances=old.get("tolerances", {}))
        baseline_file.write_baseline(path, new)
        print(f"wrote baseline {args.baseline}: {plural(len(new['entries']), 'entry')} from "
              f"{plural(len(runs), 'run')}")
        for key in sorted(new["entries"]):
            entry = new["entries"][key]
            print(f"  {_title(entry)}: n={entry['n']} ({_statuses(entry['statuses'])})")
        return 0
    result = compare(old, groups, any_cpu=args.any_cpu)
    print(f"baseline {args.baseline}: {plural(len(old['entries']), 'entry')}; current: "
          f"{plural(len(runs), 'run')} in {plural(len(groups), 'group')}")
    print(result.text(strict=args.strict))
    return 1 if result.regressions or (args.strict and result.unmatched) else 0


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
    comparable: bool = True  # a baseline entry with a run comparable in every metric


@dataclass
class Comparison:
    rows: list[RowResult]

    @property
    def regressions(self) -> list[RowResult]:
        return [row for row in self.rows if row.regressed]

    @property
    def unmatched(self) -> list[RowResult]:
        """Baseline entries without a fully comparable current run."""
        return [row for row in self.rows if not row.comparable]

    def text(self, strict: bool = False) -> str:
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
        if strict and self.unmatched:
            lines.append(f"strict: {plural(len(self.unmatched), 'baseline entry')} without a "
                         "comparable run: " + "; ".join(r.title for r in self.unmatched))
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


def compare(baseline: dict, groups: list[Group], any_cpu: bool = False) -> Comparison:
    specs = metric_specs(baseline.get("tolerances"))
    current = {g.key(): (g, summarise_group(g)) for g in groups}
    entries = baseline["entries"]
    rows: list[RowResult] = []
    for key in sorted(set(entries) | set(current)):
        if key not in current:
            rows.append(RowResult(_title(entries[key]), "missing",
                                  ["in the baseline, not among the current runs"],
                                  comparable=False))
            continue
        group, now = current[key]
        if key not in entries:
            rows.append(RowResult(_title(now), "new", ["not in the baseline"]))
            continue
        rows.append(_compare_row(entries[key], now, group, specs, any_cpu))
    return Comparison(rows)


def _compare_row(base: dict, now: dict, group: Group, specs: dict, any_cpu: bool) -> RowResult:
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
    for record in group.failed_reruns:
        row.notes.append(f"seed {record.get('seed')}: a rerun {record.get('status')} "
                         f"({record.get('error') or 'no error message'}); its ok record is compared")
    differences = [f"{name} {base.get(name)} -> {now.get(name)}"
                   for name in ("method_version", "dataset_hash") if base.get(name) != now.get(name)]
    if differences:
        row.notes.append("not comparable: " + "; ".join(differences))
        row.verdict = "regression" if row.regressed else "not comparable"
        row.comparable = False
        return row
    skip_accuracy = not any_cpu and base.get("cpu_capability") != now.get("cpu_capability")
    if skip_accuracy:
        row.comparable = False
        row.notes.append(f"accuracy not comparable: cpu_capability {base.get('cpu_capability')} -> "
                         f"{now.get('cpu_capability')} (another instruction set rounds "
                         "differently; --any-cpu compares anyway)")
    for name, spec in specs.items():
        if skip_accuracy and name in ACCURACY_METRICS:
            continue
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
        return fmt_bytes(value)
    if unit == "s":
        return fmt_seconds(value)
    if unit == "ops":
        return fmt_count(value)
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
