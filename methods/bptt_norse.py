"""Surrogate-gradient BPTT through norse (Pehle & Pedersen), the network of :mod:`methods.lif`.

Mapping of the shared equations onto norse's LIF dynamics. norse integrates one step as

    i_jump = i + input
    v      = v + dt * tau_mem_inv * ((v_leak - v) + i_jump)
    i      = i_jump - dt * tau_syn_inv * i_jump
    z      = H(v - v_th);  v <- (1 - z) v + z v_reset

(``norse.torch.functional.lif`` / ``leaky_integrator``): the membrane sees the *new* current, so
``i_jump`` is the reference's I[t]. With ``dt * tau_syn_inv = 1 - beta``,
``dt * tau_mem_inv = 1 - alpha``, ``v_leak = v_reset = 0`` and ``v_th = 1`` the recursion is
exactly I[t] = beta I[t-1] + input[t], V[t] = alpha V[t-1] + (1 - alpha) I[t] with no input
scaling; the rates are the exponential-Euler ones, tau_inv = (1 - exp(-dt/tau)) / dt, not 1/tau.

What is taken from norse and what is not:

* the sub-threshold step of hidden and output neurons is norse's own
  ``li_feed_forward_step`` with :class:`LIParameters` derived from the :class:`LIFParameters`
  above; the output layer is exactly norse's leaky integrator;
* the threshold is norse's :class:`SuperSpike` autograd function with a corrected backward.
  norse 1.1.0's ``SuperSpike.backward`` returns ``grad / (|x| + 1)^2``: it ignores ``alpha``,
  so ``LIFParameters(method="super", alpha=100)`` trains with slope 1, not 100.
  :class:`SlopedSuperSpike` restores dz/dV = 1 / (alpha |V - 1| + 1)^2 (snntorch's fast sigmoid);
* the reset is applied with the spike detached, as norse's recurrent ``lif_step`` does (its
  feed-forward ``lif_feed_forward_step``, behind ``LIFCell``, differentiates through the reset,
  which the shared network does not);
* the loop over time is written here: ``LIFRecurrentCell`` would project the input one step at a
  time and zero the diagonal of the recurrent matrix unless ``autapses=True``, and norse's
  whole-sequence ``LIF``/``SNN`` modules index ``input[ts]`` every step, whose backward allocates a
  (T, B, N) gradient per step (O(T^2)). Here x @ W_in is one matrix product over all steps,
  iterated with ``unbind``.

Everything else (initial weights, Adam, readouts, checkpoints) is :class:`TorchNetworkMethod`.
Memory: autograd keeps every step's states, O(T B N).
"""

from __future__ import annotations

import numpy as np
import torch
from norse.torch.functional.leaky_integrator import LIParameters, LIState, li_feed_forward_step
from norse.torch.functional.lif import LIFParameters
from norse.torch.functional.superspike import SuperSpike

from methods import lif
from methods.api import BpttHparams
from methods.neurons import check_neuron
from methods.torch_common import TorchNetworkMethod, weight_parameters


class SlopedSuperSpike(SuperSpike):
    """norse's SuperSpike (Heaviside forward, H(0) = 0) with the slope honoured in the backward:
    dz/dx = 1 / (alpha |x| + 1)^2."""

    @staticmethod
    def backward(ctx, grad_output):
        (inp,) = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = grad_output / (ctx.alpha * torch.abs(inp) + 1.0).pow(2)
        return grad, None


def lif_parameters(decays: lif.Decays, dt: float, slope: float) -> LIFParameters:
    """norse parameters whose Euler step equals the shared network's discrete hidden dynamics."""
    return LIFParameters(
        tau_syn_inv=torch.as_tensor((1.0 - decays.beta) / dt),
        tau_mem_inv=torch.as_tensor((1.0 - decays.alpha) / dt),
        v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(lif.THETA),
        v_reset=torch.as_tensor(0.0),
        method="super",
        alpha=float(slope),
    )


def li_parameters(decay_syn: float, decay_mem: float, dt: float) -> LIParameters:
    return LIParameters(
        tau_syn_inv=torch.as_tensor((1.0 - decay_syn) / dt),
        tau_mem_inv=torch.as_tensor((1.0 - decay_mem) / dt),
        v_leak=torch.as_tensor(0.0),
    )


def lif_step(current: torch.Tensor, state: LIState, p: LIFParameters, p_li: LIParameters,
             dt: float) -> tuple[torch.Tensor, LIState]:
    """One step of the hidden layer: norse's integration, sloped SuperSpike, detached reset."""
    v, state = li_feed_forward_step(current, state, p_li, dt)
    z = SlopedSuperSpike.apply(v - p.v_th, p.alpha)
    z_const = z.detach()
    v = (1.0 - z_const) * v + z_const * p.v_reset
    return z, LIState(v, state.i)


class NorseNetwork(torch.nn.Module):
    def __init__(self, weights: dict[str, np.ndarray], decays: lif.Decays, slope: float,
                 dt: float = 1.0):
        super().__init__()
        self.w_in, self.w_rec, self.w_out = weight_parameters(weights)
        self.dt = dt
        self.p_hidden = lif_parameters(decays, dt, slope)
        self.p_hidden_li = li_parameters(decays.beta, decays.alpha, dt)
        self.p_out = li_parameters(decays.beta, decays.alpha_out, dt)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, n_in) -> hidden spikes (T, B, N), output traces (T, B, C)."""
        batch = x.shape[0]
        hidden, n_out = self.w_out.shape
        drive = (x @ self.w_in).transpose(0, 1)  # (T, B, N), all steps at once
        zeros_h = x.new_zeros(batch, hidden)
        zeros_o = x.new_zeros(batch, n_out)
        state_h = LIState(v=zeros_h, i=zeros_h)
        state_o = LIState(v=zeros_o, i=zeros_o)
        z = zeros_h
        spikes, traces = [], []
        for drive_t in drive.unbind(0):  # not drive[t]: see the module docstring
            current = drive_t if self.w_rec is None else drive_t + z @ self.w_rec
            z, state_h = lif_step(current, state_h, self.p_hidden, self.p_hidden_li, self.dt)
            v_out, state_o = li_feed_forward_step(z @ self.w_out, state_o, self.p_out, self.dt)
            spikes.append(z)
            traces.append(v_out)
        return torch.stack(spikes), torch.stack(traces)


class BpttNorse(TorchNetworkMethod):
    name = "bptt-norse"
    Hparams = BpttHparams
    input_format = "dense"

    def build(self, weights: dict[str, np.ndarray], hp: BpttHparams) -> torch.nn.Module:
        check_neuron(hp.neuron, ("lif",), self.name)
        return NorseNetwork(weights, lif.Decays.from_hparams(hp), hp.surrogate_slope, hp.dt_ms)
