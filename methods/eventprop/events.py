"""Input events handed out as per-block sparse matrices, and the sparse spike matrices of the
gradient sums: the input is never densified, so memory does not grow with T through it."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from methods.api import Batch
from methods.torch_common import sorted_events


class EventBlocks:
    """The batch's input events, handed out ``chunk`` steps at a time as a CSR matrix X of shape
    (k * B, n_in) whose row k' * B + b holds sample b's input at step c0 + k'."""

    def __init__(self, batch: Batch, chunk: int, device: torch.device, dtype: torch.dtype):
        self.step, self.sample, self.unit, self.count = sorted_events(batch, "eventprop")
        self.B, self.T, self.n_in = batch.size, batch.n_steps, batch.n_in
        self.device, self.dtype = device, dtype
        bounds = np.arange(0, self.T + chunk, chunk).clip(max=self.T)
        self.edges = np.searchsorted(self.step, bounds, side="left")
        self.chunk = chunk

    def per_sample(self) -> np.ndarray:
        return np.bincount(self.sample, weights=self.count, minlength=self.B).astype(np.float64)

    def _slice(self, c0: int, k_len: int):
        i = c0 // self.chunk
        e0, e1 = int(self.edges[i]), int(self.edges[i + 1])
        if e1 == e0:
            return None
        rows = (self.step[e0:e1] - c0) * self.B + self.sample[e0:e1]
        return rows, self.unit[e0:e1], self.count[e0:e1]

    def rows(self, c0: int, k_len: int, dtype: np.dtype):
        """The events of steps c0 .. c0 + k_len - 1 as (row k' * B + b, unit, count in
        ``dtype``) arrays in their stored order, or None without events (the fused kernels'
        form of X)."""
        part = self._slice(c0, k_len)
        if part is None:
            return None
        rows, units, counts = part
        return rows, units, counts.astype(dtype, copy=False)

    def _tensor(self, crow, cols, vals, size):
        dev = self.device
        return csr(torch.from_numpy(crow).to(dev),
                    torch.from_numpy(np.ascontiguousarray(cols)).to(dev),
                    torch.from_numpy(np.ascontiguousarray(vals)).to(dev, self.dtype), size)

    def block(self, c0: int, k_len: int):
        """CSR X (k_len * B, n_in) of steps c0 .. c0 + k_len - 1, or None without events."""
        part = self._slice(c0, k_len)
        if part is None:
            return None
        rows, cols, vals = part
        if np.any(rows[1:] < rows[:-1]):
            order = np.argsort(rows, kind="stable")
            rows, cols, vals = rows[order], cols[order], vals[order]
        n_rows = k_len * self.B
        crow = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=crow[1:])
        return self._tensor(crow, cols, vals, (n_rows, self.n_in))

    def block_t(self, c0: int, k_len: int):
        """The transpose X^T (n_in, k_len * B) as CSR, for the input-weight gradient."""
        part = self._slice(c0, k_len)
        if part is None:
            return None
        rows, cols, vals = part
        key = cols.astype(np.int16) if self.n_in < 2**15 else cols  # int16: radix sort
        order = np.argsort(key, kind="stable")
        crow = np.zeros(self.n_in + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=self.n_in), out=crow[1:])
        return self._tensor(crow, rows[order], vals[order], (self.n_in, k_len * self.B))


def csr(crow, cols, vals, size):
    with warnings.catch_warnings():  # "CSR support is in beta": the products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, size, check_invariants=False)


def stable_order(keys: torch.Tensor, n_keys: int) -> torch.Tensor:
    """Stable argsort of small non-negative integer keys (a radix sort on the CPU)."""
    if keys.device.type == "cpu" and n_keys < 2**15:
        order = np.argsort(keys.numpy().astype(np.int16), kind="stable")
        return torch.from_numpy(order)
    return torch.sort(keys, stable=True).indices


def spike_matrix_t(rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int,
                    dtype: torch.dtype):
    """The transpose (n_cols, n_rows) of the 0/1 matrix with ones at (rows, cols), as CSR."""
    order = stable_order(cols, n_cols)
    crow = torch.zeros(n_cols + 1, dtype=torch.int64, device=rows.device)
    torch.cumsum(torch.bincount(cols, minlength=n_cols), 0, out=crow[1:])
    vals = torch.ones(rows.numel(), dtype=dtype, device=rows.device)
    return csr(crow, rows[order], vals, (n_cols, n_rows))
