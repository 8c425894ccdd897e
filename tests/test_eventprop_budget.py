"""EventProp at the embedded set's budget: the regulariser's default weight against the loss at
initialisation, and the silent-neuron remedy reviving a layer that starts silent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import cli, records
from methods import lif
from methods.api import make_hparams
from methods.eventprop import EventProp, adapter
from methods.eventprop.balance import HIDDEN_WEIGHTS, READOUTS, format_table, reg_ratios
from methods.eventprop.hparams import EventPropHparams
from tiny import TINY_SPEC, tiny_batch


def test_default_regulariser_does_not_dominate_the_loss_gradient():
    """At initialisation on the embedded set (default network), the regulariser's share of each
    hidden gradient is smaller than the loss's own, for every readout."""
    table = reg_ratios("synthetic", batches=2)
    print("\n" + format_table(table, EventPropHparams.reg_strength))
    assert set(table) == set(READOUTS)
    for readout, row in table.items():
        assert set(row) == set(HIDDEN_WEIGHTS)
        for key, ratio in row.items():
            assert 0.0 < ratio < 1.0, (readout, key, ratio)


# -- silent-neuron remedy ---------------------------------------------------------------------

TINY_RUN = ["--set", "hidden=8", "--set", "steps=50", "--set", "batch_size=16", "--no-progress",
            "--threads", "1"]


@pytest.fixture
def silent_start(monkeypatch):
    """EventProp's initial input weights scaled down so far that no hidden neuron fires."""
    original = lif.init_weights

    def scaled(*args, **kwargs):
        weights = original(*args, **kwargs)
        weights["w_in"] = weights["w_in"] * np.float32(1e-3)
        return weights

    monkeypatch.setattr(adapter.lif, "init_weights", scaled)


def _run(data, out, *extra) -> tuple[int, dict]:
    code = cli.main(["run", "--method", "eventprop", "--dataset", str(data), "--epochs", "3",
                     "--out", str(out), *TINY_RUN, *extra])
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, files
    return code, records.read(files[0])


def test_remedy_revives_a_layer_that_starts_silent(tiny_data, tmp_path, silent_start):
    code, record = _run(tiny_data, tmp_path / "runs")
    curve = record["curve"]
    assert code == 0 and record["status"] == "ok", record["error"]
    assert len(curve) == 3
    assert curve[0]["hidden_spikes_per_sample"] == 0  # silent from the start
    assert all(row["hidden_spikes_per_sample"] > 0 for row in curve[1:])  # revived
    assert record["extra"]["silent_boosts_total"] >= 8  # all 8 hidden neurons lifted


def test_a_layer_that_stays_silent_is_stopped_as_diverged(tiny_data, tmp_path, silent_start):
    code, record = _run(tiny_data, tmp_path / "runs", "--set", "revive_drive=0")
    assert code == 3 and record["status"] == "diverged"
    assert "hidden layer silent for the whole of epoch 2" in record["error"]


def test_remedy_lifts_mean_current_to_the_revive_drive():
    """After end_epoch, each silent neuron's mean input per active (sample, step) is at least
    (1 - beta) revive_drive theta; neurons that fired are untouched."""
    method = EventProp()
    values = {"hidden": 16, "steps": TINY_SPEC.n_steps, "dt_ms": TINY_SPEC.dt_ms, "batch_size": 8}
    method.setup(TINY_SPEC, make_hparams(EventProp.Hparams, values), 0, "cpu")
    with torch.no_grad():
        method.params["w_in"] *= 4.0
        method.params["w_in"][:, :3] = -1.0  # neurons 0-2 cannot spike
    for seed in range(2):
        method.train_step(tiny_batch(10 + seed, batch_size=8, rate=0.3, fmt="events"))
    rate = torch.from_numpy(method.input_counts / method.input_steps)
    before = method.params["w_in"].detach().clone()
    silent = method.epoch_counts == 0
    assert bool(silent[:3].all()) and not bool(silent.all())
    method.end_epoch(0)
    after = method.params["w_in"].detach().double()
    beta = lif.Decays.from_hparams(method.hp).beta
    drive = rate @ after[:, silent]
    need = (1.0 - beta) * method.hp.revive_drive * lif.THETA
    assert bool((drive >= need - 1e-6).all())
    assert float(drive[:3].min()) == pytest.approx(need, rel=1e-5)  # far below: lifted to it
    assert torch.equal(after[:, ~silent].float(), before[:, ~silent])


def test_a_coarse_grid_step_is_warned_and_a_fine_one_is_not():
    """Grid mode warns where its step is coarse for the synapse (the cosine of its hidden
    gradients to exact mode's falls from 0.93 at tau_syn / 5 to ~0 at 2 tau_syn)."""
    coarse = make_hparams(EventPropHparams, {"steps": 100, "dt_ms": 10.0})
    assert "coarse" in adapter.coarse_grid_warning(coarse)
    assert adapter.coarse_grid_warning(make_hparams(EventPropHparams, {})) is None  # 1 ms
    exact = make_hparams(EventPropHparams, {"steps": 100, "dt_ms": 10.0, "timing": "exact"})
    assert adapter.coarse_grid_warning(exact) is None
    with pytest.warns(UserWarning, match="dt_ms=10"):
        EventProp().setup(TINY_SPEC, coarse, 0, "cpu")
