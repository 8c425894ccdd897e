"""Auditory-nerve fibres and bushy cells (Cramer et al. 2020).

Each channel drives ``n_fibres`` (40) fibres. A fibre spikes in step ``j`` with the hair cell's
release probability ``p_j``, independently across steps, except within ``R = ceil(t_ref fs)``
steps after its last spike (t_ref = 1 ms). Instead of one draw per fibre and step, spikes are drawn
from the cumulative hazard ``H_j = sum_{i < j} -log(1 - p_i)``: from the first step ``s`` a fibre
may fire again, its next spike is the first step ``j >= s`` with ``H_{j+1} - H_s >= E``,
``E ~ Exp(1)``. As ``P(no spike in s..j) = prod (1 - p_i) = exp(-(H_{j+1} - H_s))``, this is the
same process in distribution, at a cost per spike (a binary search) rather than per step.

The bushy cell sums its fibres' spikes ``n_j`` into one synaptic current and a leaky membrane,
stepped once per sample (dt = 1 / fs):

    I_j = exp(-dt / tau_syn) I_{j-1} + n_j
    v_j = exp(-dt / tau_mem) v_{j-1} + (W / n_fibres) dt I_j,   clipped at 1,

with tau_mem 1 ms, tau_syn 0.5 ms, W = 13000. A membrane at 1 fires: the spike is stamped at that
step, the membrane is set to 0 and held there (not integrating, while the current still runs) for
the ``R`` steps that follow the one where the spike is seen.
"""

from __future__ import annotations

import math

import numba
import numpy as np

N_FIBRES = 40
TAU_MEM = 1e-3
TAU_SYN = 5e-4
T_REF = 1e-3
WEIGHT = 13e3
#: Hazard of a step whose release probability reaches 1 (the fibre fires for certain).
MAX_HAZARD = 50.0


@numba.njit(cache=True)
def _fibre_counts(prob, refractory, n_fibres, seed):
    channels, n = prob.shape
    np.random.seed(seed)
    counts = np.zeros((channels, n), dtype=np.int32)
    hazard = np.empty(n + 1)
    for ch in range(channels):
        hazard[0] = 0.0
        for j in range(n):
            p = prob[ch, j]
            step = -math.log1p(-p) if p < 1.0 else MAX_HAZARD
            hazard[j + 1] = hazard[j] + (step if step < MAX_HAZARD else MAX_HAZARD)
        for _ in range(n_fibres):
            start = 0
            while start < n:
                target = hazard[start] + np.random.exponential(1.0)
                j = np.searchsorted(hazard, target) - 1  # first j with hazard[j + 1] >= target
                if j >= n:
                    break
                counts[ch, j] += 1
                start = j + refractory
    return counts


@numba.njit(cache=True)
def _bushy(counts, fs, tau_mem, tau_syn, weight, refractory):
    channels, n = counts.shape
    dt = 1.0 / fs
    decay_mem = math.exp(-dt / tau_mem)
    decay_syn = math.exp(-dt / tau_syn)
    gain = weight * dt
    times = []
    units = []
    for ch in range(channels):
        current = 0.0
        v = 0.0
        resume = 0
        for j in range(n):
            current = current * decay_syn + counts[ch, j]
            if j < resume:
                continue
            if v >= 1.0:
                times.append(j - 1)
                units.append(ch)
                v = 0.0
                resume = j + refractory
                continue
            v = v * decay_mem + gain * current
            if v > 1.0:
                v = 1.0
    return np.array(times, dtype=np.int64), np.array(units, dtype=np.int64)


def refractory_steps(fs: float) -> int:
    return int(math.ceil(T_REF * fs - 1e-9))


def bushy_spikes(prob: np.ndarray, fs: float, seed: int,
                 n_fibres: int = N_FIBRES) -> tuple[np.ndarray, np.ndarray]:
    """(spike steps, channels) of the bushy cells, sorted by step then channel."""
    refractory = refractory_steps(fs)
    counts = _fibre_counts(np.ascontiguousarray(prob, dtype=np.float64), refractory,
                           n_fibres, int(seed) % (2**32))
    steps, units = _bushy(counts, float(fs), TAU_MEM, TAU_SYN, WEIGHT / n_fibres, refractory)
    order = np.lexsort((units, steps))
    return steps[order], units[order]
