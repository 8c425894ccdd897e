"""A report (:class:`bench.results.tables.Report`) as a Markdown page, a self-contained HTML page with
embedded plots, and LaTeX tables."""

from __future__ import annotations

import html
import re

from bench.results import paired
from bench.results.formats import (MAIN_COLUMNS, SCALE_COLUMNS, html_table, latex_table, md_table,
                                   plural)

NOTES = (
    "Accuracy: mean ± sample standard deviation over the successful seeds (n). Costs: medians "
    "over the successful seeds. *s / epoch* counts timed training steps only (evaluation is "
    "untimed). *Time to target*: cumulative timed seconds (and wall-clock seconds since the start "
    "of training, evaluation included) at the first epoch whose validation accuracy reaches the "
    "target. *Peak train memory*: high-water mark during training above the level before it. "
    "*SynOps / sample*: synaptic operations of one test sample as NeuroBench counts them "
    "(accumulates triggered by spikes, multiply-accumulates for dense inputs); *Dense SynOps*: "
    "what a dense implementation would perform. Failed, diverged and timed-out runs are counted "
    "in *Runs* and never averaged; a failed rerun of a configuration that has an ok record is "
    "counted beside it (*failed rerun*), and the ok record is kept."
)

SCALE_TEXT = ("Scale-sweep runs: the same fixed window of data binned into T steps "
              "(dt = window / T); one run per point (or per repeat, costs then being the "
              "medians over the repeats), each in its own process. Times are those of the "
              "last epoch (warm); *s / batch* divides them by the batches trained per epoch.")


def main_columns(dataset) -> list:
    return [c for c in MAIN_COLUMNS if c[0] != "Variant" or dataset.has_variants]


def _values(rows) -> list[dict]:
    return [row.values for row in rows]


def runs_text(report) -> str:
    text = plural(report.n_runs, "run")
    if report.superseded:
        text += f" ({plural(report.superseded, 'older record')} of rerun configurations ignored)"
    if report.failed_reruns:
        text += (f"; {plural(report.failed_reruns, 'failed rerun')} of configurations with an ok "
                 "record counted beside it")
    return text + "."


def target_text(dataset) -> str:
    if dataset.target is None:
        return "No target accuracy (no successful run)."
    if dataset.target_source == "given":
        return f"Target validation accuracy {dataset.target:.2f}."
    return f"Target validation accuracy {dataset.target:.2f} ({dataset.target_source})."


def failure_text(record: dict) -> str:
    error = record.get("error") or "no error message"
    text = (f"{record.get('method')} on {record.get('dataset')}, seed {record.get('seed')}: "
            f"{record.get('status')}: {error}")
    if record.get("_rerun_of"):
        text += f" (a rerun; the ok record {record['_rerun_of']} is kept)"
    return text


# ---------------------------------------------------------------------------------------------
# Markdown


def dataset_markdown(report, dataset, heading: str = "##") -> list[str]:
    """One dataset's section: its table and, with --versus, its paired table."""
    lines = [f"{heading} {dataset.name}", "",
             f"Dataset hash {dataset.dataset_hash}. " + target_text(dataset), ""]
    lines += md_table(main_columns(dataset), _values(dataset.rows))
    lines.append("")
    if report.versus is not None:
        lines += [f"{heading}# {paired.heading(report.versus)}", "",
                  *paired_lines(report, dataset), ""]
    return lines


def scale_markdown(report, heading: str = "##") -> list[str]:
    if not report.scale:
        return []
    return [f"{heading} Scaling with sequence length", "", SCALE_TEXT, "",
            *md_table(SCALE_COLUMNS, _values(report.scale)), ""]


def to_markdown(report) -> str:
    lines = ["# Benchmark report", "", runs_text(report), ""]
    for dataset in report.datasets:
        lines += dataset_markdown(report, dataset)
    lines += scale_markdown(report)
    if report.failures:
        lines += ["## Runs that did not succeed", ""]
        lines += [f"- {failure_text(r)}" for r in report.failures]
        lines.append("")
    lines += ["## Notes", "", NOTES, ""]
    return "\n".join(lines)


def paired_lines(report, dataset) -> list[str]:
    """The per-seed comparison table of one dataset (empty without --versus)."""
    if report.versus is None:
        return []
    if not dataset.paired:
        return [f"No run of another method has a {report.versus} run of the same variant."]
    return md_table(paired.columns(report.margin), dataset.paired) + ["", paired.NOTE]


def paired_markdown(report) -> str:
    """The --versus tables of every dataset, for the terminal."""
    parts = []
    for dataset in report.datasets:
        parts += [f"{dataset.name}: {paired.heading(report.versus)}", "",
                  *paired_lines(report, dataset), ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# LaTeX


def to_latex(report) -> str:
    """Every table of the report as a LaTeX ``table`` (needs ``booktabs``)."""
    parts = [f"% {runs_text(report)} Needs \\usepackage{{booktabs}}.", ""]
    for dataset in report.datasets:
        name = re.sub(r"[^A-Za-z0-9]+", "-", dataset.name).strip("-")
        parts.append(latex_table(main_columns(dataset), _values(dataset.rows),
                                 f"{dataset.name}: {target_text(dataset)}", f"tab:{name}"))
        if report.versus is not None and dataset.paired:
            parts.append(latex_table(paired.columns(report.margin), dataset.paired,
                                     f"{dataset.name}: {paired.heading(report.versus)}",
                                     f"tab:{name}-paired"))
    if report.scale:
        parts.append(latex_table(SCALE_COLUMNS, _values(report.scale),
                                 "Scaling with sequence length", "tab:scale"))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# HTML

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


def _figure(png: str | None, caption: str) -> str:
    if png is None:
        return ""
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def to_html(report, plots) -> str:
    """The page; ``plots`` (a :class:`bench.results.plots.Plotter`) draws and saves the figures."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Benchmark report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>Benchmark report</h1>", f"<p>{html.escape(runs_text(report))}</p>"]
    for dataset in report.datasets:
        parts.append(f"<h2>{html.escape(dataset.name)}</h2>")
        parts.append(f'<p class="note">Dataset hash {html.escape(str(dataset.dataset_hash))}. '
                     f"{html.escape(target_text(dataset))}</p>")
        parts.append(html_table(main_columns(dataset), _values(dataset.rows), "results"))
        parts.append(_figure(plots.learning_curves(dataset.name, dataset.rows, dataset.target),
                             f"{dataset.name}: validation accuracy against epochs and against "
                             "timed training seconds (thin: each seed; bold: mean over seeds)"))
        parts.append(_figure(plots.accuracy_vs_cost(dataset.name, dataset.rows),
                             f"{dataset.name}: test accuracy against training time, peak memory "
                             "and synaptic operations (small points: seeds; error bars: seed std)"))
        parts.append(_paired_html(report, dataset))
    if report.scale:
        parts.append("<h2>Scaling with sequence length</h2>")
        parts.append(f'<p class="note">{html.escape(SCALE_TEXT.replace("*", ""))}</p>')
        parts.append(html_table(SCALE_COLUMNS, _values(report.scale), "scale"))
        for name in sorted({row.group.dataset for row in report.scale}):
            parts.append(_figure(plots.scaling(report.scale, name),
                                 f"{name}: timed seconds of the last epoch and peak training memory "
                                 "against sequence length (log-log)"))
    if report.failures:
        parts.append("<h2>Runs that did not succeed</h2><ul>")
        parts += [f"<li>{html.escape(failure_text(r))}</li>" for r in report.failures]
        parts.append("</ul>")
    notes = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", html.escape(NOTES))
    parts.append(f'<h2>Notes</h2><p class="note">{notes}</p>')
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _paired_html(report, dataset) -> str:
    if report.versus is None:
        return ""
    title = f"<h3>{html.escape(paired.heading(report.versus))}</h3>"
    if not dataset.paired:
        return title + f"<p>{html.escape(paired_lines(report, dataset)[0])}</p>"
    table = html_table(paired.columns(report.margin), dataset.paired, "paired")
    return f'{title}{table}<p class="note">{html.escape(paired.NOTE)}</p>'
