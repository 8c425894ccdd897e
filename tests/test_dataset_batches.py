"""Batches from an opened dataset: dense and event batches against the loop reference, shuffling,
the transform hook, the validation split, spec, content hash and provenance, and a dataset built
from arrays in memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datasets import binning, open_dataset
from datasets.h5 import read_split
from datasets.spikes import stratified_split
from test_datasets import (_raises, dense_from_events, make_dataset, random_samples,
                           reference_dense, write_split)

# ---------------------------------------------------------------------------------------------
# batches


def identity(times, units, offsets, labels, rng):
    return times, units, offsets, labels, 700


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


def test_no_validation_split(tmp_path):
    rng = np.random.default_rng(16)
    make_dataset(tmp_path, rng)
    ds = open_dataset(str(tmp_path / "toy"), steps=20, data_dir=tmp_path, valid_fraction=0.0)
    assert ds.split_size("valid") == 0 and ds.split_size("train") == 40
    assert list(ds.batches("valid", 8)) == [] and list(ds.batches("valid", 8, fmt="events")) == []
    assert ds.labels("valid").shape == (0,)
