"""The embedded synthetic set: deterministic, SHD-shaped, and its classes need time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from datasets import open_dataset
from datasets.features import count_features, window_features
from datasets.hashing import md5_of_file
from datasets.synthetic import VERSION, SyntheticParams, directory_name, ensure_synthetic


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    home = tmp_path_factory.mktemp("synthetic-home")
    start = time.perf_counter()
    ds = open_dataset("synthetic", data_dir=home)
    elapsed = time.perf_counter() - start
    return ds, home, elapsed


def test_shape_and_sizes(synthetic):
    ds, home, elapsed = synthetic
    print(f"synthetic set generated and opened in {elapsed:.1f} s")
    spec = ds.spec
    assert (spec.name, spec.n_in, spec.n_classes, spec.n_steps, spec.dt_ms) == ("synthetic", 700, 20, 1000, 1.0)
    assert len(spec.class_names) == 20 and spec.class_names[:2] == ("p0-ab", "p0-ba")
    assert ds.split_size("train") + ds.split_size("valid") == 400
    assert ds.split_size("valid") == 25 and ds.split_size("test") == 160
    assert ds.recommended_epochs == 2
    assert np.bincount(ds.labels("test")).tolist() == [8] * 20
    raw = ds.raw("train")
    per_sample = np.diff(raw.offsets)
    assert 5000 < per_sample.mean() < 12000
    assert raw.times.min() >= 0 and raw.times.max() < 1.0
    assert ds.provenance["dropped_spikes"]["train"]["count"] == 0
    assert (home / directory_name() / "synthetic_train.h5").is_file()


def test_deterministic_and_versioned(synthetic, tmp_path):
    ds, home, _ = synthetic
    small = SyntheticParams(train_per_class=2, test_per_class=1)
    a = ensure_synthetic(tmp_path / "a", small)
    b = ensure_synthetic(tmp_path / "b", small)
    for split in ("train", "test"):
        assert md5_of_file(a[split]) == md5_of_file(b[split])
    assert a["train"].parent.name.startswith(f"synthetic-v{VERSION}-seed0-")  # other sizes: other directory
    assert directory_name(SyntheticParams()) == f"synthetic-v{VERSION}-seed0"
    assert directory_name(SyntheticParams(seed=3)) == f"synthetic-v{VERSION}-seed3"
    before = (home / directory_name() / "synthetic_train.h5").stat().st_mtime_ns
    again = open_dataset("synthetic", data_dir=home)  # present: read, not generated again
    assert (home / directory_name() / "synthetic_train.h5").stat().st_mtime_ns == before
    assert again.spec.content_hash == ds.spec.content_hash


def _pairwise_accuracy(features, ds):
    """Mean over the 10 pairs of a binary logistic regression's test accuracy at telling the two
    classes of the pair apart from ``features`` (log1p, standardised)."""
    from sklearn.linear_model import LogisticRegression

    train_x = np.log1p(np.concatenate([features(ds, "train"), features(ds, "valid")]))
    train_y = np.concatenate([ds.labels("train"), ds.labels("valid")])
    test_x, test_y = np.log1p(features(ds, "test")), ds.labels("test")
    scores = []
    for pair in range(ds.spec.n_classes // 2):
        tr, te = train_y // 2 == pair, test_y // 2 == pair
        mean, std = train_x[tr].mean(0), train_x[tr].std(0) + 1e-3
        clf = LogisticRegression(C=0.1, solver="liblinear").fit((train_x[tr] - mean) / std, train_y[tr])
        scores.append(clf.score((test_x[te] - mean) / std, test_y[te]))
    return float(np.mean(scores))


def test_counts_alone_cannot_tell_a_pair_apart(synthetic):
    """Per-channel spike counts are at chance within each pair (same bands, other order); the
    same classifier on counts in four time windows separates them."""
    ds, _, _ = synthetic
    counts = _pairwise_accuracy(count_features, ds)
    timed = _pairwise_accuracy(lambda d, s: window_features(d, s, 4), ds)
    print(f"pairwise logistic regression: counts {counts:.3f}, 4 time windows {timed:.3f}")
    assert counts < 0.65, counts
    assert timed > 0.9, timed


def test_counts_identify_the_pair(synthetic):
    """Nearest class-mean on counts finds the right pair almost always: the pairs differ in bands."""
    ds, _, _ = synthetic
    train_x = np.log1p(count_features(ds, "train"))
    pairs = ds.labels("train") // 2
    centres = np.stack([train_x[pairs == p].mean(0) for p in range(10)])
    test_x = np.log1p(count_features(ds, "test"))
    guess = np.argmin(((test_x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (guess == ds.labels("test") // 2).mean() > 0.9
