"""Bad dataset input: unknown names, missing, corrupt and schema-breaking files, labels beyond the
class names, bad arguments; each is a one-line InputError."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from datasets import open_dataset
from datasets.h5 import write_h5
from test_datasets import _raises, make_dataset, random_samples, write_split

# ---------------------------------------------------------------------------------------------
# bad input: always one-line InputError


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    home = tmp_path / "data-home"
    monkeypatch.setenv("SNN_BENCH_DATA", str(home))
    return home


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
