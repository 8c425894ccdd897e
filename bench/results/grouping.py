"""Runs grouped into table rows: one method version on one version of a dataset and one device.

When one method has several rows on a dataset, each row's *variant* names what tells it apart: the
hyperparameters that differ between them (a suite's ``--grid``), the device, or the data version.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import records


def metric_value(record: dict, name: str) -> float | None:
    """A metric of ``records.METRICS`` (or any name) from the record section it lives in; None
    when absent or not a finite number."""
    source = records.METRICS.get(name, {}).get("source", "metrics")
    value = (record.get(source) or {}).get(name)
    if value is None and source != "inference":
        value = (record.get("inference") or {}).get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def plain(value: Any) -> str:
    """A hyperparameter value as text: whole floats without a trailing .0, others to 4
    significant digits (a window placed from the data is not a round number)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Group:
    """Runs of one method version on one version of a dataset and one device: one table row."""

    dataset: str
    method: str
    method_version: str
    device: str
    records: list[dict] = field(default_factory=list)
    variant: dict[str, Any] = field(default_factory=dict)  # hyperparameters that tell it apart
    failed_reruns: list[dict] = field(default_factory=list)  # bad reruns of its ok runs

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={plain(v)}" for k, v in self.variant.items())

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r.get("status") == "ok"]

    @property
    def status_counts(self) -> dict[str, int]:
        return dict(Counter(record.get("status", "failed") for record in self.records))

    def values(self, name: str) -> list[float]:
        """The metric ``name`` of each successful run that has it."""
        return [v for r in self.ok if (v := metric_value(r, name)) is not None]

    def values_by_seed(self, name: str) -> dict[int, float]:
        """The metric ``name`` of each successful run, by seed."""
        return {int(r.get("seed") or 0): v for r in self.ok
                if (v := metric_value(r, name)) is not None}

    @property
    def dataset_hash(self) -> str | None:
        return self.records[0].get("dataset_hash") if self.records else None

    def env_value(self, name: str) -> Any:
        """``env[name]`` shared by all runs of the row; None when absent or when they differ."""
        values = {repr((r.get("env") or {}).get(name)) for r in self.records}
        return (self.records[0].get("env") or {}).get(name) if len(values) == 1 else None

    def key(self) -> str:
        """Stable name of the row: ``method|dataset`` plus ``|variant`` when there is one."""
        parts = [self.method, self.dataset]
        if self.label:
            parts.append(self.label)
        return "|".join(parts)


def group_runs(runs: list[dict], failed_reruns: list[dict] = ()) -> list[Group]:
    """Group runs into rows and name each row's variant by the hyperparameters (and device) that
    differ between the rows of the same method and dataset. ``failed_reruns`` (from the loader)
    join the row of the run they reran."""
    groups: dict[tuple, Group] = {}
    for record in runs:
        key = _group_key(record)
        if key not in groups:
            groups[key] = Group(dataset=str(key[0]), method=str(key[1]), method_version=str(key[2]),
                                device=str(key[3]))
        groups[key].records.append(record)
    for record in failed_reruns:
        if (key := _group_key(record)) in groups:
            groups[key].failed_reruns.append(record)
    by_method: dict[tuple, list[Group]] = {}
    for group in groups.values():
        by_method.setdefault((group.dataset, group.method), []).append(group)
    for siblings in by_method.values():
        if len(siblings) > 1:
            _name_variants(siblings)
    return sorted(groups.values(), key=lambda g: (g.dataset, g.method, _sort_key(g.variant)))


def _group_key(record: dict) -> tuple:
    device = (record.get("env") or {}).get("device", "cpu")
    return (record.get("dataset"), record.get("method"), record.get("method_version"), device,
            record.get("dataset_hash"))


def _name_variants(siblings: list[Group]) -> None:
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


def _sort_key(variant: dict) -> tuple:
    out = []
    for key, value in variant.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((key, 0, float(value), ""))
        else:
            out.append((key, 1, 0.0, str(value)))
    return tuple(out)
