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
import sys
from pathlib import Path

from bench.results import formats, render
from bench.results.formats import plural
from bench.results.loader import load_runs
from bench.results.tables import TARGET_FRACTION, Report, build
from datasets.types import InputError

DEFAULT_RUNS = ("reports/runs", "reports/scale")
DEFAULT_OUT = "reports"


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
    parser.add_argument("--run", action="store_true",
                        help="with --page: first run every table's commands (they resume: runs "
                             "that have a record are skipped)")


def main(args: argparse.Namespace) -> int:
    if args.run and args.page is None:
        raise InputError("--run needs --page TOML")
    if args.page is not None:
        from bench.results import page

        return page.main(Path(args.page), run=args.run)
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
