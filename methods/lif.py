"""The shared spiking network (Wunderlich & Pehle 2021; Nowotny et al. 2025): its constants,
initial weights and a plain reference forward pass that every backend (snntorch, norse, spyx, EventProp, ...) is tested against.

Discrete dynamics, one step t = 0..T-1 with input spikes x[t] (dt = ``dt_ms``):

    I_h[t] = beta * I_h[t-1] + x[t] @ W_in + z[t-1] @ W_rec           (exponential current synapse)
    V_h[t] = alpha * V_h[t-1] + (1 - alpha) * I_h[t]                  (leaky membrane)
    z[t]   = H(V_h[t] - theta);  V_h[t] <- 0 where z[t] = 1            (spike, reset to zero)
    I_o[t] = beta * I_o[t-1] + z[t] @ W_out
    V_o[t] = alpha_o * V_o[t-1] + (1 - alpha_o) * I_o[t]              (leaky-integrator output)

with alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn), alpha_o = exp(-dt/tau_out), theta = 1,
H(u) = 1 if u > 0 else 0, and every state zero at t = -1. Outputs see hidden spikes of the same
step. Weight matrices are stored (pre, post), so a layer is ``activity @ W``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

THETA = 1.0

# mlGeNN's SHD initialisation (Nowotny et al. 2025): mean and standard deviation of each matrix.
W_IN_MEAN, W_IN_STD = 0.03, 0.01
W_REC_MEAN, W_REC_STD = 0.0, 0.02
W_OUT_MEAN, W_OUT_STD = 0.0, 0.03


@dataclass(frozen=True)
class Decays:
    alpha: float  # hidden membrane
    beta: float  # synaptic current (hidden and output)
    alpha_out: float  # output membrane

    @classmethod
    def from_taus(cls, tau_mem: float, tau_syn: float, tau_out: float, dt_ms: float) -> "Decays":
        return cls(
            alpha=math.exp(-dt_ms / tau_mem),
            beta=math.exp(-dt_ms / tau_syn),
            alpha_out=math.exp(-dt_ms / tau_out),
        )

    @classmethod
    def from_hparams(cls, hp) -> "Decays":
        return cls.from_taus(hp.tau_mem, hp.tau_syn, hp.tau_out, hp.dt_ms)


def init_weights(
    seed: int, n_in: int, hidden: int, n_out: int, recurrent: bool
) -> dict[str, np.ndarray]:
    """Initial weights (float32, (pre, post)) drawn from one numpy generator, so every backend
    starts from the same network for the same seed. ``w_rec`` is absent when not recurrent."""
    rng = np.random.default_rng(seed)
    weights = {"w_in": rng.normal(W_IN_MEAN, W_IN_STD, size=(n_in, hidden))}
    recurrent_w = rng.normal(W_REC_MEAN, W_REC_STD, size=(hidden, hidden))
    if recurrent:
        weights["w_rec"] = recurrent_w
    weights["w_out"] = rng.normal(W_OUT_MEAN, W_OUT_STD, size=(hidden, n_out))
    return {name: w.astype(np.float32) for name, w in weights.items()}


def reference_forward(weights: dict, x, decays: Decays):
    """The equations above, step by step with :func:`methods.lif_torch.lif_step`, for tests.

    ``x``: (B, T, n_in) tensor; ``weights``: tensors as from :func:`init_weights`.
    Returns (z, v_out): hidden spikes (T, B, N) and output traces (T, B, C), in x's dtype.
    """
    import torch

    from methods.lif_torch import lif_step, output_step

    w_in, w_out = weights["w_in"], weights["w_out"]
    w_rec = weights.get("w_rec")
    batch, steps, _ = x.shape
    hidden, n_out = w_out.shape
    i_h = x.new_zeros(batch, hidden)
    v_h = x.new_zeros(batch, hidden)
    z = x.new_zeros(batch, hidden)
    i_o = x.new_zeros(batch, n_out)
    v_o = x.new_zeros(batch, n_out)
    spikes, traces = [], []
    for t in range(steps):
        i_h, _, z, v_h = lif_step(v_h, i_h, x[:, t] @ w_in, decays, z, w_rec)
        i_o, v_o = output_step(v_o, i_o, z, w_out, decays)
        spikes.append(z)
        traces.append(v_o)
    return torch.stack(spikes), torch.stack(traces)


def synops_per_sample(
    input_events: np.ndarray, hidden_spikes: np.ndarray, n_in: int, hidden: int, n_out: int,
    recurrent: bool, steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """NeuroBench-style synaptic operations of this network for each sample.

    Effective: every input spike triggers ``hidden`` accumulates, every hidden spike
    ``hidden`` (recurrent) + ``n_out`` accumulates. Dense: every synapse every step.
    """
    fan_out_hidden = hidden * (1 if recurrent else 0) + n_out
    effective = input_events * hidden + hidden_spikes * fan_out_hidden
    dense_per_step = n_in * hidden + (hidden * hidden if recurrent else 0) + hidden * n_out
    dense = np.full_like(effective, dense_per_step * steps, dtype=np.float64)
    return effective.astype(np.float64), dense


def inference_stats(hidden_spikes: np.ndarray, active_fraction: np.ndarray, batch, hidden: int,
                    recurrent: bool, n_out: int):
    """:class:`methods.api.InferenceStats` of this network for one batch, from per-sample hidden
    spike totals and fractions of active neuron-steps (numpy, any framework)."""
    from methods.api import InferenceStats

    if batch.x is not None:
        input_events = batch.x.reshape(batch.size, -1).sum(axis=1).astype(np.float64)
    else:
        input_events = np.bincount(batch.events.sample, weights=batch.events.count,
                                   minlength=batch.size)
    hidden_spikes = np.asarray(hidden_spikes, dtype=np.float64)
    synops, dense = synops_per_sample(input_events, hidden_spikes, batch.n_in, hidden, n_out,
                                      recurrent, batch.n_steps)
    return InferenceStats(hidden_spikes=hidden_spikes, n_neurons=hidden, synops=synops,
                          dense_synops=dense,
                          active_fraction=np.asarray(active_fraction, dtype=np.float64))


def count_stats(hidden_spikes: np.ndarray, batch, hp, n_out: int):
    """:func:`inference_stats` from per-sample hidden spike counts alone (no per-step storage):
    the active fraction is the spike count over neuron-steps (at most one spike per step)."""
    active = hidden_spikes / float(hp.hidden * batch.n_steps)
    return inference_stats(hidden_spikes, active, batch, hp.hidden, hp.recurrent, n_out)
