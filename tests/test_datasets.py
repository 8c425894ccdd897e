"""The data layer: SHD-schema reader, binning, batches, validation split, hashing, bad input."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest

from methods.api import InputError
from datasets import binning, open_dataset
from datasets.h5 import read_split, write_h5
from datasets.spikes import stratified_split

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


def identity(times, units, offsets, labels, rng):
    return times, units, offsets, labels, 700


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "data-home"
    monkeypatch.setenv("SNN_BENCH_DATA", str(home))
    return home


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


def test_events_sorted_and_distinct(tmp_path):
    rng = np.random.default_rng(2)
    make_dataset(tmp_path, rng, max_spikes=200)
    ds = open_dataset(str(tmp_path / "toy"), steps=40, dt_ms=1.0, data_dir=tmp_path)
    for transform in (None, identity):
        dense = list(ds.batches("test", 5, transform=transform))
        events = list(ds.batches("test", 5, fmt="events", transform=transform))
        assert len(dense) == len(events) == 3
        for d, e in zip(dense, events):
            assert d.events is None and e.x is None
            np.testing.assert_array_equal(d.y, e.y)
            ev = e.events
            key = (ev.step * d.size + ev.sample) * 700 + ev.unit
            assert np.all(np.diff(key) > 0)  # by step, then sample, then unit; no repeats
            np.testing.assert_array_equal(dense_from_events(ev, d.size, 40, 700), d.x)
            assert d.x.dtype == np.uint8 and d.x.shape == (d.size, 40, 700)


def test_batches_match_the_reference_through_the_dataset(tmp_path):
    rng = np.random.default_rng(3)
    files = make_dataset(tmp_path, rng, n_test=10, n_steps=30, max_spikes=80)
    ds = open_dataset(str(tmp_path / "toy"), steps=30, dt_ms=1.0, data_dir=tmp_path)
    times, units, labels = files["test"]
    ref = reference_dense(times, units, 30, 1.0)
    xs = [b.x for b in ds.batches("test", 4)]
    assert [x.shape[0] for x in xs] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(xs), ref)
    assert [b.size for b in ds.batches("test", 4, drop_last=True)] == [4, 4]
    dropped = ds.provenance["dropped_spikes"]["test"]["count"]
    assert dropped == sum(len(t) for t in times) - ref.sum() > 0


def test_shuffle_is_deterministic(tmp_path):
    rng = np.random.default_rng(4)
    make_dataset(tmp_path, rng)
    ds = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path)

    def epoch(seed):
        return [(b.y, b.x) for b in ds.batches("train", 8, shuffle=True, seed=seed)]

    a, b, c = epoch(7), epoch(7), epoch(8)
    for (ya, xa), (yb, xb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))
    plain = np.concatenate([b.y for b in ds.batches("train", 8)])
    np.testing.assert_array_equal(plain, ds.labels("train"))
    # the same permutation, sample by sample, as the unshuffled data
    order = np.random.default_rng(7).permutation(ds.split_size("train"))
    unshuffled = np.concatenate([b.x for b in ds.batches("train", 64)])
    np.testing.assert_array_equal(np.concatenate([x for _, x in a]), unshuffled[order])


def test_transform_hook_gets_copies_and_sets_n_in(tmp_path):
    rng = np.random.default_rng(5)
    make_dataset(tmp_path, rng)
    ds = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path)
    before = ds.raw("train").times.copy()
    seen = []

    def widen(times, units, offsets, labels, rng):
        seen.append(rng.integers(0, 1 << 30))
        times *= 0  # in place: must not touch the dataset
        return times, units.astype(np.int64) + 700, offsets, labels, 1400

    batch = next(iter(ds.batches("train", 6, shuffle=True, seed=3, transform=widen)))
    assert batch.n_in == 1400 and batch.x.shape == (6, 20, 1400)
    assert batch.x[:, :, :700].sum() == 0 and batch.x[:, 0].sum() == batch.x.sum()
    np.testing.assert_array_equal(ds.raw("train").times, before)
    next(iter(ds.batches("train", 6, shuffle=True, seed=3, transform=widen)))
    assert seen[0] == seen[1]  # the generator handed to the transform follows the seed

    def bad(times, units, offsets, labels, rng):
        return times, units, offsets, labels, 10

    with pytest.raises(ValueError, match="unit outside"):
        next(iter(ds.batches("train", 6, transform=bad)))


# ---------------------------------------------------------------------------------------------
# validation split


def test_stratified_split_is_frozen_and_per_class():
    labels = np.repeat(np.arange(5), [40, 40, 20, 80, 20])
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(labels.size)]
    a = stratified_split(labels, 0.1, 0)
    np.testing.assert_array_equal(a, stratified_split(labels.copy(), 0.1, 0))
    assert a.size == 20 and np.all(np.diff(a) > 0)
    per_class = np.bincount(labels[a], minlength=5)
    assert per_class.tolist() == [4, 4, 2, 8, 2]
    b = stratified_split(labels, 0.1, 1)
    assert not np.array_equal(a, b)
    assert np.bincount(labels[b], minlength=5).tolist() == [4, 4, 2, 8, 2]
    assert stratified_split(labels, 0.0, 0).size == 0
    # uneven: quotas within one of the exact share
    odd = np.repeat(np.arange(3), [7, 5, 3])
    share = np.bincount(odd[stratified_split(odd, 0.3, 0)], minlength=3)
    assert share.sum() == 5 and np.all(np.abs(share - 0.3 * np.array([7, 5, 3])) < 1)


def test_validation_split_of_a_dataset(tmp_path):
    rng = np.random.default_rng(6)
    make_dataset(tmp_path, rng, n_train=64, n_classes=4)
    ds = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path, valid_fraction=0.25)
    assert (ds.split_size("train"), ds.split_size("valid"), ds.split_size("test")) == (48, 16, 12)
    assert np.bincount(ds.labels("valid")).tolist() == [4, 4, 4, 4]
    full = read_split(tmp_path / "toy_train.h5")
    idx = ds.valid_indices
    valid_x = np.concatenate([b.x for b in ds.batches("valid", 16)])
    ref = binning.bin_batch(*binning_args(full, idx), 20, 1.0, 700)
    np.testing.assert_array_equal(valid_x, ref)
    v = ds.provenance["validation"]
    assert v["source"] == "cut from train" and v["n_valid"] == 16 and v["seed"] == 0
    again = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path, valid_fraction=0.25)
    np.testing.assert_array_equal(again.valid_indices, idx)
    other = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path, valid_fraction=0.25,
                         split_seed=1)
    assert not np.array_equal(other.valid_indices, idx)
    assert other.spec.content_hash != ds.spec.content_hash


def binning_args(raw, idx):
    pos, offsets = binning.gather(raw.offsets, idx)
    return raw.times[pos], raw.units[pos], offsets


def test_validation_file_is_used_when_present(tmp_path):
    rng = np.random.default_rng(7)
    make_dataset(tmp_path, rng)
    times, units = random_samples(rng, 5)
    write_split(tmp_path / "toy_valid.h5", times, units, np.arange(5) % 4)
    ds = open_dataset(str(tmp_path), steps=20, data_dir=tmp_path)  # a directory works too
    assert ds.split_size("valid") == 5 and ds.split_size("train") == 40
    assert ds.provenance["validation"] == {"source": "file"}
    assert ds.spec.name == "toy"


# ---------------------------------------------------------------------------------------------
# spec, hash, provenance


def test_spec_provenance_and_hash(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    files = make_dataset(tmp_path, rng)
    from datasets import hashing

    calls = []
    real = hashing.md5_of_file
    monkeypatch.setattr(hashing, "md5_of_file", lambda p, *a: calls.append(p) or real(p, *a))
    prefix = str(tmp_path / "toy")
    ds = open_dataset(prefix, steps=20, dt_ms=1.0, data_dir=tmp_path)
    top = max(int(np.max(np.concatenate(u))) for _, u, _ in files.values())
    assert ds.spec.n_in == top + 1  # no declared width: the largest unit + 1
    assert ds.spec.n_classes == 4 and ds.spec.n_steps == 20
    assert ds.spec.class_names == () and ds.recommended_epochs == 100
    json.dumps(ds.provenance)
    assert len(calls) == 2 and (tmp_path / "md5-cache.json").is_file()
    same = open_dataset(prefix, steps=20, dt_ms=1.0, data_dir=tmp_path)
    assert len(calls) == 2  # md5 cached on (path, size, mtime, inode)
    assert same.spec.content_hash == ds.spec.content_hash
    assert ds.provenance["files"]["train"]["md5"] == real(tmp_path / "toy_train.h5")
    hashes = {ds.spec.content_hash}
    for kw in ({"steps": 21}, {"dt_ms": 2.0}, {"valid_fraction": 0.1}):
        hashes.add(open_dataset(prefix, data_dir=tmp_path, **{"steps": 20, **kw}).spec.content_hash)
    assert len(hashes) == 4
    times, units, labels = files["train"]
    times[0] = times[0] + np.float32(0.001)
    write_split(tmp_path / "toy_train.h5", times, units, labels)
    changed = open_dataset(prefix, steps=20, data_dir=tmp_path)
    assert len(calls) == 3 and changed.spec.content_hash not in hashes


def test_class_names_from_keys(tmp_path):
    rng = np.random.default_rng(9)
    for split, n in (("train", 12), ("test", 4)):
        times, units = random_samples(rng, n)
        write_split(tmp_path / f"k_{split}.h5", times, units, np.arange(n) % 2,
                    keys=["yes", "no", "maybe"])
    ds = open_dataset(str(tmp_path / "k"), steps=10, data_dir=tmp_path)
    assert ds.spec.n_classes == 3 and ds.spec.class_names == ("yes", "no", "maybe")


# ---------------------------------------------------------------------------------------------
# bad input: always one-line InputError


def _raises(match, fn, *args, **kw):
    with pytest.raises(InputError, match=match) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)
    return info.value


def _write_raw(path, times, units, labels, times_dtype=np.float32):
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(times_dtype))
        u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.int32))
        for i, x in enumerate(times):
            t[i] = np.asarray(x, times_dtype)
        for i, x in enumerate(units):
            u[i] = np.asarray(x, np.int32)
        f.create_dataset("labels", data=np.asarray(labels, np.int64))


def test_names_and_missing_files(tmp_path, data_home):
    _raises(r"unknown dataset 'nope'; known: synthetic, shd, ssc", open_dataset, "nope")
    _raises(r"missing file .*shd_train\.h5.*python -m bench data fetch shd", open_dataset, "shd")
    _raises(r"missing file .*ssc_train\.h5.*fetch ssc", open_dataset, "ssc")
    rng = np.random.default_rng(10)
    times, units = random_samples(rng, 3)
    write_split(tmp_path / "only_train.h5", times, units, [0, 1, 0])
    _raises(r"missing file .*only_test\.h5", open_dataset, str(tmp_path / "only"))
    _raises(r"no such directory", open_dataset, str(tmp_path / "absent"))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    _raises(r"no <prefix>_train\.h5", open_dataset, str(empty_dir))
    two = tmp_path / "two"
    two.mkdir()
    for p in ("a", "b"):
        for split in ("train", "test"):
            write_split(two / f"{p}_{split}.h5", times, units, [0, 1, 0])
    _raises(r"several datasets \(a, b\)", open_dataset, str(two))


def _good_pair(tmp_path, prefix="bad"):
    rng = np.random.default_rng(11)
    times, units = random_samples(rng, 6)
    write_split(tmp_path / f"{prefix}_test.h5", times, units, np.arange(6) % 2)
    return times, units


def test_corrupt_files(tmp_path):
    times, units = _good_pair(tmp_path)
    prefix = str(tmp_path / "bad")
    train = tmp_path / "bad_train.h5"
    train.write_text("this is not HDF5\n")
    _raises(r"bad_train\.h5: not an HDF5 file or cannot be read", open_dataset, prefix, data_dir=tmp_path)
    write_split(train, [np.tile(t, 50) for t in times], [np.tile(u, 50) for u in units],
                np.arange(6) % 2)
    data = train.read_bytes()
    train.write_bytes(data[: len(data) // 2])
    _raises(r"bad_train\.h5: (not an HDF5 file or )?cannot be read", open_dataset, prefix, data_dir=tmp_path)


@pytest.mark.parametrize(
    "case,match",
    [
        ("no_times", r"missing /spikes/times"),
        ("no_units", r"missing /spikes/units"),
        ("no_labels", r"missing /labels"),
        ("labels_short", r"/spikes/times has 3 samples, /spikes/units 3, /labels 2"),
        ("sample_mismatch", r"sample 1 has 2 spike times but 1 units"),
        ("unit_too_big", r"unit index 700 in sample 2 out of range \(0\.\.699\)"),
        ("negative_time", r"negative spike time -0\.5 s in sample 0"),
        ("nan_time", r"non-finite spike time in sample 1"),
        ("empty", r"empty dataset"),
        ("not_vlen", r"/spikes/times must be a 1-D variable-length dataset"),
        ("float_labels", r"/labels must be integers"),
        ("negative_label", r"label -1 out of range"),
    ],
)
def test_schema_errors(tmp_path, case, match):
    _good_pair(tmp_path)
    path = tmp_path / "bad_train.h5"
    t3 = [[0.1, 0.2], [0.3, 0.4], [0.5]]
    u3 = [[1, 2], [3, 4], [5]]
    if case == "empty":
        write_h5(path, [], [], [])
    elif case == "not_vlen":
        with h5py.File(path, "w") as f:
            f.create_dataset("spikes/times", data=np.zeros((3, 2)))
            f.create_dataset("spikes/units", data=np.zeros((3, 2), np.uint16))
            f.create_dataset("labels", data=np.zeros(3, np.uint8))
    else:
        times, units, labels = t3, u3, [0, 1, 0]
        if case == "labels_short":
            labels = [0, 1]
        elif case == "sample_mismatch":
            units = [[1, 2], [3], [5]]
        elif case == "unit_too_big":
            units = [[1, 2], [3, 4], [700]]
        elif case == "negative_time":
            times = [[-0.5, 0.2], [0.3, 0.4], [0.5]]
        elif case == "nan_time":
            times = [[0.1, 0.2], [0.3, np.nan], [0.5]]
        elif case == "negative_label":
            labels = [0, -1, 0]
        _write_raw(path, times, units, labels)
        with h5py.File(path, "a") as f:
            if case in ("no_times", "no_units"):
                del f["spikes/" + case[3:]]
            elif case == "no_labels":
                del f["labels"]
            elif case == "float_labels":
                del f["labels"]
                f.create_dataset("labels", data=np.array([0.5, 1.0, 0.0]))
            elif case == "unit_too_big":  # a unit beyond the width the file declares
                f.attrs["n_in"] = 700
    _raises(match, open_dataset, str(tmp_path / "bad"), data_dir=tmp_path)


def test_labels_out_of_range_of_keys(tmp_path):
    rng = np.random.default_rng(12)
    times, units = random_samples(rng, 4)
    write_split(tmp_path / "kk_train.h5", times, units, [0, 1, 2, 1], keys=["a", "b"])
    write_split(tmp_path / "kk_test.h5", times, units, [0, 1, 0, 1], keys=["a", "b"])
    _raises(r"kk_train\.h5: label 2 out of range: /extra/keys names 2 classes",
            open_dataset, str(tmp_path / "kk"), data_dir=tmp_path)


def test_bad_arguments(tmp_path):
    rng = np.random.default_rng(13)
    make_dataset(tmp_path, rng)
    prefix = str(tmp_path / "toy")
    _raises(r"steps must be a positive integer", open_dataset, prefix, steps=0, data_dir=tmp_path)
    _raises(r"dt_ms must be a positive number", open_dataset, prefix, dt_ms=-1, data_dir=tmp_path)
    _raises(r"dt_ms must be a positive number", open_dataset, prefix, dt_ms=float("nan"), data_dir=tmp_path)
    _raises(r"valid_fraction must be in \[0, 1\)", open_dataset, prefix, valid_fraction=1.0,
            data_dir=tmp_path)
    ds = open_dataset(prefix, steps=10, data_dir=tmp_path)
    _raises(r"unknown split 'dev'", ds.batches, "dev", 4)
    _raises(r"unknown split 'dev'", ds.split_size, "dev")
    _raises(r"unknown input format 'sparse'", ds.batches, "train", 4, fmt="sparse")
    _raises(r"batch_size must be a positive integer", ds.batches, "train", 0)


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


def test_dataset_from_arrays_in_memory(tmp_path):
    from datasets.h5 import RawSplit
    from datasets.spikes import SpikeDataset

    rng = np.random.default_rng(14)
    make_dataset(tmp_path, rng)
    from_files = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path)
    splits = {s: read_split(tmp_path / f"toy_{s}.h5") for s in ("train", "test")}
    in_memory = SpikeDataset.from_raw("toy", splits, steps=20)
    assert in_memory.spec.n_classes == from_files.spec.n_classes
    assert in_memory.provenance["files"]["train"]["path"] is None
    for split in ("train", "valid", "test"):
        a = [b.x for b in from_files.batches(split, 16)]
        b = [b.x for b in in_memory.batches(split, 16)]
        np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    bad = RawSplit(times=np.array([0.1], np.float32), units=np.array([1], np.uint16),
                   offsets=np.array([0, 2]), labels=np.array([0]))
    _raises(r"toy/train: offsets, times, units and labels do not fit together",
            SpikeDataset.from_raw, "toy", {"train": bad, "test": splits["test"]})


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


def test_no_validation_split(tmp_path):
    rng = np.random.default_rng(16)
    make_dataset(tmp_path, rng)
    ds = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path, valid_fraction=0.0)
    assert ds.split_size("valid") == 0 and ds.split_size("train") == 40
    assert list(ds.batches("valid", 8)) == [] and list(ds.batches("valid", 8, fmt="events")) == []
    assert ds.labels("valid").shape == (0,)
