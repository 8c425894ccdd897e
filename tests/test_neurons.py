"""The single-neuron models against their published behaviour (methods/neurons/).

HH (Hodgkin & Huxley 1952): rest is stable, an action potential peaks near +40 mV, a long step
fires repetitively from about 6-7 uA/cm^2, and the default step agrees with a 5x finer one.
LIF: the simulated f-I curve is its closed form. Adaptive LIF: its ISIs lengthen. Izhikevich
(2003): each published parameter set produces its named pattern, judged from spike statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.neurons import adlif, hh, izhikevich, lif as lif_cell
from methods.neurons.simulate import firing_rates, run, spike_times

torch.set_num_threads(1)


def step_input(amplitude: float, start: float, stop: float = float("inf")):
    return lambda t: amplitude if start <= t < stop else 0.0


# --- Hodgkin-Huxley --------------------------------------------------------------------------


def test_hh_rest_stays_at_rest():
    model = hh.HodgkinHuxley(1)
    _, v, fired = run(model, lambda t: 0.0, 100.0)
    assert len(fired) == 0
    assert float((v + 65.0).abs().max()) < 0.05


def test_hh_action_potential_peaks_near_plus_40_mv():
    model = hh.HodgkinHuxley(1)
    _, v, fired = run(model, step_input(20.0, 1.0, 2.0), 30.0)
    assert len(fired) == 1
    assert 35.0 < float(v.max()) < 46.0
    after = v[-40:]  # ms 29-30: the after-hyperpolarisation below rest
    assert float(after.max()) < -65.0


def test_hh_repetitive_firing_threshold_between_6_and_7():
    currents = torch.arange(5.5, 7.51, 0.1)
    model = hh.HodgkinHuxley(len(currents))
    rates = firing_rates(model, currents, duration_ms=300.0, skip_ms=100.0)
    repetitive = rates > 20.0  # the HH's minimum repetitive rate is about 50 Hz
    assert not repetitive[0] and repetitive[-1]
    threshold = float(currents[repetitive.nonzero()[0, 0]])
    assert 6.0 <= threshold <= 7.0, threshold
    assert bool(repetitive[currents >= threshold].all())  # above it, every current keeps firing


def test_hh_default_step_agrees_with_a_finer_one():
    times = []
    for dt in (hh.DEFAULT_DT_MS, hh.DEFAULT_DT_MS / 5):
        model = hh.HodgkinHuxley(1, dt)
        _, _, fired = run(model, step_input(10.0, 5.0), 40.0)
        times.append(spike_times(fired, 0, dt))
    assert len(times[0]) == len(times[1]) >= 3
    assert np.abs(np.subtract(*times)).max() < 0.1  # ms


# --- LIF and adaptive LIF --------------------------------------------------------------------


def test_lif_f_i_curve_is_its_closed_form():
    currents = torch.tensor([0.5, 1.0, 1.05, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0], dtype=torch.float64)
    cell = lif_cell.LIFCell(len(currents), dtype=torch.float64)
    cell.reset(currents)
    steps = 2000
    rates = firing_rates(cell, lif_cell.constant_current_input(currents, cell), steps, 0.0)
    expected = [lif_cell.closed_form_rate(float(c)) for c in currents]
    # the first spike comes after one period from V = 0, so a run of `steps` has steps // k
    counts = [steps // round(1000.0 / r) if r else 0 for r in expected]
    np.testing.assert_allclose(rates.numpy() * steps / 1000.0, counts, rtol=1e-12)
    assert expected[0] == expected[1] == 0.0 and expected[-1] > 300.0
    for c, rate in zip(currents[2:], expected[2:]):  # one step from the continuous period
        period, continuous = 1000.0 / rate, 1000.0 / lif_cell.continuous_rate(float(c))
        assert 0.0 <= period - continuous < 1.0


def test_adaptive_lif_slows_down_and_raises_its_threshold():
    current = 3.0
    cells = [lif_cell.LIFCell(1), adlif.AdaptiveLIFCell(1)]
    trains = []
    for cell in cells:
        cell.reset(current)
        _, _, fired = run(cell, lambda t: lif_cell.constant_current_input(current, cell), 1000.0)
        trains.append(np.diff(spike_times(fired, 0, cell.dt)))
    plain, adaptive = trains
    assert plain.std() == 0  # the LIF is strictly periodic
    assert adaptive[0] == plain[0] and adaptive[-1] > 1.5 * adaptive[0]
    assert len(adaptive) < len(plain)
    assert float(cells[1].threshold) > 1.3


# --- Izhikevich ------------------------------------------------------------------------------

DT = 0.25  # the patterns' ISIs are converged to ~10 % at 0.25 ms (at 1 ms FS and LTS are not)


def izhikevich_isis(sets: list[str], stimulus, duration: float = 500.0) -> list[np.ndarray]:
    model = izhikevich.Izhikevich(sets, DT)
    _, _, fired = run(model, stimulus, duration)
    return [np.diff(spike_times(fired, j, DT)) for j in range(len(sets))]


@pytest.fixture(scope="module")
def step_isis() -> dict[str, np.ndarray]:
    """ISIs (ms) of every set under a 10-unit current step from t = 20 ms, 500 ms."""
    names = list(izhikevich.PARAMETER_SETS)
    return dict(zip(names, izhikevich_isis(names, step_input(10.0, 20.0))))


def cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def test_regular_spiking_is_regular_and_adapts(step_isis):
    isi = step_isis["RS"]
    assert len(isi) >= 8 and isi.min() > 10.0  # no bursts
    assert cv(isi[2:]) < 0.05  # regular once adapted
    assert isi[-1] > 1.5 * isi[0]  # spike-frequency adaptation


def test_intrinsically_bursting_starts_with_one_burst(step_isis):
    isi = step_isis["IB"]
    short = isi < 10.0
    assert short[:2].all() and not short[2:].any()  # one initial burst, then tonic
    assert cv(isi[3:]) < 0.05 and isi[3:].min() > 20.0


def test_chattering_repeats_bursts(step_isis):
    isi = step_isis["CH"]
    long = isi > 20.0
    assert long.sum() >= 3  # at least three inter-burst pauses
    burst_lengths = np.diff(np.flatnonzero(np.r_[True, long, True])) - 1
    assert (burst_lengths[:-1] >= 2).all()  # every completed burst has >= 3 spikes
    assert isi[~long].max() < 10.0


def test_fast_spiking_fires_fast_without_adaptation(step_isis):
    fs, rs = step_isis["FS"], step_isis["RS"]
    assert 1000.0 / fs[3:].mean() > 80.0
    assert fs[3:].mean() < rs[3:].mean() / 3
    assert cv(fs[3:]) < 0.1 and fs.max() < 15.0


def test_low_threshold_spiking_adapts_and_fires_below_rs_threshold(step_isis):
    lts = step_isis["LTS"]
    assert lts[0] < 0.5 * lts[-1] and lts.max() < 20.0
    low = izhikevich_isis(["LTS", "RS"], step_input(2.0, 20.0), 300.0)
    assert len(low[0]) >= 1 and len(low[1]) == 0  # a step of 2 units fires LTS, not RS


def test_thalamo_cortical_rebound_burst_and_tonic_mode(step_isis):
    hyper = step_input(-10.0, 50.0, 200.0)  # hyperpolarise, then release to no input
    model = izhikevich.Izhikevich(["TC", "RS"], DT)
    _, _, fired = run(model, hyper, 400.0)
    rebound, rs = spike_times(fired, 0, DT), spike_times(fired, 1, DT)
    assert len(rebound) >= 2 and all(200.0 < t < 250.0 for t in rebound) and not rs
    assert cv(step_isis["TC"][10:]) < 0.2  # depolarised: tonic


def test_resonator_rings_below_threshold():
    pulse = step_input(0.5, 50.0, 51.0)
    model = izhikevich.Izhikevich(["RZ", "RS"], DT)
    _, v, fired = run(model, pulse, 300.0)
    assert len(fired) == 0
    rest = torch.tensor([izhikevich.PARAMETER_SETS[s].resting_state()[0] for s in ("RZ", "RS")])
    deviation = (v[int(51.0 / DT):] - rest).numpy()
    crossings = (np.diff(np.sign(deviation), axis=0) != 0).sum(axis=0)
    assert crossings[0] >= 3 and crossings[1] <= 1  # RZ oscillates around rest, RS does not


def test_izhikevich_resting_state_is_a_fixed_point():
    for name, p in izhikevich.PARAMETER_SETS.items():
        v, u = p.resting_state()
        dv, du = izhikevich.integrate(v, u, 0.0, p.a, p.b, 1.0)
        assert abs(dv - v) < 1e-9 and abs(du - u) < 1e-9, name


def test_nir_export_refuses_other_hidden_neurons():
    pytest.importorskip("nir")
    from bench.export import build_graph
    from datasets.types import InputError
    from methods import lif

    weights = lif.init_weights(0, 4, 3, 2, recurrent=True)
    hparams = {"dt_ms": 1.0, "tau_mem": 20.0, "tau_syn": 5.0, "tau_out": 20.0}
    build_graph(weights, hparams)  # the LIF network exports
    with pytest.raises(InputError, match="neuron=izhikevich"):
        build_graph(weights, {**hparams, "neuron": "izhikevich"})
