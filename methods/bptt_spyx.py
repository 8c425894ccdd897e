"""Surrogate-gradient BPTT in JAX with spyx (flax.nnx) and optax, the network of :mod:`methods.lif`.

The network is a flax.nnx module tree in spyx's stateful-layer style (``initial_state(batch)``,
``__call__(x_t, state) -> (out, state)``) run over time by ``spyx.nn.run`` (a ``jax.lax.scan``):

* input projection ``x @ W_in`` for all steps at once (``nnx.Linear`` without bias, kernel (pre, post));
* :class:`SynapticLIF`: I = beta I + drive + z @ W_rec;  V = alpha V + (1 - alpha) I;
  z = H(V - 1) through ``spyx.axn.superspike(slope)`` (forward x > 0, backward
  1 / (1 + slope |x|)^2: snntorch's fast sigmoid);  V <- V (1 - stop_gradient(z)).
  spyx's own ``RCuBaLIF`` cannot be used: it spikes on the membrane of the previous step (one step
  later than the shared network), resets by subtraction and does not scale the current by
  (1 - alpha);
* with ``--set neuron=adlif|izhikevich``, :class:`SharedStepLayer` instead of SynapticLIF: the
  step function of :mod:`methods.neurons.adlif` or :mod:`methods.neurons.izhikevich` (the same
  function the snntorch adapter runs), with the superspike spike and ``stop_gradient``;
* readout ``z @ W_out`` and :class:`SynapticLI`, the leaky-integrator output with its current
  synapse (spyx's ``LI`` has no synapse; two chained ``LI`` would also do, but their decays are
  clipped trainable parameters).

The whole train step (forward scan, readout, cross-entropy, backward, optax Adam with torch's
defaults lr, betas (0.9, 0.999), eps 1e-8) is one ``jax.jit``. It is compiled ahead of time in
``setup`` for the run's batch shape (B = batch_size, T = n_steps), so the timed train steps never
compile; the compile time is reported by ``extra_metrics()['compile_seconds']``. A short last
batch is zero-padded to B and its padding masked out of the loss (the loss is the mean over the
real samples, as in the torch adapters), so every sample counts and nothing recompiles.

XLA threads and memory: unless already set (the runner sets them before any import), this module
sets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` and ``XLA_PYTHON_CLIENT_PREALLOCATE=false``
before importing jax, and, inside a run, limits the process's CPU affinity to the run's thread
count (XLA ignores its intra-op thread flag); :data:`XLA_ENV` records what was in force.
"""

from __future__ import annotations

import os
import sys

_XLA_DEFAULTS = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
}
_JAX_ALREADY_IMPORTED = "jax" in sys.modules
for _key, _value in _XLA_DEFAULTS.items():
    os.environ.setdefault(_key, _value)
#: the XLA environment at import; ``effective`` is False when jax was imported before this
#: module, in which case the flags were read earlier and may differ.
XLA_ENV = {key: os.environ[key] for key in _XLA_DEFAULTS}
XLA_ENV["effective"] = str(not _JAX_ALREADY_IMPORTED)

from methods.cpu import limit_cpu_affinity  # noqa: E402

# XLA's CPU client ignores intra-op thread settings; within a run (the runner sets the thread
# count) the affinity mask is what keeps JAX to the run's cores.
XLA_ENV["cpu_affinity"] = str(limit_cpu_affinity() if not _JAX_ALREADY_IMPORTED else None)

import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import spyx  # noqa: E402
from flax import nnx  # noqa: E402

from methods.api import (Batch, BpttHparams, DatasetSpec, InferenceStats, InputError,  # noqa: E402
                         Method, check_loss)
from methods import lif  # noqa: E402
from methods.neurons import adlif, check_neuron, izhikevich  # noqa: E402
from methods.readouts import time_weights  # noqa: E402

#: compiled train/predict steps of this process, shared by instances that run the same program
#: (a second instance with equal network, hyperparameters, shapes and device compiles nothing;
#: its ``compile_seconds`` is then the lookup, near 0). The runner uses one process per run.
_EXECUTABLES: dict[tuple, Any] = {}


_ACTIVATIONS: dict[float, Any] = {}


def surrogate_spike(slope: float):
    """``spyx.axn.superspike(k=slope)``, one object per slope, so that equal networks have equal
    graph definitions and share compiled steps (see :data:`_EXECUTABLES`)."""
    if slope not in _ACTIVATIONS:
        _ACTIVATIONS[slope] = spyx.axn.superspike(k=slope)
    return _ACTIVATIONS[slope]


class SynapticLIF(nnx.Module):
    """Current-based LIF layer with optional recurrence and reset to zero (see module docstring).
    State: (V, I, z), each (B, N)."""

    def __init__(self, w_rec: np.ndarray | None, hidden: int, alpha: float, beta: float,
                 threshold: float, activation):
        self.hidden = hidden
        self.w_rec = None if w_rec is None else nnx.Param(jnp.asarray(w_rec))
        self.alpha, self.beta, self.threshold = alpha, beta, threshold
        self.spike = activation

    def initial_state(self, batch_size: int):
        zeros = jnp.zeros((batch_size, self.hidden))  # default float: float32 unless x64
        return (zeros, zeros, zeros)

    def __call__(self, drive, state):
        v, i, z = state
        i = self.beta * i + drive
        if self.w_rec is not None:
            i = i + z @ self.w_rec[...]
        v = self.alpha * v + (1.0 - self.alpha) * i
        z = self.spike(v - self.threshold)
        v = v * (1.0 - jax.lax.stop_gradient(z))
        return z, (v, i, z)


class SharedStepLayer(nnx.Module):
    """Adaptive-LIF or Izhikevich hidden layer with optional recurrence (see module docstring).
    State: (z, neuron state), each (B, N)."""

    def __init__(self, w_rec: np.ndarray | None, hidden: int, decays: lif.Decays, neuron: str,
                 dt_ms: float, activation):
        self.hidden, self.decays, self.neuron, self.dt_ms = hidden, decays, neuron, dt_ms
        self.w_rec = None if w_rec is None else nnx.Param(jnp.asarray(w_rec))
        self.spike = activation

    def initial_state(self, batch_size: int):
        zeros = jnp.zeros((batch_size, self.hidden))  # default float: float32 unless x64
        if self.neuron == "adlif":
            return zeros, (zeros, zeros, zeros)
        return zeros, izhikevich.network_initial_state(zeros)

    def __call__(self, drive, state):
        z, inner = state
        current = drive if self.w_rec is None else drive + z @ self.w_rec[...]
        detach = jax.lax.stop_gradient
        if self.neuron == "adlif":
            z, inner = adlif.network_step(inner, current, self.decays,
                                          adlif.adapt_decay(self.dt_ms), self.spike, detach)
        else:
            z, inner = izhikevich.network_step(inner, current, self.decays.beta, self.spike,
                                               detach, dt=self.dt_ms)
        return z, (z, inner)


class SynapticLI(nnx.Module):
    """Leaky-integrator output with a current synapse: I = beta I + x, V = a V + (1 - a) I."""

    def __init__(self, n_out: int, alpha: float, beta: float):
        self.n_out, self.alpha, self.beta = n_out, alpha, beta

    def initial_state(self, batch_size: int):
        zeros = jnp.zeros((batch_size, self.n_out))  # default float: float32 unless x64
        return (zeros, zeros)

    def __call__(self, x, state):
        v, i = state
        i = self.beta * i + x
        v = self.alpha * v + (1.0 - self.alpha) * i
        return v, (v, i)


class Core(nnx.Module):
    """One time step of hidden layer, readout projection and output layer; emits (z, V_out)."""

    def __init__(self, weights: dict[str, np.ndarray], decays: lif.Decays, slope: float,
                 neuron: str = "lif", dt_ms: float = 1.0):
        hidden, n_out = weights["w_out"].shape
        check_neuron(neuron, ("lif", "adlif", "izhikevich"), "bptt-spyx")
        if neuron == "lif":
            self.hidden = SynapticLIF(weights.get("w_rec"), hidden, decays.alpha, decays.beta,
                                      lif.THETA, surrogate_spike(slope))
        else:
            self.hidden = SharedStepLayer(weights.get("w_rec"), hidden, decays, neuron, dt_ms,
                                          surrogate_spike(slope))
        self.readout = _linear(weights["w_out"])
        self.output = SynapticLI(n_out, decays.alpha_out, decays.beta)

    def initial_state(self, batch_size: int):
        return (self.hidden.initial_state(batch_size), self.output.initial_state(batch_size))

    def __call__(self, drive, state):
        z, hidden_state = self.hidden(drive, state[0])
        v_out, output_state = self.output(self.readout(z), state[1])
        return (z, v_out), (hidden_state, output_state)


class SpyxNetwork(nnx.Module):
    def __init__(self, weights: dict[str, np.ndarray], decays: lif.Decays, slope: float,
                 neuron: str = "lif", dt_ms: float = 1.0):
        self.input = _linear(weights["w_in"])
        self.core = Core(weights, decays, slope, neuron, dt_ms)

    def __call__(self, x):
        """x: (B, T, n_in) float -> hidden spikes (T, B, N), output traces (T, B, C)."""
        drive = self.input(jnp.swapaxes(x, 0, 1))  # (T, B, N), one matrix product
        (spikes, traces), _ = spyx.nn.run(self.core, drive)
        return spikes, traces


def _linear(weight: np.ndarray) -> nnx.Linear:
    n_pre, n_post = weight.shape
    kernel = jnp.asarray(weight)
    layer = nnx.Linear(n_pre, n_post, use_bias=False, param_dtype=kernel.dtype, rngs=nnx.Rngs(0))
    layer.kernel[...] = kernel
    return layer


# ---------------------------------------------------------------------------------------------
# Pure functions of (graphdef, params): readout, loss, train and predict steps.


def readout_scores(traces, kind: str, mu: float, sigma: float):
    """jax version of :class:`methods.readouts.TorchReadout.scores`; T is static.

    ``max`` takes the value at the first argmax, so that its gradient, like torch's, goes to one
    step (``jnp.max`` would share it among tied steps, e.g. a trace that stays at 0)."""
    weights = time_weights(kind, traces.shape[0], mu, sigma)
    if weights is None:
        first = jnp.argmax(traces, axis=0)
        return jnp.take_along_axis(traces, first[None], axis=0)[0]
    w = jnp.asarray(weights / traces.shape[0], dtype=traces.dtype)
    return jnp.einsum("t,tbc->bc", w, traces)


def masked_cross_entropy(scores, labels, mask):
    """Mean cross-entropy over the samples where mask is 1."""
    losses = optax.softmax_cross_entropy_with_integer_labels(scores, labels)
    return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def loss_fn(params, graphdef, x, labels, mask, kind: str, mu: float, sigma: float):
    model = nnx.merge(graphdef, params)
    _, traces = model(x)
    scores = readout_scores(traces, kind, mu, sigma)
    return masked_cross_entropy(scores, labels, mask), scores


def adam(lr: float) -> optax.GradientTransformation:
    """torch.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8 outside the square root. The
    rate lives in the optimiser state (``hyperparams["learning_rate"]``), an argument of the
    compiled step, so a schedule changes it without recompiling."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=0.9, b2=0.999, eps=1e-8,
                                                eps_root=0.0)


def readout_only(grads):
    """The gradients with every weight but the readout's (``core.readout``) set to zero: Adam's
    update of a weight whose gradient has always been zero is exactly zero."""
    def keep(path, grad):
        return grad if "readout" in jax.tree_util.keystr(path) else jnp.zeros_like(grad)
    return jax.tree_util.tree_map_with_path(keep, grads)


def make_steps(graphdef, tx, kind: str, mu: float, sigma: float, train_hidden: bool = True):
    def train(params, opt_state, x, labels, mask):
        (loss, scores), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, graphdef, x, labels, mask, kind, mu, sigma)
        if not train_hidden:
            grads = readout_only(grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        correct = jnp.sum((jnp.argmax(scores, axis=1) == labels) * mask)
        return params, opt_state, loss, correct

    def predict(params, x):
        spikes, traces = nnx.merge(graphdef, params)(x)
        scores = readout_scores(traces, kind, mu, sigma)
        per_sample = spikes.sum(axis=(0, 2))
        active = (spikes > 0).mean(axis=(0, 2))
        return scores, per_sample, active

    return train, predict


def jax_device(device: str):
    if device == "cuda":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            raise InputError("--device cuda requested but jax sees no GPU "
                             "(install a CUDA-enabled jaxlib)") from None
    if device == "cpu":
        return jax.devices("cpu")[0]
    raise InputError(f"unknown device {device!r} for bptt-spyx (cpu or cuda)")


class BpttSpyx(Method):
    name = "bptt-spyx"
    framework = "jax"
    Hparams = BpttHparams
    input_format = "dense"

    def setup(self, spec: DatasetSpec, hparams: BpttHparams, seed: int, device: str) -> None:
        np.random.seed(seed % 2**32)
        self.spec, self.hp = spec, hparams
        self.device = jax_device(device)
        weights = lif.init_weights(seed, spec.n_in, hparams.hidden, spec.n_classes,
                                   hparams.recurrent)
        with jax.default_device(self.device):
            model = SpyxNetwork(weights, lif.Decays.from_hparams(hparams), hparams.surrogate_slope,
                                hparams.neuron, hparams.dt_ms)
            self.graphdef, params = nnx.split(model)
            self.tx = adam(hparams.lr)
            self.params = jax.device_put(params, self.device)
            self.opt_state = jax.device_put(self.tx.init(self.params), self.device)
        train, predict = make_steps(self.graphdef, self.tx, hparams.loss, hparams.gauss_mu,
                                    hparams.gauss_sigma, hparams.train_hidden)
        self._train_jit, self._predict_jit = jax.jit(train), jax.jit(predict)
        # what makes two instances' steps the same program (the graph definition holds the
        # decays, slope and sizes; the weights' values are arguments)
        self._program_key = (self.graphdef, hparams.loss, hparams.gauss_mu,
                             hparams.gauss_sigma, hparams.train_hidden, str(self.device))
        self._train_compiled: dict[tuple, Any] = {}
        self._predict_compiled: dict[tuple, Any] = {}
        self.batch_size = hparams.batch_size
        self._stats: InferenceStats | None = None
        # Compile ahead of time for the run's batch shape, outside the timed train steps.
        shape = (self.batch_size, spec.n_steps, spec.n_in)
        start = time.perf_counter()
        self._compiled_train(shape)
        self.compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        self._compiled_predict(shape)
        self.compile_predict_seconds = time.perf_counter() - start
        self.late_compiles = 0  # shapes compiled inside timed steps (a batch of another T)

    # -- compilation -------------------------------------------------------------------------

    def _compiled_train(self, shape: tuple[int, int, int]):
        if shape not in self._train_compiled:
            key = ("train", shape) + self._program_key
            if key not in _EXECUTABLES:
                x = jax.ShapeDtypeStruct(shape, jnp.float32)
                y = jax.ShapeDtypeStruct(shape[:1], jnp.int32)
                mask = jax.ShapeDtypeStruct(shape[:1], jnp.float32)
                _EXECUTABLES[key] = self._train_jit.lower(
                    self.params, self.opt_state, x, y, mask).compile()
            self._train_compiled[shape] = _EXECUTABLES[key]
        return self._train_compiled[shape]

    def _compiled_predict(self, shape: tuple[int, int, int]):
        if shape not in self._predict_compiled:
            key = ("predict", shape) + self._program_key
            if key not in _EXECUTABLES:
                x = jax.ShapeDtypeStruct(shape, jnp.float32)
                _EXECUTABLES[key] = self._predict_jit.lower(self.params, x).compile()
            self._predict_compiled[shape] = _EXECUTABLES[key]
        return self._predict_compiled[shape]

    def _padded(self, batch: Batch, start: int = 0):
        """Rows start..start+B of the batch as device arrays padded to B, with the mask."""
        assert batch.x is not None, "dense-input method received a batch without x"
        x = batch.x[start:start + self.batch_size]
        y = batch.y[start:start + self.batch_size]
        n = x.shape[0]
        pad = self.batch_size - n
        mask = np.ones(self.batch_size, np.float32)
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
            y = np.concatenate([y, np.zeros(pad, y.dtype)])
            mask[n:] = 0.0
        put = lambda a, dtype: jax.device_put(np.asarray(a, dtype), self.device)  # noqa: E731
        return put(x, np.float32), put(y, np.int32), put(mask, np.float32), n

    # -- the contract ------------------------------------------------------------------------

    def train_step(self, batch: Batch) -> dict[str, float]:
        if batch.size > self.batch_size:
            raise InputError(f"batch of {batch.size} exceeds batch_size {self.batch_size}")
        x, y, mask, _ = self._padded(batch)
        shape = tuple(x.shape)
        if shape not in self._train_compiled:
            self.late_compiles += 1
        step = self._compiled_train(shape)
        params, opt_state, loss, correct = step(self.params, self.opt_state, x, y, mask)
        value = float(loss)
        check_loss(value)
        self.params, self.opt_state = params, opt_state
        return {"loss": value, "correct": int(correct)}

    def predict(self, batch: Batch) -> np.ndarray:
        scores, spikes, active = [], [], []
        for start in range(0, batch.size, self.batch_size):
            x, _, _, n = self._padded(batch, start)
            out = self._compiled_predict(tuple(x.shape))(self.params, x)
            s, z, a = (np.asarray(jax.device_get(o))[:n] for o in out)
            scores.append(s)
            spikes.append(z)
            active.append(a)
        self._stats = lif.inference_stats(np.concatenate(spikes), np.concatenate(active), batch,
                                          self.hp.hidden, self.hp.recurrent, self.spec.n_classes)
        return np.concatenate(scores).astype(np.float32)

    def inference_stats(self) -> InferenceStats | None:
        return self._stats

    def extra_metrics(self) -> dict[str, float]:
        return {"compile_seconds": float(self.compile_seconds),
                "compile_predict_seconds": float(self.compile_predict_seconds),
                "late_compiles": float(self.late_compiles)}

    def sync(self) -> None:
        jax.block_until_ready((self.params, self.opt_state))

    def set_lr(self, lr: float) -> None:
        hyper = dict(self.opt_state.hyperparams)
        hyper["learning_rate"] = jax.device_put(
            jnp.asarray(lr, dtype=hyper["learning_rate"].dtype), self.device)
        self.opt_state = self.opt_state._replace(hyperparams=hyper)

    def weights(self) -> dict[str, np.ndarray]:
        """Current weights as numpy, named as in :func:`methods.lif.init_weights`."""
        model = nnx.merge(self.graphdef, self.params)
        out = {"w_in": model.input.kernel[...], "w_out": model.core.readout.kernel[...]}
        if model.core.hidden.w_rec is not None:
            out["w_rec"] = model.core.hidden.w_rec[...]
        return {k: np.asarray(jax.device_get(v)) for k, v in out.items()}

    def state_dict(self) -> dict[str, Any]:
        host = jax.device_get
        return {
            "params": jax.tree.map(np.asarray, host(nnx.to_pure_dict(self.params))),
            "opt_state": [np.asarray(leaf) for leaf in host(jax.tree.leaves(self.opt_state))],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        params = self.params
        nnx.replace_by_pure_dict(params, jax.tree.map(jnp.asarray, state["params"]))
        self.params = jax.device_put(params, self.device)
        treedef = jax.tree.structure(self.opt_state)
        leaves = [jnp.asarray(leaf) for leaf in state["opt_state"]]
        self.opt_state = jax.device_put(jax.tree.unflatten(treedef, leaves), self.device)
