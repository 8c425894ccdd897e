"""The report's tables: runs grouped per dataset into rows (:mod:`bench.results.grouping`), each
row summarised (:mod:`bench.results.stats`), scale-sweep rows apart, with the failures listed and,
against a reference method, the per-seed pairings (:mod:`bench.results.paired`)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from bench.results import paired
from bench.results.grouping import Group, group_runs
from bench.results.loader import is_scale
from bench.results.stats import BAD_STATUSES, summarise

TARGET_FRACTION = 0.9  # default target: this fraction of the best row's mean best-valid accuracy


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
