"""Adaptive LIF: the suite's LIF (:mod:`methods.lif`) with a threshold that rises with each spike
and relaxes back, the adaptation of Bellec et al. (2018) (dimensionless, as the LIF):

    I[t]     = beta I[t-1] + x[t]                    (x[t] = x W_in + z[t-1] W_rec in the network)
    V[t]     = alpha V[t-1] + (1 - alpha) I[t]
    theta[t] = 1 + JUMP a[t-1]
    z[t]     = H(V[t] - theta[t]);  V[t] <- 0 where z[t] = 1
    a[t]     = rho a[t-1] + z[t],   rho = exp(-dt / TAU_ADAPT)

JUMP = 0.05 (each spike raises the threshold by 5 %), TAU_ADAPT = 200 ms: a neuron firing at
50 Hz settles at a threshold near 1.5. In the network the surrogate gradient is taken at
V - theta and flows through a (the adaptation is differentiated); the reset is not, as in the LIF.
All states are zero at t = -1.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from methods import lif  # no torch at import: the JAX backend imports this module

DEFAULT_DT_MS = 1.0
JUMP = 0.05
TAU_ADAPT_MS = 200.0


def adapt_decay(dt: float) -> float:
    return math.exp(-dt / TAU_ADAPT_MS)


def network_step(state: tuple[Any, Any, Any], current: Any, decays: lif.Decays, rho: float,
                 spike: Callable[[Any], Any], detach: Callable[[Any], Any],
                 ) -> tuple[Any, tuple[Any, Any, Any]]:
    """One step (module docstring) on torch or jax arrays. ``state`` = (V, I, a); ``spike`` is the
    backend's surrogate Heaviside, ``detach`` its stop-gradient. Returns (z, new state)."""
    v, i, a = state
    i = decays.beta * i + current
    v = decays.alpha * v + (1.0 - decays.alpha) * i
    z = spike(v - (lif.THETA + JUMP * a))
    v = v * (1.0 - detach(z))
    a = rho * a + z
    return z, (v, i, a)


class AdaptiveLIFCell:
    """``size`` independent adaptive LIF neurons (no recurrence), in torch."""

    default_dt = DEFAULT_DT_MS

    def __init__(self, size: int, dt: float = DEFAULT_DT_MS, tau_mem: float = 20.0,
                 tau_syn: float = 5.0, device: Any = "cpu", dtype: Any = None):
        import torch

        dtype = dtype or torch.float32
        self.size, self.dt = size, dt
        self.decays = lif.Decays.from_taus(tau_mem, tau_syn, tau_mem, dt)
        self.rho = adapt_decay(dt)
        self.device, self.dtype = torch.device(device), dtype
        self.reset()

    def reset(self, current: Any = 0.0) -> None:
        import torch

        zeros = torch.zeros(self.size, device=self.device, dtype=self.dtype)
        self.state = (zeros, zeros + current, zeros)

    @property
    def v(self) -> Any:
        return self.state[0]

    @property
    def threshold(self) -> Any:
        return lif.THETA + JUMP * self.state[2]

    def step(self, x: Any) -> Any:
        """Advance by one step with synaptic input ``x``; returns the neurons that spiked."""
        z, self.state = network_step(self.state, x, self.decays, self.rho,
                                     lambda u: (u > 0).to(self.dtype), lambda u: u)
        return z > 0
