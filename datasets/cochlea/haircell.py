"""Inner hair cell: the Meddis transmitter-reservoir model (Meddis 1986, 1988; parameters as in
Sumner et al. 2002 and Cramer et al. 2020).

The membrane velocity ``s(t)`` of a channel opens the cell's permeability

    k(t) = g (s + A) / (s + A + B)   if s + A > 0, else 0,

and three transmitter pools evolve as

    dq/dt = y (M - q) [only while q < M] + x w - k q     (free pool)
    dc/dt = k q - (l + r) c                               (cleft)
    dw/dt = r c - x w                                     (reprocessing store)

each clipped at zero after a forward-Euler step of ``dt = 1 / fs``. The probability that a fibre
driven by the cell releases in one step is ``h c dt``. The pools start at the resting state
(s = 0): ``k0 = g A / (A + B)``, ``c0 = M y k0 / (l k0 + y (l + r))``, ``q0 = c0 (l + r) / k0``,
``w0 = c0 r / x``. Constants (per second): y 5.05, g 2000, l 2500, r 6580, x 66.3, A 5, B 300,
h 50000, M 1.
"""

from __future__ import annotations

import numba
import numpy as np

PARAMS = dict(y=5.05, g=2000.0, l=2500.0, r=6580.0, x=66.3, a=5.0, b=300.0, h=50000.0, m=1.0)


@numba.njit(cache=True)
def _meddis(velocity, fs, y, g, l, r, x, a, b, h, m):  # noqa: E741 (the model's own names)
    channels, n = velocity.shape
    dt = 1.0 / fs
    k0 = g * a / (a + b)
    out = np.empty((channels, n))
    for ch in range(channels):
        c = m * y * k0 / (l * k0 + y * (l + r))
        q = c * (l + r) / k0
        w = c * r / x
        for j in range(n):
            s = velocity[ch, j] + a
            k = g * dt * s / (s + b) if s > 0.0 else 0.0
            refill = y * dt * (m - q) if q < m else 0.0
            released = k * q
            back = x * dt * w
            q_new = q + refill - released + back
            c_new = c + released - (l + r) * dt * c
            w_new = w + r * dt * c - back
            q = q_new if q_new > 0.0 else 0.0
            c = c_new if c_new > 0.0 else 0.0
            w = w_new if w_new > 0.0 else 0.0
            out[ch, j] = c * h * dt
    return out


def release_probability(velocity: np.ndarray, fs: float) -> np.ndarray:
    """Per-step release probability (channels, n) for the membrane velocity (channels, n)."""
    p = PARAMS
    return _meddis(np.ascontiguousarray(velocity, dtype=np.float64), float(fs), p["y"], p["g"],
                   p["l"], p["r"], p["x"], p["a"], p["b"], p["h"], p["m"])
