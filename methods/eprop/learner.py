"""e-prop's eligibility traces and accumulated weight updates, in the exact block form.

Network, notation, the output filter F and the pseudo-derivative psi: :mod:`methods.eprop.network`;
the learning signal L and the output error err: :mod:`methods.eprop.adapter`.

Eligibility (the reset is not differentiated, as in Bellec's LIF, which keeps it factorised;
presynaptic activity p_i[t] = x_i[t] for W_in, z_i[t-1] for W_rec):
    eps_i[t] = du[t]/dW_ji along the neuron's own state: q_i = beta q_i + p_i,
               eps_i = alpha eps_i + (1 - alpha) q_i           (one vector per presynaptic i)
    LIF:  e_ji[t] = psi_j[t] eps_i[t]
    ALIF: e_ji[t] = psi_j[t] (eps_i[t] - beta_a epsa_ji[t]),
          epsa_ji[t] = psi_j[t-1] eps_i[t-1] + (rho - psi_j[t-1] beta_a) epsa_ji[t-1]
    ebar = F(e)                                                 (filtered with the readout's kappa)

Updates, summed over the batch's samples b and steps t:
    dW_ji    = sum_b sum_t L_j[t] ebar_ji[t]       (input and recurrent weights)
    dW_out   = sum_b sum_t zf_j[t] err_k[t]        (the exact output gradient)

Block form (exact, not an approximation): the recursion ebar[t] = F(ebar[t-1], e[t]) is evaluated
``chunk`` steps at a time. A block keeps its steps' factors (psi, eps, L); its own terms are one
matrix product eps^T (psi * Lf), Lf being L filtered backward by F inside the block; the filter state
carried to the next block, S (B, n_pre, m, N) with m = 1 (2 with the output synapse) filter states,
gets the block's e with one matrix product per sample, and the carried S meets the block's L in one
elementwise pass. Memory: O(B n_pre N m + chunk B (n_pre + N)) with n_pre = n_in + N, independent of
T; the work equals the per-step recursion's, done by BLAS. The ALIF term epsa is not factorised and
is stepped elementwise, O(B n_pre N) per step: slow, off by default.

Output filter F as a linear state-space system (:class:`OutputFilter`):
s[t] = A s[t-1] + b e[t], out = c . s[t], with m = len(b) filter states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from methods import lif
from methods.eprop.hparams import EpropHparams


@dataclass(frozen=True)
class OutputFilter:
    """F as the state-space system (A, b, c) of the module docstring."""

    A: np.ndarray  # (m, m), lower triangular
    b: np.ndarray  # (m,)
    c: np.ndarray  # (m,)

    @classmethod
    def of(cls, decays: lif.Decays, output_synapse: bool) -> "OutputFilter":
        ao, beta = decays.alpha_out, decays.beta
        if not output_synapse:
            return cls(np.array([[ao]]), np.array([1 - ao]), np.array([1.0]))
        A = np.array([[beta, 0.0], [(1 - ao) * beta, ao]])
        return cls(A, np.array([1.0, 1 - ao]), np.array([0.0, 1.0]))

    @property
    def m(self) -> int:
        return len(self.b)

    def powers(self, n: int) -> list[np.ndarray]:
        out = [np.eye(self.m)]
        for _ in range(n):
            out.append(self.A @ out[-1])
        return out

    def block_tables(self, n: int) -> dict[str, np.ndarray]:
        """Coefficients for a block of n steps (see the module docstring).

        H (n, n): H[s, t] = c A^(t-s) b for t >= s (backward filter of L within the block);
        u (m, n): u[:, k] = (c A^(k+1)) (carried state seen at step k);
        v (m, n): v[:, s] = A^(n-1-s) b (step s's contribution to the carried state);
        An (m, m): A^n.
        """
        P = self.powers(n)
        h = np.array([self.c @ P[d] @ self.b for d in range(n)])
        H = np.zeros((n, n))
        for s in range(n):
            H[s, s:] = h[: n - s]
        u = np.stack([self.c @ P[k + 1] for k in range(n)], axis=1)
        v = np.stack([P[n - 1 - s] @ self.b for s in range(n)], axis=1)
        return {"H": H, "u": u, "v": v, "An": P[n]}


class Learner:
    """Eligibility traces and weight updates of one batch, in the exact block form."""

    def __init__(self, batch: int, n_in: int, hidden: int, n_out: int, recurrent: bool, chunk: int,
                 filt: OutputFilter, dec: lif.Decays, hp: EpropHparams, like: torch.Tensor):
        self.n_in, self.filt, self.dec, self.hp = n_in, filt, dec, hp
        self.n_pre = n_in + (hidden if recurrent else 0)
        new = like.new_zeros
        self.q = new(batch, self.n_pre)  # synaptic filter of presynaptic activity
        self.eps = new(batch, self.n_pre)  # eps_i[t-1]
        self.epsb = new(chunk, batch, self.n_pre)  # eps of the block's steps
        self.S = new(batch, self.n_pre, filt.m, hidden)  # carried filter state of e (pre, post)
        self.grad = new(self.n_pre, hidden)
        self.grad_out = new(hidden, n_out)
        self.rho = math.exp(-hp.dt_ms / hp.tau_adapt)
        if hp.alif:
            self.epsa = new(batch, self.n_pre, hidden)
            self.Sa = new(batch, self.n_pre, filt.m, hidden)
            self.prev_psi = new(batch, hidden)
            self.prev_eps = new(batch, self.n_pre)
        self.tables: dict[int, dict[str, torch.Tensor]] = {}
        self.started = False

    def reset(self) -> None:
        """Zero traces and updates for the next batch; the large buffers are kept."""
        for big in (self.q, self.S, self.grad, self.grad_out):
            big.zero_()
        self.eps = torch.zeros_like(self.q)  # eps lives in the block buffer epsb between steps
        if self.hp.alif:
            self.epsa.zero_()
            self.Sa.zero_()
            self.prev_psi = torch.zeros_like(self.prev_psi)
            self.prev_eps = torch.zeros_like(self.q)
        self.started = False

    def presynaptic(self, k: int, x_t: torch.Tensor, z_prev: torch.Tensor) -> None:
        """eps_i[t] from x[t] (input synapses) and z[t-1] (recurrent ones), filtered as u is."""
        q, n_in = self.q, self.n_in
        q.mul_(self.dec.beta)
        q[:, :n_in].add_(x_t)
        if self.n_pre > n_in:
            q[:, n_in:].add_(z_prev)
        self.eps = torch.lerp(self.eps, q, 1.0 - self.dec.alpha, out=self.epsb[k])

    def block(self, psi: torch.Tensor, L: torch.Tensor, zf: torch.Tensor, err: torch.Tensor,
              last: bool) -> None:
        """Fold a block of n steps (psi, L, zf (n, B, N); err (n, B, C)) into the updates."""
        n, batch, hidden = psi.shape
        eps = self.epsb[:n]
        tab = self._block_tables(n, psi)
        self.grad_out.add_(zf.reshape(n * batch, hidden).T @ err.reshape(n * batch, -1))
        if self.hp.alif:
            for k in range(n):
                self._alif_step(psi[k], L[k], eps[k])
        if self.started:  # the carried state seen during the block: sum_k u(k) L[k] against S
            Lk = torch.einsum("mk,kbj->bmj", tab["u"], L)
            for b in range(batch):
                for i in range(self.filt.m):
                    self.grad.addcmul_(self.S[b, :, i], Lk[b, i][None, :])
        # within the block: eps^T (psi * Lf), Lf[s] = sum_{t>=s} h(t-s) L[t]
        Lf = (tab["H"] @ L.reshape(n, -1)).reshape(n, batch, hidden)
        self.grad.addmm_(eps.reshape(n * batch, -1).T, (psi * Lf).reshape(n * batch, hidden))
        if not last:
            self._carry(eps, psi, tab)

    def _carry(self, eps: torch.Tensor, psi: torch.Tensor, tab: dict) -> None:
        """S <- A^n S + sum_s A^(n-1-s) b e[s], with e[s] = psi[s] eps[s]^T per sample."""
        n, batch, hidden = psi.shape
        m = self.filt.m
        mix_lower_triangular(self.S, tab["An"])
        weighted = tab["v"].T[:, None, :, None] * psi[:, :, None, :]  # (n, B, m, N)
        weighted = weighted.permute(1, 0, 2, 3).reshape(batch, n, m * hidden)
        eps_t = eps.permute(1, 2, 0)  # (B, n_pre, n)
        for b in range(batch):
            self.S[b].view(-1, m * hidden).addmm_(eps_t[b], weighted[b])
        self.started = True

    def _alif_step(self, psi: torch.Tensor, L: torch.Tensor, eps: torch.Tensor) -> None:
        """The adaptation term e_a = -beta_a psi epsa, stepped elementwise (not factorised)."""
        beta_a, filt = self.hp.adapt_strength, self.filt
        # epsa[t] = psi[t-1] eps[t-1] + (rho - psi[t-1] beta_a) epsa[t-1]
        self.epsa.mul_((self.rho - beta_a * self.prev_psi)[:, None, :])
        self.epsa.addcmul_(self.prev_eps[:, :, None], self.prev_psi[:, None, :])
        mix_lower_triangular(self.Sa, filt.A)
        for i in range(filt.m):  # Sa += b e_a
            if filt.b[i]:
                self.Sa[:, :, i].addcmul_(self.epsa, (-beta_a * float(filt.b[i]) * psi)[:, None, :])
        for i in range(filt.m):  # grad += sum_b (c . Sa) L
            if filt.c[i]:
                weighted_L = float(filt.c[i]) * L
                for b in range(L.shape[0]):
                    self.grad.addcmul_(self.Sa[b, :, i], weighted_L[b][None, :])
        self.prev_psi, self.prev_eps = psi, eps.clone()

    def _block_tables(self, n: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        if n not in self.tables:
            self.tables[n] = {k: torch.as_tensor(v, dtype=like.dtype, device=like.device)
                              for k, v in self.filt.block_tables(n).items()}
        return self.tables[n]


def mix_lower_triangular(S: torch.Tensor, A: torch.Tensor | np.ndarray) -> None:
    """S[..., k, :] <- sum_{j <= k} A[k, j] S[..., j, :] in place (A lower triangular; the filter
    states on dim -2)."""
    for k in reversed(range(S.shape[-2])):
        S[..., k, :].mul_(float(A[k, k]))
        for j in range(k):
            if float(A[k, j]):
                S[..., k, :].add_(S[..., j, :], alpha=float(A[k, j]))
