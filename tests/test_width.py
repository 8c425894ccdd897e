"""Any input width: the channels come from the data and reach every method; ``input_pool=k``
sums neighbouring channels."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

from bench import runner
from datasets import InputError, open_dataset, write_spike_dataset
from datasets.h5 import write_h5

N_PIXELS = 34 * 34 * 2  # an N-MNIST-shaped sensor, flattened


def _samples(rng, n, n_in, n_classes=2, spikes=50):
    """Class c fires in its own band of channels, up to the last channel (n_in - 1)."""
    out = []
    band = n_in // n_classes
    for i in range(n):
        label = i % n_classes
        units = rng.integers(label * band, (label + 1) * band, spikes)
        units[0] = n_in - 1 if label == n_classes - 1 else units[0]
        out.append(((rng.uniform(0, 0.03, spikes), units), label))
    return out


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    rng = np.random.default_rng(0)
    prefix = tmp_path_factory.mktemp("wide") / "pixels"
    return write_spike_dataset(prefix, {"train": _samples(rng, 24, N_PIXELS),
                                        "test": _samples(rng, 8, N_PIXELS)}, n_in=N_PIXELS)


def test_the_width_comes_from_the_files(wide):
    with h5py.File(f"{wide}_train.h5") as f:
        assert int(f.attrs["n_in"]) == N_PIXELS
    data = open_dataset(str(wide), steps=30)
    assert data.spec.n_in == N_PIXELS
    assert next(data.batches("train", 4)).x.shape == (4, 30, N_PIXELS)


@pytest.mark.parametrize("method", ["eventprop", "bptt-snntorch"])
def test_a_2312_channel_dataset_trains(wide, tmp_path, method):
    config = runner.RunConfig(method=method, dataset=str(wide), epochs=1, out=str(tmp_path),
                              progress=False,
                              overrides=["hidden=8", "steps=30", "batch_size=8"])
    method_cls, hparams, data, _, _ = runner.prepare(config)
    instance = method_cls()
    instance.setup(data.spec, hparams, 0, "cpu")
    state = instance.state_dict()
    w_in = state["net"]["w_in"] if "net" in state else state["weights"]["w_in"]
    assert tuple(w_in.shape) == (N_PIXELS, 8)
    record, _ = runner.run(config)
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["epochs"] == 1


def test_inferred_width_is_the_largest_unit_over_all_splits(tmp_path):
    rng = np.random.default_rng(1)
    for split, top in (("train", 40), ("test", 57)):  # the widest unit is in the test split
        units = [rng.integers(0, top, 10) for _ in range(20)]
        units[0][0] = top
        write_h5(tmp_path / f"u_{split}.h5", [rng.uniform(0, 0.01, 10)] * 20, units,
                 np.arange(20) % 2)
    assert open_dataset(str(tmp_path / "u"), steps=10).spec.n_in == 58


def test_declared_widths_are_checked(tmp_path):
    times, labels = [np.array([0.001, 0.002])] * 20, np.arange(20) % 2
    write_h5(tmp_path / "d_train.h5", times, [np.array([1, 2])] * 20, labels, n_in=10)
    write_h5(tmp_path / "d_test.h5", times, [np.array([1, 2])] * 20, labels, n_in=12)
    with pytest.raises(InputError, match=r"different widths n_in \(train 10, test 12\)"):
        open_dataset(str(tmp_path / "d"), steps=10)
    write_h5(tmp_path / "d_test.h5", times, [np.array([1, 2])] * 20, labels, n_in=10)
    assert open_dataset(str(tmp_path / "d"), steps=10).spec.n_in == 10
    with h5py.File(tmp_path / "d_test.h5", "a") as f:
        f.attrs["n_in"] = 2
    with pytest.raises(InputError, match=r"unit index 2 in sample 0 out of range \(0\.\.1\)"):
        open_dataset(str(tmp_path / "d"), steps=10)


def test_input_pool_4_on_700_channels_gives_175(tmp_path):
    rng = np.random.default_rng(2)
    prefix = write_spike_dataset(tmp_path / "shd_like", {
        "train": _samples(rng, 16, 700), "test": _samples(rng, 8, 700)}, n_in=700)
    config = runner.RunConfig(method="eventprop", dataset=str(prefix), epochs=1, out=str(tmp_path),
                              overrides=["steps=40", "input_pool=4"], progress=False)
    _, hparams, data, _, _ = runner.prepare(config)
    train, evaluate, spec = runner.build_transforms(hparams, data.spec)
    assert data.spec.n_in == 700 and spec.n_in == 175
    plain = next(data.batches("test", 8))
    for transform in (train, evaluate):
        pooled = next(data.batches("test", 8, transform=transform))
        assert pooled.n_in == 175 and pooled.x.shape == (8, 40, 175)
        # channel j of the pooled input holds the spikes of channels 4j .. 4j + 3
        expected = plain.x.reshape(8, 40, 175, 4).sum(axis=3)
        np.testing.assert_array_equal(pooled.x, expected)
    events = next(data.batches("test", 8, fmt="events", transform=evaluate)).events
    assert events.unit.max() < 175 and events.count.sum() == plain.x.sum()


@pytest.mark.parametrize("method", ["bptt-snntorch", "eventprop"])  # dense and event input
def test_input_pool_runs_dense_and_event_methods(tmp_path, method):
    rng = np.random.default_rng(3)
    prefix = write_spike_dataset(tmp_path / "p", {"train": _samples(rng, 16, 30),
                                                  "test": _samples(rng, 8, 30)})
    config = runner.RunConfig(method=method, dataset=str(prefix), epochs=1,
                              out=str(tmp_path), progress=False,
                              overrides=["hidden=8", "steps=40", "batch_size=8", "input_pool=4"])
    record, _ = runner.run(config)
    assert record["status"] == "ok", record["error"]
    assert record["hparams"]["input_pool"] == 4
    with pytest.raises(InputError, match="input_pool must be an integer >= 1"):
        runner.prepare(dataclasses.replace(config, overrides=["input_pool=0"]))
