"""EventProp's first-spike loss (``loss=first_spike``, methods/eventprop/common.py).

- exact mode: the gradient of every weight matrix equals central finite differences of the loss
  computed here from the output traces (tests/test_eventprop_oracle.py's first_spike_readout), on
  a tiny recurrent net with outputs that fire and outputs that take the fallback;
- grid mode: tests/test_eventprop_oracle.py runs the independent oracle over it with every readout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import methods.eventprop as ep
from test_eventprop import _fd_setup, _rel, _traces
from test_eventprop_oracle import first_spike_readout


def _first_spike_setup(timing: str):
    method, batch = _fd_setup(timing, "first_spike")
    with torch.no_grad():
        method.params["w_out"] *= 4.0  # outputs strong enough that some fire
    return method, batch


def _loss(method, batch) -> tuple[float, np.ndarray, torch.Tensor]:
    traces, counts = _traces(method, batch)
    loss, _, fired = first_spike_readout(traces.numpy(), batch.y, method.hp)
    return loss, fired, counts


def test_exact_mode_first_spike_gradients_equal_finite_differences(eps: float = 1e-6):
    method, batch = _first_spike_setup("exact")
    value, grads, _, fw = ep.loss_and_grads(method.net(), batch)
    want, fired, counts = _loss(method, batch)
    assert value == pytest.approx(want, rel=1e-12)
    assert fired.any() and not fired.all(), "both firing outputs and the fallback are wanted"
    assert counts.min() >= 1, "every hidden neuron should spike"
    for key in ("w_in", "w_rec", "w_out"):
        param = method.params[key]
        fd = torch.zeros_like(param)
        for idx in np.ndindex(*param.shape):
            old = float(param.data[idx])
            values = []
            for sign in (1, -1):
                param.data[idx] = old + sign * eps
                loss, f, c = _loss(method, batch)
                assert torch.equal(c, counts) and np.array_equal(f, fired), f"{key}{idx}"
                values.append(loss)
            param.data[idx] = old
            fd[idx] = (values[0] - values[1]) / (2 * eps)
        err = _rel(grads[key], fd)
        print(f"exact mode, first_spike {key}: relative error {err:.1e}")  # docs/eventprop.md
        assert err <= 1e-3, f"first_spike {key}: relative error {err:.2e}"


@pytest.mark.parametrize("timing", ["grid", "exact"])
def test_first_spike_scores_are_negative_first_times(timing):
    """Scores -t / fs_tau; the prediction is the output that fires first; train_step learns."""
    method, batch = _first_spike_setup(timing)
    net = method.net()
    fw = ep.forward(net, net.blocks(batch), store=False)
    torch.testing.assert_close(fw.scores, -fw.first_times / method.hp.fs_tau)
    assert np.array_equal(method.predict(batch).argmax(1), fw.first_times.argmin(1).numpy())
    out = method.train_step(batch)
    assert np.isfinite(out["loss"]) and out["hidden_spikes"] > 0
