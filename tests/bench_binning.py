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


TARGET_SECONDS = 5.0  # binning every batch of an SHD-sized split, in total


def _dataset(train, test):
    return SpikeDataset.from_raw("shd-sized", {"train": train, "test": test}, steps=1000, dt_ms=1.0,
                                 valid_fraction=0.0)


def _epoch(ds, fmt, shuffle):
    n = 0
    for batch in ds.batches("train", BATCH, fmt=fmt, shuffle=shuffle, seed=1):
        n += batch.size
    assert n == N_SAMPLES


class _Clock:
    """Wall time and this process's CPU time (the latter less disturbed by other processes)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def test_binning_every_batch(benchmark, shd_sized):
    train, test = shd_sized
    timings: dict[str, _Clock] = {}

    def run():
        ds = _dataset(train, test)
        with _Clock() as timings["precompute (once per split and (dt, T))"]:
            ds.binned("train")
        for fmt in ("dense", "events"):
            for shuffle in (False, True):
                with _Clock() as timings[f"{fmt} epoch{', shuffled' if shuffle else ''}"]:
                    _epoch(ds, fmt, shuffle)

    benchmark.pedantic(run, rounds=1, iterations=1)
    keys = ["precompute (once per split and (dt, T))", "dense epoch, shuffled", "events epoch, shuffled"]
    wall = sum(timings[k].wall for k in keys)
    cpu = sum(timings[k].cpu for k in keys)
    one_format_cpu = timings[keys[0]].cpu + timings[keys[1]].cpu
    benchmark.extra_info.update({k: round(v.wall, 3) for k, v in timings.items()})
    benchmark.extra_info["total_wall_s"] = round(wall, 3)
    benchmark.extra_info["total_cpu_s"] = round(cpu, 3)
    n_batches = -(-N_SAMPLES // BATCH)
    print(f"\nSHD-sized split: {N_SAMPLES} samples, {train.n_spikes} spikes, "
          f"{n_batches} batches of {BATCH}, T = 1000, dt = 1 ms")
    print(f"  {'':45s} {'wall':>7s} {'cpu':>7s}")
    for key, clock in timings.items():
        print(f"  {key:45s} {clock.wall:6.2f}s {clock.cpu:6.2f}s")
    print(f"  {'total: precompute + both shuffled epochs':45s} {wall:6.2f}s {cpu:6.2f}s")
    for label, seconds in (("one format (what a run uses)", one_format_cpu),
                           ("both formats", cpu)):
        verdict = "met" if seconds <= TARGET_SECONDS else "MISSED"
        print(f"  target <= {TARGET_SECONDS:g} s for {label}: {seconds:.2f} s CPU, {verdict}")
