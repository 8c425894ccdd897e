"""The data layer's reading and binning: the SHD-schema reader, spike binning in both input
formats against a loop reference, ``datasets info`` and its command line. The spike-file helpers
here are shared with test_dataset_batches.py and test_dataset_errors.py."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest

from methods.api import InputError
from datasets import binning
from datasets.h5 import read_split, write_h5

# ---------------------------------------------------------------------------------------------
# helpers


def random_samples(rng, n, n_steps=50, dt_ms=1.0, max_spikes=60, n_in=700, tail=0.2):
    """Spike times placed inside bins (never within rounding of an edge) so that a plain
    float64 reference binning is unambiguous; ``tail`` of them fall after the window."""
    times, units = [], []
    for _ in range(n):
        k = int(rng.integers(0, max_spikes))
        bins = rng.integers(0, int(n_steps * (1 + tail)) + 1, k)
        t = (bins + rng.uniform(0.05, 0.95, k)) * dt_ms / 1000.0
        times.append(t.astype(np.float32))
        units.append(rng.integers(0, n_in, k).astype(np.uint16))
    return times, units


def write_split(path, times, units, labels, **kw):
    write_h5(path, times, units, labels, **kw)
    return path


def make_dataset(tmp_path, rng, n_train=40, n_test=12, n_classes=4, prefix="toy", **kw):
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        times, units = random_samples(rng, n, **kw)
        labels = np.arange(n) % n_classes
        files[split] = (times, units, labels)
        write_split(tmp_path / f"{prefix}_{split}.h5", times, units, labels)
    return files


def reference_dense(times, units, n_steps, dt_ms, n_in=700):
    """Loop-by-loop binning, the specification the vectorised code must match."""
    x = np.zeros((len(times), n_steps, n_in), dtype=np.int64)
    for i, (t, u) in enumerate(zip(times, units)):
        for tt, uu in zip(np.asarray(t, np.float64), u):
            step = int(np.floor(tt * 1000.0 / dt_ms))
            if 0 <= step < n_steps:
                x[i, step, uu] += 1
    return x


def csr(times, units):
    offsets = np.zeros(len(times) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in times], out=offsets[1:])
    t = np.concatenate(times).astype(np.float32) if times else np.zeros(0, np.float32)
    u = np.concatenate(units).astype(np.uint16) if units else np.zeros(0, np.uint16)
    return t, u, offsets


def dense_from_events(ev, batch, n_steps, n_in):
    x = np.zeros((batch, n_steps, n_in), dtype=np.float32)
    np.add.at(x, (ev.sample, ev.step, ev.unit), ev.count)
    return x


def _raises(match, fn, *args, **kw):
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)
    return info.value


# ---------------------------------------------------------------------------------------------
# reader


def test_reader_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    times, units = random_samples(rng, 7)
    times[3] = np.zeros(0, np.float32)
    units[3] = np.zeros(0, np.uint16)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    path = write_split(tmp_path / "a_train.h5", times, units, labels, speakers=np.arange(7) % 2,
                       keys=["zero", "one", "two"])
    raw = read_split(path)
    t, u, offsets = csr(times, units)
    np.testing.assert_array_equal(raw.offsets, offsets)
    np.testing.assert_array_equal(raw.times, t)
    np.testing.assert_array_equal(raw.units, u)
    np.testing.assert_array_equal(raw.labels, labels)
    assert raw.labels.dtype == np.int64
    assert raw.keys == ("zero", "one", "two")
    np.testing.assert_array_equal(raw.speakers, np.arange(7) % 2)


def test_reader_accepts_the_published_layout(tmp_path):
    """Written with h5py directly as the SHD files are: float64 vlen times, bytes keys, uint8
    labels, an /extra/meta_info group."""
    path = tmp_path / "pub_train.h5"
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (2,), dtype=h5py.vlen_dtype(np.float64))
        u = f.create_dataset("spikes/units", (2,), dtype=h5py.vlen_dtype(np.uint16))
        t[0], t[1] = np.array([0.001, 0.5]), np.array([1.2])
        u[0], u[1] = np.array([3, 699], np.uint16), np.array([0], np.uint16)
        f.create_dataset("labels", data=np.array([1, 0], np.uint8))
        f.create_dataset("extra/speaker", data=np.array([4, 5], np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"english-zero", b"english-one"]))
        f.create_group("extra/meta_info").create_dataset("gender", data=np.array([b"f", b"m"]))
    raw = read_split(path)
    assert raw.keys == ("english-zero", "english-one")
    np.testing.assert_allclose(raw.times, [0.001, 0.5, 1.2], rtol=1e-7)
    assert raw.offsets.tolist() == [0, 2, 3]
    assert raw.extras["has_meta_info"]


# ---------------------------------------------------------------------------------------------
# binning


@pytest.mark.parametrize("dt_ms", [1.0, 2.5])
def test_binning_edges(dt_ms):
    n_steps = 10
    edge = lambda k: k * dt_ms / 1000.0  # noqa: E731
    times = [
        np.array([edge(5), edge(5) - 1e-6, edge(n_steps), edge(n_steps) - 1e-6, 0.0], np.float32),
        np.zeros(0, np.float32),  # empty sample
        np.array([edge(2) + 1e-5, edge(2) + 2e-5, edge(3) - 1e-5, edge(2) + 1e-5], np.float32),
    ]
    units = [np.array([1, 2, 3, 4, 5]), np.zeros(0, int), np.array([7, 7, 7, 8])]
    t, u, offsets = csr(times, units)
    expect = np.zeros((3, n_steps, 700), np.uint8)
    expect[0, 5, 1] = 1  # exactly on the edge: the bin that starts there
    expect[0, 4, 2] = 1  # just before it
    # unit 3 at t = T * dt: outside the window, dropped
    expect[0, n_steps - 1, 4] = 1
    expect[0, 0, 5] = 1
    expect[2, 2, 7] = 3  # three spikes in one bin are counted
    expect[2, 2, 8] = 1
    dense = binning.bin_batch(t, u, offsets, n_steps, dt_ms, 700, "dense")
    np.testing.assert_array_equal(dense, expect)
    bs = binning.precompute(t, u, offsets, dt_ms, n_steps, 700)
    np.testing.assert_array_equal(binning.dense_batch(bs, np.arange(3)), expect)
    assert bs.n_dropped == 1
    for ev in (binning.events_batch(bs, np.arange(3)),
               binning.bin_batch(t, u, offsets, n_steps, dt_ms, 700, "events")):
        np.testing.assert_array_equal(dense_from_events(ev, 3, n_steps, 700), expect)
        assert ev.count.dtype == np.float32 and ev.step.dtype == np.int64


def test_negative_times_from_a_transform_are_dropped():
    t, u, offsets = csr([np.array([-0.0005, -2.0, 0.0015], np.float32)], [np.array([1, 2, 3])])
    x = binning.bin_batch(t, u, offsets, 5, 1.0, 700, "dense")
    assert x.sum() == 1 and x[0, 1, 3] == 1


@pytest.mark.parametrize("dt_ms,n_steps,n_in", [(1.0, 50, 20), (2.0, 30, 20), (0.5, 80, 20), (1.0, 50, 700)])
def test_vectorised_binning_matches_the_loop(dt_ms, n_steps, n_in):
    """Many repeats per bin (20 units) and few (700 units) take different counting paths."""
    rng = np.random.default_rng(1)
    times, units = random_samples(rng, 20, n_steps=n_steps, dt_ms=dt_ms, max_spikes=300, n_in=n_in)
    t, u, offsets = csr(times, units)
    ref = reference_dense(times, units, n_steps, dt_ms, n_in=n_in)
    assert ref.max() > 1  # the data has bins with several spikes
    bs = binning.precompute(t, u, offsets, dt_ms, n_steps, n_in, max_chunk=3)  # several chunks
    idx = rng.permutation(20)[:9]
    np.testing.assert_array_equal(binning.dense_batch(bs, idx), ref[idx])
    np.testing.assert_array_equal(binning.bin_batch(t, u, offsets, n_steps, dt_ms, n_in), ref)
    ev = binning.events_batch(bs, idx)
    np.testing.assert_array_equal(dense_from_events(ev, 9, n_steps, n_in), ref[idx])
    assert bs.n_dropped == int(sum(len(x) for x in times) - ref.sum())


@pytest.mark.parametrize("n_samples,n_steps,n_in", [(3, 40, 700), (3, 2**20, 2**20), (100, 2**20, 2**20)])
def test_events_for_any_sizes(n_samples, n_steps, n_in):
    """Packed int32 keys, int64 keys and the argsort fallback give the same events."""
    rng = np.random.default_rng(15)
    times, units = [], []
    for _ in range(n_samples):
        k = int(rng.integers(0, 30))
        bins = rng.integers(0, min(n_steps, 40), k)
        bins = np.concatenate([bins, np.full(70, 7)])  # 70 spikes in one bin: a large count
        u = np.concatenate([rng.integers(0, n_in, k), np.full(70, 3)])
        times.append(((bins + 0.5) / 1000.0).astype(np.float32))
        units.append(u.astype(np.int64))
    offsets = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum([len(t) for t in times], out=offsets[1:])
    bs = binning.precompute(np.concatenate(times), np.concatenate(units), offsets, 1.0, n_steps, n_in)
    idx = rng.permutation(n_samples)
    ev = binning.events_batch(bs, idx)
    expect = {}
    for b, i in enumerate(idx):
        for t, u in zip(times[i], units[i]):
            key = (int(np.floor(float(t) * 1000.0)), b, int(u))
            expect[key] = expect.get(key, 0) + 1
    got = list(zip(ev.step.tolist(), ev.sample.tolist(), ev.unit.tolist()))
    assert got == sorted(expect)
    assert ev.count.tolist() == [expect[k] for k in got]


# ---------------------------------------------------------------------------------------------
# info and CLI


def test_describe_and_cli(tmp_path, capsys):
    from datasets import cli
    from datasets.info import describe, format_info

    times = [np.array([0.1, 0.3], np.float32), np.zeros(0, np.float32), np.array([0.9], np.float32),
             np.array([0.2, 0.5, 0.7, 0.05], np.float32)]
    units = [np.array([5, 6]), np.zeros(0, int), np.array([650]), np.array([1, 2, 3, 4])]
    write_split(tmp_path / "i_train.h5", times, units, [0, 1, 2, 1], keys=["x", "y", "z"])
    write_split(tmp_path / "i_test.h5", times[:2], units[:2], [0, 1], keys=["x", "y", "z"])
    info = describe(tmp_path / "i")
    train = info["splits"]["train"]
    assert info["n_classes"] == 3 and info["class_names"] == ["x", "y", "z"]
    assert train["samples"] == 4 and train["spikes"] == 7 and train["empty_samples"] == 1
    assert train["spikes_per_sample"] == {"mean": 1.75, "median": 1.5, "max": 4.0}
    assert train["duration_s"]["max"] == pytest.approx(0.9)
    assert train["duration_s"]["median"] == pytest.approx(0.5, abs=1e-6)  # of 0.3, 0, 0.9, 0.7
    assert train["units"] == [1, 650] and info["n_in"] == 651
    text = format_info(info)
    assert "train" in text and "test" in text and "x, y, z" in text
    json.dumps(info)

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.main(parser.parse_args(["info", str(tmp_path / "i")])) == 0
    assert "i_train.h5" in capsys.readouterr().out
    args = parser.parse_args(["fetch", "shd", "--data-dir", str(tmp_path), "--base-url", "http://x/"])
    assert args.name == "shd" and args.base_url == "http://x/"
    with pytest.raises(SystemExit):
        parser.parse_args(["fetch", "mnist"])


def test_importing_is_light():
    import subprocess
    import sys

    code = ("import sys, datasets, datasets.cli; "
            "assert 'torch' not in sys.modules and 'h5py' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
