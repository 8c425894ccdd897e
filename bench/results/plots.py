"""The report's figures (matplotlib, Agg backend, imported on first use).

Each figure is written as its own SVG and PDF file (for papers) and returned as PNG data (for the
self-contained HTML page). Accuracy axes start at 0 and show the chance level as a dashed line
when the number of classes is known; summary and learning-curve plots show every seed (thin lines
or small points) beside the mean; epoch axes have integer ticks.

A *row* here is any object with ``group`` (:class:`bench.results.grouping.Group`) and ``values``
(:func:`bench.results.stats.summarise`).
"""

from __future__ import annotations

import base64
import io
import re
import statistics
from pathlib import Path
from typing import Any, Sequence

from bench.records import file_safe

FORMATS = ("svg", "pdf")


def title_name(name: str) -> str:
    """A dataset name for a title: without a trailing content hash (``-0a1b2c3d``) or folders."""
    return re.sub(r"-[0-9a-f]{8,}$", "", Path(name).name or name)


class Plotter:
    """Makes the figures; ``out`` (a folder) receives each as SVG and PDF, ``None`` keeps them in
    memory only. :attr:`files` lists what was written."""

    def __init__(self, out: Path | None = None) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        plt.rcParams.update({"pdf.fonttype": 42, "svg.hashsalt": "snn-bench", "font.size": 10})
        self.plt = plt
        self.ticker = matplotlib.ticker
        self.out = out
        self.files: list[Path] = []
        self.colors: dict[str, Any] = {}
        self.cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def color(self, name: str):
        if name not in self.colors:
            self.colors[name] = self.cycle[len(self.colors) % len(self.cycle)]
        return self.colors[name]

    def finish(self, fig, stem: str) -> str:
        """Write ``fig`` as ``<out>/<stem>.svg`` and ``.pdf``; return it as base64 PNG."""
        fig.tight_layout()
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            for fmt in FORMATS:
                path = self.out / f"{file_safe(stem)}.{fmt}"
                meta = {"Date": None} if fmt == "svg" else {"CreationDate": None}
                fig.savefig(path, format=fmt, metadata=meta)
                self.files.append(path)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        self.plt.close(fig)
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    @staticmethod
    def _name(row) -> str:
        return row.group.method + (f" [{row.group.label}]" if row.group.label else "")

    def _accuracy_axis(self, axis, label: str, chance: float | None, top: float) -> None:
        axis.set_ylabel(label)
        axis.set_ylim(0.0, min(1.0, max(top, chance or 0.0) * 1.08 + 0.02))
        if chance is not None:
            axis.axhline(chance, color="black", linestyle="--", linewidth=0.8, alpha=0.7,
                         label="chance")
        axis.grid(alpha=0.3)

    def learning_curves(self, name: str, rows: Sequence, target: float | None) -> str | None:
        """Validation accuracy against epochs and against timed seconds: each seed thin, the
        mean over seeds bold."""
        series = []
        for row in rows:
            curves = [c for r in row.group.ok if (c := _curve(r))]
            if curves:
                series.append((self._name(row), curves))
        if not series:
            return None
        chance = next((r.values.get("chance") for r in rows if r.values.get("chance")), None)
        fig, (left, right) = self.plt.subplots(1, 2, figsize=(11, 4))
        top = 0.0
        for label, curves in series:
            color = self.color(label)
            for epochs, seconds, acc in curves:
                left.plot(epochs, acc, color=color, linewidth=0.8, alpha=0.35)
                right.plot(seconds, acc, color=color, linewidth=0.8, alpha=0.35)
                top = max(top, max(acc))
            n = min(len(c[0]) for c in curves)
            mean = [statistics.fmean(c[2][i] for c in curves) for i in range(n)]
            mean_s = [statistics.fmean(c[1][i] for c in curves) for i in range(n)]
            style = dict(marker="o", markersize=3, color=color, linewidth=1.8)
            left.plot(curves[0][0][:n], mean, label=f"{label} (n={len(curves)})", **style)
            right.plot(mean_s, mean, **style)
        left.set_xlabel("epoch")
        left.xaxis.set_major_locator(self.ticker.MaxNLocator(integer=True))
        right.set_xlabel("timed training seconds")
        right.set_xlim(left=0)
        for axis in (left, right):
            self._accuracy_axis(axis, "validation accuracy", chance, top)
            if target is not None:
                axis.axhline(target, color="grey", linestyle=":", linewidth=1, label="target")
        left.legend(fontsize=8)
        fig.suptitle(f"{title_name(name)}: learning curves (thin: seeds, bold: mean)")
        return self.finish(fig, f"{name}-learning-curves")

    def accuracy_vs_cost(self, name: str, rows: Sequence) -> str | None:
        """Test accuracy against training time, peak memory and synaptic operations: each seed a
        small point, the row's mean ± std a large one."""
        from bench.results.grouping import metric_value

        axes_spec = (("train_seconds", "timed training seconds", 1.0),
                     ("peak_train_bytes", "peak training memory (MiB)", 2.0**20),
                     ("synops_per_sample", "synaptic operations per sample", 1.0))
        points = [row for row in rows if row.values["test_acc_mean"] is not None]
        if not points:
            return None
        chance = next((r.values.get("chance") for r in rows if r.values.get("chance")), None)
        fig, axes = self.plt.subplots(1, 3, figsize=(14, 4))
        top = max(metric_value(r, "test_acc") or 0.0 for row in points for r in row.group.ok)
        for axis, (key, label, unit) in zip(axes, axes_spec):
            drawn = False
            for row in points:
                color = self.color(self._name(row))
                seeds = [(x / unit, y) for r in row.group.ok
                         if (x := metric_value(r, key)) is not None
                         and (y := metric_value(r, "test_acc")) is not None]
                if row.values[key] is None or not seeds:
                    continue
                axis.scatter(*zip(*seeds), s=12, color=color, alpha=0.45, linewidths=0)
                axis.errorbar([row.values[key] / unit], [row.values["test_acc_mean"]],
                              yerr=[row.values["test_acc_std"] or 0.0], fmt="o", color=color,
                              label=self._name(row), capsize=3)
                drawn = True
            axis.set_xlabel(label)
            self._accuracy_axis(axis, "test accuracy", chance, top)
            if drawn and key == "synops_per_sample":
                axis.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
            if not drawn:
                axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{title_name(name)}: accuracy against cost (small: seeds, large: mean ± std)")
        return self.finish(fig, f"{name}-accuracy-vs-cost")

    def scaling(self, rows: Sequence, dataset: str) -> str | None:
        """Timed seconds of the last epoch and peak memory against T (log-log)."""
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
            style = dict(marker=marker, color=self.color(method), label=f"{method} (hidden {hidden})")
            t_pts = [(s, t) for s, t, _ in pts if t is not None and t > 0]
            m_pts = [(s, m / 2**20) for s, _, m in pts if m is not None and m > 0]
            if t_pts:
                left.plot(*zip(*t_pts), **style)
            if m_pts:
                right.plot(*zip(*m_pts), **style)
        left.set_ylabel("timed seconds of the last epoch")
        right.set_ylabel("peak training memory (MiB)")
        steps = sorted({s for pts in lines.values() for s, _, _ in pts})
        for axis in (left, right):
            axis.set_xlabel("sequence length T (steps)")
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.grid(alpha=0.3, which="both")
            axis.set_xticks(steps)
            axis.xaxis.set_major_formatter(self.ticker.ScalarFormatter())
            axis.xaxis.set_minor_formatter(self.ticker.NullFormatter())
        left.legend(fontsize=8)
        fig.suptitle(f"{title_name(dataset)}: scaling with sequence length")
        return self.finish(fig, f"{dataset}-scaling")


def _curve(record: dict) -> tuple[list[int], list[float], list[float]] | None:
    """(epochs, cumulative timed seconds, validation accuracy) of a record's curve."""
    epochs, seconds, acc, total = [], [], [], 0.0
    for i, point in enumerate(record.get("curve") or []):
        value = point.get("valid_acc")
        total += float(point.get("seconds") or 0.0)
        if not isinstance(value, (int, float)):
            break
        epochs.append(int(point.get("epoch", i + 1)))
        seconds.append(total)
        acc.append(float(value))
    return (epochs, seconds, acc) if epochs else None
