"""Fused CPU kernels (numba) for the per-step loops of grid mode: one call runs a whole block
of steps, so the cost per step is the arithmetic on B x N numbers instead of a dozen small
torch calls. They compute what :mod:`methods.eventprop.grid`'s torch loops compute (the forward
step of :func:`methods.lif_torch.lif_step`, the backward recursion of grid.py's docstring, and
the sparse products X W_in, X^T Lambda_I and Z^T Lambda_I[+1], here a row added per input event
or spike with no matrix built), in the same float type, equal to rounding
(tests/test_eventprop_grid.py checks spikes, outputs and gradients against the torch loops, and
tests/test_eventprop_oracle.py both against the oracle). Without numba, or off the CPU, grid.py
uses its torch loops.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
    AVAILABLE = True
except ImportError:  # the torch loops serve
    AVAILABLE = False

    def njit(*args, **kwargs):
        return lambda f: f


@njit(cache=True, nogil=True)
def forward_block(d, v, i_prev, z_prev, w_rec, has_rec, w_mem, beta, theta, z, zf, counts,
                  step_counts, flat, current):  # pragma: no cover
    """Steps a block in place: d (k, B, N) holds the input drive and receives I; v (B, N) the
    membrane; i_prev, z_prev (B, N) the step before the block; z (k, B, N) bool and zf (same,
    0/1 floats) receive the spikes, counts (B, N) adds them up, step_counts (k,) counts them
    per step, and flat and current receive each spike's index b * N + n and its I, in step
    order; returns how many. w_mem = 1 - alpha; the recurrent input adds the rows of W_rec of
    the neurons that fired at the step before."""
    k_len, B, N = d.shape
    n_pos = 0
    for k in range(k_len):
        n_step = 0
        for b in range(B):
            row = d[k, b]
            ip = i_prev[b] if k == 0 else d[k - 1, b]
            zp = z_prev[b] if k == 0 else z[k - 1, b]
            for n in range(N):
                row[n] = row[n] + beta * ip[n]
            if has_rec:
                for m in range(N):
                    if zp[m]:
                        wm = w_rec[m]
                        for n in range(N):
                            row[n] += wm[n]
            vb, zb, zfb = v[b], z[k, b], zf[k, b]
            for n in range(N):
                u = vb[n] + w_mem * (row[n] - vb[n])
                fired = u > theta
                zb[n] = fired
                if fired:
                    vb[n] = 0.0
                    zfb[n] = 1.0
                    counts[b, n] += 1.0
                    flat[n_pos] = b * N + n
                    current[n_pos] = row[n]
                    n_pos += 1
                    n_step += 1
                else:
                    vb[n] = u
                    zfb[n] = 0.0
        step_counts[k] = n_step
    return n_pos


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _shift_term(w_row, hi, lo):  # pragma: no cover
    """Sum_m W_rec[n,m] (lambda_I[t+2] - lambda_I[t+1])[b,m], summed in SIMD order (a
    reassociated sum: equal to rounding)."""
    acc = w_row.dtype.type(0.0)
    for m in range(w_row.shape[0]):
        acc += w_row[m] * (hi[m] - lo[m])
    return acc


@njit(cache=True, nogil=True)
def _add_row(out_row, src_row):  # pragma: no cover
    for m in range(out_row.shape[0]):
        out_row[m] += src_row[m]


@njit(cache=True, nogil=True)
def add_weighted_rows(out, out_idx, src, src_idx, weight):  # pragma: no cover
    """out[out_idx[j]] += weight[j] * src[src_idx[j]] for every j, in order: a sparse product
    without building its matrix (the input drive X W_in, and X^T Lambda_I for dL/dW_in)."""
    for j in range(out_idx.shape[0]):
        o, r, w = out[out_idx[j]], src[src_idx[j]], weight[j]
        for m in range(o.shape[0]):
            o[m] += w * r[m]
    return 0


@njit(cache=True, nogil=True)
def backward_block(lam_u, lam_i, k_len, edges, flat, current, direct, reg, has_reg, theta,
                   min_slope, s, neg_s_inv, w_rec, has_rec, alpha, w_syn, clip,
                   g_rec):  # pragma: no cover
    """The adjoint over a block, backward in place: lam_u (B, N) (scaled by s, as in grid.py),
    lam_i (K + 2, B, N) with slot k = step c0 + k; the spikes of step k are
    flat[edges[k]:edges[k + 1]] (b * N + n), with their current I and the loss's direct term.
    Each spike's jump coefficients are grid.py's: denominator max(I - theta, min_slope),
    -s / ((1 - alpha) denominator) on the shift and loss terms, I / denominator on lambda_V,
    plus s reg[n] (the regulariser). w_syn = 1 - beta. With recurrence, each spike also adds
    its lambda_I[t+1] row to g_rec (dL/dW_rec), read where the shift term reads it."""
    B, N = lam_u.shape
    for k in range(k_len - 1, -1, -1):
        for b in range(B):
            for n in range(N):
                lam_u[b, n] *= alpha
        for j in range(edges[k], edges[k + 1]):
            f = flat[j]
            b, n = f // N, f % N
            denom = max(current[j] - theta, min_slope)
            coef_g = neg_s_inv / denom
            val = direct[j] * coef_g + lam_u[b, n] * (current[j] / denom)
            if has_reg:
                val += s * reg[n]
            if has_rec:
                val += _shift_term(w_rec[n], lam_i[k + 2, b], lam_i[k + 1, b]) * coef_g
                _add_row(g_rec[n], lam_i[k + 1, b])
            if clip > 0:
                val = min(max(val, -clip), clip)
            lam_u[b, n] = val
        for b in range(B):
            nxt, cur, lu = lam_i[k + 1, b], lam_i[k, b], lam_u[b]
            for n in range(N):
                cur[n] = nxt[n] + w_syn * (lu[n] - nxt[n])
    return 0


def as_scalar(value: float, dtype: np.dtype):
    """A Python float in the arrays' float type, so the kernel's arithmetic stays in it."""
    return dtype.type(value)
