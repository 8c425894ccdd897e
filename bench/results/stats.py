"""Statistics over the seeds of a table row.

Accuracy: mean and sample standard deviation over the successful seeds. Costs: medians over the
successful seeds. Time to target: the first epoch whose validation accuracy reaches the target, with
the timed seconds summed up to it and the wall-clock seconds at it. The paired comparison uses a
Student t interval on per-seed differences (:func:`t_interval`).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.results.grouping import Group
from datasets.catalog import CATALOG

BAD_STATUSES = ("failed", "diverged", "timeout")
COST_METRICS = ("seconds_per_epoch", "train_seconds", "peak_train_bytes", "spikes_per_neuron",
                "synops_per_sample", "dense_synops_per_sample", "activation_sparsity")


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Two-sided Student t confidence interval of the mean of ``values`` (scipy's t quantile);
    None with fewer than two values."""
    if len(values) < 2:
        return None
    from scipy import stats

    mean = statistics.fmean(values)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) \
        / math.sqrt(len(values))
    return mean - half, mean + half


def time_to_target(curve: list[dict], target: float) -> tuple[int, float, float | None] | None:
    """(epoch, timed seconds, wall seconds) of the first epoch whose valid_acc >= target."""
    timed = 0.0
    for point in curve:
        timed += float(point.get("seconds") or 0.0)
        acc = point.get("valid_acc")
        if isinstance(acc, (int, float)) and acc >= target:
            wall = point.get("wall_seconds")
            return int(point.get("epoch", 0)), timed, (None if wall is None else float(wall))
    return None


def last_epoch_seconds(record: dict) -> float | None:
    """Timed seconds of the record's last epoch, if it has one."""
    curve = record.get("curve") or []
    return float(curve[-1]["seconds"]) if curve and curve[-1].get("seconds") is not None else None


def summarise(group: Group, target: float | None) -> dict[str, Any]:
    """The figures of one table row (None where no successful run gives a value)."""
    ok = group.ok
    values: dict[str, Any] = {
        "dataset": group.dataset, "method": group.method, "variant": group.label,
        "device": group.device, "method_version": group.method_version,
        "n_ok": len(ok), "n_runs": len(group.records), "n_failed_reruns": len(group.failed_reruns),
    }
    counts = group.status_counts
    for status in BAD_STATUSES:
        values[f"n_{status}"] = counts.get(status, 0)
    for name in ("test_acc", "best_valid_acc"):
        values[f"{name}_mean"], values[f"{name}_std"] = mean_std(group.values(name))
    for name in COST_METRICS:
        values[name] = median(group.values(name))
    values["last_epoch_seconds"] = median(
        [s for r in ok if (s := last_epoch_seconds(r)) is not None])
    values["epochs"] = median([float(r["metrics"]["epochs"]) for r in ok
                               if isinstance(r["metrics"].get("epochs"), (int, float))])
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
    values["chance"] = chance_level(group)
    return values


def chance_level(group: Group) -> float | None:
    """1 / number of classes: from the records' dataset info where it says, else from the table
    of named datasets; None for a user's own data that does not say."""
    for record in group.records:
        n = (record.get("dataset_info") or {}).get("n_classes")
        if isinstance(n, int) and not isinstance(n, bool) and n > 1:
            return 1.0 / n
    entry = CATALOG.get(group.dataset)
    return 1.0 / entry.n_classes if entry else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
