"""The data types every floor shares: what a dataset is (:class:`DatasetSpec`), what one minibatch
holds (:class:`Batch`, :class:`Events`), and :class:`InputError` for bad user input.

numpy at the boundary lets torch, JAX and numpy methods be fed identical data. This module imports
only the standard library and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class InputError(Exception):
    """Bad user input (file, schema, name, value). The CLI prints it as one line and exits 2."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a method needs to know about the data to build its network."""

    name: str
    n_in: int
    n_classes: int
    n_steps: int
    dt_ms: float
    content_hash: str  # source files' md5 + binning + validation split; changes when any changes
    class_names: tuple[str, ...] = ()


@dataclass
class Events:
    """Binned input spikes of a batch in coordinate form, sorted by ``step`` (then sample).

    A bin holding several spikes of the same sample and unit appears once with ``count`` > 1.
    """

    sample: np.ndarray  # (E,) int64, index within the batch
    step: np.ndarray  # (E,) int64, time bin
    unit: np.ndarray  # (E,) int64, input channel
    count: np.ndarray  # (E,) float32, spikes in that bin


@dataclass
class Batch:
    """One minibatch. ``x`` is present for dense-input methods, ``events`` for event-input ones."""

    y: np.ndarray  # (B,) int64 labels
    n_steps: int
    n_in: int
    x: np.ndarray | None = None  # (B, T, n_in) uint8 spike counts per bin
    events: Events | None = None

    @property
    def size(self) -> int:
        return int(self.y.shape[0])
