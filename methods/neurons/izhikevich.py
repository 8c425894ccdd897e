"""The Izhikevich (2003) neuron: two variables, four parameters (a, b, c, d), v in mV, t in ms:

    dv/dt = 0.04 v^2 + 5 v + 140 - u + I
    du/dt = a (b v - u)
    if v >= 30 mV:  v <- c,  u <- u + d

Integration as in the published network code: per step of dt (1 ms there and in the network
here; 0.25 ms in the gallery, where the intervals converge), v takes two Euler steps of dt / 2,
then u one Euler step of dt with the new v; the spike test and the reset follow. Each neuron
starts at its resting point, the stable fixed point of the equations at I = 0:
v* = (-(5 - b) - sqrt((5 - b)^2 - 22.4)) / 0.08, u* = b v*.

The parameter sets of the published cortical and thalamic types (Izhikevich 2003, Fig. 2;
Izhikevich 2004): :data:`PARAMETER_SETS`.

Hidden layer of the shared network (``--set neuron=izhikevich``): the synaptic current I[t] of
:mod:`methods.lif` (beta I[t-1] + x[t] W_in + z[t-1] W_rec, dimensionless) drives the RS neuron
as ``I_izh = GAIN I[t]``, GAIN = 4 (a constant I_izh of about 4 starts tonic RS firing,
as I = 1 does the LIF's); the spike is z[t] = H((v - 30) / V_SCALE) with the backend's
surrogate gradient, V_SCALE = 100 mV, and the reset (v <- c, u <- u + d where z = 1) is not
differentiated, as the LIF's reset is not. Nor is v in u's update (u <- u + dt a (b sg(v) - u),
sg = stop-gradient): between spikes v is unstable (dv'/dv = 0.08 v + 5 > 0 above -62.5 mV), and
through u that amplification compounds from one inter-spike interval to the next; with v
differentiated there, the loss gradient of W_in on 16 samples of the embedded set (256 hidden,
seed-0 weights) had norm 0.09 at T = 100 steps, 1.9e3 at 300 and 1.8e15 at 1000, and with it
detached 0.05, 0.27 and 0.24. States start at the resting point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

DEFAULT_DT_MS = 1.0
V_PEAK = 30.0
SUBSTEPS = 2
GAIN = 4.0
V_SCALE = 100.0


@dataclass(frozen=True)
class IzhikevichParams:
    a: float
    b: float
    c: float
    d: float

    def resting_state(self) -> tuple[float, float]:
        """(v*, u*): the stable fixed point at I = 0."""
        v = (-(5.0 - self.b) - math.sqrt((5.0 - self.b) ** 2 - 22.4)) / 0.08
        return v, self.b * v


#: published parameter sets (Izhikevich 2003, Fig. 2)
PARAMETER_SETS: dict[str, IzhikevichParams] = {
    "RS": IzhikevichParams(0.02, 0.2, -65.0, 8.0),    # regular spiking
    "IB": IzhikevichParams(0.02, 0.2, -55.0, 4.0),    # intrinsically bursting
    "CH": IzhikevichParams(0.02, 0.2, -50.0, 2.0),    # chattering
    "FS": IzhikevichParams(0.1, 0.2, -65.0, 2.0),     # fast spiking
    "LTS": IzhikevichParams(0.02, 0.25, -65.0, 2.0),  # low-threshold spiking
    "TC": IzhikevichParams(0.02, 0.25, -65.0, 0.05),  # thalamo-cortical
    "RZ": IzhikevichParams(0.1, 0.26, -65.0, 2.0),    # resonator
}

#: the hidden layer's parameter set
NETWORK_PARAMS = PARAMETER_SETS["RS"]


def integrate(v: Any, u: Any, current: Any, a: Any, b: Any, dt: float,
              detach: Callable[[Any], Any] = lambda v: v) -> tuple[Any, Any]:
    """One step of the sub-threshold equations (two half-steps of v, then u), on any array type
    with arithmetic operators (torch tensors, jax arrays, floats). ``detach`` is applied to v in
    u's update (the network passes its stop-gradient; see the module docstring)."""
    h = dt / SUBSTEPS
    for _ in range(SUBSTEPS):
        v = v + h * (0.04 * v * v + 5.0 * v + 140.0 - u + current)
    u = u + dt * a * (b * detach(v) - u)
    return v, u


def network_step(state: tuple[Any, Any, Any], current: Any, beta: float,
                 spike: Callable[[Any], Any], detach: Callable[[Any], Any],
                 dt: float = DEFAULT_DT_MS, params: IzhikevichParams = NETWORK_PARAMS,
                 ) -> tuple[Any, tuple[Any, Any, Any]]:
    """The hidden layer's step (see module docstring) on torch or jax arrays. ``state`` = (v, u, I);
    ``current`` is the step's synaptic input x[t] W_in + z[t-1] W_rec; ``spike`` is the backend's
    surrogate Heaviside, ``detach`` its stop-gradient. Returns (z, new state)."""
    v, u, i = state
    i = beta * i + current
    v, u = integrate(v, u, GAIN * i, params.a, params.b, dt, detach)
    z = spike((v - V_PEAK) / V_SCALE)
    fired = detach(z)
    v = v * (1.0 - fired) + params.c * fired
    u = u + params.d * fired
    return z, (v, u, i)


def network_initial_state(zeros: Any, params: IzhikevichParams = NETWORK_PARAMS):
    """(v, u, I) at rest, shaped like ``zeros``."""
    v_rest, u_rest = params.resting_state()
    return zeros + v_rest, zeros + u_rest, zeros


class Izhikevich:
    """Neurons with one parameter set each (``sets``: names of :data:`PARAMETER_SETS`), in torch;
    ``step(current)`` advances all of them by ``dt`` ms and returns the ones that spiked."""

    default_dt = DEFAULT_DT_MS

    def __init__(self, sets: list[str], dt: float = DEFAULT_DT_MS, device: Any = "cpu",
                 dtype: Any = None):
        import torch

        dtype = dtype or torch.float32
        self.dt, self.sets = dt, list(sets)
        params = [PARAMETER_SETS[name] for name in self.sets]
        column = lambda values: torch.tensor(values, device=device, dtype=dtype)  # noqa: E731
        self.a, self.b = column([p.a for p in params]), column([p.b for p in params])
        self.c, self.d = column([p.c for p in params]), column([p.d for p in params])
        self._rest = [column([p.resting_state()[k] for p in params]) for k in (0, 1)]
        self.reset()

    def reset(self) -> None:
        self.v, self.u = self._rest[0].clone(), self._rest[1].clone()

    def step(self, current: Any) -> Any:
        import torch

        v, u = integrate(self.v, self.u, current, self.a, self.b, self.dt)
        spiked = v >= V_PEAK
        self.v = torch.where(spiked, self.c, v)
        self.u = torch.where(spiked, u + self.d, u)
        return spiked
