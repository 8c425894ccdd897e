"""The training methods without backpropagation through time: e-prop, R-STDP, ANN-to-SNN conversion.

Correctness: e-prop equals autograd where it is exact (no recurrence, symmetric feedback, same
pseudo-derivative and reset treatment); R-STDP's sign conventions; conversion error falling with K.
Contract: same seed same result, state_dict round trip, predict shape, on tiny random sets.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from methods import lif
from methods.api import DatasetSpec, make_hparams
from methods.ann_conversion import AnnConversion, AnnHparams
from methods.eprop import Eprop, EpropHparams
from methods.lif_torch import lif_step
from methods.rstdp import RStdp, RStdpHparams, StdpTraces
from tiny import TINY_SPEC, dense_to_events, tiny_batch, tiny_hparams

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# e-prop against autograd


class TriangleSpike(torch.autograd.Function):
    """H(margin) forward; e-prop's psi = gamma max(0, 1 - |margin|) backward (theta = 1)."""

    @staticmethod
    def forward(ctx, margin, gamma):
        ctx.save_for_backward(margin)
        ctx.gamma = gamma
        return (margin > 0).to(margin.dtype)

    @staticmethod
    def backward(ctx, grad):
        (margin,) = ctx.saved_tensors
        return grad * ctx.gamma * torch.clamp(1.0 - margin.abs(), min=0.0), None


def autograd_loss(w: dict, x: torch.Tensor, y: torch.Tensor, hp: EpropHparams, method: Eprop):
    """The e-prop network written plainly, differentiable; the reset is not differentiated."""
    dec = method.dec
    batch, steps, _ = x.shape
    hidden, n_out = w["w_out"].shape
    zeros = lambda n: x.new_zeros(batch, n)  # noqa: E731
    I, V, z, a = zeros(hidden), zeros(hidden), zeros(hidden), zeros(hidden)
    Io, Vo = zeros(n_out), zeros(n_out)
    rho = math.exp(-hp.dt_ms / hp.tau_adapt)
    loss, spikes = 0.0, 0.0
    spike = lambda margin: TriangleSpike.apply(margin, hp.gamma)  # noqa: E731
    for t in range(steps):
        shift = None
        if hp.alif:
            a = rho * a + z
            shift = hp.adapt_strength * a
        I, _, z, V = lif_step(V, I, x[:, t] @ w["w_in"], dec, z, w.get("w_rec"), shift=shift,
                              spike=spike, detach_reset=True)
        if hp.output_synapse:
            Io = dec.beta * Io + z @ w["w_out"]
            Vo = dec.alpha_out * Vo + (1 - dec.alpha_out) * Io
        else:
            Vo = dec.alpha_out * Vo + (1 - dec.alpha_out) * (z @ w["w_out"])
        loss = loss + method.time_w[t] / steps * torch.nn.functional.cross_entropy(Vo, y)
        spikes = spikes + float(z.detach().sum())
    return loss, spikes


def eprop_case(alif: bool, output_synapse: bool, chunk: int, recurrent: bool = False,
               feedback: str = "symmetric", steps: int = 48):
    spec = DatasetSpec("t", 9, 4, steps, 1.0, "t")
    hp = make_hparams(EpropHparams, dict(hidden=10, recurrent=recurrent, alif=alif, steps=steps,
                                         output_synapse=output_synapse, chunk=chunk,
                                         loss="sum_exp", feedback=feedback))
    method = Eprop()
    method.setup(spec, hp, 3, "cpu")
    with torch.no_grad():
        method.params["w_in"].mul_(6.0)  # enough drive that the hidden neurons fire
    rng = np.random.default_rng(0)
    x = torch.from_numpy((rng.random((5, steps, 9)) < 0.3).astype(np.uint8))
    y = torch.from_numpy(rng.integers(0, 4, 5))
    with torch.no_grad():
        out = method.run(x, y, dtype=torch.float64)
    return method, hp, x, y, out, method.gradients(out["learner"])


@pytest.mark.parametrize("alif,output_synapse", [(False, False), (False, True), (True, False),
                                                  (True, True)])
def test_eprop_equals_autograd_without_recurrence(alif, output_synapse):
    for chunk in (1, 7, 48):
        method, hp, x, y, out, grads = eprop_case(alif, output_synapse, chunk)
        w = {k: v.detach().double().requires_grad_() for k, v in method.params.items()}
        loss, spikes = autograd_loss(w, x.double(), y, hp, method)
        assert spikes > 20, "test is vacuous without hidden spikes"
        loss.backward()
        assert float(out["loss"]) == pytest.approx(float(loss.detach()), rel=1e-12)
        for key in ("w_in", "w_out"):
            scale = float(w[key].grad.abs().max())
            assert scale > 0
            err = float((grads[key] - w[key].grad).abs().max())
            assert err <= 1e-12 * max(scale, 1.0), f"{key} chunk {chunk}: {err:.2e} vs {scale:.2e}"


def test_eprop_block_form_equals_per_step_recursion():
    """With recurrence and random feedback (e-prop no longer exact), any chunk gives the same update."""
    _, _, _, _, _, reference = eprop_case(False, True, 1, recurrent=True, feedback="random")
    for chunk in (5, 48):
        _, _, _, _, _, grads = eprop_case(False, True, chunk, recurrent=True, feedback="random")
        for key in ("w_in", "w_rec", "w_out"):
            torch.testing.assert_close(grads[key], reference[key], rtol=1e-10, atol=1e-13)


def test_eprop_output_gradient_exact_with_recurrence():
    method, hp, x, y, _, grads = eprop_case(False, False, 16, recurrent=True)
    w = {k: v.detach().double().requires_grad_() for k, v in method.params.items()}
    loss, _ = autograd_loss(w, x.double(), y, hp, method)
    loss.backward()
    torch.testing.assert_close(grads["w_out"], w["w_out"].grad, rtol=1e-10, atol=1e-14)


def test_eprop_event_input_and_reused_buffers_give_the_same_updates():
    """Events densified a block at a time equal the dense input; a method whose buffers already
    served another batch (of another size) computes what a fresh one does."""
    spec = DatasetSpec("t", 24, 3, 40, 1.0, "t")
    hp = make_hparams(EpropHparams, dict(hidden=12, recurrent=True, steps=40, chunk=16))
    fresh, used = Eprop(), Eprop()
    for method in (fresh, used):
        method.setup(spec, hp, 5, "cpu")
    dense = tiny_batch(3, spec=spec, batch_size=6, rate=0.3)
    events = tiny_batch(3, spec=spec, batch_size=6, rate=0.3, fmt="events")
    labels = torch.from_numpy(dense.y)
    with torch.no_grad():
        reference = fresh.gradients(fresh.run(torch.from_numpy(dense.x), labels)["learner"])
        for other in (tiny_batch(4, spec=spec, batch_size=4), tiny_batch(5, spec=spec, batch_size=6)):
            other.events = dense_to_events(other.x)
            used.run(used._events(other), torch.from_numpy(other.y))
        grads = used.gradients(used.run(used._events(events), labels)["learner"])
    assert float(reference["w_in"].abs().max()) > 0
    for key in ("w_in", "w_rec", "w_out"):
        torch.testing.assert_close(grads[key], reference[key], rtol=1e-6, atol=1e-9)


def tensor_bytes(obj) -> int:
    return sum(v.numel() * v.element_size() for v in vars(obj).values() if isinstance(v, torch.Tensor))


def test_eprop_state_does_not_grow_with_T():
    sizes = []
    for steps in (64, 640):
        spec = DatasetSpec("t", 12, 3, steps, 1.0, "t")
        hp = make_hparams(EpropHparams, dict(hidden=8, steps=steps, chunk=32))
        method = Eprop()
        method.setup(spec, hp, 0, "cpu")
        x = torch.from_numpy((np.random.default_rng(1).random((4, steps, 12)) < 0.1).astype(np.uint8))
        with torch.no_grad():
            out = method.run(x, torch.tensor([0, 1, 2, 0]))
        sizes.append(tensor_bytes(out["learner"]))
    assert sizes[0] == sizes[1]


# ---------------------------------------------------------------------------------------------
# R-STDP


def rstdp_method(**extra) -> RStdp:
    method = RStdp()
    method.setup(TINY_SPEC, tiny_hparams(RStdp, **extra), 0, "cpu")
    return method


def pair_eligibility(pre_step: int, post_step: int, hp: RStdpHparams, steps: int = 60) -> torch.Tensor:
    traces = StdpTraces(1, 1, 1, steps, hp, torch.zeros(()))
    for t in range(steps):
        traces.step(torch.tensor([[float(t == pre_step)]]), torch.tensor([[float(t == post_step)]]))
        if t % 17 == 16:
            traces.flush()
    traces.flush()
    return traces.elig


@pytest.mark.parametrize("reward", [1.0, -1.0])
def test_rstdp_pairing_sign_follows_order_and_reward(reward):
    method = rstdp_method(normalise=False, update="all")
    hp = method.hp
    causal = pair_eligibility(10, 15, hp)
    acausal = pair_eligibility(15, 10, hp)
    assert float(causal) > 0 > float(acausal)
    d = math.exp(-hp.dt_ms / hp.tau_stdp)
    e = math.exp(-hp.dt_ms / hp.tau_elig)
    assert float(causal) == pytest.approx(hp.a_plus * d**5 * e ** (59 - 15), rel=1e-5)
    # LTD reads the post trace of the step before the pre spike: y[14] = d^4 after a post at 10
    assert float(acausal) == pytest.approx(-hp.a_minus * d**4 * e ** (59 - 15), rel=1e-5)
    for elig, sign in ((causal, 1.0), (acausal, -1.0)):
        full = torch.zeros(1, method.w_out.shape[0], method.w_out.shape[1])
        full[0, 3, 1] = float(elig)
        before = method.w_out.clone()
        method.apply(full, torch.tensor([reward]), torch.tensor([1]))
        change = method.w_out - before
        assert math.copysign(1.0, float(change[3, 1])) == sign * reward
        assert float(change.abs().sum()) == pytest.approx(abs(float(change[3, 1])))


def test_rstdp_winner_gating_and_normalisation():
    method = rstdp_method()
    method.pre_rate = torch.rand(method.w_out.shape[0]) + 0.1  # as if measured on a batch
    method.norm = method.pre_rate @ method.w_out
    norms = method.norm.clone()
    elig = torch.rand(2, *method.w_out.shape)
    before = method.w_out.clone()
    method.apply(elig, torch.tensor([1.0, -0.5]), torch.tensor([2, 2]))
    changed = (method.w_out - before).abs().sum(dim=0)
    assert float(changed[2]) > 0 and float(changed[:2].sum()) == 0.0
    torch.testing.assert_close(method.pre_rate @ method.w_out, norms)
    assert float(method.w_out.min()) >= 0.0


# ---------------------------------------------------------------------------------------------
# ANN-to-SNN conversion


@pytest.mark.parametrize("arch", ["rnn", "mlp"])
def test_conversion_rates_approach_ann_as_k_grows(arch):
    spec = DatasetSpec("t", 24, 3, 80, 1.0, "t")
    hp = make_hparams(AnnHparams, dict(arch=arch, hidden=32, steps=80, batch_size=8, bin_ms=10.0,
                                       lr=3e-3))
    method = AnnConversion()
    method.setup(spec, hp, 0, "cpu")
    for seed in range(4):
        method.train_step(tiny_batch(seed, spec=spec))
    method.finalize()
    c = method.counts(tiny_batch(50, spec=spec))
    with torch.no_grad():
        acts = method.ann(c)[1][0]
        target = (acts / method.scales[0]).clamp(max=1.0)
        errors = [float((method.snn.run(c, k)["rates"] - target).abs().mean()) for k in (2, 8, 32, 128)]
    assert float(target.mean()) > 0.02, "test is vacuous without activity"
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < errors[0] / 8, errors


def test_conversion_records_ann_accuracy_and_cost():
    method = AnnConversion()
    method.setup(TINY_SPEC, tiny_hparams(AnnConversion), 0, "cpu")
    for seed in range(3):
        method.train_step(tiny_batch(seed))
    assert "ann_test_acc" not in method.extra_metrics()
    method.finalize()
    batch = tiny_batch(9)
    method.predict(batch)
    extra = method.extra_metrics()
    assert 0.0 <= extra["ann_test_acc"] <= 1.0 and extra["conversion_seconds"] >= 0.0


# ---------------------------------------------------------------------------------------------
# Contract on tiny random sets: determinism, round trip, shapes.


ADAPTERS = [Eprop, RStdp, AnnConversion]


def trained(cls, seed: int, steps: int = 2):
    method = cls()
    method.setup(TINY_SPEC, tiny_hparams(cls), seed, "cpu")
    losses = [method.train_step(tiny_batch(100 + step, fmt=cls.input_format))["loss"]
              for step in range(steps)]
    assert all(np.isfinite(losses))
    return method


@pytest.mark.parametrize("cls", ADAPTERS)
def test_same_seed_same_result_and_shape(cls):
    batch = tiny_batch(7, fmt=cls.input_format)
    first, second = trained(cls, 5), trained(cls, 5)
    for method in (first, second):
        method.finalize()
    a, b = first.predict(batch), second.predict(batch)
    assert a.shape == (batch.size, TINY_SPEC.n_classes) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", ADAPTERS)
def test_state_dict_round_trip(cls):
    method = trained(cls, 1)
    state = pickle.loads(pickle.dumps(method.state_dict()))
    restored = cls()
    restored.setup(TINY_SPEC, tiny_hparams(cls), 42, "cpu")
    restored.load_state_dict(state)
    batch, step_batch = tiny_batch(8, fmt=cls.input_format), tiny_batch(9, fmt=cls.input_format)
    np.testing.assert_array_equal(restored.predict(batch), method.predict(batch))
    assert restored.train_step(step_batch)["loss"] == method.train_step(step_batch)["loss"]
    np.testing.assert_array_equal(restored.predict(batch), method.predict(batch))


# ---------------------------------------------------------------------------------------------
# Forwards against the reference (methods.lif.reference_forward)


def _reference_case(recurrent: bool = True, steps: int = 40):
    rng = np.random.default_rng(7)
    weights = lif.init_weights(4, 9, 12, 3, recurrent)
    weights["w_in"] = weights["w_in"] * 8.0
    if recurrent:
        weights["w_rec"] = weights["w_rec"] * 10.0
    w = {k: torch.from_numpy(v).double() for k, v in weights.items()}
    x = torch.from_numpy((rng.random((5, steps, 9)) < 0.3).astype(np.float64))
    dec = lif.Decays.from_taus(20.0, 5.0, 20.0, 1.0)
    spikes, traces = lif.reference_forward(w, x, dec)
    assert spikes.sum() > 100, "test is vacuous without hidden spikes"
    return w, x, dec, spikes, traces


@pytest.mark.parametrize("recurrent", [False, True])
def test_eprop_forward_equals_the_reference(recurrent):
    from methods.eprop import Network

    w, x, dec, spikes, traces = _reference_case(recurrent)
    hp = make_hparams(EpropHparams, dict(hidden=12, recurrent=recurrent, output_synapse=True))
    net = Network(x.shape[0], 12, x.shape[1], dec, hp, x.new_zeros(()))
    net.reset()
    drive = (x @ w["w_in"]).transpose(0, 1)
    for k in range(x.shape[1]):
        net.step(k, drive[k], w.get("w_rec"))
    assert torch.equal(net.zb.to(spikes.dtype), spikes)
    torch.testing.assert_close(net.zfb @ w["w_out"], traces, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("recurrent", [False, True])
def test_rstdp_hidden_forward_equals_the_reference(recurrent):
    w, x, dec, spikes, _ = _reference_case(recurrent)
    spec = DatasetSpec("r", 9, 3, x.shape[1], 1.0, "r")
    method = RStdp()
    method.setup(spec, make_hparams(RStdpHparams, dict(hidden=12, recurrent=recurrent, chunk=7,
                                                       steps=x.shape[1])), 0, "cpu")
    method.w_in = w["w_in"].float()
    method.w_rec = w["w_rec"].float() if recurrent else None
    out = method.run(x.float(), train=False)
    ref, _ = lif.reference_forward({k: v.float() for k, v in w.items()}, x.float(), dec)
    np.testing.assert_array_equal(out["hidden_count"].numpy(), ref.sum(dim=(0, 2)).numpy())
    assert float(out["hidden_count"].sum()) > 100
