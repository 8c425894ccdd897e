"""Turn spike data from anywhere into a dataset the benchmark reads: one HDF5 file per split in the
SHD/SSC schema (:mod:`datasets.h5`), with the input width stored as the files' ``n_in``.

A split is any iterable of ``(events, label)`` pairs, the shape in which tonic datasets and most
torch datasets of events hand out samples. ``events`` is either

* a pair ``(times, units)``: spike times in seconds and integer input channels, or
* a structured array with a field ``t`` (microseconds) and ``x`` and, optionally, ``y`` and ``p``
  (tonic's event arrays). With a ``sensor_size`` ``(W, H, P)`` the event at ``(x, y, p)`` goes to
  channel ``(p * H + y) * W + x``: the C-order position of pixel ``(p, y, x)`` in an array shaped
  ``(P, H, W)``, the layout of tonic's ``ToFrame`` frames. Without ``y`` (audio-like sensors such
  as SHD's ``(700, 1, 1)``) H is 1; without ``p``, or with P = 1, p is ignored.

Labels are integers, or strings (then the class names are the sorted distinct labels, or
``class_names`` when given, and are stored in ``/extra/keys``).

    >>> from datasets import write_spike_dataset
    >>> prefix = write_spike_dataset("my/nmnist", {"train": train_pairs, "test": test_pairs},
    ...                              sensor_size=(34, 34, 2))
    >>> # python -m bench run --method eventprop --dataset my/nmnist
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .h5 import write_h5
from .paths import SPLITS
from .types import InputError

SensorSize = Sequence[int]


def flatten_events(events, sensor_size: SensorSize | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(times in seconds, channels)`` of one sample given as ``(times, units)`` or a structured
    event array (see the module docstring)."""
    names = getattr(getattr(events, "dtype", None), "names", None)
    if names is None:
        try:
            times, units = events
        except (TypeError, ValueError):
            raise InputError("a sample must be (times, units) or a structured event array "
                             "with fields t, x[, y, p]") from None
        times = np.asarray(times, dtype=np.float64).ravel()
        units = np.asarray(units).ravel()
        if times.shape != units.shape:
            raise InputError(f"a sample has {times.size} spike times but {units.size} units")
        if units.size and units.dtype.kind not in "iu":
            raise InputError(f"units must be integers, got {units.dtype}")
        return times, units.astype(np.int64)
    if "t" not in names or "x" not in names:
        raise InputError(f"event arrays need fields t and x, got {', '.join(names)}")
    times = np.asarray(events["t"], dtype=np.float64) * 1e-6
    width, height, polarities = _sensor(sensor_size)
    units = np.zeros(times.shape, dtype=np.int64)
    for field, limit, stride in (("x", width, 1), ("y", height, width), ("p", polarities,
                                                                         (width or 0) * (height or 0))):
        if field not in names or (field == "p" and polarities == 1):
            continue  # a one-polarity sensor (tonic's SHD sets p = 1): p carries nothing
        value = np.asarray(events[field], dtype=np.int64)
        if field == "p" and value.size and value.min() < 0:
            value = (value > 0).astype(np.int64)  # polarities given as -1/+1
        if sensor_size is None:
            if field != "x" and value.size and value.max() > 0:
                raise InputError(f"events with a field {field!r} need a sensor_size (W, H, P)")
            stride = 1
        elif value.size and (value.min() < 0 or value.max() >= limit):
            raise InputError(f"event {field} outside 0..{limit - 1} of sensor size "
                             f"{tuple(sensor_size)}")
        units += value * stride
    return times, units


def _sensor(sensor_size: SensorSize | None) -> tuple[int | None, int | None, int | None]:
    if sensor_size is None:
        return None, None, None
    size = tuple(int(s) for s in sensor_size)
    if not 1 <= len(size) <= 3 or min(size) < 1:
        raise InputError(f"sensor_size must be 1 to 3 positive integers (W[, H[, P]]), got {size}")
    size = size + (1,) * (3 - len(size))
    return size[0], size[1], size[2]


def _labels(values: list, class_names: Sequence[str] | None) -> tuple[np.ndarray, tuple | None]:
    if all(isinstance(v, (int, np.integer)) for v in values):
        labels = np.asarray(values, dtype=np.int64)
        if labels.size and labels.min() < 0:
            raise InputError(f"label {int(labels.min())} out of range (labels must be >= 0)")
        return labels, tuple(class_names) if class_names else None
    names = tuple(class_names) if class_names else tuple(sorted({str(v) for v in values}))
    index = {name: i for i, name in enumerate(names)}
    missing = sorted({str(v) for v in values} - set(index))
    if missing:
        raise InputError(f"label {missing[0]!r} is not one of the class names")
    return np.asarray([index[str(v)] for v in values], dtype=np.int64), names


def _label_value(label):
    """A label as a plain int or str (tonic and torch hand out numpy scalars or 0-d tensors)."""
    if hasattr(label, "item") and getattr(label, "ndim", 0) == 0:
        label = label.item()
    if isinstance(label, bytes):
        return label.decode("utf-8")
    if isinstance(label, float) and label.is_integer():
        return int(label)
    return label


def write_spike_dataset(
    prefix: str | os.PathLike,
    splits: Mapping[str, Iterable],
    *,
    sensor_size: SensorSize | None = None,
    n_in: int | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write ``<prefix>_<split>.h5`` for every split (``train`` and ``test`` required, ``valid``
    optional) and return ``prefix``, the name ``bench run --dataset`` takes.

    The width stored in the files is ``n_in`` when given, else the product of ``sensor_size``,
    else the largest channel + 1 over all splits.
    """
    prefix = Path(prefix)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise InputError(f"unknown split {unknown[0]!r}; known: {', '.join(SPLITS)}")
    for split in ("train", "test"):
        if split not in splits:
            raise InputError(f"a dataset needs a {split} split")
    if sensor_size is not None:
        width = int(np.prod(_sensor(sensor_size)))
        if n_in is not None and int(n_in) != width:
            raise InputError(f"n_in={n_in} does not match sensor size {tuple(sensor_size)} ({width})")
        n_in = width
    data = {}
    for split, samples in splits.items():
        times, units, labels = [], [], []
        for i, pair in enumerate(samples):
            try:
                events, label = pair
            except (TypeError, ValueError):
                raise InputError(f"{split} sample {i}: expected an (events, label) pair") from None
            t, u = flatten_events(events, sensor_size)
            if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
                raise InputError(f"{split} sample {i}: spike times must be finite and >= 0")
            if u.size and u.min() < 0:
                raise InputError(f"{split} sample {i}: negative channel {int(u.min())}")
            times.append(t)
            units.append(u)
            labels.append(_label_value(label))
        if not labels:
            raise InputError(f"the {split} split has no samples")
        data[split] = (times, units, labels)
    all_labels = [label for _, _, labels in data.values() for label in labels]
    _, names = _labels(all_labels, class_names)
    top = max((int(u.max()) for _, units, _ in data.values() for u in units if u.size), default=0)
    if n_in is None:
        n_in = top + 1
    elif top >= int(n_in):
        raise InputError(f"channel {top} out of range (0..{int(n_in) - 1})")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for split, (times, units, labels) in data.items():
        codes, _ = _labels(labels, names)
        write_h5(f"{prefix}_{split}.h5", times, units, codes, keys=names, n_in=int(n_in))
    return prefix
