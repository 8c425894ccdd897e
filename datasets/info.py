"""A summary of a dataset's files: ``python -m bench data info PATH_OR_NAME``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .types import InputError

from .h5 import RawSplit, read_split, resolve_n_in
from .paths import SPLITS, dataset_files
from .speech.meta import held_out_lines


def _files(path_or_name: str, data_dir: str | Path | None) -> tuple[str, dict[str, Path]]:
    from . import paths

    directory = Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()
    return dataset_files(path_or_name, directory)


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"mean": 0.0, "median": 0.0, "max": 0.0}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }


def split_summary(raw: RawSplit) -> dict:
    counts = np.diff(raw.offsets)
    nonempty = counts > 0
    last = np.zeros(raw.n_samples, dtype=np.float64)
    if raw.n_spikes:
        # max of each non-empty sample's times (reduceat needs non-empty segments)
        last[nonempty] = np.maximum.reduceat(raw.times, raw.offsets[:-1][nonempty])
    return {
        "samples": raw.n_samples,
        "spikes": raw.n_spikes,
        "spikes_per_sample": _stats(counts.astype(np.float64)),
        "empty_samples": int((~nonempty).sum()),
        "duration_s": {
            "median": float(np.median(last)) if last.size else 0.0,
            "max": float(last.max()) if last.size else 0.0,
        },
        "units": [int(raw.units.min()), int(raw.units.max())] if raw.n_spikes else None,
        "labels": [int(raw.labels.min()), int(raw.labels.max())],
        "classes_present": int(np.unique(raw.labels).shape[0]),
        "speakers": None if raw.speakers is None else int(np.unique(raw.speakers).shape[0]),
    }


def describe(path_or_name: str | Path, data_dir: str | Path | None = None) -> dict:
    """Per-split sizes, classes, spikes per sample, duration (last spike time), unit range."""
    name, files = _files(str(path_or_name), data_dir)
    splits = {}
    raws = {}
    keys = None
    max_label = -1
    for split in SPLITS:
        if split not in files:
            continue
        raw = raws[split] = read_split(files[split])
        keys = keys or raw.keys
        max_label = max(max_label, int(raw.labels.max()))
        splits[split] = {"file": str(files[split]), **split_summary(raw)}
    return {
        "name": name,
        "n_classes": len(keys) if keys else max_label + 1,
        "class_names": list(keys) if keys else [],
        "n_in": resolve_n_in(raws, name),
        "splits": splits,
    }


def format_info(info: dict) -> str:
    """The summary as readable text."""
    lines = [f"dataset {info['name']}: {info['n_classes']} classes, {info['n_in']} input channels"]
    if info.get("class_names"):
        lines.append("classes: " + ", ".join(info["class_names"]))
    header = (
        f"{'split':6s} {'samples':>8s} {'spikes/sample mean':>19s} {'median':>8s} {'max':>8s} "
        f"{'duration median':>16s} {'max':>7s} {'units':>9s}"
    )
    lines.append(header)
    for split, s in info["splits"].items():
        sp, du = s["spikes_per_sample"], s["duration_s"]
        units = "-" if s["units"] is None else f"{s['units'][0]}..{s['units'][1]}"
        lines.append(
            f"{split:6s} {s['samples']:8d} {sp['mean']:19.1f} {sp['median']:8.0f} {sp['max']:8.0f} "
            f"{du['median']:15.3f}s {du['max']:6.3f}s {units:>9s}"
        )
    if "valid" not in info["splits"]:
        lines.append("valid: none in the files; runs hold out a frozen stratified part of train")
    for split, s in info["splits"].items():
        lines.append(f"{split} file: {s['file']}")
    lines += held_out_lines(info)  # files written by `bench data convert`
    return "\n".join(lines)


__all__ = ["describe", "format_info", "split_summary", "InputError"]
