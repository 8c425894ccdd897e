"""Surrogate-gradient BPTT through snntorch (Neftci, Mostafa & Zenke 2019).

The network of :mod:`methods.lif`, stepped with ``snntorch.Synaptic`` neurons (hidden: threshold 1,
fast-sigmoid surrogate dz/dV = 1 / (slope |V - theta| + 1)^2; outputs: no threshold) and trained
with Adam on the shared readouts. snntorch's neuron integrates ``mem = beta_m mem + syn``, so its
input is scaled by (1 - alpha) to give the reference's V = alpha V + (1 - alpha) I exactly. The reset
to zero is applied here, with the spike detached: as in the reference, the reset is not
differentiated. The input projection x @ W_in is computed for all steps in one matrix product.
Memory: autograd keeps the states of every step, O(T B N).

Hidden neuron (``--set neuron=``): ``lif`` (above), ``adlif`` (:mod:`methods.neurons.adlif`) or
``izhikevich`` (:mod:`methods.neurons.izhikevich`). snntorch has no adaptive-threshold or
Izhikevich neuron, so those two step the shared step functions of their modules, with snntorch's
fast-sigmoid spike function; the output layer stays ``snntorch.Synaptic``.

Loss: the shared readouts, or ``first_spike`` (the outputs' first threshold crossings,
:mod:`methods.readouts`), differentiated by autograd through the interpolated crossing times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import snntorch
from snntorch import surrogate

from methods.api import FIRST_SPIKE, READOUTS, BpttHparams
from methods import lif
from methods.neurons import adlif, check_neuron, izhikevich
from methods.torch_common import TorchNetworkMethod, weight_parameters


class SnntorchNetwork(torch.nn.Module):
    def __init__(self, weights: dict[str, np.ndarray], decays: lif.Decays, slope: float,
                 neuron: str = "lif", dt_ms: float = 1.0):
        super().__init__()
        check_neuron(neuron, ("lif", "adlif", "izhikevich"), "bptt-snntorch")
        self.w_in, self.w_rec, self.w_out = weight_parameters(weights)
        self.decays, self.neuron, self.dt_ms = decays, neuron, dt_ms
        self.spike = surrogate.fast_sigmoid(slope=slope)
        self.hidden = snntorch.Synaptic(
            alpha=decays.beta, beta=decays.alpha, threshold=lif.THETA,
            spike_grad=surrogate.fast_sigmoid(slope=slope), reset_mechanism="none",
        )
        self.output = snntorch.Synaptic(
            alpha=decays.beta, beta=decays.alpha_out, reset_mechanism="none",
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, n_in) -> hidden spikes (T, B, N), output traces (T, B, C)."""
        if self.neuron != "lif":
            return self.forward_shared_step(x)
        in_scale = 1.0 - self.decays.alpha
        out_scale = 1.0 - self.decays.alpha_out
        drive = (x @ (in_scale * self.w_in)).transpose(0, 1)  # (T, B, N), all steps at once
        w_rec = None if self.w_rec is None else in_scale * self.w_rec
        w_out = out_scale * self.w_out
        batch = x.shape[0]
        syn_h = mem_h = x.new_zeros(batch, self.w_in.shape[1])
        syn_o = mem_o = x.new_zeros(batch, self.w_out.shape[1])
        z = x.new_zeros(batch, self.w_in.shape[1])
        spikes, traces = [], []
        # unbind, not drive[t]: indexing a tensor that needs grad once per step makes the
        # backward allocate a (T, B, N) gradient per step, O(T^2).
        for drive_t in drive.unbind(0):
            current = drive_t if w_rec is None else drive_t + z @ w_rec
            z, syn_h, mem_h = self.hidden(current, syn_h, mem_h)
            z = z.to(x.dtype)  # snntorch's spike function returns float32 whatever the input
            mem_h = mem_h * (1.0 - z.detach())
            _, syn_o, mem_o = self.output(z @ w_out, syn_o, mem_o)
            spikes.append(z)
            traces.append(mem_o)
        return torch.stack(spikes), torch.stack(traces)


    def hidden_step(self, state, current):
        """(z, state) of the adaptive-LIF or Izhikevich hidden layer."""
        spike = lambda u: self.spike(u).to(current.dtype)  # noqa: E731
        detach = lambda z: z.detach()  # noqa: E731
        if self.neuron == "adlif":
            return adlif.network_step(state, current, self.decays,
                                      adlif.adapt_decay(self.dt_ms), spike, detach)
        return izhikevich.network_step(state, current, self.decays.beta, spike, detach,
                                       dt=self.dt_ms)

    def initial_state(self, zeros: torch.Tensor):
        if self.neuron == "adlif":
            return (zeros, zeros, zeros)
        return izhikevich.network_initial_state(zeros)

    def forward_shared_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` with the hidden layer of :meth:`hidden_step`."""
        out_scale = 1.0 - self.decays.alpha_out
        drive = (x @ self.w_in).transpose(0, 1)
        w_out = out_scale * self.w_out
        batch = x.shape[0]
        z = x.new_zeros(batch, self.w_in.shape[1])
        state = self.initial_state(z)
        syn_o = mem_o = x.new_zeros(batch, self.w_out.shape[1])
        spikes, traces = [], []
        for drive_t in drive.unbind(0):
            current = drive_t if self.w_rec is None else drive_t + z @ self.w_rec
            z, state = self.hidden_step(state, current)
            _, syn_o, mem_o = self.output(z @ w_out, syn_o, mem_o)
            spikes.append(z)
            traces.append(mem_o)
        return torch.stack(spikes), torch.stack(traces)


@dataclass
class SnntorchHparams(BpttHparams):
    """The BPTT backends' hyperparameters; ``loss`` may also be ``first_spike``."""

    losses: ClassVar[tuple[str, ...]] = READOUTS + (FIRST_SPIKE,)


class BpttSnntorch(TorchNetworkMethod):
    name = "bptt-snntorch"
    Hparams = SnntorchHparams
    input_format = "dense"

    def build(self, weights: dict[str, np.ndarray], hp: SnntorchHparams) -> torch.nn.Module:
        return SnntorchNetwork(weights, lif.Decays.from_hparams(hp), hp.surrogate_slope,
                               hp.neuron, hp.dt_ms)
