"""The first-spike loss for surrogate-gradient BPTT (``loss=first_spike``, methods/readouts.py).

- the torch first spike times, scores and loss equal EventProp's own code for them
  (methods/eventprop/common.py: ``FirstSpikeTracker``, ``first_spike_error``) on random traces;
- autograd's gradient of the loss with respect to the traces equals central finite differences,
  the fallback of an output that never fires included;
- bptt-snntorch's output-weight gradient on it equals EventProp's (grid mode: the same forward
  pass, and both differentiate the loss exactly with respect to W_out);
- bptt-snntorch trains with it through the runner; the methods that do not offer it refuse it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench import cli, records
import methods.eventprop as ep
from methods.api import InputError, make_hparams
from methods.bptt_snntorch import BpttSnntorch, SnntorchHparams
from methods.eventprop.common import FirstSpikeTracker, Forward, first_spike_error
from methods.eventprop.hparams import EventPropHparams
from methods.lif import THETA
from methods.readouts import FirstSpikeReadout, first_spike_times
from tiny import TINY_SPEC, tiny_batch

TINY = ["--set", "hidden=8", "--set", "steps=50", "--set", "batch_size=16", "--no-progress"]


def random_traces(seed: int, n_steps: int = 40, batch: int = 6, n_out: int = 5) -> torch.Tensor:
    """Random-walk traces (T, B, C), float64: outputs that cross theta at various steps (one at
    step 0, where V_o[-1] = 0 is read) and outputs that never do."""
    g = torch.Generator().manual_seed(seed)
    drift = torch.linspace(-0.03, 0.06, batch * n_out, dtype=torch.float64).view(1, batch, n_out)
    noise = torch.randn(n_steps, batch, n_out, generator=g, dtype=torch.float64) * 0.12
    v = (noise + drift).cumsum(0)
    v[:, 0, 0] = torch.linspace(1.3, 2.0, n_steps, dtype=torch.float64)  # fires at step 0
    return v


def eventprop_first_spike(v: torch.Tensor, hp: EventPropHparams, chunk: int) -> Forward:
    """EventProp's first spike times and scores of traces v, fed to its tracker in blocks."""
    n_steps, batch, n_out = v.shape
    tracker = FirstSpikeTracker(batch, n_out, v.device, v.dtype)
    for t0 in range(0, n_steps, chunk):
        tracker.update(v[t0:t0 + chunk], t0)
    fw = Forward(scores=torch.empty(0), counts=torch.empty(0))
    vmax, amax = v.max(dim=0)
    tracker.finish(fw, vmax, amax, hp, n_steps)
    return fw


@pytest.mark.parametrize("seed, chunk", [(0, 1), (1, 7), (2, 40)])
def test_first_spike_times_equal_eventprops(seed, chunk):
    v = random_traces(seed)
    hp = EventPropHparams(loss="first_spike", dt_ms=0.5, fs_tau=7.0, fs_early=0.3)
    want = eventprop_first_spike(v, hp, chunk)
    readout = FirstSpikeReadout(hp.dt_ms, hp.fs_tau, hp.fs_early)
    times = first_spike_times(v, hp.dt_ms)
    fired = (v >= THETA).any(dim=0)
    assert fired.any() and not fired.all(), "both firing outputs and the fallback are wanted"
    torch.testing.assert_close(times, want.first_times, rtol=0.0, atol=1e-6)
    torch.testing.assert_close(readout.scores(v), want.scores, rtol=0.0, atol=1e-6)
    labels = torch.arange(v.shape[1]) % v.shape[2]
    loss, scores = readout.loss(v, labels)
    early, _ = first_spike_error(want, labels, hp, v.shape[0])
    expected = F.cross_entropy(want.scores, labels) + early
    assert float(loss) == pytest.approx(float(expected), abs=1e-6)
    assert torch.equal(scores.argmax(dim=1), times.argmin(dim=1))  # the first to fire wins


def test_first_spike_loss_gradient_equals_finite_differences(eps: float = 1e-6):
    v = random_traces(3).requires_grad_()
    # a perturbation of eps moves no crossing to another step and no peak to another sample
    assert float((v.detach() - THETA).abs().min()) > 1e3 * eps
    top2 = v.detach().topk(2, dim=0).values
    silent = (v.detach() < THETA).all(dim=0)
    assert silent.any() and float((top2[0] - top2[1])[silent].min()) > 1e2 * eps
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    readout = FirstSpikeReadout(dt_ms=1.0, fs_tau=5.0, fs_early=0.5)
    loss, _ = readout.loss(v, labels)
    (grad,) = torch.autograd.grad(loss, v)
    fd = torch.zeros_like(v)
    flat, fd_flat = v.detach().clone().view(-1), fd.view(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            old = float(flat[i])
            values = []
            for sign in (1, -1):
                flat[i] = old + sign * eps
                values.append(float(readout.loss(flat.view_as(v), labels)[0]))
            flat[i] = old
            fd_flat[i] = (values[0] - values[1]) / (2 * eps)
    err = float((grad - fd).abs().max() / fd.abs().max())
    assert err <= 1e-6, f"relative error {err:.1e}"
    fired = (v >= THETA).any(dim=0)
    peak = v.detach().argmax(dim=0)
    for b, c in (~fired).nonzero().tolist():
        column = grad[:, b, c]
        assert column[peak[b, c]] != 0.0, "the fallback passes a gradient to the output's peak"
        assert int((column != 0).sum()) == 1
    for b, c in fired.nonzero().tolist():  # the two samples around the crossing, or one at step 0
        assert 1 <= int((grad[:, b, c] != 0).sum()) <= 2


def test_bptt_snntorch_output_gradient_equals_eventprops():
    values = {"hidden": 16, "steps": TINY_SPEC.n_steps, "batch_size": 8, "loss": "first_spike"}
    bptt = BpttSnntorch()
    bptt.setup(TINY_SPEC, make_hparams(BpttSnntorch.Hparams, values), 0, "cpu")
    eventprop = ep.EventProp()
    eventprop.setup(TINY_SPEC, make_hparams(ep.EventProp.Hparams, values), 0, "cpu")
    with torch.no_grad():  # both start from lif.init_weights(seed 0); outputs strong enough to fire
        for net_weights in ({"w_in": bptt.net.w_in, "w_out": bptt.net.w_out}, eventprop.params):
            net_weights["w_in"].mul_(4.0)
            net_weights["w_out"].mul_(150.0)
    dense = tiny_batch(1, batch_size=8, rate=0.3)
    events = tiny_batch(1, batch_size=8, rate=0.3, fmt="events")
    labels = torch.from_numpy(dense.y)
    _, traces = bptt.net(torch.from_numpy(dense.x).float())
    fired = (traces.detach() >= THETA).any(dim=0)
    assert fired.any() and not fired.all(), "both firing outputs and the fallback are wanted"
    loss, _ = bptt.readout.loss(traces, labels)
    loss.backward()
    value, grads, _, _ = ep.loss_and_grads(eventprop.net(), events)
    assert float(loss) == pytest.approx(value, rel=1e-5)
    want = grads["w_out"]
    err = float((bptt.net.w_out.grad - want).norm() / want.norm())
    assert err <= 1e-5, f"W_out gradient: relative error {err:.1e}"


def test_first_spike_hparams_are_the_eventprop_ones():
    hp = make_hparams(SnntorchHparams, {"loss": "first_spike"})
    ep = EventPropHparams()
    assert (hp.fs_tau, hp.fs_early) == (ep.fs_tau, ep.fs_early)
    with pytest.raises(InputError, match="fs_tau must be positive"):
        make_hparams(SnntorchHparams, {"loss": "first_spike", "fs_tau": 0.0})
    with pytest.raises(InputError, match="fs_early must be non-negative"):
        make_hparams(SnntorchHparams, {"loss": "first_spike", "fs_early": -1.0})


@pytest.mark.parametrize("method", ["bptt-norse", "bptt-spyx", "paralif", "eprop", "rstdp"])
def test_methods_without_first_spike_refuse_it(tmp_path, capsys, method):
    out = tmp_path / "runs"
    assert cli.main(["run", "--method", method, "--set", "loss=first_spike", "--out", str(out),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown loss 'first_spike'" in err
    assert len(err.splitlines()) == 1
    assert not out.exists() or not list(out.glob("*.json"))


def test_bptt_snntorch_trains_with_first_spike(tiny_data, tmp_path):
    out = tmp_path / "runs"
    assert cli.main(["run", "--method", "bptt-snntorch", "--dataset", str(tiny_data),
                     "--set", "loss=first_spike", "--epochs", "2", "--out", str(out), *TINY]) == 0
    (path,) = out.glob("*.json")
    record = records.read(path)
    assert record["status"] == "ok" and record["hparams"]["loss"] == "first_spike"
    assert all(math.isfinite(row["train_loss"]) for row in record["curve"])
    assert 0.0 <= record["metrics"]["test_acc"] <= 1.0
