"""Hand-made features of a split, for baselines that need no spiking network.

:func:`count_features` (spikes per input channel) is what a classifier blind to time sees; the
synthetic set is built so that it separates the pairs of classes but not the two classes of a
pair. :func:`window_features` adds coarse time (counts per channel in a few windows).
Only spikes inside the dataset's window (``n_steps * dt_ms``) are counted, as the networks see.
"""

from __future__ import annotations

import numpy as np

from . import binning


def _kept(dataset, split: str):
    raw = dataset.raw(split)
    sample, steps, units = binning.kept_spikes(raw.times, raw.units, raw.offsets, dataset.dt_ms,
                                               dataset.n_steps)
    return raw.n_samples, sample.astype(np.int64), steps.astype(np.int64), units.astype(np.int64)


def count_features(dataset, split: str) -> np.ndarray:
    """(n_samples, n_in) float64: spikes per input channel of every sample of ``split``."""
    n, sample, _, units = _kept(dataset, split)
    n_in = dataset.spec.n_in
    return np.bincount(sample * n_in + units, minlength=n * n_in).reshape(n, n_in).astype(np.float64)


def window_features(dataset, split: str, windows: int = 4) -> np.ndarray:
    """(n_samples, windows * n_in) float64: spikes per channel in ``windows`` equal time windows."""
    n, sample, steps, units = _kept(dataset, split)
    n_in = dataset.spec.n_in
    w = steps * windows // dataset.n_steps
    flat = (sample * windows + w) * n_in + units
    return np.bincount(flat, minlength=n * windows * n_in).reshape(n, windows * n_in).astype(np.float64)
