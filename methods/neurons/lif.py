"""The suite's leaky integrate-and-fire neuron as a stand-alone cell: the hidden neuron of the
shared network, with the equations, the reset to zero and the threshold of :mod:`methods.lif`
(dimensionless: threshold 1, rest 0; dt = 1 ms by default). Its input is the synapse's input
x[t]; :func:`constant_current_input` gives the x that holds the synaptic current at a constant I.

f-I curve in closed form: with I constant and V starting at 0 after a reset,
V after k steps is I (1 - alpha^k), so the neuron fires every k* steps, k* the smallest k with
I (1 - alpha^k) > 1 (none when I <= 1); :func:`closed_form_rate`. As dt -> 0 this tends to the
continuous LIF's 1 / (tau_mem ln(I / (I - 1))).
"""

from __future__ import annotations

import math

import torch

from methods import lif

DEFAULT_DT_MS = 1.0
TAU_MEM_MS, TAU_SYN_MS = 20.0, 5.0  # the shared network's defaults (methods.api.NetworkHparams)


class LIFCell:
    """``size`` independent neurons of the shared network's hidden layer (no recurrence)."""

    default_dt = DEFAULT_DT_MS

    def __init__(self, size: int, dt: float = DEFAULT_DT_MS, tau_mem: float = TAU_MEM_MS,
                 tau_syn: float = TAU_SYN_MS, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.size, self.dt = size, dt
        self.decays = lif.Decays.from_taus(tau_mem, tau_syn, tau_mem, dt)
        self.device, self.dtype = torch.device(device), dtype
        self.reset()

    def reset(self, current: torch.Tensor | float = 0.0) -> None:
        """V = 0 and the synaptic current at ``current``."""
        zeros = torch.zeros(self.size, device=self.device, dtype=self.dtype)
        self.v, self.i = zeros, zeros + current

    def step(self, x: torch.Tensor | float) -> torch.Tensor:
        """Advance by one step with synaptic input ``x``; returns the neurons that spiked."""
        alpha, beta = self.decays.alpha, self.decays.beta
        self.i = beta * self.i + x
        self.v = alpha * self.v + (1.0 - alpha) * self.i
        spiked = self.v > lif.THETA
        self.v = self.v.masked_fill(spiked, 0.0)
        return spiked


def constant_current_input(current: torch.Tensor | float, cell: LIFCell) -> torch.Tensor | float:
    """The synaptic input x that keeps the synaptic current at ``current`` (start the cell with
    ``reset(current)``)."""
    return (1.0 - cell.decays.beta) * current


def closed_form_rate(current: float, dt: float = DEFAULT_DT_MS, tau_mem: float = TAU_MEM_MS) -> float:
    """Firing rate (Hz) of the discrete LIF at a constant synaptic current (module docstring)."""
    if current <= lif.THETA:
        return 0.0
    alpha = math.exp(-dt / tau_mem)
    k = math.floor(math.log(1.0 - lif.THETA / current) / math.log(alpha)) + 1
    while current * (1.0 - alpha ** k) <= lif.THETA:  # guard the rounding of the logarithms
        k += 1
    while k > 1 and current * (1.0 - alpha ** (k - 1)) > lif.THETA:
        k -= 1
    return 1000.0 / (k * dt)


def continuous_rate(current: float, tau_mem: float = TAU_MEM_MS) -> float:
    """The continuous-time LIF's rate (Hz), no refractory period."""
    return 0.0 if current <= lif.THETA else 1000.0 / (tau_mem * math.log(current / (current - 1)))
