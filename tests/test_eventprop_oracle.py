"""An independent oracle for EventProp's grid mode (the benchmarked default).

The grid adjoint is written out again here, plainly, in float64 numpy, from its equations
(Wunderlich & Pehle 2021, discretised on the forward pass's grid as in mlGeNN, Nowotny et al.
2025), one step and one spike at a time, sharing no code with methods/eventprop/. With u the
membrane before the reset, lambda_X = dL/dX, and every lambda zero after the last step:

    lambda_Vo[t] = dL/dV_o[t] + alpha_o lambda_Vo[t+1]
    lambda_Io[t] = (1 - alpha_o) lambda_Vo[t] + beta lambda_Io[t+1]
    lambda_u[t]  = alpha lambda_u[t+1]                                   (no spike of n at t)
    lambda_u[t]  = [alpha lambda_u[t+1] I_n[t]
                    - (Sum_m W_rec[n,m] (lambda_I[t+2] - lambda_I[t+1])_m
                       + Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])_c) / (1 - alpha)]
                   / max(I_n[t] - 1, min_slope)  +  reg_n                 (spike of n at t)
    lambda_I[t]  = beta lambda_I[t+1] + (1 - alpha) lambda_u[t]
    dL/dW_in[i, n]  = Sum_t x_i[t] lambda_I,n[t]
    dL/dW_rec[m, n] = Sum_t z_m[t] lambda_I,n[t+1]
    dL/dW_out[n, c] = Sum_t z_n[t] lambda_Io,c[t]

and reg_n = reg_strength * S * (nbar_n - nu), S the mean over the batch's spikes of
|Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])_c| / ((1 - alpha) max(I_n[t] - 1, min_slope)).
The cases are tiny random networks, recurrent and feed-forward, several samples, several block
sizes, every readout, with spikes in every neuron of every sample.

first_spike reads the traces as the membranes of threshold-1 output neurons up to their first
spike: t_c = dt (k + (1 - V_o[k-1]) / (V_o[k] - V_o[k-1])) at the first step k with V_o[k] >= 1
(V_o[-1] = 0), or T dt (2 - max_t V_o) for an output that never fires; the loss is the
cross-entropy of softmax(-t / fs_tau) plus fs_early (exp(t_y / (T dt)) - 1), batch mean; dL/dV_o
follows by the chain rule through t_c (:func:`first_spike_readout`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import methods.eventprop as ep
from methods import lif
from methods.api import Batch, DatasetSpec, make_hparams
from methods.readouts import time_weights
from tiny import dense_to_events

LOSSES = ("sum", "sum_exp", "gauss_window", "max", "first_spike")
N_IN, HIDDEN, N_OUT, STEPS, BATCH = 5, 6, 3, 30, 3


def oracle(w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, hp) -> tuple[float, dict]:
    """Loss and gradients of the grid-mode adjoint above, float64, loops over steps and spikes."""
    alpha, beta = math.exp(-hp.dt_ms / hp.tau_mem), math.exp(-hp.dt_ms / hp.tau_syn)
    alpha_o = math.exp(-hp.dt_ms / hp.tau_out)
    B, T, _ = x.shape
    N, C = w["w_out"].shape
    w_rec = w.get("w_rec", np.zeros((N, N)))
    # forward: lif.py's equations
    I, V, z = np.zeros((B, N)), np.zeros((B, N)), np.zeros((B, N))
    Io, Vo = np.zeros((B, C)), np.zeros((B, C))
    currents, spikes, traces = np.zeros((T, B, N)), np.zeros((T, B, N)), np.zeros((T, B, C))
    for t in range(T):
        I = beta * I + x[:, t] @ w["w_in"] + z @ w_rec
        V = alpha * V + (1 - alpha) * I
        z = (V > 1.0).astype(float)
        V = V * (1 - z)
        Io = beta * Io + z @ w["w_out"]
        Vo = alpha_o * Vo + (1 - alpha_o) * Io
        currents[t], spikes[t], traces[t] = I, z, Vo
    # readout and dL/dV_o[t]
    if hp.loss == "first_spike":
        loss, dVo, _ = first_spike_readout(traces, y, hp)
        return adjoint(w, x, hp, currents, spikes, dVo, loss)
    weights = time_weights(hp.loss, T, hp.gauss_mu, hp.gauss_sigma)
    if weights is None:
        arg = traces.argmax(axis=0)
        scores = traces.max(axis=0)
    else:
        scores = np.einsum("t,tbc->bc", weights / T, traces)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(B), y]))
    E = p.copy()
    E[np.arange(B), y] -= 1.0
    E /= B
    dVo = np.zeros((T, B, C))
    if weights is None:
        for b in range(B):
            for c in range(C):
                dVo[arg[b, c], b, c] = E[b, c]
    else:
        dVo = weights[:, None, None] / T * E[None]
    return adjoint(w, x, hp, currents, spikes, dVo, loss)


def first_spike_readout(traces: np.ndarray, y: np.ndarray, hp) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss, dL/dV_o (T, B, C) and which outputs fired, of the first-spike loss above."""
    T, B, C = traces.shape
    dt, window = hp.dt_ms, T * hp.dt_ms
    times = np.zeros((B, C))
    dtdv = []  # (b, c, step, dt_c / dV_o[step])
    fired = np.zeros((B, C), dtype=bool)
    for b in range(B):
        for c in range(C):
            trace = traces[:, b, c]
            above = np.nonzero(trace >= 1.0)[0]
            if above.size:
                k = int(above[0])
                v0 = trace[k - 1] if k > 0 else 0.0
                v1 = trace[k]
                times[b, c] = dt * (k + (1.0 - v0) / (v1 - v0))
                dtdv.append((b, c, k, -dt * (1.0 - v0) / (v1 - v0) ** 2))
                if k > 0:
                    dtdv.append((b, c, k - 1, -dt * (v1 - 1.0) / (v1 - v0) ** 2))
                fired[b, c] = True
            else:
                m = int(trace.argmax())
                times[b, c] = window * (2.0 - trace[m])
                dtdv.append((b, c, m, -window))
    scores = -times / hp.fs_tau
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    t_y = times[np.arange(B), y]
    loss = -np.mean(np.log(p[np.arange(B), y])) + hp.fs_early * np.mean(np.exp(t_y / window) - 1)
    onehot = np.eye(C)[y]
    dL_dt = -(p - onehot) / (B * hp.fs_tau) + onehot * (hp.fs_early / B) * np.exp(t_y / window)[:, None] / window
    dVo = np.zeros((T, B, C))
    for b, c, step, d in dtdv:
        dVo[step, b, c] += dL_dt[b, c] * d
    return float(loss), dVo, fired


def adjoint(w, x, hp, currents, spikes, dVo, loss):
    """The output and hidden adjoints above from dL/dV_o: (loss, gradients, spikes)."""
    alpha, beta = math.exp(-hp.dt_ms / hp.tau_mem), math.exp(-hp.dt_ms / hp.tau_syn)
    alpha_o = math.exp(-hp.dt_ms / hp.tau_out)
    T, B, C = dVo.shape
    N = w["w_out"].shape[0]
    w_rec = w.get("w_rec", np.zeros((N, N)))
    # output adjoint (linear, exact)
    lam_io = np.zeros((T + 2, B, C))
    lam_vo = np.zeros((B, C))
    for t in range(T - 1, -1, -1):
        lam_vo = dVo[t] + alpha_o * lam_vo
        lam_io[t] = (1 - alpha_o) * lam_vo + beta * lam_io[t + 1]
    slope = np.maximum(currents - 1.0, hp.min_slope)

    def direct(t, b, n):
        return w["w_out"][n] @ (lam_io[t + 1, b] - lam_io[t, b])

    reg = np.zeros(N)
    if hp.reg_strength > 0:
        where = np.argwhere(spikes > 0)
        S = np.mean([abs(direct(t, b, n)) / ((1 - alpha) * slope[t, b, n]) for t, b, n in where])
        nu = hp.reg_nu * T * hp.dt_ms / 1000.0
        reg = hp.reg_strength * S * (spikes.sum(axis=0).mean(axis=0) - nu)
    # hidden adjoint
    lam_i = np.zeros((T + 2, B, N))
    lam_u = np.zeros((B, N))
    for t in range(T - 1, -1, -1):
        lam_v = alpha * lam_u
        lam_u = lam_v.copy()
        for b, n in np.argwhere(spikes[t] > 0):
            shift = w_rec[n] @ (lam_i[t + 2, b] - lam_i[t + 1, b]) + direct(t, b, n)
            lam_u[b, n] = ((lam_v[b, n] * currents[t, b, n] - shift / (1 - alpha))
                           / slope[t, b, n] + reg[n])
        lam_i[t] = beta * lam_i[t + 1] + (1 - alpha) * lam_u
    grads = {"w_in": np.einsum("bti,tbn->in", x, lam_i[:T]),
             "w_out": np.einsum("tbn,tbc->nc", spikes, lam_io[:T])}
    if "w_rec" in w:
        grads["w_rec"] = np.einsum("tbm,tbn->mn", spikes, lam_i[1:T + 1])
    return loss, grads, spikes


def case(seed: int, recurrent: bool):
    """Random weights strong enough that every neuron of every sample spikes, and input."""
    rng = np.random.default_rng(seed)
    w = {"w_in": rng.normal(0.9, 0.5, (N_IN, HIDDEN)),
         "w_out": rng.normal(0.0, 0.5, (HIDDEN, N_OUT))}
    if recurrent:
        w["w_rec"] = rng.normal(0.0, 0.4, (HIDDEN, HIDDEN))
    # counts of 1-3 per step and channel, as binned input has
    x = (rng.random((BATCH, STEPS, N_IN)) < 0.3) * rng.integers(1, 4, (BATCH, STEPS, N_IN))
    x = x.astype(np.float64)
    y = rng.integers(0, N_OUT, BATCH)
    return w, x, y


def package(w, x, y, loss: str, chunk: int, reg_strength: float, fused: bool):
    spec = DatasetSpec(name="oracle", n_in=N_IN, n_classes=N_OUT, n_steps=STEPS, dt_ms=1.0,
                       content_hash="oracle")
    hp = make_hparams(ep.EventPropHparams, dict(
        hidden=HIDDEN, steps=STEPS, dt_ms=1.0, batch_size=BATCH, recurrent="w_rec" in w,
        loss=loss, chunk_steps=chunk, dtype="float64", lambda_clip=0.0,
        reg_strength=reg_strength, reg_nu=200.0))
    method = ep.EventProp()
    method.setup(spec, hp, 0, "cpu")
    with torch.no_grad():
        for key, value in w.items():
            method.params[key].copy_(torch.from_numpy(value))
    batch = Batch(y=y.astype(np.int64), n_steps=STEPS, n_in=N_IN,
                  events=dense_to_events(x.astype(np.uint8)))
    net = dataclasses.replace(method.net(), fused=fused)
    value, grads, _, fw = ep.loss_and_grads(net, batch)
    return hp, value, {k: g.numpy() for k, g in grads.items()}, fw


@pytest.mark.parametrize("fused", [False, True], ids=["torch-loops", "fused-kernels"])
@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("loss", LOSSES)
def test_grid_gradients_equal_the_oracle(loss, recurrent, fused):
    if fused:
        pytest.importorskip("numba")
    times = []
    for seed, chunk, reg_strength in ((0, 1, 0.0), (1, 7, 0.0), (2, 64, 0.3)):
        w, x, y = case(seed, recurrent)
        hp, value, grads, fw = package(w, x, y, loss, chunk, reg_strength, fused)
        want_loss, want, spikes = oracle(w, x, y, hp)
        if loss == "first_spike":
            times.append(fw.first_times.numpy().ravel())
        assert spikes.sum(axis=0).min() >= 1, "every neuron of every sample should spike"
        ref, _ = lif.reference_forward({k: torch.from_numpy(v) for k, v in w.items()},
                                       torch.from_numpy(x), fw_decays(hp))
        np.testing.assert_array_equal(ref.numpy(), spikes)
        np.testing.assert_array_equal(fw.counts.numpy(), spikes.sum(axis=0))
        assert value == pytest.approx(want_loss, rel=1e-9)
        assert sorted(grads) == sorted(want)
        for key in want:
            scale = np.abs(want[key]).max()
            assert scale > 0
            err = np.abs(grads[key] - want[key]).max() / scale
            assert err <= 1e-6, f"{loss} seed {seed} chunk {chunk} {key}: {err:.2e}"
    if loss == "first_spike":  # outputs that fire and outputs on the fallback
        times = np.concatenate(times)
        assert (times < STEPS).any() and (times > STEPS).any()


def fw_decays(hp) -> lif.Decays:
    return lif.Decays.from_hparams(hp)
