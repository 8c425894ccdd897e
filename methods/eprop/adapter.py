"""e-prop (Bellec et al. 2020): online eligibility propagation, no backpropagation through time.

Network, output filter F and pseudo-derivative psi: :mod:`methods.eprop.network`.

Eligibility (the reset is not differentiated, as in Bellec's LIF, which keeps it factorised;
presynaptic activity p_i[t] = x_i[t] for W_in, z_i[t-1] for W_rec):
    eps_i[t] = du[t]/dW_ji along the neuron's own state: q_i = beta q_i + p_i,
               eps_i = alpha eps_i + (1 - alpha) q_i           (one vector per presynaptic i)
    LIF:  e_ji[t] = psi_j[t] eps_i[t]
    ALIF: e_ji[t] = psi_j[t] (eps_i[t] - beta_a epsa_ji[t]),
          epsa_ji[t] = psi_j[t-1] eps_i[t-1] + (rho - psi_j[t-1] beta_a) epsa_ji[t-1]
    ebar = F(e)                                                 (filtered with the readout's kappa)

Learning signal and updates (loss: sum_t w(t) CE(softmax(V_o[t]), y) / T, mean over the batch;
w(t) from ``loss``: sum | sum_exp | gauss_window; ``max`` uses w = 1):
    err_k[t] = w(t) (softmax(V_o[t])_k - onehot_k) / (B T)
    L_j[t]   = sum_k B_jk err_k[t],  B = W_out (feedback "symmetric") or fixed random ("random")
    dW_ji    = sum_b sum_t L_j[t] ebar_ji[t]       (input and recurrent weights)
    dW_out   = sum_b sum_t zf_j[t] err_k[t]        (the exact output gradient)
Adam applies the accumulated dW once per batch. With no recurrence and symmetric feedback these
are the exact gradients of the loss for this pseudo-derivative and reset treatment.

Block form (exact, not an approximation): the recursion ebar[t] = F(ebar[t-1], e[t]) is evaluated
``chunk`` steps at a time. A block keeps its steps' factors (psi, eps, L); its own terms are one
matrix product eps^T (psi * Lf), Lf being L filtered backward by F inside the block; the filter state
carried to the next block, S (B, n_pre, m, N) with m = 1 (2 with the output synapse) filter states,
gets the block's e with one matrix product per sample, and the carried S meets the block's L in one
elementwise pass. Memory: O(B n_pre N m + chunk B (n_pre + N)) with n_pre = n_in + N, independent of
T; the work equals the per-step recursion's, done by BLAS. The ALIF term epsa is not factorised and
is stepped elementwise, O(B n_pre N) per step: slow, off by default.

Input: the batch's events (``Batch.events``), densified one block of ``chunk`` steps at a time
into a reused buffer, so no (B, T, n_in) array exists. The per-batch state (traces, carried filter
state, accumulated updates) lives in buffers allocated once per batch size and zeroed per batch:
peak memory then does not depend on how the C allocator happened to place earlier batches.

Prediction: the shared readout (``loss``: sum_t w(t) V_o[t] / T, or max) of V_o.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from methods import lif
from methods.api import Batch, DatasetSpec, InferenceStats, Method
from methods.eprop.hparams import EpropHparams
from methods.eprop.network import Network, pseudo_derivative
from methods.readouts import time_weights
from methods.torch_common import check_loss, seed_torch, sorted_events, sync_device, torch_device


# ---------------------------------------------------------------------------------------------
# The output filter F as a linear state-space system s[t] = A s[t-1] + b e[t], out = c . s[t].


@dataclass(frozen=True)
class OutputFilter:
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


# ---------------------------------------------------------------------------------------------
# Eligibility traces and the accumulated updates.


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


# ---------------------------------------------------------------------------------------------
# Input: events, densified a block at a time.


class EventInput:
    """A batch's input events, handed out as dense (B, n, n_in) blocks of steps t0 .. t0 + n - 1,
    written into one reused buffer (its dtype; valid until the next call)."""

    def __init__(self, batch: Batch, buffer: torch.Tensor):
        step, sample, unit, count = sorted_events(batch, "eprop")
        device = buffer.device
        self.step_cpu = torch.from_numpy(step)  # for the block bounds
        self.step, self.sample, self.unit = (torch.from_numpy(a).to(device)
                                             for a in (step, sample, unit))
        self.count = torch.from_numpy(count).to(device, buffer.dtype)
        self.shape = (batch.size, batch.n_steps, batch.n_in)
        self.buffer = buffer

    def block(self, t0: int, n: int) -> torch.Tensor:
        lo, hi = torch.searchsorted(self.step_cpu, torch.tensor([t0, t0 + n])).tolist()
        out = self.buffer[:, :n]
        out.zero_()
        index = (self.sample[lo:hi], self.step[lo:hi] - t0, self.unit[lo:hi])
        out.index_put_(index, self.count[lo:hi], accumulate=True)
        return out


def input_block(x: torch.Tensor | EventInput, t0: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Steps t0 .. t0 + n - 1 of a dense (B, T, n_in) tensor or of an :class:`EventInput`, as
    ``dtype``."""
    if isinstance(x, EventInput):
        return x.block(t0, n).to(dtype)  # no copy when the buffer has that dtype
    return x[:, t0:t0 + n].to(dtype)


# ---------------------------------------------------------------------------------------------
# The adapter.


class Eprop(Method):
    name = "eprop"
    framework = "torch"
    Hparams = EpropHparams
    input_format = "events"

    def setup(self, spec: DatasetSpec, hparams: EpropHparams, seed: int, device: str) -> None:
        seed_torch(seed)
        self.spec, self.hp, self.device = spec, hparams, torch_device(device)
        self.dec = lif.Decays.from_hparams(hparams)
        self.filt = OutputFilter.of(self.dec, hparams.output_synapse)
        weights = lif.init_weights(seed, spec.n_in, hparams.hidden, spec.n_classes, hparams.recurrent)
        self.params = {k: torch.nn.Parameter(torch.from_numpy(v).to(self.device))
                       for k, v in weights.items()}
        rng = np.random.default_rng(seed + 7919)
        feedback = rng.normal(0.0, 1.0 / math.sqrt(spec.n_classes), (hparams.hidden, spec.n_classes))
        self.feedback = torch.tensor(feedback, dtype=torch.float32, device=self.device)
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=hparams.lr)
        w = time_weights(hparams.loss, spec.n_steps, hparams.gauss_mu, hparams.gauss_sigma)
        self.readout_max = w is None
        self.time_w = np.ones(spec.n_steps) if w is None else w
        self._stats: InferenceStats | None = None
        self._buffers: dict[str, tuple[tuple, Any]] = {}

    def _reused(self, kind: str, shape: tuple, make):
        """The buffer or state object of this kind, rebuilt only when its shape changes (one of
        each kind is kept; see the module docstring)."""
        if kind not in self._buffers or self._buffers[kind][0] != shape:
            self._buffers.pop(kind, None)  # free the old one before building the new one
            self._buffers[kind] = (shape, make())
        return self._buffers[kind][1]

    def _events(self, batch: Batch) -> EventInput:
        shape = (batch.size, min(self.hp.chunk, batch.n_steps), batch.n_in)
        buffer = self._reused("input", shape, lambda: torch.zeros(shape, device=self.device))
        return EventInput(batch, buffer)

    # -- the single forward pass -------------------------------------------------------------
    def run(self, x: torch.Tensor | EventInput, labels: torch.Tensor | None,
            dtype=torch.float32) -> dict[str, Any]:
        """One forward pass over time; with labels, also the e-prop updates (no graph kept).
        ``x``: (B, T, n_in) spike counts (a tensor of any dtype, or events), read a block at a time."""
        hp = self.hp
        batch, steps, n_in = x.shape
        w_in = self.params["w_in"].detach().to(dtype)
        w_out = self.params["w_out"].detach().to(dtype)
        w_rec = self.params["w_rec"].detach().to(dtype) if "w_rec" in self.params else None
        n_out = w_out.shape[1]
        chunk = min(hp.chunk, steps)
        like = w_in.new_zeros(())
        net = self._reused("network", (batch, chunk, dtype), lambda: Network(
            batch, hp.hidden, chunk, self.dec, hp, like))
        net.reset()
        learner = None
        if labels is not None:
            learner = self._reused("learner", (batch, chunk, dtype), lambda: Learner(
                batch, n_in, hp.hidden, n_out, w_rec is not None, chunk, self.filt, self.dec, hp,
                like))
            learner.reset()
            onehot = torch.nn.functional.one_hot(labels, n_out).to(dtype)
            back = w_out if hp.feedback == "symmetric" else self.feedback.to(dtype)
        scores = like.new_full((batch, n_out), -math.inf) if self.readout_max else \
            like.new_zeros(batch, n_out)
        loss = like.new_zeros(())
        counts = like.new_zeros(batch)
        for t0 in range(0, steps, chunk):
            n = min(chunk, steps - t0)
            xc = input_block(x, t0, n, dtype)
            drive = (xc @ w_in).transpose(0, 1)  # (n, B, N); this block only
            for k in range(n):
                if learner is not None:
                    learner.presynaptic(k, xc[:, k], net.z)
                net.step(k, drive[k], w_rec)
            zf = net.zfb[:n]
            v_out = zf @ w_out  # (n, B, C)
            counts.add_(net.zb[:n].sum(dim=(0, 2)).to(dtype))
            wt = torch.as_tensor(self.time_w[t0:t0 + n] / steps, dtype=dtype,
                                 device=like.device)[:, None, None]
            scores = torch.maximum(scores, v_out.max(dim=0).values) if self.readout_max else \
                scores + (wt * v_out).sum(dim=0)
            if learner is not None:
                logp = torch.log_softmax(v_out, dim=2)
                loss = loss - (wt * logp * onehot).sum() / batch
                err = (logp.exp() - onehot) * (wt / batch)
                psi = pseudo_derivative(net.ub[:n] - lif.THETA, hp.gamma)
                learner.block(psi, err @ back.T, zf, err, last=t0 + n >= steps)
        return {"scores": scores, "loss": loss, "learner": learner, "counts": counts}

    # -- the contract ----------------------------------------------------------------------------
    def gradients(self, learner: Learner) -> dict[str, torch.Tensor]:
        n_in = self.spec.n_in
        grads = {"w_in": learner.grad[:n_in], "w_out": learner.grad_out}
        if "w_rec" in self.params:
            grads["w_rec"] = learner.grad[n_in:]
        # clones: the learner's buffers are reused
        return {k: g.clone() for k, g in grads.items() if self.hp.trains(k)}

    def train_step(self, batch: Batch) -> dict[str, float]:
        labels = torch.from_numpy(batch.y).to(self.device)
        with torch.no_grad():
            out = self.run(self._events(batch), labels)
        value = float(out["loss"])
        check_loss(value)
        grads = self.gradients(out["learner"])
        if self.hp.grad_clip > 0:
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
            if norm > self.hp.grad_clip:
                grads = {k: g * (self.hp.grad_clip / norm) for k, g in grads.items()}
        for key, grad in grads.items():  # a weight without a gradient stays as it is
            self.params[key].grad = grad.to(self.params[key].dtype).contiguous()
        self.optimizer.step()
        correct = int((out["scores"].argmax(dim=1) == labels).sum())
        return {"loss": value, "correct": correct}

    def predict(self, batch: Batch) -> np.ndarray:
        with torch.no_grad():
            out = self.run(self._events(batch), None)
        self._stats = lif.count_stats(out["counts"].double().cpu().numpy(), batch, self.hp,
                                      self.spec.n_classes)
        return out["scores"].float().cpu().numpy()

    def inference_stats(self) -> InferenceStats | None:
        return self._stats

    def sync(self) -> None:
        sync_device(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"params": {k: v.detach().clone() for k, v in self.params.items()},
                "feedback": self.feedback.clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for key, value in state["params"].items():
                self.params[key].copy_(value)
        self.feedback = state["feedback"].to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
