"""Cell formats, the report's columns, and tables as Markdown, HTML, CSV and LaTeX.

A *column* is ``(title, function of a row's values -> text)``; the same columns make every table
format, so the Markdown, HTML and LaTeX tables of a report always agree. The CSV holds the raw
numbers instead (:data:`CSV_FIELDS`). Files are written atomically (a temporary file in the same
folder, then a rename) with the permissions the user's umask gives (0644 by default).
"""

from __future__ import annotations

import csv
import html
import io
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.results.stats import BAD_STATUSES
from datasets.types import InputError

DASH = "—"
Column = tuple[str, Callable[[Any], str]]


def plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"


# ---------------------------------------------------------------------------------------------
# Cells


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
    text = ", ".join(parts)
    if values.get("n_failed_reruns"):
        text += f" (+{plural(values['n_failed_reruns'], 'failed rerun')})"
    return text


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


def _optional(value: Any) -> str:
    return DASH if value is None else str(value)


def _per_batch(values: dict) -> float | None:
    if values["last_epoch_seconds"] is None or not values.get("max_batches"):
        return None
    return values["last_epoch_seconds"] / values["max_batches"]


MAIN_COLUMNS: tuple[Column, ...] = (
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

SCALE_COLUMNS: tuple[Column, ...] = (
    ("Method", lambda v: v["method"]),
    ("Dataset", lambda v: v["dataset"]),
    ("Hidden", lambda v: _optional(v["hidden"])),
    ("Steps (T)", lambda v: _optional(v["steps"])),
    ("Batch", lambda v: _optional(v["batch_size"])),
    ("Epochs", lambda v: DASH if v["epochs"] is None else f"{v['epochs']:g}"),
    ("s / epoch (last)", lambda v: fmt_seconds(v["last_epoch_seconds"])),
    ("s / batch", lambda v: fmt_seconds(_per_batch(v))),
    ("Peak train memory", lambda v: fmt_bytes(v["peak_train_bytes"])),
    ("Runs", fmt_status),
)

CSV_FIELDS = (
    "kind", "dataset", "method", "variant", "device", "method_version", "n_runs", "n_ok",
    "n_failed", "n_diverged", "n_timeout", "n_failed_reruns", "test_acc_mean", "test_acc_std",
    "best_valid_acc_mean", "best_valid_acc_std", "epochs", "seconds_per_epoch",
    "last_epoch_seconds", "train_seconds", "target_acc", "target_reached", "target_epoch",
    "target_seconds", "target_wall_seconds", "peak_train_bytes", "spikes_per_neuron",
    "synops_per_sample", "dense_synops_per_sample", "activation_sparsity", "steps", "hidden",
    "batch_size", "max_batches",
)


# ---------------------------------------------------------------------------------------------
# Tables


def md_table(columns: Sequence[Column], items: Sequence) -> list[str]:
    """A Markdown table: one line per item, each column's function applied to it."""
    lines = ["| " + " | ".join(name for name, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for item in items:
        cells = [str(fn(item)).replace("|", "\\|") for _, fn in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def html_table(columns: Sequence[Column], items: Sequence, css_class: str) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in columns)
    body = []
    for item in items:
        cells = "".join(f"<td>{html.escape(str(fn(item)))}</td>" for _, fn in columns)
        body.append(f"<tr>{cells}</tr>")
    return (f'<table class="{css_class}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def latex_table(columns: Sequence[Column], items: Sequence, caption: str, label: str) -> str:
    """A LaTeX ``table`` (booktabs rules) written by pandas from the same cells (pandas' Styler
    needs jinja2, which torch already requires)."""
    import pandas as pd

    frame = pd.DataFrame([[str(fn(item)) for _, fn in columns] for item in items],
                         columns=[name for name, _ in columns])
    return frame.to_latex(index=False, caption=caption, label=label, escape=True,
                          column_format="l" * len(columns))


def csv_text(rows: Sequence[tuple[str, dict]]) -> str:
    """``(kind, values)`` rows with the raw numbers of :data:`CSV_FIELDS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for kind, values in rows:
        writer.writerow({"kind": kind, **{k: _csv_value(v) for k, v in values.items()}})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return value


# ---------------------------------------------------------------------------------------------
# Files


def check_writable_dir(path: Path, what: str) -> None:
    """InputError (one line) unless ``path`` is, or can be made, a folder in which a file can be
    created and renamed."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        probe.write_bytes(b"")
        probe.replace(probe.with_name(probe.name + ".moved"))
        probe.with_name(probe.name + ".moved").unlink()
    except OSError as exc:
        raise InputError(f"cannot write to {what} {path}: {exc.strerror or exc}") from None


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, with
    the permissions of the user's umask."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:6]}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
