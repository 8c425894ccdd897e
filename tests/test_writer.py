"""Own data: ``datasets.write_spike_dataset`` and ``bench data import`` fed with tonic's own event
arrays and cache folders, and with .npz files."""

from __future__ import annotations

import numpy as np
import pytest

from bench import cli
from datasets import InputError, open_dataset, write_spike_dataset

tonic = pytest.importorskip("tonic")

SENSOR = tonic.datasets.NMNIST.sensor_size  # (34, 34, 2)
W, H, P = SENSOR


def nmnist_like(rng, n):
    """(events, label) pairs as tonic's NMNIST hands them out: x, y, t (microseconds), p."""
    samples = []
    for i in range(n):
        k = 80
        t = np.sort(rng.integers(0, 30_000, k))
        t[0] = 0  # every sample starts at 0, so tonic's frames start there too
        events = tonic.io.make_structured_array(
            rng.integers(0, W, k), rng.integers(0, H, k), t, rng.integers(0, P, k),
            dtype=tonic.datasets.NMNIST.dtype)
        samples.append((events, i % 3))
    return samples


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return {"train": nmnist_like(rng, 12), "test": nmnist_like(rng, 6)}


def test_tonic_events_match_tonic_frames(samples, tmp_path):
    prefix = write_spike_dataset(tmp_path / "nm", samples, sensor_size=SENSOR)
    data = open_dataset(str(prefix), steps=30, dt_ms=1.0)
    assert data.spec.n_in == W * H * P and data.spec.n_classes == 3
    batch = next(data.batches("test", 6))
    to_frame = tonic.transforms.ToFrame(sensor_size=SENSOR, time_window=1000)
    for b, (events, label) in enumerate(samples["test"]):
        frames = to_frame(events)  # (bins, P, H, W) counts
        n = min(frames.shape[0], 30)
        np.testing.assert_array_equal(batch.x[b, :n], frames[:n].reshape(n, -1))
        assert batch.x[b].sum() == len(events) and batch.y[b] == label


def test_audio_like_events_use_x_as_the_channel(tmp_path):
    dtype = tonic.datasets.SHD.dtype  # t, x, p
    rng = np.random.default_rng(1)
    make = lambda n: [(tonic.io.make_structured_array(np.sort(rng.integers(0, 9000, 20)),
                                                      rng.integers(0, 700, 20), 1, dtype=dtype),
                       str(["yes", "no"][i % 2])) for i in range(n)]
    train = make(20)
    prefix = write_spike_dataset(tmp_path / "a", {"train": train, "test": make(8)},
                                 sensor_size=tonic.datasets.SHD.sensor_size)
    data = open_dataset(str(prefix), steps=10)
    assert data.spec.n_in == 700 and data.spec.class_names == ("no", "yes")
    from datasets.h5 import read_split

    raw = read_split(f"{prefix}_train.h5")
    assert raw.n_spikes == 20 * 20 and raw.n_in == 700
    np.testing.assert_array_equal(raw.units[:20], train[0][0]["x"])


def test_import_a_tonic_cache_folder(samples, tmp_path, capsys):
    from tonic import DiskCachedDataset

    for split, pairs in samples.items():
        cache = DiskCachedDataset(pairs, cache_path=str(tmp_path / "cache" / split))
        for i in range(len(cache)):
            cache[i]  # writes <i>_0.hdf5
    code = cli.main(["data", "import", str(tmp_path / "cache"), "--out", str(tmp_path / "imp"),
                     "--sensor-size", "34,34,2"])
    assert code == 0, capsys.readouterr().err
    direct = write_spike_dataset(tmp_path / "direct", samples, sensor_size=SENSOR)
    a, b = open_dataset(str(tmp_path / "imp"), steps=30), open_dataset(str(direct), steps=30)
    assert a.spec.n_in == b.spec.n_in == W * H * P
    for split in ("train", "test"):
        np.testing.assert_array_equal(next(a.batches(split, 64)).x, next(b.batches(split, 64)).x)
        np.testing.assert_array_equal(a.labels(split), b.labels(split))


def test_import_npz_in_both_layouts(samples, tmp_path, capsys):
    arrays = {"sensor_size": np.array(SENSOR)}
    for split, pairs in samples.items():
        events = np.concatenate([e for e, _ in pairs])
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(e) for e, _ in pairs])
        arrays[f"{split}_labels"] = np.array([label for _, label in pairs])
        for field in ("t", "x", "y", "p"):
            arrays[f"{split}_{field}"] = events[field]
    np.savez(tmp_path / "ev.npz", **arrays)
    assert cli.main(["data", "import", str(tmp_path / "ev.npz"), "--out", str(tmp_path / "ev")]) == 0
    direct = write_spike_dataset(tmp_path / "direct", samples, sensor_size=SENSOR)
    a, b = open_dataset(str(tmp_path / "ev"), steps=30), open_dataset(str(direct), steps=30)
    np.testing.assert_array_equal(next(a.batches("train", 64)).x, next(b.batches("train", 64)).x)

    times = {s: arrays[f"{s}_t"] * 1e-6 for s in samples}
    units = {s: (arrays[f"{s}_p"] * H + arrays[f"{s}_y"]) * W + arrays[f"{s}_x"] for s in samples}
    flat = {f"{s}_{k}": v for s in samples for k, v in (
        ("times", times[s]), ("units", units[s]), ("offsets", arrays[f"{s}_offsets"]),
        ("labels", arrays[f"{s}_labels"]))}
    np.savez(tmp_path / "flat.npz", **flat)
    assert cli.main(["data", "import", str(tmp_path / "flat.npz"), "--out", str(tmp_path / "fl")]) == 0
    c = open_dataset(str(tmp_path / "fl"), steps=30)
    np.testing.assert_array_equal(next(c.batches("test", 64)).x, next(b.batches("test", 64)).x)


def test_bad_input_is_one_line(samples, tmp_path, capsys):
    with pytest.raises(InputError, match="need a sensor_size"):
        write_spike_dataset(tmp_path / "x", samples)
    with pytest.raises(InputError, match=r"event x outside 0\.\.9"):
        write_spike_dataset(tmp_path / "x", samples, sensor_size=(10, 34, 2))
    with pytest.raises(InputError, match="needs a test split"):
        write_spike_dataset(tmp_path / "x", {"train": samples["train"]}, sensor_size=SENSOR)
    assert cli.main(["data", "import", str(tmp_path / "nothing.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "expected a .npz file" in capsys.readouterr().err
