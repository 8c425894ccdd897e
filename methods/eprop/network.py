"""The e-prop network, stepped forward once with no autograd graph (Bellec et al. 2020).

Network: the hidden layer of :mod:`methods.lif` (current-based LIF, optionally recurrent, reset to
zero; ``tau_syn`` is its synaptic current, as for every other method) and leaky-integrator outputs.
Steps t = 0..T-1, alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn),
kappa = alpha_o = exp(-dt/tau_out), theta = 1:

    I[t]    = beta I[t-1] + x[t] W_in + z[t-1] W_rec
    a[t]    = rho a[t-1] + z[t-1],  A[t] = theta + beta_a a[t]     (ALIF, rho = exp(-dt/tau_adapt);
                                                                     LIF: A = theta)
    u[t]    = alpha V[t-1] + (1 - alpha) I[t]                       (membrane before the reset)
    z[t]    = H(u[t] - A[t]);  V[t] = u[t] (1 - z[t])                (reset to zero)
    V_o[t]  = zf[t] W_out,  zf = F(z)                                (the output traces)

F, the output filter: ``output_synapse=False`` (default, Bellec's readout): f[t] = kappa f[t-1] +
(1 - kappa) s[t]; ``output_synapse=True``: lif.py's output with its current synapse, q[t] = beta q[t-1]
+ s[t], f[t] = kappa f[t-1] + (1 - kappa) q[t] (then the whole network is lif.py's; it costs a
second filter state, about 1.5x the step time).

Pseudo-derivative psi_j[t] = (gamma / theta) max(0, 1 - |u_j[t] - A_j[t]| / theta).
"""

from __future__ import annotations

import math

import torch

from methods import lif
from methods.eprop.hparams import EpropHparams
from methods.lif_torch import lif_step


def pseudo_derivative(margin: torch.Tensor, gamma: float) -> torch.Tensor:
    """psi = (gamma / theta) max(0, 1 - |u - A| / theta) of the margin u - A."""
    return (gamma / lif.THETA) * torch.clamp(1.0 - margin.abs() / lif.THETA, min=0.0)


class Network:
    """Hidden and output state of a batch, and the per-step values of the current block:
    ``ub`` = u - beta_a a (the membrane against a fixed threshold), ``zb`` spikes, ``zfb`` the
    output-filtered spikes (V_o = zf W_out)."""

    def __init__(self, batch: int, hidden: int, chunk: int, dec: lif.Decays, hp: EpropHparams,
                 like: torch.Tensor):
        new = like.new_zeros
        self.dec, self.hp = dec, hp
        self.I, self.V, self.z = new(batch, hidden), new(batch, hidden), new(batch, hidden)
        self.a = new(batch, hidden) if hp.alif else None
        self.zq = new(batch, hidden)
        self.zf = new(batch, hidden)
        self.ub, self.zfb = new(chunk, batch, hidden), new(chunk, batch, hidden)
        self.zb = torch.zeros(chunk, batch, hidden, dtype=torch.bool, device=like.device)
        self.rho = math.exp(-hp.dt_ms / hp.tau_adapt)

    def reset(self) -> None:
        """The state at t = -1 (all zero), kept in the same buffers."""
        for state in (self.I, self.V, self.zq, self.zf, self.a):
            if state is not None:
                state.zero_()
        self.z = torch.zeros_like(self.I)

    def step(self, k: int, drive: torch.Tensor, w_rec: torch.Tensor | None) -> None:
        """Step t (block step ``k``) from ``drive`` = x[t] W_in; writes ub[k], zb[k], zfb[k]."""
        dec, hp = self.dec, self.hp
        shift = None
        if self.a is not None:
            self.a.mul_(self.rho).add_(self.z)  # a[t] = rho a[t-1] + z[t-1]
            shift = self.a * hp.adapt_strength
        _, _, spiked, self.V = lif_step(
            self.V, self.I, drive, dec, self.z, w_rec, shift=shift, i_out=self.I,
            u_out=self.ub[k] if shift is None else None, m_out=self.ub[k], z_out=self.zb[k])
        self.z = spiked.to(self.V.dtype)
        if hp.output_synapse:
            self.zq.mul_(dec.beta).add_(self.z)
            self.zf = torch.lerp(self.zf, self.zq, 1.0 - dec.alpha_out, out=self.zfb[k])
        else:
            self.zf = torch.lerp(self.zf, self.z, 1.0 - dec.alpha_out, out=self.zfb[k])
