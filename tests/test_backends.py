"""The BPTT backends (snntorch, norse, spyx) and ParaLIF against each other and the reference.

Equivalence: the same weights and input give the same hidden spikes, output traces and loss
gradients in every backend; ParaLIF without spikes equals the sequential LIF recursion. Each
adapter: deterministic for a seed, checkpoints round-trip, a few steps lower the loss.
Sizes are small so the whole file runs in well under a minute on one CPU core.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from methods.api import Batch, DatasetSpec, InputError
from methods import lif
from methods.bptt_norse import NorseNetwork, SlopedSuperSpike
from methods.bptt_snntorch import BpttHparams, SnntorchNetwork
from methods.paralif import ParaLIFHparams, ParaLIFNetwork, lif_kernel
from methods.readouts import TorchReadout

torch.set_num_threads(1)

DECAYS = lif.Decays.from_taus(20.0, 5.0, 20.0, 1.0)
B, T, N_IN, HIDDEN, N_OUT = 4, 80, 30, 24, 5
SLOPE = 100.0


def make_weights(recurrent: bool) -> dict[str, np.ndarray]:
    weights = lif.init_weights(3, N_IN, HIDDEN, N_OUT, recurrent)
    weights["w_in"] = weights["w_in"] * 4.0  # enough drive for a few spikes per neuron
    return weights


def make_input(seed: int = 1, steps: int = T, batch: int = B) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((batch, steps, N_IN)) < 0.1).astype(np.float32)
    return x, rng.integers(0, N_OUT, batch)


def torch_run(cls, weights, x, y, loss="sum_exp", **neuron):
    net = cls(weights, DECAYS, SLOPE, **neuron)
    spikes, traces = net(torch.from_numpy(x))
    value, _ = TorchReadout(loss, x.shape[1]).loss(traces, torch.from_numpy(y))
    value.backward()
    grads = {name: p.grad.numpy().copy() for name, p in net.named_parameters()}
    return spikes.detach().numpy(), traces.detach().numpy(), float(value), grads


def spyx_run(weights, x, y, loss="sum_exp", **neuron):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from methods import bptt_spyx

    graphdef, params = nnx.split(bptt_spyx.SpyxNetwork(weights, DECAYS, SLOPE, **neuron))
    spikes, traces = jax.jit(lambda p, v: nnx.merge(graphdef, p)(v))(params, jnp.asarray(x))
    grad_fn = jax.value_and_grad(bptt_spyx.loss_fn, has_aux=True)
    (value, _), grads = grad_fn(params, graphdef, jnp.asarray(x), jnp.asarray(y),
                                jnp.ones(x.shape[0]), loss, 0.5, 0.25)
    g = nnx.merge(graphdef, grads)
    named = {"w_in": g.input.kernel[...], "w_out": g.core.readout.kernel[...]}
    if g.core.hidden.w_rec is not None:
        named["w_rec"] = g.core.hidden.w_rec[...]
    return (np.asarray(spikes), np.asarray(traces), float(value),
            {k: np.asarray(v) for k, v in named.items()})


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("loss", ["sum_exp", "max"])
def test_backends_agree_on_spikes_traces_and_gradients(recurrent, loss):
    weights = make_weights(recurrent)
    x, y = make_input()
    ref_spikes, ref_traces = lif.reference_forward(
        {k: torch.from_numpy(v) for k, v in weights.items()}, torch.from_numpy(x), DECAYS)
    s_spikes, s_traces, s_loss, s_grads = torch_run(SnntorchNetwork, weights, x, y, loss)
    assert s_spikes.sum() > 0.05 * s_spikes.size  # a test with spikes, not a silent network
    np.testing.assert_array_equal(s_spikes, ref_spikes.numpy())
    np.testing.assert_allclose(s_traces, ref_traces.numpy(), atol=1e-6)
    for name, run in [("norse", lambda: torch_run(NorseNetwork, weights, x, y, loss)),
                      ("spyx", lambda: spyx_run(weights, x, y, loss))]:
        spikes, traces, value, grads = run()
        np.testing.assert_array_equal(spikes, s_spikes, err_msg=name)
        np.testing.assert_allclose(traces, s_traces, atol=1e-6, err_msg=name)
        assert value == pytest.approx(s_loss, rel=1e-6), name
        assert set(grads) == set(s_grads), name
        for key, reference in s_grads.items():
            assert np.abs(reference).max() > 0, (name, key)
            assert relative_error(grads[key], reference) < 1e-4, (name, key)


def reference_network(weights: dict, x: torch.Tensor, neuron: str):
    """(hidden spikes (T, B, N), output traces (T, B, C)) of the adaptive-LIF or Izhikevich
    network, transcribed directly from the equations of methods/neurons/adlif.py and
    izhikevich.py (dt = 1 ms), differentiable through norse's sloped SuperSpike (the fast
    sigmoid); the resets select with torch.where, so they carry no gradient."""
    from methods.neurons import adlif, izhikevich as izh

    w_in, w_rec, w_out = weights["w_in"], weights.get("w_rec"), weights["w_out"]
    batch, steps, _ = x.shape
    i = x.new_zeros(batch, w_in.shape[1])
    z, v, a = i, i, i
    i_o = v_o = x.new_zeros(batch, w_out.shape[1])
    p = izh.NETWORK_PARAMS
    v_rest, u_rest = p.resting_state()
    if neuron == "izhikevich":
        v, u = i + v_rest, i + u_rest
    rho = math.exp(-1.0 / adlif.TAU_ADAPT_MS)
    spikes, traces = [], []
    for t in range(steps):
        i = DECAYS.beta * i + x[:, t] @ w_in + (0 if w_rec is None else z @ w_rec)
        if neuron == "adlif":
            v = DECAYS.alpha * v + (1 - DECAYS.alpha) * i
            z = SlopedSuperSpike.apply(v - (1.0 + adlif.JUMP * a), SLOPE)
            v = torch.where(z > 0, 0.0, v)
            a = rho * a + z
        else:
            for _ in range(2):
                v = v + 0.5 * (0.04 * v ** 2 + 5 * v + 140 - u + izh.GAIN * i)
            u = u + p.a * (p.b * v.detach() - u)  # v not differentiated in u's update
            z = SlopedSuperSpike.apply((v - 30.0) / 100.0, SLOPE)
            v, u = torch.where(z > 0, p.c, v), torch.where(z > 0, u + p.d, u)
        i_o = DECAYS.beta * i_o + z @ w_out
        v_o = DECAYS.alpha_out * v_o + (1 - DECAYS.alpha_out) * i_o
        spikes.append(z)
        traces.append(v_o)
    return torch.stack(spikes), torch.stack(traces)


def reference_run(weights, x, y, neuron):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    spikes, traces = reference_network(params, torch.from_numpy(x), neuron)
    value, _ = TorchReadout("sum_exp", x.shape[1]).loss(traces, torch.from_numpy(y))
    value.backward()
    return (spikes.detach().numpy(), traces.detach().numpy(), float(value),
            {k: p.grad.numpy() for k, p in params.items()})


@pytest.mark.parametrize("neuron", ["adlif", "izhikevich"])
@pytest.mark.parametrize("recurrent", [True, False])
def test_backends_agree_for_each_hidden_neuron(neuron, recurrent):
    """Forward in float32: snntorch, spyx and the direct transcription give the same spikes and
    traces. Gradients in float64 (torch float64, jax under ``jax.enable_x64``): the Izhikevich
    hidden-weight gradients run through the quadratic v and are ill-conditioned; in float32 each
    backend is 2-3 % from its own float64 gradient (measured), so float32 cannot show agreement."""
    weights = make_weights(recurrent)
    x, y = make_input()
    s_spikes, s_traces, s_loss, _ = torch_run(SnntorchNetwork, weights, x, y, neuron=neuron)
    assert s_spikes.sum() > 0.02 * s_spikes.size, s_spikes.mean()
    ref_spikes, ref_traces, ref_loss, _ = reference_run(weights, x, y, neuron)
    np.testing.assert_array_equal(s_spikes, ref_spikes)
    np.testing.assert_allclose(s_traces, ref_traces, atol=1e-6)
    spikes, traces, value, _ = spyx_run(weights, x, y, neuron=neuron)
    np.testing.assert_array_equal(spikes, s_spikes)
    np.testing.assert_allclose(traces, s_traces, atol=1e-6)
    assert value == pytest.approx(s_loss, rel=1e-6)

    import jax

    weights = {k: v.astype(np.float64) for k, v in weights.items()}
    x = x.astype(np.float64)
    _, _, _, ref_grads = reference_run(weights, x, y, neuron)
    _, _, _, s_grads = torch_run(SnntorchNetwork, weights, x, y, neuron=neuron)
    with jax.enable_x64(True):
        _, _, _, grads = spyx_run(weights, x, y, neuron=neuron)
    assert set(grads) == set(s_grads) == set(ref_grads)
    for key, expected in ref_grads.items():
        assert np.abs(expected).max() > 0, key
        assert grads[key].dtype == np.float64, key
        assert relative_error(s_grads[key], expected) < 1e-4, ("snntorch", key)
        assert relative_error(grads[key], expected) < 1e-4, ("spyx", key)


def test_norse_and_paralif_reject_other_neurons():
    with pytest.raises(InputError):
        ParaLIFHparams(neuron="adlif").validate()
    with pytest.raises(InputError):
        make_method("bptt-norse", neuron="izhikevich")


def test_norse_sloped_superspike_is_the_fast_sigmoid():
    u = torch.tensor([-0.3, -0.01, 0.0, 0.02, 0.5], requires_grad=True)
    z = SlopedSuperSpike.apply(u, SLOPE)
    z.sum().backward()
    assert z.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    expected = 1.0 / (SLOPE * u.detach().abs() + 1.0) ** 2
    torch.testing.assert_close(u.grad, expected)


# --- ParaLIF ---------------------------------------------------------------------------------


def sequential_lif(current: torch.Tensor, decay_syn: float, decay_mem: float) -> torch.Tensor:
    """The LIF recursion without reset along dim 1 of (B, T, N)."""
    i = v = torch.zeros_like(current[:, 0])
    out = []
    for t in range(current.shape[1]):
        i = decay_syn * i + current[:, t]
        v = decay_mem * v + (1.0 - decay_mem) * i
        out.append(v)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("steps", [T, 700])
def test_paralif_without_spikes_is_the_sequential_lif(steps):
    weights = make_weights(recurrent=False)
    x, _ = make_input(steps=steps)
    x = torch.from_numpy(x)
    net = ParaLIFNetwork(weights, DECAYS, "none", SLOPE)
    with torch.no_grad():
        membrane = net.membrane(x).transpose(1, 2)  # (B, N, T) -> (B, T, N)
        expected = sequential_lif(x @ net.w_in, DECAYS.beta, DECAYS.alpha)
        assert (membrane - expected).abs().max() < 1e-5
        _, traces = net(x)
        expected_out = sequential_lif(expected @ net.w_out, DECAYS.beta, DECAYS.alpha_out)
        assert (traces.transpose(0, 1) - expected_out).abs().max() < 1e-5
    kernel = lif_kernel(steps, DECAYS.beta, DECAYS.alpha)
    n = np.arange(steps)
    closed = ((1 - DECAYS.alpha) * (DECAYS.alpha ** (n + 1) - DECAYS.beta ** (n + 1))
              / (DECAYS.alpha - DECAYS.beta))
    np.testing.assert_allclose(kernel, closed, rtol=1e-9, atol=1e-15)


def test_paralif_recurrent_two_pass_matches_its_sequential_form():
    weights = make_weights(recurrent=True)
    x, _ = make_input()
    x = torch.from_numpy(x)
    with torch.no_grad():
        for mode in ("none", "T"):
            net = ParaLIFNetwork(weights, DECAYS, mode, SLOPE)
            current = x @ net.w_in
            first = sequential_lif(current, DECAYS.beta, DECAYS.alpha)
            shifted = torch.cat([torch.zeros_like(first[:, :1]), first[:, :-1]], dim=1)
            feedback = shifted if mode == "none" else (shifted > lif.THETA).float()
            expected = first + sequential_lif(current + feedback @ net.w_rec, DECAYS.beta,
                                              DECAYS.alpha)
            assert (net.membrane(x).transpose(1, 2) - expected).abs().max() < 1e-5, mode


def test_paralif_spike_modes():
    weights = make_weights(recurrent=False)
    x, _ = make_input()
    x = torch.from_numpy(x)
    m = ParaLIFNetwork(weights, DECAYS, "none", SLOPE).membrane(x).detach().transpose(1, 2)
    increment = m - torch.cat([torch.zeros_like(m[:, :1]), m[:, :-1]], dim=1)
    for mode, expected in [("T", (m > lif.THETA).float()),
                           ("D", (increment > lif.THETA).float())]:
        net = ParaLIFNetwork(weights, DECAYS, mode, SLOPE)
        spikes, _ = net(x)
        torch.testing.assert_close(spikes.transpose(0, 1), expected)
    net = ParaLIFNetwork(weights, DECAYS, "SB", SLOPE)
    net.generator = torch.Generator().manual_seed(0)
    spikes, traces = net(x)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    traces.sum().backward()  # straight-through: gradients reach the input weights
    assert net.w_in.grad.abs().sum() > 0


# --- the adapters through the Method contract ------------------------------------------------

SPEC = DatasetSpec(name="tiny", n_in=N_IN, n_classes=3, n_steps=40, dt_ms=1.0, content_hash="t")
BATCH = 8


def tiny_set(n: int = 12, seed: int = 5) -> list[Batch]:
    """Class-dependent Poisson inputs, split into batches of BATCH (the last one short)."""
    rng = np.random.default_rng(seed)
    rates = rng.random((SPEC.n_classes, SPEC.n_in)) * 0.3
    y = rng.integers(0, SPEC.n_classes, n)
    x = (rng.random((n, SPEC.n_steps, SPEC.n_in)) < rates[y][:, None, :]).astype(np.uint8)
    return [Batch(y=y[i:i + BATCH], n_steps=SPEC.n_steps, n_in=SPEC.n_in, x=x[i:i + BATCH])
            for i in range(0, n, BATCH)]


def make_method(name: str, seed: int = 0, **extra):
    from bench.registry import load_method

    cls = load_method(name)
    fields = dict(hidden=16, batch_size=BATCH, steps=SPEC.n_steps, lr=1e-2, loss="sum")
    fields.update(extra)
    hp = cls.Hparams(**fields)
    hp.validate()
    method = cls()
    method.setup(SPEC, hp, seed, "cpu")
    return method


ADAPTERS = [("bptt-norse", {}), ("bptt-spyx", {}), ("bptt-spyx", {"neuron": "adlif"}),
            ("bptt-snntorch", {"neuron": "izhikevich"}), ("paralif", {}),
            ("paralif", {"spike_mode": "SB", "recurrent": False})]


@pytest.mark.parametrize("name,extra", ADAPTERS)
def test_adapter_learns_is_deterministic_and_checkpoints(name, extra):
    data = tiny_set()
    first = make_method(name, **extra)
    losses = [first.train_step(batch)["loss"] for _ in range(6) for batch in data]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2])  # the same batches, lower loss
    scores = first.predict(data[0])
    assert scores.shape == (data[0].size, SPEC.n_classes)
    stats = first.inference_stats()
    assert stats is not None and stats.hidden_spikes.shape == (data[0].size,)

    # same seed, same result
    second = make_method(name, **extra)
    again = [second.train_step(batch)["loss"] for _ in range(6) for batch in data]
    assert again == losses
    np.testing.assert_array_equal(second.predict(data[0]), scores)

    # checkpoint round trip: a fresh instance continues exactly as the original
    state = pickle.loads(pickle.dumps(first.state_dict()))
    restored = make_method(name, seed=1, **extra)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.predict(data[0]), scores)
    assert restored.train_step(data[1])["loss"] == first.train_step(data[1])["loss"]
    np.testing.assert_array_equal(restored.predict(data[1]), first.predict(data[1]))


def test_spyx_masks_padding_and_compiles_outside_the_steps():
    data = tiny_set(n=12)
    short = data[1]  # 4 samples, padded to 8 inside
    assert short.size < BATCH
    spyx = make_method("bptt-spyx")
    snn = make_method("bptt-snntorch")
    assert spyx.train_step(short)["loss"] == pytest.approx(snn.train_step(short)["loss"], rel=1e-5)
    np.testing.assert_allclose(spyx.predict(data[0]), snn.predict(data[0]), rtol=1e-4, atol=1e-6)
    big = Batch(y=np.concatenate([b.y for b in data]), n_steps=SPEC.n_steps, n_in=SPEC.n_in,
                x=np.concatenate([b.x for b in data]))
    assert spyx.predict(big).shape == (12, SPEC.n_classes)  # chunked by batch_size
    metrics = spyx.extra_metrics()
    assert metrics["compile_seconds"] > 0 and metrics["late_compiles"] == 0


def test_spyx_cuda_without_gpu_is_an_input_error():
    import jax

    from methods.bptt_spyx import jax_device

    try:
        jax.devices("gpu")
    except RuntimeError:
        with pytest.raises(InputError):
            jax_device("cuda")
    else:
        assert jax_device("cuda").platform == "gpu"


def test_hparams_shared_by_name():
    shared = set(BpttHparams.__dataclass_fields__)
    assert shared <= set(ParaLIFHparams.__dataclass_fields__)
    with pytest.raises(InputError):
        ParaLIFHparams(spike_mode="X").validate()


def test_spyx_optimiser_is_torch_adam():
    """bptt-spyx's optax optimiser takes the same steps as torch.optim.Adam (the other backends'
    optimiser) on the same gradients, including after a rate change through its state."""
    import jax.numpy as jnp
    import optax

    from methods.bptt_spyx import adam

    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(4)]
    weight = torch.tensor(start, requires_grad=True)
    optimizer = torch.optim.Adam([weight], lr=1e-2)
    tx = adam(1e-2)
    params = jnp.asarray(start)
    state = tx.init(params)
    for step, grad in enumerate(grads):
        if step == 2:  # the schedule's path: a new rate for the following steps
            optimizer.param_groups[0]["lr"] = 2.5e-3
            state.hyperparams["learning_rate"] = jnp.asarray(2.5e-3, dtype=jnp.float32)
        weight.grad = torch.tensor(grad)
        optimizer.step()
        updates, state = tx.update(jnp.asarray(grad), state, params)
        params = optax.apply_updates(params, updates)
        np.testing.assert_allclose(np.asarray(params), weight.detach().numpy(), rtol=1e-5,
                                   atol=1e-7)
