"""Input transforms (datasets/transforms.py): each rule on small hand-made CSR batches."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from methods.api import InputError
from datasets import transforms

N_IN = 50


def hp(**values):
    base = {"aug_shift": 0, "aug_blend": 0.0, "aug_dropout": 0.0, "delay_lines": 1, "delay_ms": 0.0}
    return SimpleNamespace(**{**base, **values})


def make_batch(seed=0, n=12, n_classes=3, spikes=(20, 60)):
    """CSR batch: sample i has a random number of spikes, times in [0, 0.1) s."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(*spikes, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    times = rng.uniform(0.0, 0.1, offsets[-1]).astype(np.float32)
    units = rng.integers(0, N_IN, offsets[-1]).astype(np.uint16)
    labels = (np.arange(n) % n_classes).astype(np.int64)
    return times, units, offsets, labels


def samples(times, units, offsets):
    return [(times[a:b], units[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]


def call(transform, batch, seed=1):
    times, units, offsets, labels = (a.copy() for a in batch)
    return transform(times, units, offsets, labels, np.random.default_rng(seed))


def check_csr(out, n_in):
    times, units, offsets, labels, n = out
    assert n == n_in
    assert offsets[0] == 0 and offsets[-1] == times.shape[0] == units.shape[0]
    assert np.all(np.diff(offsets) >= 0) and offsets.shape[0] == labels.shape[0] + 1
    if units.size:
        assert units.min() >= 0 and units.max() < n_in
        assert times.min() >= 0


def test_nothing_to_do_gives_no_transform():
    assert transforms.build(hp(), N_IN) == (None, None, N_IN)


@pytest.mark.parametrize("values", [
    {"aug_shift": -1}, {"aug_shift": 1.5}, {"aug_blend": -0.1}, {"aug_blend": 1.5},
    {"aug_dropout": 1.0}, {"aug_dropout": -0.2}, {"delay_lines": 0}, {"delay_ms": -1.0},
    {"aug_blend": float("nan")},
])
def test_bad_ranges_are_input_errors(values):
    with pytest.raises(InputError):
        transforms.build(hp(**values), N_IN)


def test_shift_moves_each_sample_by_its_drawn_amount_and_drops_out_of_range():
    k = 7
    batch = make_batch()
    train, evaluate, n_in = transforms.build(hp(aug_shift=k), N_IN)
    assert evaluate is None and n_in == N_IN
    out = call(train, batch, seed=3)
    check_csr(out, N_IN)
    times, units, offsets, labels, _ = out
    np.testing.assert_array_equal(labels, batch[3])
    amounts = np.random.default_rng(3).integers(-k, k + 1, size=len(labels))  # the same draw
    for (t0, u0), (t1, u1), s in zip(samples(*batch[:3]), samples(times, units, offsets), amounts):
        moved = u0.astype(int) + s
        keep = (moved >= 0) & (moved < N_IN)
        np.testing.assert_array_equal(u1, moved[keep])
        np.testing.assert_array_equal(t1, t0[keep])


def test_dropout_removes_about_p_of_the_spikes():
    batch = make_batch(n=40, spikes=(200, 300))
    train, _, _ = transforms.build(hp(aug_dropout=0.3), N_IN)
    out = call(train, batch)
    check_csr(out, N_IN)
    total = batch[0].shape[0]
    assert abs(out[0].shape[0] / total - 0.7) < 0.02
    np.testing.assert_array_equal(out[3], batch[3])
    # survivors are a subsequence of each sample's spikes
    for (t0, u0), (t1, u1) in zip(samples(*batch[:3]), samples(*out[:3])):
        pairs0 = set(zip(t0.tolist(), u0.tolist()))
        assert set(zip(t1.tolist(), u1.tolist())) <= pairs0


def test_blend_adds_samples_mixed_from_two_of_the_same_class():
    batch = make_batch(n=12, n_classes=3)
    times, units, offsets, labels = batch
    train, _, _ = transforms.build(hp(aug_blend=0.5), N_IN)
    out = call(train, batch, seed=5)
    check_csr(out, N_IN)
    t1, u1, o1, y1, _ = out
    assert y1.shape[0] == 12 + 6
    np.testing.assert_array_equal(y1[:12], labels)
    np.testing.assert_array_equal(t1[:o1[12]], times)  # originals untouched
    anchor, partner = transforms.blend_pairs(labels, 6, np.random.default_rng(5))
    assert np.all(anchor != partner) and np.all(labels[anchor] == labels[partner])
    np.testing.assert_array_equal(y1[12:], labels[anchor])
    originals = samples(times, units, offsets)
    for j, (a, b) in enumerate(zip(anchor, partner)):
        tj, uj = t1[o1[12 + j]:o1[13 + j]], u1[o1[12 + j]:o1[13 + j]]
        ta, ua = originals[a]
        tb, ub = originals[b]
        shift_t = np.float32(ta.astype(np.float64).mean() - tb.astype(np.float64).mean())
        shift_u = int(np.rint(ua.astype(np.float64).mean() - ub.astype(np.float64).mean()))
        from_a = set(zip(ta.tolist(), ua.tolist()))
        from_b = set(zip((tb + shift_t).tolist(), (ub.astype(int) + shift_u).tolist()))
        got = list(zip(tj.tolist(), uj.tolist()))
        assert all(p in from_a or p in from_b for p in got)
        n_a = sum(p in from_a for p in got)
        assert 0 < n_a < len(ta) and 0 < len(got) - n_a < len(tb)  # about half of each


def test_blend_needs_two_samples_of_a_class():
    batch = make_batch(n=3, n_classes=3)  # one sample per class
    train, _, _ = transforms.build(hp(aug_blend=1.0), N_IN)
    out = call(train, batch)
    assert out[3].shape[0] == 3


def test_delay_lines_copy_the_input_with_time_offsets():
    batch = make_batch(n=5)
    times, units, offsets, labels = batch
    train, evaluate, n_in = transforms.build(hp(delay_lines=3, delay_ms=10.0), N_IN)
    assert n_in == 3 * N_IN and train is evaluate
    out = evaluate(*(a.copy() for a in batch), None)
    check_csr(out, 3 * N_IN)
    t1, u1, o1, y1, _ = out
    np.testing.assert_array_equal(o1, 3 * offsets)
    np.testing.assert_array_equal(y1, labels)
    for (t0, u0), (tc, uc) in zip(samples(times, units, offsets), samples(t1, u1, o1)):
        for c in range(3):
            sel = (uc >= c * N_IN) & (uc < (c + 1) * N_IN)
            np.testing.assert_array_equal(uc[sel] - c * N_IN, u0)
            np.testing.assert_allclose(tc[sel], t0 + np.float32(c * 0.010), atol=1e-7)


def test_train_transform_is_augmentation_then_delay_lines():
    batch = make_batch()
    train, evaluate, n_in = transforms.build(
        hp(aug_shift=3, aug_dropout=0.2, aug_blend=0.25, delay_lines=2, delay_ms=5.0), N_IN)
    assert n_in == 2 * N_IN
    out = call(train, batch)
    check_csr(out, 2 * N_IN)
    assert out[3].shape[0] == 12 + 3
    t1, u1, o1 = out[:3]
    for tc, uc in samples(t1, u1, o1):  # both copies of a sample carry the same spikes
        first, second = uc < N_IN, uc >= N_IN
        np.testing.assert_array_equal(uc[second] - N_IN, uc[first])
        np.testing.assert_allclose(tc[second], tc[first] + np.float32(0.005), atol=1e-7)


def test_same_seed_same_result_and_eval_draws_nothing():
    batch = make_batch()
    train, evaluate, _ = transforms.build(
        hp(aug_shift=5, aug_blend=0.5, aug_dropout=0.1, delay_lines=2, delay_ms=3.0), N_IN)
    a, b, c = call(train, batch, seed=9), call(train, batch, seed=9), call(train, batch, seed=10)
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    e1 = evaluate(*(x.copy() for x in batch), rng)
    assert rng.bit_generator.state == state
    e2 = evaluate(*(x.copy() for x in batch), None)
    for x, y in zip(e1[:4], e2[:4]):
        np.testing.assert_array_equal(x, y)


def test_empty_batch_and_empty_samples():
    times = np.zeros(0, np.float32)
    units = np.zeros(0, np.uint16)
    offsets = np.zeros(4, np.int64)
    labels = np.array([0, 0, 1])
    train, _, _ = transforms.build(
        hp(aug_shift=2, aug_blend=1.0, aug_dropout=0.5, delay_lines=2, delay_ms=1.0), N_IN)
    out = train(times, units, offsets, labels, np.random.default_rng(0))
    check_csr(out, 2 * N_IN)
    assert out[3].shape[0] == 6


def test_binned_through_the_dataset_hook(tmp_path):
    """The transform plugs into SpikeDataset.batches: augmented training batches, and
    evaluation batches with n-fold inputs."""
    from datasets import open_dataset
    from datasets.h5 import write_h5

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 6)):
        lengths = rng.integers(20, 40, n)
        write_h5(tmp_path / f"tiny_{split}.h5",
                 [np.sort(rng.uniform(0, 0.03, k)) for k in lengths],
                 [rng.integers(0, 700, k) for k in lengths], np.arange(n) % 3)
    data = open_dataset(str(tmp_path / "tiny"), steps=40, dt_ms=1.0)
    train, evaluate, n_in = transforms.build(
        hp(aug_shift=2, aug_blend=0.5, delay_lines=2, delay_ms=5.0), data.spec.n_in)
    batch = next(iter(data.batches("train", 8, shuffle=True, seed=0, transform=train)))
    assert batch.x.shape == (12, 40, n_in) and batch.y.shape == (12,)
    batch = next(iter(data.batches("test", 6, transform=evaluate)))
    assert batch.x.shape == (6, 40, n_in)
    assert batch.x[:, :, :700].sum() == batch.x[:, :, 700:].sum()  # all spikes < 35 ms: kept
