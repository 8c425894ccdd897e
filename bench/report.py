"""Comparison tables and plots from run records: ``python -m bench report``.

Records are read from one or more run directories by the one loader
(:mod:`bench.results.loader`): one record per configuration, an ``ok`` record winning over later
failed reruns, which are counted beside it. Runs are grouped per dataset into rows of (method,
variant) (:mod:`bench.results.grouping`); scale-sweep records (tag ``scale``) go to their own
table and plots. The figures of each row are described in :mod:`bench.results.stats`; failed,
diverged and timed-out runs are counted and listed with their error, never averaged, and a row with
no successful run shows no number.

Outputs (in ``--out``): ``report.md``, ``report.csv`` (raw numbers, one row per table row),
``report.tex`` (the tables as LaTeX), ``report.html`` (one self-contained page with the plots
embedded) and ``figures/`` (every plot as its own SVG and PDF file). ``--page FILE.toml`` writes
a results page from a list of tables instead (:mod:`bench.results.page`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.results import formats, paired, render
from bench.results.formats import plural
from bench.results.grouping import Group, group_runs
from bench.results.loader import is_scale, load_runs
from bench.results.stats import BAD_STATUSES, summarise
from datasets.types import InputError

DEFAULT_RUNS = ("reports/runs", "reports/scale")
DEFAULT_OUT = "reports"
TARGET_FRACTION = 0.9  # default target: this fraction of the best row's mean best-valid accuracy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", action="append", default=None, metavar="DIR",
                        help="directory of run records (repeatable; default: reports/runs and "
                             "reports/scale, those that exist)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="folder for report.md, .csv, .tex, .html and figures/ (default reports/)")
    parser.add_argument("--target-acc", type=float, default=None, metavar="X",
                        help="validation accuracy for the time-to-target column (default: "
                             f"{TARGET_FRACTION:g} x the best row's mean best validation accuracy "
                             "per dataset)")
    parser.add_argument("--no-html", action="store_true",
                        help="write only Markdown, CSV and LaTeX (no HTML, no figures)")
    parser.add_argument("--versus", default=None, metavar="METHOD",
                        help="add a table of per-seed test-accuracy differences of every other "
                             "method against METHOD (same dataset, variant and seed), also "
                             "printed")
    parser.add_argument("--margin", type=float, default=None, metavar="POINTS",
                        help="with --versus: say per row whether the 95%% interval of the mean "
                             "difference lies above -POINTS percentage points")
    parser.add_argument("--page", default=None, metavar="TOML",
                        help="write the results page that TOML describes (docs/results.toml) "
                             "from the records it names, instead of a report")


def main(args: argparse.Namespace) -> int:
    if args.page is not None:
        from bench.results import page

        return page.main(Path(args.page))
    if args.target_acc is not None and not 0.0 < args.target_acc <= 1.0:
        raise InputError(f"--target-acc must be in (0, 1], got {args.target_acc}")
    if args.margin is not None and args.versus is None:
        raise InputError("--margin needs --versus METHOD")
    dirs = args.runs or [d for d in DEFAULT_RUNS if Path(d).is_dir()]
    if not dirs:
        raise InputError(f"no run records: none of {', '.join(DEFAULT_RUNS)} exists (use --runs DIR)")
    out = Path(args.out)
    formats.check_writable_dir(out, "--out")
    loaded = load_runs(dirs)
    if not loaded.runs:
        raise InputError(f"no run records in {', '.join(map(str, dirs))}")
    report = build(loaded.runs, target_acc=args.target_acc, superseded=loaded.superseded,
                   versus=args.versus, margin=args.margin, failed_reruns=loaded.failed_reruns)
    written = write(report, out, html=not args.no_html)
    n_rows = sum(len(d.rows) for d in report.datasets)
    print(f"{plural(len(loaded.runs), 'run')} ({report.superseded} superseded records ignored), "
          f"{plural(n_rows, 'row')} in {plural(len(report.datasets), 'dataset')}, "
          f"{plural(len(report.scale), 'scale point')}", file=sys.stderr)
    if report.versus is not None:
        print(render.paired_markdown(report))
    for path in written:
        print(f"wrote {path}")
    return 0


@dataclass
class Row:
    group: Group
    values: dict


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
    failed_reruns: int = 0


def build(runs: list[dict], target_acc: float | None = None, superseded: int = 0,
          versus: str | None = None, margin: float | None = None,
          failed_reruns: list[dict] = ()) -> Report:
    """The report's tables; ``versus`` (a method) adds per-seed comparisons against it."""
    main_runs = [r for r in runs if not is_scale(r)]
    scale_runs = [r for r in runs if is_scale(r)]
    datasets: list[DatasetReport] = []
    groups = group_runs(main_runs, failed_reruns)
    pairings = paired.pairings(groups, versus, margin) if versus is not None else []
    for name in sorted({g.dataset for g in groups}):
        members = [g for g in groups if g.dataset == name]
        target, source = _target(members, target_acc)
        rows = [Row(g, summarise(g, target)) for g in members]
        hashes = sorted({str(g.dataset_hash) for g in members})
        datasets.append(DatasetReport(name=name, dataset_hash=", ".join(hashes), target=target,
                                      target_source=source, rows=rows,
                                      has_variants=any(g.label for g in members),
                                      paired=[p for p in pairings if p.dataset == name]))
    scale_rows = [Row(g, summarise(g, None)) for g in group_runs(scale_runs, failed_reruns)]
    scale_rows.sort(key=lambda row: (row.group.dataset, row.group.method,
                                     row.values["hidden"] or 0, row.values["steps"] or 0))
    failures = [r for r in runs if r.get("status") in BAD_STATUSES] + list(failed_reruns)
    return Report(datasets=datasets, scale=scale_rows, superseded=superseded, failures=failures,
                  n_runs=len(runs), versus=versus, margin=margin,
                  failed_reruns=len(failed_reruns))


def _target(members: list[Group], given: float | None) -> tuple[float | None, str]:
    if given is not None:
        return given, "given"
    best = [statistics.fmean(v) for g in members if (v := g.values("best_valid_acc"))]
    target = math.floor(TARGET_FRACTION * max(best) * 100) / 100 if best else None
    return (target if target is not None and target > 0 else None,
            f"{TARGET_FRACTION:g} x best mean validation accuracy")


def write(report: Report, out: Path, html: bool = True) -> list[Path]:
    """Write the report's files into ``out``; return their paths."""
    rows = [("main", row.values) for d in report.datasets for row in d.rows]
    rows += [("scale", row.values) for row in report.scale]
    written = [formats.write_atomic(out / "report.md", render.to_markdown(report)),
               formats.write_atomic(out / "report.csv", formats.csv_text(rows)),
               formats.write_atomic(out / "report.tex", render.to_latex(report))]
    if html:
        from bench.results.plots import Plotter

        plots = Plotter(out / "figures")
        written.append(formats.write_atomic(out / "report.html", render.to_html(report, plots)))
        written += plots.files
    return written
