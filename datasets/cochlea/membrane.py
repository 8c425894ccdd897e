"""Basilar membrane: a hydrodynamic (shallow-water) cochlea applied in the frequency domain.

The membrane is described by its position ``c`` (0 at the base, ``C = 3.5`` cm at the apex; the
channels sit at ``linspace(0, C, channels)``, so channel 0 is tuned to the highest frequencies).
Following Sieroka, Dosch and Rupp (2006), a local stiffness ``S(c) = c0 exp(-alpha c) - a`` and
damping ``R(c) = d_e sqrt(c0 M) exp(-alpha c / 2)`` give the membrane's impedance

    xi(w, c) = S(c) - M w^2 - i w R(c),

the local wavenumber ``k(w, c) = w sqrt(rho / (h xi))`` and, integrating the WKB phase along the
membrane in closed form with ``q(w) = sqrt(a + M w^2)``,

    G(w, c) = (2 / alpha) [ k(w, 0) - i w / (sqrt(h) q) log( (u(w, 0) - sqrt(xi(w, 0)))
                                                          / (exp(alpha c / 2) (u(w, c) - sqrt(xi(w, c)))) ) ],
    u(w, c) = i (2 q^2 + i w R(c)) / (2 q).

The pressure is ``P(w, c) = sqrt(G / k) H0(G)`` (``H0`` the Hankel function of the first kind) and
the membrane velocity, driven through the oval window's impedance

    Z(w) = sqrt(2 c0 / h) (i J0(kappa) + Y0(kappa)) / (J1(kappa) - i Y1(kappa)),
    kappa = (2 w / alpha) sqrt(2 / (h c0)),

is ``V(w, c) = (2 w / xi(w, c)) (P(w, c) / P(w, 0)) Z(w)``. Constants (cgs): a = 3500,
alpha = 3, rho = 1, C = 3.5, c0 = 1e9, d_e = 0.15, h = 0.1, M = 0.05.

A clip of ``N`` samples at rate ``fs`` is transformed once; its ``N // 2 + 1`` non-negative
frequency bins (taken on the grid ``2 pi linspace(1 Hz, fs/2, N // 2 + 1)``) are multiplied by
``V`` of each channel and brought back by an inverse transform of that half spectrum, whose real
part is the velocity at half the audio rate (``fs // 2``), as in Cramer et al. (2020).

``V`` is costly (a complex Hankel function per channel and frequency), so it is tabulated once per
(rate, channels) on a fine grid (:data:`TABLE_POINTS` frequencies) and interpolated linearly onto
each clip's grid; :func:`transfer` gives the exact values for checking the table. The inverse
transform has ``N // 2 + 1`` points, slow when that number has a large prime factor:
:func:`fast_length` gives the longest ``N'`` within 0.5 % below ``N`` for which it has none above
11 (else ``N``), and the chain keeps only the first ``N'`` samples of a clip.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numba
import numpy as np
import platformdirs
from scipy import fft, special

A_STIFF = 3500.0
ALPHA = 3.0
RHO = 1.0
LENGTH = 3.5
C0 = 1e9
D_E = 0.15
HEIGHT = 0.1
MASS = 0.05
R0 = D_E * np.sqrt(C0 * MASS)

#: Frequencies of the tabulated transfer function, from 1 Hz to the Nyquist frequency.
TABLE_POINTS = 8193


def positions(channels: int) -> np.ndarray:
    """Membrane position (cm from the base) of each channel."""
    return np.linspace(0.0, LENGTH, channels)


def _impedance(w: np.ndarray, c: np.ndarray) -> np.ndarray:
    return C0 * np.exp(-ALPHA * c) - A_STIFF - MASS * w**2 - 1j * w * R0 * np.exp(-ALPHA * c / 2.0)


def _wavenumber(w: np.ndarray, xi: np.ndarray) -> np.ndarray:
    return w * np.sqrt(RHO / (HEIGHT * xi))


def _phase(w: np.ndarray, c: np.ndarray, xi: np.ndarray, xi0: np.ndarray) -> np.ndarray:
    """G(w, c): the WKB phase integrated from the base to ``c``."""
    q = np.sqrt(A_STIFF + MASS * w**2)
    k0 = _wavenumber(w, xi0)

    def u(cc):
        return 1j * (2.0 * q**2 + 1j * w * R0 * np.exp(-ALPHA * cc / 2.0)) / (2.0 * q)

    ratio = (u(0.0) - np.sqrt(xi0)) / (np.exp(ALPHA * c / 2.0) * (u(c) - np.sqrt(xi)))
    return (2.0 / ALPHA) * (k0 - 1j * w / (np.sqrt(HEIGHT) * q) * np.log(ratio))


def _pressure(w: np.ndarray, c: np.ndarray) -> np.ndarray:
    xi = _impedance(w, c)
    g = _phase(w, c, xi, _impedance(w, np.zeros((1, 1))))
    return np.sqrt(g / _wavenumber(w, xi)) * special.hankel1(0, g)


def _window_impedance(w: np.ndarray) -> np.ndarray:
    kappa = 2.0 * w / ALPHA * np.sqrt(2.0 / (HEIGHT * C0))
    num = 1j * special.j0(kappa) + special.y0(kappa)
    den = special.j1(kappa) - 1j * special.y1(kappa)
    return np.sqrt(2.0 * C0 / HEIGHT) * num / den


def transfer(freqs_hz: np.ndarray, channels: int) -> np.ndarray:
    """Exact membrane velocity per unit input, (channels, len(freqs_hz)) complex."""
    w = 2.0 * np.pi * np.asarray(freqs_hz, dtype=np.float64)[None, :]
    c = positions(channels)[:, None]
    base = _pressure(w, np.zeros((1, 1)))
    with np.errstate(over="ignore", invalid="ignore"):
        v = 2.0 * w / _impedance(w, c) * _pressure(w, c) / base * _window_impedance(w)
    return np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)


@lru_cache(maxsize=4)
def transfer_table(rate: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in Hz, transfer) on the fine grid for one audio rate. Computing it takes
    seconds, so it is kept per process and on disk (:func:`table_file`)."""
    freqs = np.linspace(1.0, (rate // 2), TABLE_POINTS)
    path = table_file(rate, channels)
    try:
        table = np.load(path, allow_pickle=False)
        if table.shape == (channels, TABLE_POINTS) and table.dtype == np.complex128:
            return freqs, table
    except (OSError, ValueError):  # absent, unreadable or corrupt: compute it again
        pass
    table = transfer(freqs, channels)
    _save_quietly(path, table)
    return freqs, table


def table_file(rate: int, channels: int) -> Path:
    """Where the table of (rate, channels) is kept: the user's cache folder, under a name that
    includes a digest of this file, so that an edit of the membrane model recomputes it."""
    source = hashlib.md5(Path(__file__).read_bytes()).hexdigest()[:12]
    root = Path(platformdirs.user_cache_dir("snn-bench")) / "cochlea"
    return root / f"transfer-{rate}hz-{channels}ch-{TABLE_POINTS}-{source}.npy"


def _save_quietly(path: Path, table: np.ndarray) -> None:
    """Write atomically (parallel conversions may race); a folder that refuses it only costs
    the next process the computation."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
            np.save(f, table, allow_pickle=False)
        os.replace(f.name, path)
    except OSError:
        pass


def clip_frequencies(n_samples: int, rate: int) -> np.ndarray:
    """The frequency (Hz) assigned to each of a clip's ``n // 2 + 1`` half-spectrum bins."""
    return np.linspace(1.0, rate // 2, n_samples // 2 + 1)


def _interpolation(n_samples: int, rate: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(left table index, weight of the right neighbour) of each clip frequency."""
    grid_step = ((rate // 2) - 1.0) / (size - 1)
    pos = (clip_frequencies(n_samples, rate) - 1.0) / grid_step
    left = np.clip(np.floor(pos).astype(np.int64), 0, size - 2)
    return left, pos - left


def interpolated_transfer(n_samples: int, rate: int, channels: int) -> np.ndarray:
    """The tabulated transfer, linearly interpolated onto a clip's frequency grid."""
    _, table = transfer_table(rate, channels)
    left, frac = _interpolation(n_samples, rate, table.shape[1])
    return table[:, left] * (1.0 - frac[None, :]) + table[:, left + 1] * frac[None, :]


@numba.njit(cache=True)
def _filtered(table, left, frac, spectrum):
    """Interpolated transfer times the clip's spectrum, one pass, (channels, bins)."""
    channels, bins = table.shape[0], left.shape[0]
    out = np.empty((channels, bins), dtype=np.complex128)
    for ch in range(channels):
        for k in range(bins):
            i = left[k]
            out[ch, k] = (table[ch, i] + (table[ch, i + 1] - table[ch, i]) * frac[k]) * spectrum[k]
    return out


def _smooth(n: int) -> bool:
    for p in (2, 3, 5, 7, 11):
        while n % p == 0:
            n //= p
    return n == 1


def fast_length(n: int) -> int:
    """The longest clip length ``m`` in ``[n - n // 200, n]`` whose half-spectrum length
    ``m // 2 + 1`` has no prime factor above 11; ``n`` when there is none."""
    for m in range(n, n - n // 200 - 1, -1):
        if m > 1 and _smooth(m // 2 + 1):
            return m
    return n


def membrane_velocity(wave: np.ndarray, rate: int, channels: int,
                      exact: bool = False) -> tuple[np.ndarray, int]:
    """(channels, n // 2 + 1) velocity and its rate ``rate // 2``."""
    n = wave.shape[0]
    spectrum = np.fft.fft(wave)[: n // 2 + 1]
    if exact:
        filtered = transfer(clip_frequencies(n, rate), channels) * spectrum[None, :]
    else:
        _, table = transfer_table(rate, channels)
        left, frac = _interpolation(n, rate, table.shape[1])
        filtered = _filtered(table, left, frac, spectrum)
    return fft.ifft(filtered, axis=1, overwrite_x=True).real, rate // 2
