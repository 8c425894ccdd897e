"""Comparison tables and plots from run records: ``python -m bench report``.

Records are read from one or more run directories, the latest record of each run kept (a run is
one method version, dataset, seed and device; a failed run that was retried counts once, as its
retry). Runs are grouped per dataset into rows of (method, variant): a *variant* is a set of
hyperparameters that differs between runs of the same method, e.g. the values of a suite's
``--grid``. Scale-sweep records (tag ``scale``) go to their own table and plots.

Per row: test accuracy mean +- sample std over the successful seeds (n shown), best validation
accuracy likewise, and medians over seeds of the cost figures: timed seconds per epoch, time to a
target validation accuracy (timed and wall-clock), peak training memory, and the inference
metrics (spikes per hidden neuron, synaptic operations per sample as NeuroBench counts them:
effective accumulates for spike-driven synapses plus MACs for dense ones, next to the operations a
dense implementation would do). Failed, diverged and timed-out runs are counted and listed with
their error; they never enter an average, and a row with no successful run shows no number.

Outputs (in ``--out``): ``report.md``, ``report.csv`` (raw numbers, one row per table row) and
``report.html``, one self-contained page with the tables and the plots embedded as PNG data.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import math
import re
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bench import paired, records
from datasets.types import InputError

DEFAULT_RUNS = ("reports/runs", "reports/scale")
DEFAULT_OUT = "reports"
BAD_STATUSES = ("failed", "diverged", "timeout")
TARGET_FRACTION = 0.9  # default target: this fraction of the best row's mean best-valid accuracy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", action="append", default=None, metavar="DIR",
                        help="directory of run records (repeatable; default: reports/runs and "
                             "reports/scale, those that exist)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="where report.md, report.csv and report.html go (default reports/)")
    parser.add_argument("--target-acc", type=float, default=None, metavar="X",
                        help="validation accuracy for the time-to-target column (default: "
                             f"{TARGET_FRACTION:g} x the best row's mean best validation accuracy "
                             "per dataset)")
    parser.add_argument("--no-html", action="store_true", help="write only Markdown and CSV")
    parser.add_argument("--versus", default=None, metavar="METHOD",
                        help="add a table of per-seed test-accuracy differences of every other "
                             "method against METHOD (same dataset, variant and seed), also "
                             "printed")
    parser.add_argument("--margin", type=float, default=None, metavar="POINTS",
                        help="with --versus: say per row whether the mean difference is at least "
                             "-POINTS percentage points")


def main(args: argparse.Namespace) -> int:
    if args.target_acc is not None and not 0.0 < args.target_acc <= 1.0:
        raise InputError(f"--target-acc must be in (0, 1], got {args.target_acc}")
    dirs = args.runs or [d for d in DEFAULT_RUNS if Path(d).is_dir()]
    if not dirs:
        raise InputError(f"no run records: none of {', '.join(DEFAULT_RUNS)} exists (use --runs DIR)")
    if args.margin is not None and args.versus is None:
        raise InputError("--margin needs --versus METHOD")
    runs, superseded = load_runs(dirs)
    if not runs:
        raise InputError(f"no run records in {', '.join(map(str, dirs))}")
    report = build(runs, target_acc=args.target_acc, superseded=superseded,
                   versus=args.versus, margin=args.margin)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_text(out / "report.md", to_markdown(report)),
               write_csv(out / "report.csv", report)]
    if not args.no_html:
        written.append(write_text(out / "report.html", to_html(report)))
    n_rows = sum(len(d.rows) for d in report.datasets)
    print(f"{plural(len(runs), 'run')} ({report.superseded} superseded records ignored), "
          f"{plural(n_rows, 'row')} in {plural(len(report.datasets), 'dataset')}, "
          f"{plural(len(report.scale), 'scale point')}", file=sys.stderr)
    if report.versus is not None:
        print(paired_markdown(report))
    for path in written:
        print(f"wrote {path}")
    return 0


def plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"


# ---------------------------------------------------------------------------------------------
# Loading and grouping (shared with bench.compare)


def load_runs(dirs: Iterable[str | Path]) -> tuple[list[dict], int]:
    """The latest record of each run (see :func:`run_identity`) under the directories, and how
    many older records were superseded. A record that cannot be read is an InputError."""
    found: list[dict] = []
    for directory in dirs:
        directory = Path(directory)
        if not directory.is_dir():
            raise InputError(f"no such run directory: {directory}")
        for path in records.record_paths(directory):
            try:
                record = records.read(path)
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read record {path}: {str(exc).splitlines()[0]}") from None
            record["_path"] = str(path)
            found.append(record)
    return latest_per_run(found)


def run_identity(record: dict) -> tuple:
    """What makes two records the same run: a rerun of it supersedes the older record."""
    env = record.get("env") or {}
    repeat = (record.get("tags") or {}).get("repeat")  # `bench scale --repeats`: kept side by side
    return (record.get("method"), record.get("dataset"), record.get("dataset_hash"),
            record.get("seed"), record.get("method_version"), env.get("device", "cpu"),
            is_scale(record), repeat)


def latest_per_run(found: list[dict]) -> tuple[list[dict], int]:
    """Keep the newest record of each run; return them and how many older ones were dropped."""
    latest: dict[tuple, dict] = {}
    for record in found:
        key = run_identity(record)
        if key not in latest or _order(record) >= _order(latest[key]):
            latest[key] = record
    kept = sorted(latest.values(), key=lambda r: (str(r.get("method")), str(r.get("dataset")),
                                                  r.get("seed", 0), _order(r)))
    return kept, len(found) - len(kept)


def _order(record: dict) -> tuple:
    return (record.get("finished_at") or record.get("started_at") or "", record.get("run_id", ""))


def is_scale(record: dict) -> bool:
    value = (record.get("tags") or {}).get("scale")
    return value not in (None, "", "0", 0, False, "false")


def metric_value(record: dict, name: str) -> float | None:
    """A metric of METRICS (or any name) from the record section it lives in."""
    source = records.METRICS.get(name, {}).get("source", "metrics")
    value = (record.get(source) or {}).get(name)
    if value is None and source != "inference":
        value = (record.get("inference") or {}).get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Group:
    """Runs of one method version on one version of a dataset and one device: one table row."""

    dataset: str
    method: str
    method_version: str
    device: str
    records: list[dict] = field(default_factory=list)
    variant: dict[str, Any] = field(default_factory=dict)  # hyperparameters that tell it apart

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_plain(v)}" for k, v in self.variant.items())

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r.get("status") == "ok"]

    @property
    def status_counts(self) -> dict[str, int]:
        return dict(Counter(record.get("status", "failed") for record in self.records))

    def values(self, name: str) -> list[float]:
        """The metric ``name`` of each successful run that has it."""
        return [v for r in self.ok if (v := metric_value(r, name)) is not None]

    @property
    def dataset_hash(self) -> str | None:
        return self.records[0].get("dataset_hash") if self.records else None

    def key(self) -> str:
        """Stable name of the row: ``method|dataset`` plus ``|variant`` when there is one."""
        parts = [self.method, self.dataset]
        if self.label:
            parts.append(self.label)
        return "|".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:g}"
    return str(value)


def group_runs(runs: list[dict]) -> list[Group]:
    """Group runs into rows and name each row's variant by the hyperparameters (and device) that
    differ between the rows of the same method and dataset."""
    groups: dict[tuple, Group] = {}
    for record in runs:
        device = (record.get("env") or {}).get("device", "cpu")
        key = (record.get("dataset"), record.get("method"), record.get("method_version"), device,
               record.get("dataset_hash"))
        if key not in groups:
            groups[key] = Group(dataset=str(key[0]), method=str(key[1]), method_version=str(key[2]),
                                device=str(device))
        groups[key].records.append(record)
    by_method: dict[tuple, list[Group]] = {}
    for group in groups.values():
        by_method.setdefault((group.dataset, group.method), []).append(group)
    for siblings in by_method.values():
        if len(siblings) < 2:
            continue
        hparams = [s.records[0].get("hparams") or {} for s in siblings]
        keys = sorted(set().union(*hparams))
        differing = [k for k in keys if len({repr(h.get(k)) for h in hparams}) > 1]
        devices = {s.device for s in siblings}
        data = {s.dataset_hash for s in siblings}
        for sibling, hp in zip(siblings, hparams):
            sibling.variant = {k: hp.get(k) for k in differing}
            if len(devices) > 1:
                sibling.variant["device"] = sibling.device
            if len(data) > 1:
                sibling.variant["data"] = str(sibling.dataset_hash)[:8]
            if not sibling.variant:
                sibling.variant = {"version": sibling.method_version[:8]}
    return sorted(groups.values(), key=lambda g: (g.dataset, g.method, _sort_key(g.variant)))


def _sort_key(variant: dict) -> tuple:
    out = []
    for key, value in variant.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((key, 0, float(value), ""))
        else:
            out.append((key, 1, 0.0, str(value)))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Summaries


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def time_to_target(curve: list[dict], target: float) -> tuple[int, float, float | None] | None:
    """(epoch, timed seconds, wall seconds) of the first epoch whose valid_acc >= target."""
    timed = 0.0
    for point in curve:
        timed += float(point.get("seconds") or 0.0)
        acc = point.get("valid_acc")
        if acc is not None and acc >= target:
            wall = point.get("wall_seconds")
            return int(point.get("epoch", 0)), timed, (None if wall is None else float(wall))
    return None


@dataclass
class Row:
    group: Group
    values: dict[str, Any]


@dataclass
class DatasetReport:
    name: str
    dataset_hash: str | None
    target: float | None
    target_source: str
    rows: list[Row]
    has_variants: bool
    paired: list[paired.Pairing] = field(default_factory=list)


@dataclass
class Report:
    datasets: list[DatasetReport]
    scale: list[Row]
    superseded: int
    failures: list[dict]
    n_runs: int
    versus: str | None = None
    margin: float | None = None


def last_epoch_seconds(record: dict) -> float | None:
    """Timed seconds of the record's last epoch, if it has one."""
    curve = record.get("curve") or []
    return float(curve[-1]["seconds"]) if curve and curve[-1].get("seconds") is not None else None


def summarise(group: Group, target: float | None) -> dict[str, Any]:
    ok = group.ok
    values: dict[str, Any] = {
        "dataset": group.dataset, "method": group.method, "variant": group.label,
        "device": group.device, "method_version": group.method_version,
        "n_ok": len(ok), "n_runs": len(group.records),
    }
    counts = group.status_counts
    for status in BAD_STATUSES:
        values[f"n_{status}"] = counts.get(status, 0)
    for name in ("test_acc", "best_valid_acc"):
        values[f"{name}_mean"], values[f"{name}_std"] = mean_std(group.values(name))
    for name in ("seconds_per_epoch", "train_seconds", "peak_train_bytes", "spikes_per_neuron",
                 "synops_per_sample", "dense_synops_per_sample", "activation_sparsity"):
        values[name] = median(group.values(name))
    values["last_epoch_seconds"] = median(
        [s for r in ok if (s := last_epoch_seconds(r)) is not None])
    values["epochs"] = median([float(r["metrics"]["epochs"]) for r in ok
                               if (r.get("metrics") or {}).get("epochs") is not None])
    values["target_acc"] = target
    reached = []
    if target is not None:
        reached = [hit for r in ok if (hit := time_to_target(r.get("curve") or [], target))]
    values["target_reached"] = len(reached)
    values["target_epoch"] = median([float(h[0]) for h in reached])
    values["target_seconds"] = median([h[1] for h in reached])
    values["target_wall_seconds"] = median([h[2] for h in reached if h[2] is not None])
    first = group.records[0] if group.records else {}
    hparams = first.get("hparams") or {}
    for name in ("steps", "hidden", "batch_size"):
        values[name] = hparams.get(name)
    values["max_batches"] = _int_or_none((first.get("tags") or {}).get("max_batches"))
    return values


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def build(runs: list[dict], target_acc: float | None = None, superseded: int = 0,
          versus: str | None = None, margin: float | None = None) -> Report:
    """The report's tables; ``versus`` (a method) adds per-seed comparisons against it."""
    main_runs = [r for r in runs if not is_scale(r)]
    scale_runs = [r for r in runs if is_scale(r)]
    datasets: list[DatasetReport] = []
    groups = group_runs(main_runs)
    pairings = paired.pairings(groups, versus, margin) if versus is not None else []
    for name in sorted({g.dataset for g in groups}):
        members = [g for g in groups if g.dataset == name]
        if target_acc is not None:
            target, source = target_acc, "given"
        else:
            best = [statistics.fmean(v) for g in members if (v := g.values("best_valid_acc"))]
            target = math.floor(TARGET_FRACTION * max(best) * 100) / 100 if best else None
            source = f"{TARGET_FRACTION:g} x best mean validation accuracy"
            if target is not None and target <= 0:
                target = None
        rows = [Row(g, summarise(g, target)) for g in members]
        hashes = sorted({str(g.dataset_hash) for g in members})
        datasets.append(DatasetReport(name=name, dataset_hash=", ".join(hashes), target=target,
                                      target_source=source, rows=rows,
                                      has_variants=any(g.label for g in members),
                                      paired=[p for p in pairings if p.dataset == name]))
    scale_rows = [Row(g, summarise(g, None)) for g in group_runs(scale_runs)]
    scale_rows.sort(key=lambda row: (row.group.dataset, row.group.method,
                                     row.values["hidden"] or 0, row.values["steps"] or 0))
    failures = [r for r in runs if r.get("status") in BAD_STATUSES]
    return Report(datasets=datasets, scale=scale_rows, superseded=superseded, failures=failures,
                  n_runs=len(runs), versus=versus, margin=margin)


# ---------------------------------------------------------------------------------------------
# Formatting

DASH = "—"


def fmt_acc(mean: float | None, std: float | None = None, n: int | None = None) -> str:
    if mean is None:
        return DASH
    text = f"{mean:.3f}"
    if std is not None:
        text += f" ± {std:.3f}"
    if n is not None:
        text += f" (n={n})"
    return text


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return DASH
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.1:
        return f"{value:.3f} s"
    return f"{value * 1000:.3g} ms"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return DASH
    mib = value / 2**20
    if abs(mib) >= 1024:
        return f"{mib / 1024:.2f} GiB"
    return f"{mib:.1f} MiB"


def fmt_count(value: float | None) -> str:
    if value is None:
        return DASH
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.3g}"


def fmt_plain(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_status(values: dict) -> str:
    parts = [f"{values['n_ok']} ok"]
    parts += [f"{values[f'n_{s}']} {s}" for s in BAD_STATUSES if values[f"n_{s}"]]
    return ", ".join(parts)


def fmt_target(values: dict) -> str:
    if values["target_acc"] is None:
        return DASH
    if not values["target_reached"]:
        return "not reached"
    text = fmt_seconds(values["target_seconds"])
    if values["target_wall_seconds"] is not None:
        text += f" / {fmt_seconds(values['target_wall_seconds'])} wall"
    if values["target_reached"] < values["n_ok"]:
        text += f" ({values['target_reached']}/{values['n_ok']} seeds)"
    return text


MAIN_COLUMNS = (
    ("Method", lambda v: v["method"]),
    ("Variant", lambda v: v["variant"] or DASH),
    ("Test acc (mean ± std)", lambda v: fmt_acc(v["test_acc_mean"], v["test_acc_std"], v["n_ok"])),
    ("Best valid acc", lambda v: fmt_acc(v["best_valid_acc_mean"], v["best_valid_acc_std"])),
    ("s / epoch", lambda v: fmt_seconds(v["seconds_per_epoch"])),
    ("Time to target (timed / wall)", fmt_target),
    ("Peak train memory", lambda v: fmt_bytes(v["peak_train_bytes"])),
    ("Spikes / neuron", lambda v: fmt_plain(v["spikes_per_neuron"])),
    ("SynOps / sample", lambda v: fmt_count(v["synops_per_sample"])),
    ("Dense SynOps / sample", lambda v: fmt_count(v["dense_synops_per_sample"])),
    ("Runs", fmt_status),
)

SCALE_COLUMNS = (
    ("Method", lambda v: v["method"]),
    ("Dataset", lambda v: v["dataset"]),
    ("Hidden", lambda v: DASH if v["hidden"] is None else str(v["hidden"])),
    ("Steps (T)", lambda v: DASH if v["steps"] is None else str(v["steps"])),
    ("Batch", lambda v: DASH if v["batch_size"] is None else str(v["batch_size"])),
    ("Epochs", lambda v: DASH if v["epochs"] is None else f"{v['epochs']:g}"),
    ("s / epoch (last)", lambda v: fmt_seconds(v["last_epoch_seconds"])),
    ("s / batch", lambda v: fmt_seconds(_per_batch(v))),
    ("Peak train memory", lambda v: fmt_bytes(v["peak_train_bytes"])),
    ("Runs", fmt_status),
)


def _per_batch(values: dict) -> float | None:
    if values["last_epoch_seconds"] is None or not values.get("max_batches"):
        return None
    return values["last_epoch_seconds"] / values["max_batches"]


def main_columns(dataset: DatasetReport):
    return [c for c in MAIN_COLUMNS if c[0] != "Variant" or dataset.has_variants]


def _md_table(columns, items: list) -> list[str]:
    """A Markdown table: one line per item, each column's function applied to it."""
    lines = ["| " + " | ".join(name for name, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for item in items:
        cells = [str(fn(item)).replace("|", "\\|") for _, fn in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _values(rows: list[Row]) -> list[dict]:
    return [row.values for row in rows]


NOTES = (
    "Accuracy: mean ± sample standard deviation over the successful seeds (n). Costs: medians "
    "over the successful seeds. *s / epoch* counts timed training steps only (evaluation is "
    "untimed). *Time to target*: cumulative timed seconds (and wall-clock seconds since the start "
    "of training, evaluation included) at the first epoch whose validation accuracy reaches the "
    "target. *Peak train memory*: high-water mark during training above the level before it. "
    "*SynOps / sample*: synaptic operations of one test sample as NeuroBench counts them "
    "(accumulates triggered by spikes, multiply-accumulates for dense inputs); *Dense SynOps*: "
    "what a dense implementation would perform. Failed, diverged and timed-out runs are counted "
    "in *Runs* and never averaged."
)


def _runs_text(report: Report) -> str:
    text = plural(report.n_runs, "run")
    if report.superseded:
        text += f" ({plural(report.superseded, 'older record')} of rerun configurations ignored)"
    return text + "."


def to_markdown(report: Report) -> str:
    lines = ["# Benchmark report", "", _runs_text(report), ""]
    for dataset in report.datasets:
        lines += [f"## {dataset.name}", "",
                  f"Dataset hash {dataset.dataset_hash}. " + _target_text(dataset), ""]
        lines += _md_table(main_columns(dataset), _values(dataset.rows))
        lines.append("")
        lines += _paired_section(report, dataset)
    if report.scale:
        lines += ["## Scaling with sequence length", "",
                  "Scale-sweep runs: the same fixed window of data binned into T steps "
                  "(dt = window / T); one run per point (or per repeat, costs then being the "
                  "medians over the repeats), each in its own process. Times are those of the "
                  "last epoch (warm); *s / batch* divides them by the batches trained per epoch.",
                  ""]
        lines += _md_table(SCALE_COLUMNS, _values(report.scale))
        lines.append("")
    if report.failures:
        lines += ["## Runs that did not succeed", ""]
        lines += [f"- {_failure_text(r)}" for r in report.failures]
        lines.append("")
    lines += ["## Notes", "", NOTES, ""]
    return "\n".join(lines)


def _paired_lines(report: Report, dataset: DatasetReport) -> list[str]:
    """The per-seed comparison table of one dataset (empty without --versus)."""
    if report.versus is None:
        return []
    if not dataset.paired:
        return [f"No run of another method has a {report.versus} run of the same variant."]
    return _md_table(paired.columns(report.margin), dataset.paired) + ["", paired.NOTE]


def _paired_section(report: Report, dataset: DatasetReport) -> list[str]:
    if report.versus is None:
        return []
    return [f"### {paired.heading(report.versus)}", "", *_paired_lines(report, dataset), ""]


def paired_markdown(report: Report) -> str:
    """The --versus tables of every dataset, for the terminal."""
    parts = []
    for dataset in report.datasets:
        parts += [f"{dataset.name}: {paired.heading(report.versus)}", "",
                  *_paired_lines(report, dataset), ""]
    return "\n".join(parts)


def _target_text(dataset: DatasetReport) -> str:
    if dataset.target is None:
        return "No target accuracy (no successful run)."
    if dataset.target_source == "given":
        return f"Target validation accuracy {dataset.target:.2f}."
    return f"Target validation accuracy {dataset.target:.2f} ({dataset.target_source})."


def _failure_text(record: dict) -> str:
    error = record.get("error") or "no error message"
    return (f"{record.get('method')} on {record.get('dataset')}, seed {record.get('seed')}: "
            f"{record.get('status')}: {error}")


CSV_FIELDS = (
    "kind", "dataset", "method", "variant", "device", "method_version", "n_runs", "n_ok",
    "n_failed", "n_diverged", "n_timeout", "test_acc_mean", "test_acc_std", "best_valid_acc_mean",
    "best_valid_acc_std", "epochs", "seconds_per_epoch", "last_epoch_seconds", "train_seconds",
    "target_acc",
    "target_reached", "target_epoch", "target_seconds", "target_wall_seconds", "peak_train_bytes",
    "spikes_per_neuron", "synops_per_sample", "dense_synops_per_sample", "activation_sparsity",
    "steps", "hidden", "batch_size", "max_batches",
)


def write_csv(path: Path, report: Report) -> Path:
    rows = [("main", row) for d in report.datasets for row in d.rows]
    rows += [("scale", row) for row in report.scale]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for kind, row in rows:
            writer.writerow({"kind": kind, **{k: _csv_value(v) for k, v in row.values.items()}})
    tmp.replace(path)
    return path


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return value


def write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# HTML with embedded plots

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; }
th { background: #eef; }
tr:nth-child(even) td { background: #f7f7f7; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
.note { font-size: 13px; color: #444; max-width: 1100px; }
"""


def _html_table(columns, items: list, css_class: str) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in columns)
    body = []
    for item in items:
        cells = "".join(f"<td>{html.escape(str(fn(item)))}</td>" for _, fn in columns)
        body.append(f"<tr>{cells}</tr>")
    return (f'<table class="{css_class}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _figure(png: str | None, caption: str) -> str:
    if png is None:
        return ""
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def to_html(report: Report) -> str:
    plots = Plotter()
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Benchmark report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>Benchmark report</h1>", f"<p>{html.escape(_runs_text(report))}</p>"]
    for dataset in report.datasets:
        parts.append(f"<h2>{html.escape(dataset.name)}</h2>")
        parts.append(f'<p class="note">Dataset hash {html.escape(str(dataset.dataset_hash))}. '
                     f"{html.escape(_target_text(dataset))}</p>")
        parts.append(_html_table(main_columns(dataset), _values(dataset.rows), "results"))
        parts.append(_figure(plots.learning_curves(dataset),
                             f"{dataset.name}: validation accuracy against epochs and against "
                             "timed training seconds (mean over seeds)"))
        parts.append(_figure(plots.accuracy_vs_cost(dataset),
                             f"{dataset.name}: test accuracy against training time, peak memory "
                             "and synaptic operations (error bars: seed std)"))
        parts.append(_paired_html(report, dataset))
    if report.scale:
        parts.append("<h2>Scaling with sequence length</h2>")
        parts.append('<p class="note">The same fixed window of data binned into T steps '
                     "(dt = window / T); one run per point (or per repeat, costs then being the "
                     "medians over the repeats), each in its own process.</p>")
        parts.append(_html_table(SCALE_COLUMNS, _values(report.scale), "scale"))
        for dataset in sorted({row.group.dataset for row in report.scale}):
            parts.append(_figure(plots.scaling(report.scale, dataset),
                                 f"{dataset}: timed seconds of the last epoch and peak training memory "
                                 "against sequence length (log-log)"))
    if report.failures:
        parts.append("<h2>Runs that did not succeed</h2><ul>")
        parts += [f"<li>{html.escape(_failure_text(r))}</li>" for r in report.failures]
        parts.append("</ul>")
    notes = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", html.escape(NOTES))
    parts.append(f'<h2>Notes</h2><p class="note">{notes}</p>')
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _paired_html(report: Report, dataset: DatasetReport) -> str:
    if report.versus is None:
        return ""
    title = f"<h3>{html.escape(paired.heading(report.versus))}</h3>"
    if not dataset.paired:
        return title + f"<p>{html.escape(_paired_lines(report, dataset)[0])}</p>"
    table = _html_table(paired.columns(report.margin), dataset.paired, "paired")
    return f'{title}{table}<p class="note">{html.escape(paired.NOTE)}</p>'


class Plotter:
    """Figures as base64 PNG strings (matplotlib's Agg backend, imported on first use)."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        import matplotlib.ticker

        self.plt = plt
        self.ticker = matplotlib.ticker
        self.colors: dict[str, Any] = {}
        self.cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def color(self, name: str):
        if name not in self.colors:
            self.colors[name] = self.cycle[len(self.colors) % len(self.cycle)]
        return self.colors[name]

    def _png(self, fig) -> str:
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=90)
        self.plt.close(fig)
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    @staticmethod
    def _name(row: Row) -> str:
        return row.group.method + (f" [{row.group.label}]" if row.group.label else "")

    def learning_curves(self, dataset: DatasetReport) -> str | None:
        series = []
        for row in dataset.rows:
            curves = [r.get("curve") or [] for r in row.group.ok]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            epochs = [curves[0][i].get("epoch", i + 1) for i in range(n)]
            acc = [statistics.fmean(c[i].get("valid_acc") or 0.0 for c in curves) for i in range(n)]
            seconds = []
            for c in curves:
                total, cumulative = 0.0, []
                for point in c[:n]:
                    total += float(point.get("seconds") or 0.0)
                    cumulative.append(total)
                seconds.append(cumulative)
            mean_seconds = [statistics.fmean(s[i] for s in seconds) for i in range(n)]
            series.append((self._name(row), row.group.method, epochs, mean_seconds, acc))
        if not series:
            return None
        fig, (left, right) = self.plt.subplots(1, 2, figsize=(11, 4))
        for name, method, epochs, seconds, acc in series:
            style = dict(marker="o", markersize=3, color=self.color(name), label=name)
            left.plot(epochs, acc, **style)
            right.plot(seconds, acc, **style)
        left.set_xlabel("epoch")
        left.xaxis.set_major_locator(self.ticker.MaxNLocator(integer=True))
        right.set_xlabel("timed training seconds")
        for axis in (left, right):
            axis.set_ylabel("validation accuracy")
            axis.grid(alpha=0.3)
        if dataset.target is not None:
            for axis in (left, right):
                axis.axhline(dataset.target, color="grey", linestyle=":", linewidth=1)
        left.legend(fontsize=8)
        fig.suptitle(f"{dataset.name}: learning curves")
        return self._png(fig)

    def accuracy_vs_cost(self, dataset: DatasetReport) -> str | None:
        axes_spec = (("train_seconds", "timed training seconds", False),
                     ("peak_train_bytes", "peak training memory (MiB)", True),
                     ("synops_per_sample", "synaptic operations per sample", False))
        points = [row for row in dataset.rows if row.values["test_acc_mean"] is not None]
        if not points:
            return None
        fig, axes = self.plt.subplots(1, 3, figsize=(14, 4))
        for axis, (key, label, mib) in zip(axes, axes_spec):
            drawn = False
            for row in points:
                x = row.values[key]
                if x is None:
                    continue
                x = x / 2**20 if mib else x
                name = self._name(row)
                axis.errorbar([x], [row.values["test_acc_mean"]],
                              yerr=[row.values["test_acc_std"] or 0.0], fmt="o",
                              color=self.color(name), label=name, capsize=3)
                drawn = True
            axis.set_xlabel(label)
            axis.set_ylabel("test accuracy")
            axis.grid(alpha=0.3)
            if drawn and key == "synops_per_sample":
                axis.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
            if not drawn:
                axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{dataset.name}: accuracy against cost")
        return self._png(fig)

    def scaling(self, rows: list[Row], dataset: str) -> str | None:
        lines: dict[tuple, list[tuple]] = {}
        for row in rows:
            v = row.values
            if row.group.dataset != dataset or v["steps"] is None:
                continue
            lines.setdefault((row.group.method, v["hidden"]), []).append(
                (v["steps"], v["last_epoch_seconds"], v["peak_train_bytes"]))
        if not lines:
            return None
        fig, (left, right) = self.plt.subplots(1, 2, figsize=(11, 4))
        markers = "osD^v<>"
        hiddens = sorted({h for _, h in lines if h is not None})
        for (method, hidden), pts in sorted(lines.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            pts.sort()
            marker = markers[hiddens.index(hidden) % len(markers)] if hidden in hiddens else "o"
            label = f"{method} (hidden {hidden})"
            style = dict(marker=marker, color=self.color(method), label=label)
            t_pts = [(s, t) for s, t, _ in pts if t is not None and t > 0]
            m_pts = [(s, m / 2**20) for s, _, m in pts if m is not None and m > 0]
            if t_pts:
                left.plot(*zip(*t_pts), **style)
            if m_pts:
                right.plot(*zip(*m_pts), **style)
        left.set_ylabel("timed seconds of the last epoch")
        right.set_ylabel("peak training memory (MiB)")
        for axis in (left, right):
            axis.set_xlabel("sequence length T (steps)")
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.grid(alpha=0.3, which="both")
        steps = sorted({s for pts in lines.values() for s, _, _ in pts})
        for axis in (left, right):
            axis.set_xticks(steps)
            axis.xaxis.set_major_formatter(self.ticker.ScalarFormatter())
            axis.xaxis.set_minor_formatter(self.ticker.NullFormatter())
        left.legend(fontsize=8)
        fig.suptitle(f"{dataset}: scaling with sequence length")
        return self._png(fig)
