"""Running the single-neuron models of :mod:`methods.neurons` (torch): traces under a given
input, firing rates under constant inputs, and the wall-clock cost of a step.

Every model object has ``dt`` (ms), ``reset()``, ``v`` (membrane, per neuron) and
``step(input) -> spiked`` (bool per neuron); the input is a current (HH, Izhikevich) or the
synaptic input x (LIF, adaptive LIF).
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

import torch


class Neuron(Protocol):
    dt: float
    v: torch.Tensor

    def reset(self) -> None: ...

    def step(self, current: torch.Tensor | float) -> torch.Tensor: ...


def run(model: Neuron, stimulus: Callable[[float], torch.Tensor | float], duration_ms: float,
        record_every: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Simulate from the model's current state. ``stimulus(t_ms)`` gives the input of the step
    starting at t. Returns (times (K,) ms, membrane (K, N) every ``record_every`` steps, spike
    times as a (S, 2) tensor of (step, neuron))."""
    steps = int(round(duration_ms / model.dt))
    times, traces, spikes = [], [], []
    for k in range(steps):
        spiked = model.step(stimulus(k * model.dt))
        if k % record_every == 0:
            times.append((k + 1) * model.dt)
            traces.append(model.v.clone())
        spikes.append(spiked)
    fired = torch.nonzero(torch.stack(spikes)) if spikes else torch.zeros(0, 2, dtype=torch.long)
    return torch.tensor(times), torch.stack(traces), fired


def spike_times(fired: torch.Tensor, neuron: int, dt: float) -> list[float]:
    """Spike times (ms, end of the step) of one neuron from :func:`run`'s spike tensor."""
    return [(int(k) + 1) * dt for k in fired[fired[:, 1] == neuron, 0]]


def firing_rates(model: Neuron, inputs: torch.Tensor, duration_ms: float,
                 skip_ms: float) -> torch.Tensor:
    """Rate (Hz) of each neuron under its own constant input (``inputs``, one per neuron),
    counted after ``skip_ms`` of transient."""
    counts = torch.zeros_like(inputs)
    steps, skip = int(round(duration_ms / model.dt)), int(round(skip_ms / model.dt))
    for k in range(steps):
        spiked = model.step(inputs)
        if k >= skip:
            counts += spiked
    return counts * 1000.0 / ((steps - skip) * model.dt)


def step_cost_ns(model: Neuron, current: torch.Tensor | float, steps: int) -> float:
    """Wall-clock nanoseconds per neuron-step of ``steps`` steps (after the caller's warm-up)."""
    size = int(model.v.numel())
    sync = torch.cuda.synchronize if model.v.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        model.step(current)
    sync()
    return (time.perf_counter() - start) * 1e9 / (steps * size)
