"""Memory and time against sequence length: ``python -m bench scale --methods a,b --steps 200,1000``.

*Sequence length* is the number of time steps T that a fixed window of the data (``--window-ms``,
default 1000 ms: about one SHD sample) is binned into, so ``dt = window / T``: every point sees the
same spikes at a finer or coarser resolution. For each (method, T, hidden size) one run, in its own
process, trains with ``--set steps=T --set dt_ms=window/T --set hidden=H --set batch_size=B``. The
runs are tagged ``scale=1`` (with steps, hidden, batch_size, max_batches, window_ms), which is how
``bench report`` finds them for its scaling table and plots.

Each point is kept cheap: ``--max-batches N`` (default 4) trains on a subset of N x B training
samples (B validation and B test samples), written once as an HDF5 dataset of the published
schema next to the records; peak memory and the time of a step need no full epoch. The default
``--epochs 2`` lets the second epoch be timed warm (a JIT compile or first allocation falls into
the first); the table shows the last epoch's timed seconds.

At the end: a side-by-side table of seconds per epoch and peak training memory per method and T,
each method's ratios to the baseline method (the first listed, or ``--baseline-method``), and each
method's growth from the smallest to the largest T.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datasets.catalog import DEFAULT_DATASET
from datasets.types import InputError
from bench.records import file_safe
from bench.results.formats import fmt_bytes, fmt_seconds
from bench.results.stats import last_epoch_seconds, median

DEFAULT_OUT = "reports/scale"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", required=True, help="comma-separated registered methods")
    parser.add_argument("--steps", default="200,500,1000,2000",
                        help="comma-separated sequence lengths T (default 200,500,1000,2000)")
    parser.add_argument("--hidden", default="256", help="comma-separated hidden sizes (default 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs per point (default 2: the last one is timed warm)")
    parser.add_argument("--max-batches", type=int, default=4, metavar="N",
                        help="train on N batches per epoch (a subset of the training split); "
                             "0 = the whole split (default 4)")
    parser.add_argument("--window-ms", type=float, default=1000.0,
                        help="duration of data binned into T steps (default 1000 ms)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, metavar="N",
                        help="run each point N times and report the medians: a CPU run's peak "
                             "memory depends on how the C allocator reuses freed memory, and "
                             "varies between identical runs (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="further hyperparameter of every run")
    parser.add_argument("--baseline-method", default=None,
                        help="method the ratios are relative to (default: the first of --methods)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"records directory (default {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="wall-clock limit of each point (status timeout)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")


def _positive_ints(text: str, option: str) -> list[int]:
    from bench.suite import split_list

    values = []
    for item in split_list(text, option):
        try:
            value = int(item)
        except ValueError:
            raise InputError(f"{option} expects integers, got {item!r}") from None
        if value < 1:
            raise InputError(f"{option} values must be positive, got {value}")
        values.append(value)
    return sorted(values)


def main(args: argparse.Namespace) -> int:
    import shlex

    from bench import suite

    methods = suite.split_list(args.methods, "--methods")
    steps = _positive_ints(args.steps, "--steps")
    hidden = _positive_ints(args.hidden, "--hidden")
    baseline = args.baseline_method or methods[0]
    if baseline not in methods:
        raise InputError(f"--baseline-method {baseline!r} is not among --methods")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be positive, got {args.batch_size}")
    if args.max_batches < 0:
        raise InputError(f"--max-batches must be 0 or more, got {args.max_batches}")
    if not args.window_ms > 0:
        raise InputError(f"--window-ms must be positive, got {args.window_ms}")
    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    if args.repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {args.repeats}")
    fixed = suite.parse_pairs(args.overrides, "--set")
    clash = sorted(set(fixed) & {"steps", "dt_ms", "hidden", "batch_size"})
    if clash:
        raise InputError(f"--set {clash[0]} is set by the sweep itself; use its own option")

    dataset = args.dataset
    if args.max_batches:
        dataset = str(subset_dataset(args.dataset, args.max_batches * args.batch_size,
                                     args.batch_size, Path(args.out) / "data"))
    cells = []
    # Repeat-major order: each repeat visits every method in turn, so a change in the machine's
    # load during the sweep reaches all methods alike and the medians compare like with like.
    for repeat in range(args.repeats):
        for method in methods:
            for h in hidden:
                for t in steps:
                    cells += point_cells(method, dataset, h, t, repeat, fixed, args)
    options = suite.RunOptions(out=args.out, threads=args.threads, time_limit=args.time_limit)
    if args.dry_run:
        for cell in cells:
            print(shlex.join(cell.command(options)))
        return 0
    outcomes = suite.run_cells(cells, options, title="scale")
    print(format_table(outcomes, baseline))
    return suite.exit_status(outcomes)


# ---------------------------------------------------------------------------------------------
# The cheap dataset of a sweep


def subset_dataset(name: str, n_train: int, n_eval: int, directory: Path) -> Path:
    """Write (once) the first ``n_train`` training samples of a shuffled training split and
    ``n_eval`` validation and test samples of ``name`` as ``<dir>/<name>-scale<n>/...h5``; return
    the prefix path that ``bench run --dataset`` accepts."""
    import numpy as np

    import datasets
    from datasets.h5 import write_h5

    data = datasets.open_dataset(name)
    prefix_name = f"{file_safe(data.spec.name)}-scale{n_train}x{n_eval}-{data.spec.content_hash[:8]}"
    target = directory / prefix_name
    prefix = target / prefix_name
    files = {split: Path(f"{prefix}_{split}.h5") for split in ("train", "valid", "test")}
    if all(f.is_file() for f in files.values()):
        return prefix
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    keys = data.spec.class_names or None
    for split, count in (("train", n_train), ("valid", n_eval), ("test", n_eval)):
        raw = data.raw(split)
        order = rng.permutation(raw.n_samples)[:count] if split == "train" else np.arange(
            min(count, raw.n_samples))
        times = [raw.times[raw.offsets[i]:raw.offsets[i + 1]] for i in order]
        units = [raw.units[raw.offsets[i]:raw.offsets[i + 1]] for i in order]
        write_h5(files[split], times, units, raw.labels[order], keys=keys, n_in=data.spec.n_in)
    if n_train > data.split_size("train"):
        print(f"note: {name} has only {data.split_size('train')} training samples "
              f"(asked for {n_train})", file=sys.stderr)
    return prefix


# ---------------------------------------------------------------------------------------------
# The side-by-side table


def point_cells(method: str, dataset: str, hidden: int, steps: int, repeat: int,
                fixed: dict[str, str], args: argparse.Namespace) -> list:
    """The suite cell of one sweep point (one method, hidden size, T and repeat)."""
    from bench import suite

    overrides = {**fixed, "steps": str(steps), "dt_ms": f"{args.window_ms / steps:.10g}",
                 "hidden": str(hidden), "batch_size": str(args.batch_size)}
    tags = {"scale": "1", "steps": str(steps), "hidden": str(hidden),
            "batch_size": str(args.batch_size), "max_batches": str(args.max_batches),
            "window_ms": f"{args.window_ms:g}"}
    if repeat:  # the first repeat keeps the tags of a single-run sweep
        tags["repeat"] = str(repeat)
    return suite.build_cells(
        methods=[method], datasets=[dataset], seeds=[args.seed], epochs=args.epochs,
        overrides=[f"{k}={v}" for k, v in overrides.items()], device=args.device, tags=tags)


def point_figures(outcome) -> tuple[float | None, float | None]:
    """(timed seconds of the last epoch, peak training bytes) of a finished point."""
    record = outcome.record or {}
    if record.get("status") not in ("ok", "diverged"):
        return None, None
    peak = (record.get("metrics") or {}).get("peak_train_bytes")
    return last_epoch_seconds(record), (None if peak is None else float(peak))


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference <= 0:
        return "—"
    return f"x{value / reference:.2f}"


def _median(values: list[float | None]) -> float | None:
    return median([v for v in values if v is not None])


def format_table(outcomes, baseline: str) -> str:
    runs: dict[tuple[str, int, int], list[tuple]] = {}
    status: dict[tuple[str, int, int], str] = {}
    for outcome in outcomes:
        hp = dict(outcome.cell.overrides)
        key = (outcome.cell.method, int(hp["hidden"]), int(hp["steps"]))
        runs.setdefault(key, []).append(point_figures(outcome))
        status[key] = outcome.status
    # a point's figures: the medians over its repeats that finished
    figures = {key: (_median([r[0] for r in rs]), _median([r[1] for r in rs]))
               for key, rs in runs.items()}
    repeats = max(len(rs) for rs in runs.values())
    methods = list(dict.fromkeys(k[0] for k in figures))
    hiddens = sorted({k[1] for k in figures})
    steps = sorted({k[2] for k in figures})

    header = ["hidden", "T"] + [f"{m} s/epoch | memory" for m in methods]
    header += [f"{m} / {baseline} time | memory" for m in methods if m != baseline]
    rows = []
    for h in hiddens:
        for t in steps:
            row = [str(h), str(t)]
            base = figures.get((baseline, h, t), (None, None))
            for m in methods:
                sec, mem = figures.get((m, h, t), (None, None))
                if sec is None and mem is None:
                    row.append(status.get((m, h, t), "—"))
                else:
                    row.append(f"{fmt_seconds(sec)} | {fmt_bytes(mem)}")
            for m in methods:
                if m == baseline:
                    continue
                sec, mem = figures.get((m, h, t), (None, None))
                row.append(f"{_ratio(sec, base[0])} | {_ratio(mem, base[1])}")
            rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    title = "Scaling with sequence length (timed seconds of the last epoch | peak training memory)"
    if repeats > 1:
        title += f", medians of {repeats} runs per point"
    lines = [title,
             "  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if repeats > 1:
        lines += _spread_lines(runs, methods, hiddens, steps)
    lines.append("")
    lines.append(f"Growth from T={steps[0]} to T={steps[-1]}:")
    for m in methods:
        for h in hiddens:
            first, last = figures.get((m, h, steps[0]), (None, None)), figures.get((m, h, steps[-1]),
                                                                                  (None, None))
            lines.append(f"  {m} (hidden {h}): time {_ratio(last[0], first[0])}, "
                         f"memory {_ratio(last[1], first[1])}")
    return "\n".join(lines)


def _spread_lines(runs, methods, hiddens, steps) -> list[str]:
    """The range of peak memory over each point's repeats."""
    lines = ["", "Peak memory over the repeats (min .. max):"]
    for m in methods:
        for h in hiddens:
            cells = []
            for t in steps:
                peaks = sorted(r[1] for r in runs.get((m, h, t), []) if r[1] is not None)
                if peaks:
                    cells.append(f"T={t} {fmt_bytes(peaks[0])} .. {fmt_bytes(peaks[-1])}")
            lines.append(f"  {m} (hidden {h}): " + ", ".join(cells))
    return lines
