"""The Hodgkin-Huxley model of the squid giant axon (Hodgkin & Huxley 1952), in the modern sign
convention (membrane potential V in mV, rest near -65 mV; time in ms; currents in uA/cm^2;
conductances in mS/cm^2; capacitance in uF/cm^2):

    C dV/dt = I - g_Na m^3 h (V - E_Na) - g_K n^4 (V - E_K) - g_L (V - E_L)
    dx/dt   = alpha_x(V) (1 - x) - beta_x(V) x,     x in {m, h, n}

    alpha_m = 0.1 (V + 40) / (1 - exp(-(V + 40) / 10))    beta_m = 4 exp(-(V + 65) / 18)
    alpha_h = 0.07 exp(-(V + 65) / 20)                    beta_h = 1 / (1 + exp(-(V + 35) / 10))
    alpha_n = 0.01 (V + 55) / (1 - exp(-(V + 55) / 10))   beta_n = 0.125 exp(-(V + 65) / 80)

with C = 1, g_Na = 120, g_K = 36, g_L = 0.3, E_Na = 50, E_K = -77, E_L = -54.387 (the 1952
values shifted by -65 mV so that rest is at -65 mV; 6.3 degrees C).

Integrator (exponential Euler, "Rush-Larsen"): the equations are stiff (the m gate's time
constant falls below 0.1 ms), but each is linear in its own variable once the others are held, so
every variable is advanced by its exact solution over one step dt with the others frozen:

    x[t+1] = x_inf + (x[t] - x_inf) exp(-dt (alpha_x + beta_x)),  x_inf = alpha_x / (alpha_x + beta_x)
    V[t+1] = V_inf + (V[t] - V_inf) exp(-dt g / C),
             g = g_Na m^3 h + g_K n^4 + g_L,  V_inf = (g_Na m^3 h E_Na + g_K n^4 E_K + g_L E_L + I) / g

gates first at V[t], then V with the new gates. This stays stable at any dt; accuracy sets the
step (0.025 ms by default; see tests/test_neurons.py for the comparison with 0.005 ms). A spike is
an upward crossing of 0 mV.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_DT_MS = 0.025
SPIKE_THRESHOLD_MV = 0.0


@dataclass(frozen=True)
class HHParams:
    c_m: float = 1.0
    g_na: float = 120.0
    g_k: float = 36.0
    g_l: float = 0.3
    e_na: float = 50.0
    e_k: float = -77.0
    e_l: float = -54.387
    v_rest: float = -65.0


def _ratio(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x / (1 - exp(-x / scale)), with its limit scale + x / 2 near x = 0."""
    safe = torch.where(x.abs() < 1e-4, torch.ones_like(x), x)
    return torch.where(x.abs() < 1e-4, scale + x / 2, safe / -torch.expm1(-safe / scale))


def rates(v: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(alpha, beta) of each gate at membrane potential ``v`` (mV), in 1/ms."""
    return {
        "m": (0.1 * _ratio(v + 40.0, 10.0), 4.0 * torch.exp(-(v + 65.0) / 18.0)),
        "h": (0.07 * torch.exp(-(v + 65.0) / 20.0), torch.sigmoid((v + 35.0) / 10.0)),
        "n": (0.01 * _ratio(v + 55.0, 10.0), 0.125 * torch.exp(-(v + 65.0) / 80.0)),
    }


class HodgkinHuxley:
    """``size`` independent HH neurons (gates ``m``, ``h``, ``n``); ``step(current)`` advances all of them by ``dt`` ms."""

    default_dt = DEFAULT_DT_MS

    def __init__(self, size: int, dt: float = DEFAULT_DT_MS, params: HHParams = HHParams(),
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.size, self.dt, self.p = size, dt, params
        self.device, self.dtype = torch.device(device), dtype
        self.reset()

    def reset(self) -> None:
        """Every neuron at rest: V = v_rest, each gate at its steady state there."""
        self.v = torch.full((self.size,), self.p.v_rest, device=self.device, dtype=self.dtype)
        for name, (alpha, beta) in rates(self.v).items():
            setattr(self, name, alpha / (alpha + beta))

    def step(self, current: torch.Tensor | float) -> torch.Tensor:
        """Advance by dt with injected current (uA/cm^2); returns the neurons that spiked."""
        p, dt = self.p, self.dt
        for name, (alpha, beta) in rates(self.v).items():
            total = alpha + beta
            gate = getattr(self, name)
            x_inf = alpha / total
            setattr(self, name, x_inf + (gate - x_inf) * torch.exp(-dt * total))
        g_na = p.g_na * self.m ** 3 * self.h
        g_k = p.g_k * self.n ** 4
        g = g_na + g_k + p.g_l
        v_inf = (g_na * p.e_na + g_k * p.e_k + p.g_l * p.e_l + current) / g
        before = self.v
        self.v = v_inf + (before - v_inf) * torch.exp(-dt / p.c_m * g)
        return (before < SPIKE_THRESHOLD_MV) & (self.v >= SPIKE_THRESHOLD_MV)
