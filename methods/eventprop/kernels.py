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
    active = np.empty(N, np.int64)  # the neurons that fired at the step before
    one, zero = d.dtype.type(1.0), d.dtype.type(0.0)
    for k in range(k_len):
        n_step = 0
        for b in range(B):
            row = d[k, b]
            ip = i_prev[b] if k == 0 else d[k - 1, b]
            zp = z_prev[b] if k == 0 else z[k - 1, b]
            for n in range(N):
                row[n] = row[n] + beta * ip[n]
            if has_rec:
                n_active = 0
                for m in range(N):  # without a branch: it would be mispredicted often
                    active[n_active] = m
                    n_active += zp[m]
                _add_rows(row, w_rec, active, n_active)
            vb, zb, zfb, cb = v[b], z[k, b], zf[k, b], counts[b]
            for n in range(N):  # branch-free, so that it vectorises
                u = vb[n] + w_mem * (row[n] - vb[n])
                fired = u > theta
                zb[n] = fired
                vb[n] = zero if fired else u
                zfb[n] = one if fired else zero
                cb[n] += one if fired else zero
            for n in range(N):  # the spikes in order: each slot is written, kept if it fired
                flat[n_pos] = b * N + n
                current[n_pos] = row[n]
                n_pos += zb[n]
                n_step += zb[n]
        step_counts[k] = n_step
    return n_pos


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot(a, b):  # pragma: no cover
    """Sum_m a[m] b[m], summed in SIMD order (a reassociated sum: equal to rounding)."""
    acc = a.dtype.type(0.0)
    for m in range(a.shape[0]):
        acc += a[m] * b[m]
    return acc


@njit(cache=True, nogil=True)
def _add_row(out_row, src_row):  # pragma: no cover
    for m in range(out_row.shape[0]):
        out_row[m] += src_row[m]


# The row sums below add four source rows per pass over the target row: the target is read and
# written once per four rows instead of once per row, which is where the time went (a memory
# bound loop). The sum's order changes with it, so results agree with a row-at-a-time sum to
# rounding.

@njit(cache=True, nogil=True)
def _add_rows(out_row, src, idx, n_idx):  # pragma: no cover
    """out_row += src[idx[0]] + ... + src[idx[n_idx - 1]]."""
    j = 0
    while j + 4 <= n_idx:
        r0, r1, r2, r3 = src[idx[j]], src[idx[j + 1]], src[idx[j + 2]], src[idx[j + 3]]
        for m in range(out_row.shape[0]):
            out_row[m] += (r0[m] + r1[m]) + (r2[m] + r3[m])
        j += 4
    while j < n_idx:
        _add_row(out_row, src[idx[j]])
        j += 1


@njit(cache=True, nogil=True)
def add_weighted_rows(out, out_idx, src, src_idx, weight):  # pragma: no cover
    """out[out_idx[j]] += weight[j] * src[src_idx[j]] for every j: a sparse product without
    building its matrix (the input drive X W_in, and X^T Lambda_I for dL/dW_in). Runs of equal
    out_idx (the events of one step and sample, in the drive) are summed four rows at a time."""
    n_ev = out_idx.shape[0]
    j = 0
    while j < n_ev:
        o = out[out_idx[j]]
        end = j + 1
        while end < n_ev and out_idx[end] == out_idx[j]:
            end += 1
        while j + 4 <= end:
            r0, r1 = src[src_idx[j]], src[src_idx[j + 1]]
            r2, r3 = src[src_idx[j + 2]], src[src_idx[j + 3]]
            c0, c1, c2, c3 = weight[j], weight[j + 1], weight[j + 2], weight[j + 3]
            for m in range(o.shape[0]):
                o[m] += (c0 * r0[m] + c1 * r1[m]) + (c2 * r2[m] + c3 * r3[m])
            j += 4
        while j < end:
            r, c = src[src_idx[j]], weight[j]
            for m in range(o.shape[0]):
                o[m] += c * r[m]
            j += 1
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
    its lambda_I[t+1] row to g_rec (dL/dW_rec), read where the shift term reads it. The shift
    term's difference row is formed again whenever b changes: once per sample and step, as a
    step's spikes come in order of b * N + n (the order forward_block stores them in)."""
    B, N = lam_u.shape
    diff = np.empty(N, lam_u.dtype)  # (lambda_I[t+2] - lambda_I[t+1])[b], once per sample and step
    for k in range(k_len - 1, -1, -1):
        for b in range(B):
            for n in range(N):
                lam_u[b, n] *= alpha
        diff_b = -1
        for j in range(edges[k], edges[k + 1]):
            f = flat[j]
            b, n = f // N, f % N
            denom = max(current[j] - theta, min_slope)
            coef_g = neg_s_inv / denom
            val = direct[j] * coef_g + lam_u[b, n] * (current[j] / denom)
            if has_reg:
                val += s * reg[n]
            if has_rec:
                if b != diff_b:  # the first spike of sample b at this step
                    hi, lo = lam_i[k + 2, b], lam_i[k + 1, b]
                    for m in range(N):
                        diff[m] = hi[m] - lo[m]
                    diff_b = b
                val += _dot(w_rec[n], diff) * coef_g
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
