"""The cochlea chain: each stage against its equations (and lauscher 1.0.1 where installed), the
hazard-drawn fibres against step-by-step Bernoulli fibres, and tones against channel position."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.cochlea import convert_wave, prepare, release
from datasets.cochlea import bushy, haircell, membrane

RATE = 16000


def tone(freq: float, seconds: float = 0.12, rate: int = RATE) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def test_prepare_sets_the_rms_and_fades_both_ends():
    x = prepare(np.ones(1001) * 0.01)
    assert x[0] == 0.0 and x[-1] == 0.0 and x[500] == pytest.approx(0.3)
    assert np.all(np.diff(x[:500]) >= 0) and np.all(np.diff(x[501:]) <= 0)
    with pytest.raises(ValueError, match="silent"):
        prepare(np.zeros(100))


def test_tabulated_transfer_matches_the_exact_one():
    freqs = membrane.clip_frequencies(3000, RATE)
    exact = membrane.transfer(freqs, 20)
    grid, table = membrane.transfer_table(RATE, 20)
    assert np.abs(table).max() > 0
    approx = membrane.interpolated_transfer(3000, RATE, 20)
    assert np.linalg.norm(approx - exact) / np.linalg.norm(exact) < 2e-3


def test_transfer_is_lauschers_hydrodynamic_membrane():
    lauscher = pytest.importorskip("lauscher.transformations.basilar_membrane")
    bm = lauscher.BasilarMembrane(channels=20)
    freqs = np.linspace(1.0, 8000.0, 400)
    ref = np.array([bm._v(2 * np.pi * freqs, c) for c in bm.ch])
    np.testing.assert_allclose(membrane.transfer(freqs, 20), ref, rtol=1e-9, atol=1e-12)


def _profile(freq: float, channels: int = 120, seeds: int = 2) -> np.ndarray:
    counts = np.zeros(channels)
    for seed in range(seeds):
        counts += np.bincount(convert_wave(tone(freq), RATE, channels=channels, seed=seed)[1],
                              minlength=channels)
    return counts


def _band(counts: np.ndarray, share: float = 0.8) -> tuple[int, float]:
    """(width of the narrowest run of channels holding ``share`` of the driven spikes, centroid)."""
    driven = np.clip(counts - np.median(counts), 0, None)
    cum = np.concatenate([[0.0], np.cumsum(driven)])
    width = min(hi - lo for lo in range(driven.size) for hi in range(lo + 1, driven.size + 1)
                if cum[hi] - cum[lo] >= share * cum[-1])
    return width, float(np.sum(driven * np.arange(driven.size)) / driven.sum())


def test_pure_tones_excite_a_narrow_band_that_moves_to_the_base_with_frequency():
    centres = []
    for freq in (300.0, 600.0, 1200.0, 2400.0, 4800.0):
        width, centre = _band(_profile(freq))
        assert width <= 30, f"{freq} Hz spreads over {width} of 120 channels"
        centres.append(centre)
    assert all(a > b + 3 for a, b in zip(centres, centres[1:])), centres  # channel 0 = base


def test_tone_order_matches_lauscher():
    lauscher = pytest.importorskip("lauscher.transformations.basilar_membrane")
    bm = lauscher.BasilarMembrane(channels=120)
    theirs = [int(np.argmax(np.abs(bm._v(np.array([2 * np.pi * f]), bm.ch)))) for f in (600, 2400)]
    ours = [_band(_profile(f))[1] for f in (600, 2400)]
    assert np.sign(theirs[1] - theirs[0]) == np.sign(ours[1] - ours[0]) != 0


def test_hair_cell_matches_lauschers_meddis_model():
    lauscher = pytest.importorskip("lauscher.transformations.hair_cell")
    velocity, fs = membrane.membrane_velocity(prepare(tone(900.0, 0.05)), RATE, 40)
    ours = haircell.release_probability(velocity[::8], fs)
    cell = lauscher.HairCell()
    theirs = np.array([cell._meddis(channel, fs) for channel in velocity[::8]])
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-15)


def test_hair_cell_rests_at_its_steady_state():
    p = haircell.release_probability(np.zeros((1, 2000)), 8000.0)
    assert np.ptp(p) < 1e-12 and p[0, 0] > 0


def _bernoulli_fibres(prob: np.ndarray, refractory: int, n: int, rng) -> np.ndarray:
    """Reference: one draw per fibre and step, spikes within the dead time discarded."""
    counts = np.zeros(prob.size)
    for _ in range(n):
        hits = np.flatnonzero(rng.random(prob.size) < prob)
        last = -refractory
        for j in hits:
            if j - last >= refractory:
                counts[j] += 1
                last = j
    return counts


def test_hazard_fibres_have_the_distribution_of_step_by_step_fibres():
    t = np.arange(400)
    prob = 0.02 + 0.5 * (np.sin(t / 9.0) > 0.6)  # bursts, where refractoriness matters
    ours = bushy._fibre_counts(prob[None, :], 8, 4000, 7)[0].astype(float)
    ref = _bernoulli_fibres(prob, 8, 4000, np.random.default_rng(1))
    # per-step expected counts agree within sampling noise (counts ~ hundreds per step)
    z = (ours - ref) / np.sqrt(ours + ref + 1.0)
    assert np.abs(z).max() < 5.0 and abs(ours.sum() / ref.sum() - 1) < 0.01


def test_bushy_cell_matches_lauschers_scheme():
    lauscher = pytest.importorskip("lauscher.transformations.bushy_cell")
    rng = np.random.default_rng(3)
    fibre_spikes = (rng.random((1500, 40)) < 0.03).astype(float)
    theirs = np.flatnonzero(lauscher.BushyCell()._lif(fibre_spikes, 8000.0))
    counts = fibre_spikes.sum(axis=1).astype(np.int32)[None, :]
    steps, _ = bushy._bushy(counts, 8000.0, bushy.TAU_MEM, bushy.TAU_SYN, bushy.WEIGHT / 40,
                            bushy.refractory_steps(8000.0))
    assert steps.size > 20
    np.testing.assert_array_equal(np.sort(steps), theirs)


def test_same_seed_same_spikes_other_seed_other_spikes():
    x = tone(700.0, 0.08)
    a, b = convert_wave(x, RATE, channels=40, seed=5), convert_wave(x, RATE, channels=40, seed=5)
    c = convert_wave(x, RATE, channels=40, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].size != c[0].size or not np.array_equal(a[0], c[0])
    assert np.all(np.diff(a[0]) >= 0) and a[0].max() < 0.08


def test_release_runs_at_half_the_audio_rate_on_a_fast_length():
    prob, fs = release(tone(500.0, 0.05), RATE, channels=10)
    n = membrane.fast_length(int(0.05 * RATE))
    assert fs == RATE // 2 and prob.shape == (10, n // 2 + 1)
    for size in (801, 8001, 12345, 22051):
        cut = membrane.fast_length(size)
        assert size - size // 200 <= cut <= size
        assert cut == size or membrane._smooth(cut // 2 + 1)


def test_transfer_table_is_kept_on_disk_and_recomputed_when_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    membrane.transfer_table.cache_clear()
    freqs, computed = membrane.transfer_table(8000, 12)
    path = membrane.table_file(8000, 12)
    assert path.is_relative_to(tmp_path) and path.exists()

    def no_computation(*args):
        raise AssertionError("the table should come from the disk")

    membrane.transfer_table.cache_clear()
    with monkeypatch.context() as patch:
        patch.setattr(membrane, "transfer", no_computation)
        _, loaded = membrane.transfer_table(8000, 12)
    assert np.array_equal(loaded, computed)

    path.write_bytes(b"not a table")
    membrane.transfer_table.cache_clear()
    _, again = membrane.transfer_table(8000, 12)
    assert np.array_equal(again, computed) and np.array_equal(np.load(path), computed)
    membrane.transfer_table.cache_clear()
