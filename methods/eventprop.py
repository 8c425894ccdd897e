"""EventProp (Wunderlich & Pehle 2021): exact event-based gradients for the shared network, with
the discretisation choices of mlGeNN (Nowotny et al. 2025). Full derivation: docs/eventprop.md.

The network is the one of :mod:`methods.lif` (LIF hidden layer with exponential current synapses,
optionally recurrent, reset to zero; leaky-integrator outputs; theta = 1), read out by the shared
readouts of :mod:`methods.readouts`. No autograd: a forward pass under ``torch.no_grad`` stores the
hidden spikes and, per spike, the synaptic current I at it; a backward pass in reverse time runs
the adjoint variables and fills the weights' ``.grad`` for Adam. The input arrives as events
(``Batch.events``) and is never densified: the input drive of ``chunk_steps`` steps at a time is
one sparse-matrix product, so memory does not grow with T through the input.

Notation: alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn), alpha_o = exp(-dt/tau_out). Adjoint
variables are sensitivities, lambda_X = dL/dX, L the batch-mean cross-entropy of the readout.

Two timing modes (``timing``):

``grid`` (default): the forward pass is methods/lif.py's, step for step, so spikes and outputs are
those of every BPTT backend (bptt-snntorch):

    I[t] = beta I[t-1] + x[t] W_in + z[t-1] W_rec
    u[t] = alpha V[t-1] + (1 - alpha) I[t];  z[t] = H(u[t] - 1);  V[t] = u[t] (1 - z[t])
    I_o[t] = beta I_o[t-1] + z[t] W_out;  V_o[t] = alpha_o V_o[t-1] + (1 - alpha_o) I_o[t]

Backward: the transposed recursion of the linear parts, with EventProp's jump at each stored spike
in place of the (zero) derivative of the threshold:

    lambda_V[t]  = alpha lambda_u[t+1]
    lambda_u[t]  = lambda_V[t]                                    (no spike of that neuron at t)
    lambda_u[t]  = [lambda_V[t] I - (Sum_m W_rec[n,m] dI_m + Sum_c W_out[n,c] dIo_c)/(1 - alpha)]
                   / max(I - 1, min_slope)  +  reg                (spike of n at t, I = I_n[t])
    lambda_I[t]  = beta lambda_I[t+1] + (1 - alpha) lambda_u[t]
    dI  = lambda_I[t+2] - lambda_I[t+1]      (moving the spike by a step moves its recurrent
    dIo = lambda_Io[t+1] - lambda_Io[t]       input from I[t+1] to I[t+2], its output from I_o[t])
    dL/dW_in[i]  += x_i[t] lambda_I[t];  dL/dW_rec[n] += lambda_I[t+1];  dL/dW_out[n] += lambda_Io[t]

The output layer is linear and the readouts are linear functionals (or a max) of it, so its adjoint
has a closed form: lambda_Io[t] = q(t) E for the weighted readouts (q: the readout weights filtered
backward through the output synapse and membrane, E = (softmax(s) - onehot)/B) and
E h(t* - t) for the max readout (h: the output's impulse response, t*: the step of the maximum).
dL/dW_out is exact in this mode; the hidden-weight gradients are EventProp's spike-time gradients
(a grid forward has none: its spikes do not move under small perturbations).

``exact``: the same network as a continuous-time system (tau_mem dV/dt = -V + I,
tau_syn dI/dt = -I, outputs alike with tau_out). Input spikes of step t arrive at t dt; between
events the linear dynamics are integrated exactly; a hidden spike is the first time V reaches 1,
found by safeguarded Newton on the two-exponential membrane; at it V resets to 0 and W_rec[n],
W_out[n] are added to the synaptic currents at once. V_o is sampled at (t + 1) dt for step t of
the readout. The adjoint is the continuous one, integrated exactly between events:

    lambda_V(t) = e^{-s/tau_m} lambda_V(t+s)
    lambda_I(t) = e^{-s/tau_s} lambda_I(t+s) + k (e^{-s/tau_m} - e^{-s/tau_s}) lambda_V(t+s),
                  k = tau_s / (tau_m - tau_s)
    lambda_Vo += dL/dV_o at each sample time; at a spike of n (I = I_n just before it):
    lambda_V,n <- [lambda_V,n I + Sum_m W_rec[n,m](lambda_V,m - (tau_m/tau_s) lambda_I,m)
                   + Sum_c W_out[n,c]((tau_m/tau_out) lambda_Vo,c - (tau_m/tau_s) lambda_Io,c)]
                  / max(I - 1, min_slope) + reg
    dL/dw = Sum over the presynaptic spikes of lambda_I of the postsynaptic neuron at them.

In this mode the gradient is the exact gradient of the forward pass: finite differences agree to
rounding (tests/test_eventprop.py). It is slower (a Python loop over the spikes of each step).

Regulariser (both modes): a spike-count pseudo-loss on the batch-mean count nbar_n of each hidden
neuron, target nu = reg_nu * T dt / 1000 ms; it enters as reg = reg_strength * S * (nbar_n - nu)
added to lambda_u at every spike of n, where S is this batch's classification signal per hidden
spike: the mean over its spikes of |Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])[b,c]| /
((1 - alpha) max(I - 1, min_slope)), the loss's own direct jump term. Measured in S, the
regulariser keeps one weight against the loss whatever the readout, T or data: the spike-timing
signal of the plain ``sum`` readout is ~1e-4 of ``sum_exp``'s on the default set, and a fixed
strength that suits one swamps the other (Adam then follows the regulariser alone and silences
the layer). Silent neurons (no spike in a whole epoch) get ``silent_boost`` added to their input
weights in ``end_epoch``.

Guards: the jump divides by (I - theta), the membrane's slope at the crossing; it is floored at
``min_slope``, and lambda_u after a jump is clipped to +-lambda_clip * drive_scale / B.

Memory: per spike one int32 index and one float (I), and in the backward one more float (the
loss's jump term); buffers of ``chunk_steps`` steps; nothing of size T x B x N. Work per step:
a handful of (B, N) operations and, with recurrence, one (B, N) x (N, N) product in each
direction; the input drive and the gradient sums are sparse products.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from methods.api import (Batch, DatasetSpec, DivergedError, InferenceStats, InputError, Method,
                       NetworkHparams, validate_network)
from methods import lif
from methods.readouts import time_weights
from methods.torch_common import check_loss, seed_torch, sorted_events, sync_device, torch_device

THETA = lif.THETA


@dataclass
class EventPropHparams(NetworkHparams):
    """Defaults: the shared network's (mlGeNN's SHD values) plus EventProp's own knobs."""

    lr: float = field(default=1e-3, metadata={"search": {"low": 1e-4, "high": 5e-3, "log": True}})
    timing: Literal["grid", "exact"] = "grid"
    # target spikes per hidden neuron per 1000 ms of input
    reg_nu: float = field(default=14.0, metadata={"search": {"low": 5.0, "high": 30.0, "on": False}})
    # spike-count pseudo-loss, in units of the loss signal (docstring)
    reg_strength: float = field(default=0.01, metadata={"search": {"factor": 10.0, "log": True}})
    silent_boost: float = 0.002  # added to the input weights of neurons silent for an epoch
    min_slope: float = 0.02  # lower bound on (I - theta), the jump's denominator
    lambda_clip: float = 100.0  # |lambda_u| bound after a jump, in units of the drive scale; 0 = off
    chunk_steps: int = 128  # steps per block of input drive / buffers (memory ~ chunk, not T)
    dtype: Literal["float32", "float64"] = "float32"

    def validate(self) -> None:
        validate_network(self)
        if self.timing not in ("grid", "exact"):
            raise InputError(f"timing must be grid or exact, got {self.timing!r}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {self.dtype!r}")
        # The exact propagators divide by tau_mem - tau_syn and tau_out - tau_syn.
        for name in ("tau_mem", "tau_out"):
            tau = getattr(self, name)
            if abs(tau - self.tau_syn) <= 1e-6 * max(tau, self.tau_syn):
                raise InputError(f"{name} must differ from tau_syn (both {tau}): the exact "
                                 "propagator and the spike jump divide by their difference")
        if not self.min_slope > 0:
            raise InputError(f"min_slope must be positive, got {self.min_slope}")
        for key in ("reg_nu", "reg_strength", "silent_boost", "lambda_clip"):
            if getattr(self, key) < 0:
                raise InputError(f"{key} must be non-negative, got {getattr(self, key)}")
        if self.chunk_steps < 1:
            raise InputError(f"chunk_steps must be at least 1, got {self.chunk_steps}")


# ---------------------------------------------------------------------------------------------
# Input events -> per-block sparse matrices.


class _EventBlocks:
    """The batch's input events, handed out ``chunk`` steps at a time as a CSR matrix X of shape
    (k * B, n_in) whose row k' * B + b holds sample b's input at step c0 + k'."""

    def __init__(self, batch: Batch, chunk: int, device: torch.device, dtype: torch.dtype):
        self.step, self.sample, self.unit, self.count = sorted_events(batch, "eventprop")
        self.B, self.T, self.n_in = batch.size, batch.n_steps, batch.n_in
        self.device, self.dtype = device, dtype
        bounds = np.arange(0, self.T + chunk, chunk).clip(max=self.T)
        self.edges = np.searchsorted(self.step, bounds, side="left")
        self.chunk = chunk

    def per_sample(self) -> np.ndarray:
        return np.bincount(self.sample, weights=self.count, minlength=self.B).astype(np.float64)

    def _slice(self, c0: int, k_len: int):
        i = c0 // self.chunk
        e0, e1 = int(self.edges[i]), int(self.edges[i + 1])
        if e1 == e0:
            return None
        rows = (self.step[e0:e1] - c0) * self.B + self.sample[e0:e1]
        return rows, self.unit[e0:e1], self.count[e0:e1]

    def _tensor(self, crow, cols, vals, size):
        dev = self.device
        return _csr(torch.from_numpy(crow).to(dev),
                    torch.from_numpy(np.ascontiguousarray(cols)).to(dev),
                    torch.from_numpy(np.ascontiguousarray(vals)).to(dev, self.dtype), size)

    def block(self, c0: int, k_len: int):
        """CSR X (k_len * B, n_in) of steps c0 .. c0 + k_len - 1, or None without events."""
        part = self._slice(c0, k_len)
        if part is None:
            return None
        rows, cols, vals = part
        if np.any(rows[1:] < rows[:-1]):
            order = np.argsort(rows, kind="stable")
            rows, cols, vals = rows[order], cols[order], vals[order]
        n_rows = k_len * self.B
        crow = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=crow[1:])
        return self._tensor(crow, cols, vals, (n_rows, self.n_in))

    def block_t(self, c0: int, k_len: int):
        """The transpose X^T (n_in, k_len * B) as CSR, for the input-weight gradient."""
        part = self._slice(c0, k_len)
        if part is None:
            return None
        rows, cols, vals = part
        key = cols.astype(np.int16) if self.n_in < 2**15 else cols  # int16: radix sort
        order = np.argsort(key, kind="stable")
        crow = np.zeros(self.n_in + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=self.n_in), out=crow[1:])
        return self._tensor(crow, rows[order], vals[order], (self.n_in, k_len * self.B))


def _csr(crow, cols, vals, size):
    with warnings.catch_warnings():  # "CSR support is in beta": the products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, size, check_invariants=False)


def _stable_order(keys: torch.Tensor, n_keys: int) -> torch.Tensor:
    """Stable argsort of small non-negative integer keys (a radix sort on the CPU)."""
    if keys.device.type == "cpu" and n_keys < 2**15:
        order = np.argsort(keys.numpy().astype(np.int16), kind="stable")
        return torch.from_numpy(order)
    return torch.sort(keys, stable=True).indices


def _spike_matrix_t(rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int,
                    dtype: torch.dtype):
    """The transpose (n_cols, n_rows) of the 0/1 matrix with ones at (rows, cols), as CSR."""
    order = _stable_order(cols, n_cols)
    crow = torch.zeros(n_cols + 1, dtype=torch.int64, device=rows.device)
    torch.cumsum(torch.bincount(cols, minlength=n_cols), 0, out=crow[1:])
    vals = torch.ones(rows.numel(), dtype=dtype, device=rows.device)
    return _csr(crow, rows[order], vals, (n_cols, n_rows))


# ---------------------------------------------------------------------------------------------
# Readout tables (depend on T only).


@dataclass
class _Tables:
    kind: str
    w: torch.Tensor | None  # (T,) readout weight / T, None for max
    w_list: list[float] | None
    q: torch.Tensor | None  # (T,) dL-free output adjoint profile: d s / d I_o[t] (weighted)
    dq: torch.Tensor | None  # (T,) q[t+1] - q[t], q[T] = 0
    h: torch.Tensor  # (T + 1,) output impulse response dV_o[t+k]/dI_o[t], h[T] unused
    Hv: torch.Tensor  # (K, K) Toeplitz of h, lower triangular
    Hi: torch.Tensor  # (K, K) Toeplitz of beta^k
    gI: torch.Tensor  # (K,) beta h[k]: response of V_o[c0+k] to I_o[c0-1]
    aV: torch.Tensor  # (K,) alpha_o^(k+1)
    bI: torch.Tensor  # (K,) beta^(k+1)


def _build_tables(hp: EventPropHparams, T: int, K: int, decays: lif.Decays,
                  device: torch.device, dtype: torch.dtype) -> _Tables:
    ao, beta = decays.alpha_out, decays.beta
    n = max(T, K) + 1
    h = np.zeros(n)
    i_o, v_o = 1.0, 1.0 - ao
    for k in range(n):
        h[k] = v_o
        i_o *= beta
        v_o = ao * v_o + (1.0 - ao) * i_o
    weights = time_weights(hp.loss, T, hp.gauss_mu, hp.gauss_sigma)
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device, dtype=dtype)  # noqa
    w = q = dq = None
    w_list = None
    if weights is not None:
        wT = weights / T
        qa = np.zeros(T + 1)
        lv = li = 0.0
        for t in range(T - 1, -1, -1):
            lv = wT[t] + ao * lv
            li = (1.0 - ao) * lv + beta * li
            qa[t] = li
        w, w_list, q, dq = as_t(wT), wT.tolist(), as_t(qa[:T]), as_t(qa[1:] - qa[:-1])
    idx = np.arange(K)
    lag = idx[:, None] - idx[None, :]
    Hv = np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0)
    Hi = np.where(lag >= 0, beta ** np.clip(lag, 0, None), 0.0)
    return _Tables(kind=hp.loss, w=w, w_list=w_list, q=q, dq=dq, h=as_t(h[: T + 1]),
                   Hv=as_t(Hv), Hi=as_t(Hi), gI=as_t(beta * h[:K]),
                   aV=as_t(ao ** (idx + 1.0)), bI=as_t(beta ** (idx + 1.0)))


# ---------------------------------------------------------------------------------------------
# What a forward pass leaves for the backward pass.


@dataclass
class _Forward:
    scores: torch.Tensor  # (B, C)
    counts: torch.Tensor  # (B, N) spikes per sample and neuron
    active: torch.Tensor | None = None  # (B,) neuron-steps with a spike (exact mode)
    # grid store: spikes sorted by (step, sample, neuron)
    step_counts: torch.Tensor | None = None  # (T,) spikes per step
    flat: torch.Tensor | None = None  # (S,) int32, b * N + n
    current: torch.Tensor | None = None  # (S,) I at the spike
    rate_A: torch.Tensor | None = None  # (B, N) Sum_spikes q(t) (weighted readouts)
    argmax: torch.Tensor | None = None  # (B, C) step of the maximum (max readout)
    traces: torch.Tensor | None = None  # (T, B, C) only when asked for (tests)
    rounds: list | None = None  # exact mode: per step, [(samples, neurons, times, I)]


@dataclass
class _ExactConsts:
    dt: float
    tau_m: float
    tau_s: float
    tau_o: float
    k_h: float  # tau_s / (tau_m - tau_s)
    k_o: float  # tau_s / (tau_o - tau_s)
    tol: float


class EventProp(Method):
    name = "eventprop"
    framework = "torch"
    Hparams = EventPropHparams
    input_format = "events"
    # The backward's recurrent shift term by row gathers when a step has at most this fraction of
    # (sample, neuron) pairs spiking, else by one dense product (crossover measured on a CPU core:
    # ~150 spikes at 32 x 256).
    gather_below = 1 / 64

    # -- contract ---------------------------------------------------------------------------
    def setup(self, spec: DatasetSpec, hparams: EventPropHparams, seed: int, device: str) -> None:
        seed_torch(seed)
        self.spec, self.hp = spec, hparams
        self.device = torch_device(device)
        self.dtype = torch.float64 if hparams.dtype == "float64" else torch.float32
        weights = lif.init_weights(seed, spec.n_in, hparams.hidden, spec.n_classes, hparams.recurrent)
        self.params: dict[str, torch.nn.Parameter] = {
            key: torch.nn.Parameter(torch.from_numpy(w).to(self.device, self.dtype))
            for key, w in weights.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=hparams.lr)
        self.decays = lif.Decays.from_hparams(hparams)
        self.consts = _ExactConsts(
            dt=hparams.dt_ms, tau_m=hparams.tau_mem, tau_s=hparams.tau_syn, tau_o=hparams.tau_out,
            k_h=hparams.tau_syn / (hparams.tau_mem - hparams.tau_syn),
            k_o=hparams.tau_syn / (hparams.tau_out - hparams.tau_syn),
            tol=(1e-14 if self.dtype == torch.float64 else 1e-6) * hparams.dt_ms)
        self.epoch_counts = torch.zeros(hparams.hidden, device=self.device, dtype=torch.float64)
        self._tables: dict[int, _Tables] = {}
        self._stats: InferenceStats | None = None
        self._silent_last = 0
        self._boosted_total = 0

    def train_step(self, batch: Batch) -> dict[str, float]:
        loss, grads, correct, fw = self._loss_and_grads(batch)
        for key, param in self.params.items():
            if self.hp.trains(key):  # else Adam leaves it as it is
                param.grad = grads[key]
        self.optimizer.step()
        self.epoch_counts += fw.counts.sum(0, dtype=torch.float64)
        spikes = float(fw.counts.sum()) / (batch.size * self.hp.hidden)
        return {"loss": loss, "correct": correct, "spikes_per_neuron": spikes}

    @torch.no_grad()
    def predict(self, batch: Batch) -> np.ndarray:
        blocks = self._blocks(batch)
        fw = self._forward(blocks, store=False)
        counts = fw.counts.sum(1, dtype=torch.float64).cpu().numpy()
        T, N = batch.n_steps, self.hp.hidden
        active = (fw.active.double().cpu().numpy() if fw.active is not None else counts) / (T * N)
        synops, dense = lif.synops_per_sample(blocks.per_sample(), counts, batch.n_in, N,
                                              self.spec.n_classes, self.hp.recurrent, T)
        self._stats = InferenceStats(hidden_spikes=counts, n_neurons=N, synops=synops,
                                     dense_synops=dense, active_fraction=active)
        return fw.scores.float().cpu().numpy()

    def inference_stats(self) -> InferenceStats | None:
        return self._stats

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> None:
        """Silent-neuron remedy: EventProp cannot make a silent neuron spike (no spike, no
        gradient), so neurons without a spike in the whole epoch get their input weights raised."""
        silent = self.epoch_counts == 0
        self._silent_last = int(silent.sum())
        if self._silent_last and self.hp.silent_boost > 0 and self.hp.trains("w_in"):
            self.params["w_in"][:, silent] += self.hp.silent_boost
            self._boosted_total += self._silent_last
        self.epoch_counts.zero_()

    def extra_metrics(self) -> dict[str, float]:
        return {"silent_neurons_last_epoch": float(self._silent_last),
                "silent_boosts_total": float(self._boosted_total)}

    def sync(self) -> None:
        sync_device(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": {k: p.detach().cpu().clone() for k, p in self.params.items()},
                "optimizer": self.optimizer.state_dict(),
                "epoch_counts": self.epoch_counts.cpu().clone(),
                "silent": (self._silent_last, self._boosted_total)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, param in self.params.items():
            param.copy_(state["weights"][key].to(self.device, self.dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch_counts.copy_(state["epoch_counts"].to(self.device))
        self._silent_last, self._boosted_total = state["silent"]

    # -- one training step without the update (tests call this) ------------------------------
    @torch.no_grad()
    def _loss_and_grads(self, batch: Batch):
        blocks = self._blocks(batch)
        fw = self._forward(blocks, store=True)
        labels = torch.from_numpy(np.asarray(batch.y, dtype=np.int64)).to(self.device)
        logp = torch.log_softmax(fw.scores.double(), dim=1)
        loss_t = -logp.gather(1, labels[:, None]).mean()
        error = logp.exp()
        error[torch.arange(batch.size, device=self.device), labels] -= 1.0
        error = (error / batch.size).to(self.dtype)
        correct_t = (fw.scores.argmax(dim=1) == labels).sum()
        loss, correct = float(loss_t), int(correct_t)
        check_loss(loss)
        if self.hp.timing == "grid":
            grads = self._grid_backward(blocks, fw, error)
        else:
            grads = self._exact_backward(blocks, fw, error)
        total = sum(float(g.abs().sum()) for g in grads.values())
        if not math.isfinite(total):
            raise DivergedError("non-finite gradient")
        return loss, grads, correct, fw

    # -- helpers ------------------------------------------------------------------------------
    def _detached_weights(self):
        """(w_in, w_rec or None, w_out) without autograd history, for the forward passes."""
        w_rec = self.params["w_rec"].detach() if self.hp.recurrent else None
        return self.params["w_in"].detach(), w_rec, self.params["w_out"].detach()

    def _blocks(self, batch: Batch) -> _EventBlocks:
        return _EventBlocks(batch, self.hp.chunk_steps, self.device, self.dtype)

    def _table(self, T: int) -> _Tables:
        if T not in self._tables:
            self._tables[T] = _build_tables(self.hp, T, self.hp.chunk_steps, self.decays,
                                            self.device, self.dtype)
        return self._tables[T]

    def _forward(self, blocks: _EventBlocks, store: bool, traces: bool = False) -> _Forward:
        if self.hp.timing == "grid":
            return self._grid_forward(blocks, store, traces)
        return self._exact_forward(blocks, store, traces)

    @staticmethod
    def _drive_scale(tab: _Tables) -> float:
        """The largest output drive of one sample: |softmax - onehot| <= 1 times max_t w(t)/T for
        the weighted readouts, 1 for max. The clip is in these units."""
        return float(tab.w.max()) if tab.w is not None else 1.0

    def _reg_coefficient(self, counts: torch.Tensor, T: int,
                         signal: float) -> torch.Tensor | None:
        """The regulariser's jump term per hidden neuron: reg_strength * signal * (nbar_n - nu),
        ``signal`` the batch's classification signal S per hidden spike (:meth:`_signal_sum`)."""
        hp = self.hp
        if hp.reg_strength == 0:
            return None
        nu = hp.reg_nu * T * hp.dt_ms / 1000.0
        nbar = counts.sum(0) / counts.shape[0]
        return (hp.reg_strength * signal) * (nbar - nu)

    def _direct_terms(self, flat: torch.Tensor, steps: torch.Tensor, error: torch.Tensor,
                      tab: _Tables, p_flat: torch.Tensor | None, tstar: torch.Tensor | None,
                      g_out: torch.Tensor | None = None) -> torch.Tensor:
        """The cross-entropy's direct term in the jump of each given hidden spike (flat =
        b * N + n, at ``steps``): Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])[b,c].
        Weighted readouts use p_flat = (E W_out^T) flattened; max uses tstar and adds its
        lambda_Io to g_out (when given)."""
        if tab.w is not None:
            return tab.dq[steps] * p_flat.take(flat)
        return self._max_readout_terms(flat, steps, tstar, error, tab, g_out)

    def _signal_sum(self, direct: torch.Tensor, current: torch.Tensor) -> float:
        """Sum over spikes of |direct| / ((1 - alpha) max(I - 1, min_slope)), the size of the
        loss's own jump at each. Its mean over a batch's spikes is the classification signal S
        the regulariser is measured in, so that it keeps one weight against the loss whatever
        the readout, T or data (with Adam, whichever term dominates would otherwise set every
        hidden update on its own)."""
        if direct.numel() == 0:
            return 0.0
        denom = (current - THETA).clamp(min=self.hp.min_slope) * (1.0 - self.decays.alpha)
        return float((direct / denom).abs().sum())

    def _clip_bound(self, tab: _Tables, B: int) -> float:
        """Bound on |lambda_u| after a jump: lambda_clip drive scales, over B (batch mean)."""
        return self.hp.lambda_clip * self._drive_scale(tab) / B

    def _output_block(self, tab: _Tables, u: torch.Tensor, io: torch.Tensor, vo: torch.Tensor):
        """Output traces of one block from its spike input u = z W_out, (k, B*C), and the
        carried (I_o, V_o), both (B*C,); updates the carries in place; returns V_o (k, B*C)."""
        k = u.shape[0]
        vo_blk = tab.Hv[:k, :k] @ u + tab.gI[:k, None] * io + tab.aV[:k, None] * vo
        io_new = tab.Hi[k - 1, :k] @ u + tab.bI[k - 1] * io
        io.copy_(io_new)
        vo.copy_(vo_blk[k - 1])
        return vo_blk

    # =========================================================================================
    # grid mode
    def _grid_forward(self, blocks: _EventBlocks, store: bool, traces: bool) -> _Forward:
        hp, dc = self.hp, self.decays
        B, T, K = blocks.B, blocks.T, hp.chunk_steps
        N, C = hp.hidden, self.spec.n_classes
        dev, dt = self.device, self.dtype
        w_in, w_rec, w_out = self._detached_weights()
        tab = self._table(T)
        alpha, beta = dc.alpha, dc.beta

        v = torch.zeros(B, N, device=dev, dtype=dt)
        i_carry = torch.zeros(B, N, device=dev, dtype=dt)
        z_carry = torch.zeros(B, N, device=dev, dtype=dt)
        drive = torch.empty(K * B, N, device=dev, dtype=dt)
        zbuf = torch.empty(K, B, N, device=dev, dtype=dt)
        counts = torch.zeros(B, N, device=dev, dtype=dt)
        weighted = tab.w is not None
        rate_a = torch.zeros(B * N, device=dev, dtype=dt) if weighted else None
        need_traces = traces or not weighted
        if need_traces:
            io = torch.zeros(B * C, device=dev, dtype=dt)
            vo = torch.zeros(B * C, device=dev, dtype=dt)
            vmax = torch.full((B, C), -math.inf, device=dev, dtype=dt)
            amax = torch.zeros(B, C, device=dev, dtype=torch.int64)
        trace_blocks, flats, currents, step_counts = [], [], [], []

        for c0 in range(0, T, K):
            k_len = min(K, T - c0)
            d = drive[: k_len * B]
            x_blk = blocks.block(c0, k_len)
            if x_blk is None:
                d.zero_()
            else:
                torch.addmm(d, x_blk, w_in, beta=0, out=d)
            d3 = d.view(k_len, B, N)
            z3 = zbuf[:k_len]
            i_prev, z_prev = i_carry, z_carry
            for i_k, z_k in zip(d3.unbind(0), z3.unbind(0)):
                i_k.add_(i_prev, alpha=beta)
                if w_rec is not None:
                    i_k.addmm_(z_prev, w_rec)
                v.lerp_(i_k, 1.0 - alpha)
                torch.gt(v, THETA, out=z_k)
                v.addcmul_(v, z_k, value=-1.0)
                i_prev, z_prev = i_k, z_k
            i_carry.copy_(i_prev)
            z_carry.copy_(z_prev)
            z2 = z3.view(k_len, B * N)
            counts += z3.sum(0)
            if weighted:
                rate_a.addmv_(z2.t(), tab.q[c0:c0 + k_len])
            if need_traces:
                u = (z3.view(k_len * B, N) @ w_out).view(k_len, B * C)
                vo_blk = self._output_block(tab, u, io, vo).view(k_len, B, C)
                blk_max, blk_arg = vo_blk.max(dim=0)
                better = blk_max > vmax
                vmax = torch.where(better, blk_max, vmax)
                amax = torch.where(better, blk_arg + c0, amax)
                if traces:
                    trace_blocks.append(vo_blk.clone())
            if store:
                pos = z2.view(-1).bool().nonzero().squeeze(1)  # bool: twice as fast
                flats.append((pos % (B * N)).to(torch.int32))
                currents.append(d.view(-1).take(pos))
                step_counts.append(z2.sum(1).to(torch.int64))

        fw = _Forward(scores=None, counts=counts)  # type: ignore[arg-type]
        if weighted:
            fw.rate_A = rate_a.view(B, N)
            fw.scores = fw.rate_A @ w_out
        else:
            fw.scores, fw.argmax = vmax, amax
        if traces:
            fw.traces = torch.cat(trace_blocks)
        if store:
            fw.flat, fw.current = torch.cat(flats), torch.cat(currents)
            fw.step_counts = torch.cat(step_counts)
        return fw

    def _grid_backward(self, blocks: _EventBlocks, fw: _Forward, error: torch.Tensor):
        hp, dc = self.hp, self.decays
        B, T, K = blocks.B, blocks.T, hp.chunk_steps
        N = hp.hidden
        dev, dt = self.device, self.dtype
        w_out = self.params["w_out"].detach()
        w_rec = self.params["w_rec"].detach() if hp.recurrent else None
        w_rec_t = w_rec.t().contiguous() if w_rec is not None else None
        tab = self._table(T)
        alpha, beta = dc.alpha, dc.beta
        # lambda_u is kept scaled by s so that lambda_I[t] = lerp(lambda_I[t+1], s lambda_u, 1 - beta)
        s = (1.0 - alpha) / (1.0 - beta)
        inv = 1.0 / (1.0 - alpha)
        clip = s * self._clip_bound(tab, B)

        g_in = torch.zeros_like(self.params["w_in"])
        g_rec = torch.zeros_like(w_rec) if w_rec is not None else None
        weighted = tab.w is not None
        p_flat = tstar = None
        if weighted:
            g_out = fw.rate_A.t() @ error  # exact: lambda_Io[t] = q(t) E
            p_flat = (error @ w_out.t()).reshape(-1)  # (B*N,): Sum_c W_out[n,c] E[b,c]
        else:
            g_out = torch.zeros_like(w_out)
            tstar = fw.argmax
        offsets = [0] + torch.cumsum(fw.step_counts, 0).tolist()
        starts = list(range(0, T, K))

        def block_spikes(c0: int):
            """(flat indices, step within the block, currents) of block c0's stored spikes."""
            k_len = min(K, T - c0)
            s_lo, s_hi = offsets[c0], offsets[c0 + k_len]
            k_of = torch.repeat_interleave(
                torch.arange(k_len, device=dev), fw.step_counts[c0:c0 + k_len])
            return fw.flat[s_lo:s_hi].long(), k_of, fw.current[s_lo:s_hi]

        # The loss's direct jump terms of every block first: the regulariser is measured in them
        # (one float per spike; the blocks in the backward order, as g_out accumulates).
        direct, signal_sum = {}, 0.0
        for c0 in reversed(starts):
            flat, k_of, cur = block_spikes(c0)
            direct[c0] = self._direct_terms(flat, c0 + k_of, error, tab, p_flat, tstar, g_out)
            if hp.reg_strength > 0:
                signal_sum += self._signal_sum(direct[c0], cur)
        reg = None
        if hp.reg_strength > 0:
            reg = self._reg_coefficient(fw.counts, T, signal_sum / max(offsets[-1], 1))

        lam_u = torch.zeros(B, N, device=dev, dtype=dt)
        lam_u_flat = lam_u.view(-1)
        lam_i = torch.zeros(K + 2, B, N, device=dev, dtype=dt)
        lam_rows = lam_i.unbind(0)
        diff = torch.empty(B, N, device=dev, dtype=dt)
        shift = torch.empty(B, N, device=dev, dtype=dt)
        shift_flat = shift.view(-1)
        gather_max = int(B * N * self.gather_below)
        for c0 in reversed(starts):
            k_len = min(K, T - c0)
            if c0 + K < T:  # slots K, K+1 <- steps c0 + K, c0 + K + 1 (the next block's 0, 1)
                lam_i[K:K + 2].copy_(lam_i[0:2])
            s_lo, s_hi = offsets[c0], offsets[c0 + k_len]
            flat, k_of, cur = block_spikes(c0)
            denom = (cur - THETA).clamp_(min=hp.min_slope)  # the guarded (I - theta)
            coef_v = cur / denom  # multiplies lambda_V (= lambda_u after the reset)
            coef_g = denom.reciprocal_().mul_(-s * inv)  # multiplies the shift terms
            const = direct.pop(c0).mul_(coef_g)  # the loss's jump term
            if reg is not None:
                const += s * reg.take(flat % N)
            sizes = [offsets[c0 + k + 1] - offsets[c0 + k] for k in range(k_len)]
            b_of, n_of = flat // N, flat % N
            per_step = zip(flat.split(sizes), b_of.split(sizes), n_of.split(sizes),
                           const.split(sizes), coef_v.split(sizes), coef_g.split(sizes), sizes)
            for k, (f, b_k, n_k, c_k, cv_k, cg_k, size) in reversed(list(enumerate(per_step))):
                lam_u.mul_(alpha)
                if size:
                    val = torch.addcmul(c_k, lam_u_flat.take(f), cv_k)
                    if w_rec_t is not None:
                        # Sum_m W_rec[n,m] (lambda_I[t+2] - lambda_I[t+1])[b,m] at the spikes:
                        # row gathers for few spikes, one dense product for many
                        if size <= gather_max:
                            rows = (lam_rows[k + 2].index_select(0, b_k)
                                    - lam_rows[k + 1].index_select(0, b_k))
                            val.addcmul_((rows * w_rec.index_select(0, n_k)).sum(1), cg_k)
                        else:
                            torch.sub(lam_rows[k + 2], lam_rows[k + 1], out=diff)
                            torch.mm(diff, w_rec_t, out=shift)
                            val.addcmul_(shift_flat.take(f), cg_k)
                    if clip > 0:
                        val.clamp_(-clip, clip)
                    lam_u_flat.put_(f, val)
                torch.lerp(lam_rows[k + 1], lam_u, 1.0 - beta, out=lam_rows[k])
            x_t = blocks.block_t(c0, k_len)
            if x_t is not None:
                g_in += x_t @ lam_i[:k_len].view(k_len * B, N)
            if g_rec is not None and s_hi > s_lo:
                z_t = _spike_matrix_t(k_of * B + flat // N, flat % N, k_len * B, N, dt)
                g_rec += z_t @ lam_i[1:k_len + 1].view(k_len * B, N)
        grads = {"w_in": g_in, "w_out": g_out}
        if g_rec is not None:
            grads["w_rec"] = g_rec
        return grads

    def _max_readout_terms(self, flat, steps, tstar, error, tab: _Tables, g_out,
                           piece: int = 8192):
        """For the max readout, lambda_Io[t][b,c] = E[b,c] h(t*[b,c] - t) (zero after t*).
        Returns Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])[b,c] per spike and adds
        lambda_Io[t][b] to g_out[n] (unless g_out is None); (S, C) work in pieces to bound memory."""
        N = self.hp.hidden
        w_out = self.params["w_out"].detach()
        out = torch.empty(flat.numel(), device=flat.device, dtype=error.dtype)
        for lo in range(0, flat.numel(), piece):
            f, t = flat[lo:lo + piece], steps[lo:lo + piece]
            b_idx, n_idx = f // N, f % N
            lag = tstar[b_idx] - t[:, None]  # (S, C)
            h0 = torch.where(lag >= 0, tab.h[lag.clamp(min=0)], 0.0)
            h1 = torch.where(lag >= 1, tab.h[(lag - 1).clamp(min=0)], 0.0)
            e_b = error[b_idx]
            out[lo:lo + piece] = (w_out[n_idx] * e_b * (h1 - h0)).sum(1)
            if g_out is not None:
                g_out.index_add_(0, n_idx, e_b * h0)
        return out

    # =========================================================================================
    # exact mode
    def _crossing(self, v: torch.Tensor, i: torch.Tensor, rem: torch.Tensor) -> torch.Tensor:
        """First time u in (0, rem] at which V(u) = (V + kI) e^{-u/tau_m} - kI e^{-u/tau_s}
        reaches theta, per neuron ((Ba, N)); +inf where it does not. rem: (Ba,)."""
        c = self.consts
        a = v + c.k_h * i  # coefficient of e^{-u/tau_m}
        b = -c.k_h * i  # coefficient of e^{-u/tau_s}
        rem2 = rem[:, None].expand_as(v)
        v_end = a * torch.exp(-rem2 / c.tau_m) + b * torch.exp(-rem2 / c.tau_s)
        # extremum of V: (a / tau_m) e^{-u/tau_m} = -(b / tau_s) e^{-u/tau_s}
        ratio = (-b * c.tau_m) / (a * c.tau_s)
        rate = 1.0 / c.tau_s - 1.0 / c.tau_m
        valid = (ratio > 0) & torch.isfinite(ratio)
        u_star = torch.where(valid, torch.log(torch.where(valid, ratio, 1.0)) / rate, -1.0)
        in_range = valid & (u_star > 0) & (u_star < rem2)
        v_star = a * torch.exp(-u_star / c.tau_m) + b * torch.exp(-u_star / c.tau_s)
        rising = i > v  # sign of dV/du at u = 0
        is_max = in_range & rising
        is_min = in_range & ~rising
        crosses = torch.where(is_max, v_star > THETA, v_end > THETA)
        already = v >= THETA
        out = torch.full_like(v, math.inf)
        out[already] = 0.0
        cand = (crosses & ~already).nonzero(as_tuple=True)
        if cand[0].numel() == 0:
            return out
        a_c, b_c = a[cand], b[cand]
        lo = torch.where(is_min[cand], u_star[cand], torch.zeros_like(a_c))
        hi = torch.where(is_max[cand], u_star[cand], rem2[cand])
        out[cand] = self._solve(a_c, b_c, lo, hi)
        return out

    def _solve(self, a, b, lo, hi):
        """Root of a e^{-u/tau_m} + b e^{-u/tau_s} = theta on [lo, hi], where the function rises
        from <= theta to > theta: Newton steps, bisection when a step leaves the bracket."""
        c = self.consts

        def f_and_df(u):
            em, es = torch.exp(-u / c.tau_m), torch.exp(-u / c.tau_s)
            return a * em + b * es - THETA, -(a / c.tau_m) * em - (b / c.tau_s) * es

        f_lo, _ = f_and_df(lo)
        f_hi, _ = f_and_df(hi)
        u = lo + (hi - lo) * (-f_lo / (f_hi - f_lo)).clamp(0.0, 1.0)
        for _ in range(100):
            f, df = f_and_df(u)
            above = f > 0
            hi = torch.where(above, u, hi)
            lo = torch.where(above, lo, u)
            nxt = u - f / df
            ok = (nxt >= lo) & (nxt <= hi) & torch.isfinite(nxt)
            nxt = torch.where(ok, nxt, 0.5 * (lo + hi))
            step = (nxt - u).abs().max()
            u = nxt
            if float(step) <= c.tol or float((hi - lo).max()) <= c.tol:
                break
        return u

    def _decays_over(self, du: torch.Tensor):
        """exp(-du/tau_m), exp(-du/tau_s), exp(-du/tau_out) as (Ba, 1) columns, du per sample (ms)."""
        c, d = self.consts, du[:, None]
        return torch.exp(-d / c.tau_m), torch.exp(-d / c.tau_s), torch.exp(-d / c.tau_o)

    def _advance(self, rows, du, v, i, vo, io):
        """Integrate the state of samples ``rows`` exactly over du (per sample, ms)."""
        c = self.consts
        em, es, eo = self._decays_over(du)
        vr, ir, vor, ior = v[rows], i[rows], vo[rows], io[rows]
        v[rows] = em * vr + c.k_h * (em - es) * ir
        i[rows] = es * ir
        vo[rows] = eo * vor + c.k_o * (eo - es) * ior
        io[rows] = es * ior

    def _exact_forward(self, blocks: _EventBlocks, store: bool, traces: bool) -> _Forward:
        hp, c = self.hp, self.consts
        B, T, K = blocks.B, blocks.T, hp.chunk_steps
        N, C = hp.hidden, self.spec.n_classes
        dev, dt = self.device, self.dtype
        w_in, w_rec, w_out = self._detached_weights()
        tab = self._table(T)
        v = torch.zeros(B, N, device=dev, dtype=dt)
        i = torch.zeros(B, N, device=dev, dtype=dt)
        vo = torch.zeros(B, C, device=dev, dtype=dt)
        io = torch.zeros(B, C, device=dev, dtype=dt)
        counts = torch.zeros(B, N, device=dev, dtype=dt)
        active = torch.zeros(B, device=dev, dtype=torch.int64)
        all_rows = torch.arange(B, device=dev)
        weighted = tab.w is not None
        scores = torch.zeros(B, C, device=dev, dtype=dt)
        vmax = torch.full((B, C), -math.inf, device=dev, dtype=dt)
        amax = torch.zeros(B, C, device=dev, dtype=torch.int64)
        trace_list, rounds_all = [], []
        for c0 in range(0, T, K):
            k_len = min(K, T - c0)
            x_blk = blocks.block(c0, k_len)
            drive = (x_blk @ w_in).view(k_len, B, N) if x_blk is not None else None
            for k in range(k_len):
                t = c0 + k
                if drive is not None:
                    i += drive[k]
                s0 = torch.zeros(B, device=dev, dtype=dt)
                rows = all_rows
                rounds = []
                fired = torch.zeros(B, N, device=dev, dtype=torch.bool)
                while rows.numel():
                    u = self._crossing(v[rows], i[rows], c.dt - s0[rows])
                    u_min, n_min = u.min(dim=1)
                    has = torch.isfinite(u_min)
                    if not bool(has.any()):
                        break
                    rows, du, nn = rows[has], u_min[has], n_min[has]
                    self._advance(rows, du, v, i, vo, io)
                    i_minus = i[rows, nn].clone()
                    v[rows, nn] = 0.0
                    if w_rec is not None:
                        i.index_add_(0, rows, w_rec[nn])
                    io.index_add_(0, rows, w_out[nn])
                    s0[rows] += du
                    counts[rows, nn] += 1.0
                    fired[rows, nn] = True
                    if store:
                        rounds.append((rows, nn, s0[rows].clone(), i_minus))
                self._advance(all_rows, c.dt - s0, v, i, vo, io)
                active += fired.sum(1)
                if store:
                    rounds_all.append(rounds)
                if weighted:
                    scores.add_(vo, alpha=tab.w_list[t])
                else:
                    better = vo > vmax
                    vmax = torch.where(better, vo, vmax)
                    amax = torch.where(better, torch.full_like(amax, t), amax)
                if traces:
                    trace_list.append(vo.clone())
        fw = _Forward(scores=scores if weighted else vmax, counts=counts, active=active)
        fw.argmax = None if weighted else amax
        if traces:
            fw.traces = torch.stack(trace_list)
        if store:
            fw.rounds = rounds_all
        return fw

    def _propagate_back(self, rows, du, lv, li, lvo, lio):
        """Adjoint over du backward in time (exact transposed propagator) for samples rows."""
        c = self.consts
        em, es, eo = self._decays_over(du)
        lvr, lir, lvor, lior = lv[rows], li[rows], lvo[rows], lio[rows]
        lv[rows] = em * lvr
        li[rows] = es * lir + c.k_h * (em - es) * lvr
        lvo[rows] = eo * lvor
        lio[rows] = es * lior + c.k_o * (eo - es) * lvor

    def _exact_backward(self, blocks: _EventBlocks, fw: _Forward, error: torch.Tensor):
        hp, c = self.hp, self.consts
        B, T, K = blocks.B, blocks.T, hp.chunk_steps
        N, C = hp.hidden, self.spec.n_classes
        dev, dt = self.device, self.dtype
        w_out = self.params["w_out"].detach()
        w_rec = self.params["w_rec"].detach() if hp.recurrent else None
        tab = self._table(T)
        r_s, r_o = c.tau_m / c.tau_s, c.tau_m / c.tau_o
        clip = self._clip_bound(tab, B)
        g_in = torch.zeros_like(self.params["w_in"])
        g_rec = torch.zeros_like(w_rec) if w_rec is not None else None
        g_out = torch.zeros_like(w_out)
        reg = None
        if hp.reg_strength > 0:
            spikes = [(rows * N + nn, torch.full_like(rows, t), i_minus)
                      for t, rounds in enumerate(fw.rounds) for rows, nn, _, i_minus in rounds]
            signal = 0.0
            if spikes:
                flat, steps, cur = (torch.cat(parts) for parts in zip(*spikes))
                p_flat = (error @ w_out.t()).reshape(-1) if tab.w is not None else None
                direct = self._direct_terms(flat, steps, error, tab, p_flat, fw.argmax)
                signal = self._signal_sum(direct, cur) / flat.numel()
            reg = self._reg_coefficient(fw.counts, T, signal)
        lv = torch.zeros(B, N, device=dev, dtype=dt)
        li = torch.zeros(B, N, device=dev, dtype=dt)
        lvo = torch.zeros(B, C, device=dev, dtype=dt)
        lio = torch.zeros(B, C, device=dev, dtype=dt)
        lam_i = torch.zeros(K, B, N, device=dev, dtype=dt)
        all_rows = torch.arange(B, device=dev)
        for c0 in reversed(range(0, T, K)):
            k_len = min(K, T - c0)
            for k in range(k_len - 1, -1, -1):
                t = c0 + k
                if tab.w is not None:
                    lvo.add_(error, alpha=tab.w_list[t])
                else:
                    lvo.add_(torch.where(fw.argmax == t, error, 0.0))
                s_cur = torch.full((B,), c.dt, device=dev, dtype=dt)
                for rows, nn, s_spk, i_minus in reversed(fw.rounds[t]):
                    self._propagate_back(rows, s_cur[rows] - s_spk, lv, li, lvo, lio)
                    if g_rec is not None:
                        g_rec.index_add_(0, nn, li[rows])
                    g_out.index_add_(0, nn, lio[rows])
                    num = lv[rows, nn] * i_minus
                    num += (w_out[nn] * (r_o * lvo[rows] - r_s * lio[rows])).sum(1)
                    if w_rec is not None:
                        num += (w_rec[nn] * (lv[rows] - r_s * li[rows])).sum(1)
                    val = num / (i_minus - THETA).clamp(min=hp.min_slope)
                    if reg is not None:
                        val += reg[nn]
                    if clip > 0:
                        val.clamp_(-clip, clip)
                    lv[rows, nn] = val
                    s_cur[rows] = s_spk
                self._propagate_back(all_rows, s_cur, lv, li, lvo, lio)
                lam_i[k].copy_(li)
            x_t = blocks.block_t(c0, k_len)
            if x_t is not None:
                g_in += x_t @ lam_i[:k_len].reshape(k_len * B, N)
        grads = {"w_in": g_in, "w_out": g_out}
        if g_rec is not None:
            grads["w_rec"] = g_rec
        return grads
