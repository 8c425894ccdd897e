"""A results page generated from committed commands: ``python -m bench report --page FILE.toml``.

The TOML file names the page to write (``page``), a title and an introduction, and a list of
tables. Each ``[[table]]`` has a ``heading``, a ``text``, the ``commands`` that make its runs
(``bench suite`` / ``bench scale`` lines, shown on the page), the record folders they write
(``runs``) and, optionally, report options: ``target_acc``, ``versus``, ``margin``. The page is
written from the records alone, so it is regenerated, never edited; ``--run`` first runs every
table's commands (suites and sweeps resume: cells that have a record are skipped). A table whose
folders hold no record is bad input: a page never shows a table without its runs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from bench.results import formats, paired, render
from bench.results.loader import load_runs
from bench.results.tables import Report, build
from datasets.types import InputError

TABLE_KEYS = {"heading", "text", "commands", "runs", "target_acc", "versus", "margin"}


def read_spec(path: Path) -> dict[str, Any]:
    """The page description; InputError (one line) when it cannot be read or is malformed."""
    try:
        spec = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not isinstance(spec.get("page"), str) or not isinstance(spec.get("table"), list):
        raise InputError(f"{path}: needs 'page' (the Markdown file to write) and [[table]] entries")
    for i, table in enumerate(spec["table"]):
        unknown = set(table) - TABLE_KEYS
        if unknown or not {"heading", "commands", "runs"} <= set(table):
            raise InputError(f"{path}: table {i + 1} needs heading, commands and runs"
                             + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else ""))
    return spec


def run_commands(table: dict) -> None:
    """Run a table's commands with this interpreter (``python`` at the start of a line is it)."""
    for line in table["commands"]:
        argv = shlex.split(line)
        if argv and argv[0] == "python":
            argv[0] = sys.executable
        print(f"$ {line}", file=sys.stderr)
        code = subprocess.run(argv).returncode
        if code == 2:
            raise InputError(f"{table['heading']}: {line!r} refused its input (exit 2)")


def table_markdown(table: dict) -> list[str]:
    loaded = load_runs(table["runs"])
    if not loaded.runs:
        raise InputError(f"table {table['heading']!r}: no records in {', '.join(table['runs'])}; "
                         "run its commands (or --run)")
    report = build(loaded.runs, target_acc=table.get("target_acc"),
                   superseded=loaded.superseded, versus=table.get("versus"),
                   margin=table.get("margin"), failed_reruns=loaded.failed_reruns)
    lines = [f"## {table['heading']}", ""]
    if table.get("text"):
        lines += [table["text"].strip(), ""]
    lines += ["```", *table["commands"], "```", "", provenance(loaded.runs, report), ""]
    for dataset in report.datasets:
        if len(report.datasets) > 1:
            lines += [f"### {dataset.name}", ""]
        lines += [render.target_text(dataset), ""]
        lines += formats.md_table(render.main_columns(dataset),
                                  [row.values for row in dataset.rows]) + [""]
        if report.versus is not None and dataset.paired:
            lines += [f"{paired.heading(report.versus)}:", ""]
            lines += formats.md_table(paired.columns(report.margin), dataset.paired) + [""]
    if report.scale:
        lines += formats.md_table(formats.SCALE_COLUMNS, [row.values for row in report.scale])
        lines.append("")
    if report.failures:
        lines += ["Runs that did not succeed:", ""]
        lines += [f"- {render.failure_text(r)}" for r in report.failures] + [""]
    return lines


def provenance(runs: list[dict], report: Report) -> str:
    """Where and when the table's runs were made, from their records."""
    envs = [r.get("env") or {} for r in runs]
    cpus = sorted({str(e.get("cpu")) for e in envs if e.get("cpu")})
    levels = sorted({str(e.get("cpu_capability")) for e in envs if e.get("cpu_capability")})
    threads = sorted({str(e.get("threads")) for e in envs if e.get("threads") is not None})
    devices = sorted({str(e.get("device", "cpu")) for e in envs})
    commits = sorted({str(e.get("commit"))[:10] for e in envs if e.get("commit")})
    days = sorted(str(r.get("finished_at") or "")[:10] for r in runs if r.get("finished_at"))
    torch = sorted({str((e.get("packages") or {}).get("torch")) for e in envs
                    if (e.get("packages") or {}).get("torch")})
    parts = [render.runs_text(report).rstrip("."),
             f"device {', '.join(devices)}"]
    if cpus:
        parts.append(f"CPU {', '.join(cpus)}" + (f" ({', '.join(levels)})" if levels else ""))
    if threads:
        parts.append(f"{', '.join(threads)} thread(s) per run")
    if torch:
        parts.append(f"torch {', '.join(torch)}")
    if commits:
        parts.append(f"commit {', '.join(commits)}")
    if days:
        parts.append(f"made {days[0]}" + (f" to {days[-1]}" if days[-1] != days[0] else ""))
    return "*" + "; ".join(parts) + ".*"


def build_page(spec: dict, source: Path) -> str:
    lines = [f"# {spec.get('title', 'Results')}", "",
             f"<!-- Generated by `python -m bench report --page {source}` from the records its "
             "tables name; edit that file, not this page. -->", ""]
    if spec.get("intro"):
        lines += [spec["intro"].strip(), ""]
    for table in spec["table"]:
        lines += table_markdown(table)
    return "\n".join(lines).rstrip() + "\n"


def main(source: Path, run: bool = False) -> int:
    spec = read_spec(source)
    target = Path(spec["page"])
    formats.check_writable_dir(target.parent if str(target.parent) else Path("."), "the page's folder")
    if run:
        for table in spec["table"]:
            run_commands(table)
    formats.write_atomic(target, build_page(spec, source))
    print(f"wrote {target}")
    return 0
