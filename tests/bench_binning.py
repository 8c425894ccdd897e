"""Binning speed on an SHD-sized split: every batch of 32 of 8156 samples x ~10k spikes
(random units 0..699, times in 0..1.2 s), dt = 1 ms, T = 1000, dense and events.

Run: ``python -m pytest tests/bench_binning.py --benchmark-only -s``. The one-off binning of the
split (done at the first epoch and reused after) is timed on its own and as part of the first
epoch's total. Target: every batch of one epoch, both formats, within 5 s on a laptop CPU.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from datasets.h5 import RawSplit
from datasets.spikes import SpikeDataset

N_SAMPLES = 8156
MEAN_SPIKES = 10_000
BATCH = 32


def shd_sized_split(n: int, seed: int) -> RawSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(MEAN_SPIKES - 2000, MEAN_SPIKES + 2000, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    times = rng.random(total, dtype=np.float32) * np.float32(1.2)
    units = rng.integers(0, 700, total, dtype=np.uint16)
    return RawSplit(times=times, units=units, offsets=offsets, labels=np.arange(n) % 20)


@pytest.fixture(scope="module")
def shd_sized():
    train = shd_sized_split(N_SAMPLES, 0)
    test = shd_sized_split(64, 1)
    return train, test


def _dataset(train, test):
    return SpikeDataset.from_raw("shd-sized", {"train": train, "test": test}, steps=1000, dt_ms=1.0,
                                 valid_fraction=0.0)


def _epoch(ds, fmt, shuffle):
    n = 0
    for batch in ds.batches("train", BATCH, fmt=fmt, shuffle=shuffle, seed=1):
        n += batch.size
    assert n == N_SAMPLES


def test_binning_every_batch(benchmark, shd_sized):
    train, test = shd_sized
    timings = {}

    def run():
        ds = _dataset(train, test)
        start = time.perf_counter()
        ds.binned("train")
        timings["precompute"] = time.perf_counter() - start
        for fmt in ("dense", "events"):
            for shuffle in (False, True):
                start = time.perf_counter()
                _epoch(ds, fmt, shuffle)
                timings[f"{fmt}{' shuffled' if shuffle else ''}"] = time.perf_counter() - start

    benchmark.pedantic(run, rounds=1, iterations=1)
    total = timings["precompute"] + timings["dense shuffled"] + timings["events shuffled"]
    timings["total: precompute + shuffled dense epoch + shuffled events epoch"] = total
    benchmark.extra_info.update({k: round(v, 3) for k, v in timings.items()})
    n_batches = -(-N_SAMPLES // BATCH)
    print(f"\nSHD-sized split: {N_SAMPLES} samples, {train.n_spikes} spikes, {n_batches} batches of {BATCH}")
    for key, value in timings.items():
        print(f"  {key:65s} {value:6.2f} s")
    assert total < 5.0 * 3, "binning far slower than its 5 s target"
