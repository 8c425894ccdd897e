"""What the grid and exact passes share: the network they read (:class:`Net`), the readout
tables, the forward pass's store, the output layer in closed form, and the regulariser.

Regulariser (both modes): a spike-count pseudo-loss on the batch-mean count nbar_n of each hidden
neuron, target nu = reg_nu * T dt / 1000 ms; it enters as reg = reg_strength * S * (nbar_n - nu)
added to lambda_u at every spike of n, where S is this batch's classification signal per hidden
spike: the mean over its spikes of |Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])[b,c]| /
((1 - alpha) max(I - 1, min_slope)), the loss's own direct jump term. Measured in S, the
regulariser keeps one weight against the loss whatever the readout, T or data: the spike-timing
signal of the plain ``sum`` readout is ~1e-4 of ``sum_exp``'s on the default set, and a fixed
strength that suits one swamps the other (Adam then follows the regulariser alone and silences
the layer).

First-spike loss (``loss=first_spike``; the first spike times t_c, scores and loss are defined
in :mod:`methods.readouts`): its derivative reaches V_o at two samples per output (k - 1 and k;
at the peak for the fallback); ``Forward.taps`` holds those steps and ds/dV_o at them, and the
backward passes read the output's adjoint from them as the max readout does from its one sample.

Guards: the jump divides by (I - theta), the membrane's slope at the crossing; it is floored at
``min_slope``, and lambda_u after a jump is clipped to +-lambda_clip * drive_scale / B.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from methods import lif
from methods.api import Batch
from methods.eventprop import kernels
from methods.eventprop.events import EventBlocks
from methods.eventprop.hparams import EventPropHparams
from methods.readouts import time_weights

THETA = lif.THETA
FIRST_SPIKE = "first_spike"


@dataclass
class Tables:
    kind: str
    w: torch.Tensor | None  # (T,) readout weight / T, None for max
    w_list: list[float] | None
    q: torch.Tensor | None  # (T,) dL-free output adjoint profile: d s / d I_o[t] (weighted)
    dq: torch.Tensor | None  # (T,) q[t+1] - q[t], q[T] = 0
    h: torch.Tensor  # (T + 1,) output impulse response dV_o[t+k]/dI_o[t], h[T] unused
    Hv: torch.Tensor  # (K, K) Toeplitz of h, lower triangular
    Hi: torch.Tensor  # (K, K) Toeplitz of beta^k
    gI: torch.Tensor  # (K,) beta h[k]: response of V_o[c0+k] to I_o[c0-1]
    aV: torch.Tensor  # (K,) alpha_o^(k+1)
    bI: torch.Tensor  # (K,) beta^(k+1)


def build_tables(hp: EventPropHparams, T: int, K: int, decays: lif.Decays,
                  device: torch.device, dtype: torch.dtype) -> Tables:
    ao, beta = decays.alpha_out, decays.beta
    n = max(T, K) + 1
    h = np.zeros(n)
    i_o, v_o = 1.0, 1.0 - ao
    for k in range(n):
        h[k] = v_o
        i_o *= beta
        v_o = ao * v_o + (1.0 - ao) * i_o
    weights = (None if hp.loss == FIRST_SPIKE
               else time_weights(hp.loss, T, hp.gauss_mu, hp.gauss_sigma))
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=device, dtype=dtype)  # noqa
    w = q = dq = None
    w_list = None
    if weights is not None:
        wT = weights / T
        qa = np.zeros(T + 1)
        lv = li = 0.0
        for t in range(T - 1, -1, -1):
            lv = wT[t] + ao * lv
            li = (1.0 - ao) * lv + beta * li
            qa[t] = li
        w, w_list, q, dq = as_t(wT), wT.tolist(), as_t(qa[:T]), as_t(qa[1:] - qa[:-1])
    idx = np.arange(K)
    lag = idx[:, None] - idx[None, :]
    Hv = np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0)
    Hi = np.where(lag >= 0, beta ** np.clip(lag, 0, None), 0.0)
    return Tables(kind=hp.loss, w=w, w_list=w_list, q=q, dq=dq, h=as_t(h[: T + 1]),
                   Hv=as_t(Hv), Hi=as_t(Hi), gI=as_t(beta * h[:K]),
                   aV=as_t(ao ** (idx + 1.0)), bI=as_t(beta ** (idx + 1.0)))


@dataclass
class Forward:
    scores: torch.Tensor  # (B, C)
    counts: torch.Tensor  # (B, N) spikes per sample and neuron
    active: torch.Tensor | None = None  # (B,) neuron-steps with a spike (exact mode)
    # grid store: spikes sorted by (step, sample, neuron)
    step_counts: torch.Tensor | None = None  # (T,) spikes per step
    flat: torch.Tensor | None = None  # (S,) int32, b * N + n
    current: torch.Tensor | None = None  # (S,) I at the spike
    rate_A: torch.Tensor | None = None  # (B, N) Sum_spikes q(t) (weighted readouts)
    argmax: torch.Tensor | None = None  # (B, C) step of the maximum (max readout)
    # max and first_spike: [(steps (B, C), ds/dV_o at them (B, C))], the samples the score reads
    taps: list | None = None
    first_times: torch.Tensor | None = None  # (B, C) first output spike times, ms (first_spike)
    traces: torch.Tensor | None = None  # (T, B, C) only when asked for (tests)
    rounds: list | None = None  # exact mode: per step, [(samples, neurons, times, I)]


@dataclass
class ExactConsts:
    dt: float
    tau_m: float
    tau_s: float
    tau_o: float
    k_h: float  # tau_s / (tau_m - tau_s)
    k_o: float  # tau_s / (tau_o - tau_s)
    tol: float

    @classmethod
    def of(cls, hp: EventPropHparams, dtype: torch.dtype) -> "ExactConsts":
        return cls(dt=hp.dt_ms, tau_m=hp.tau_mem, tau_s=hp.tau_syn, tau_o=hp.tau_out,
                   k_h=hp.tau_syn / (hp.tau_mem - hp.tau_syn),
                   k_o=hp.tau_syn / (hp.tau_out - hp.tau_syn),
                   tol=(1e-14 if dtype == torch.float64 else 1e-6) * hp.dt_ms)


@dataclass
class Net:
    """What a pass reads: hyperparameters, the weights without autograd history (``w_rec`` None
    without recurrence), the number of classes and a cache of readout tables per T."""

    hp: EventPropHparams
    w_in: torch.Tensor
    w_rec: torch.Tensor | None
    w_out: torch.Tensor
    n_classes: int
    tables: dict[int, Tables] = field(default_factory=dict)
    # The backward's recurrent shift term by row gathers when a step has at most this fraction
    # of (sample, neuron) pairs spiking, else by one dense product (crossover measured on a CPU
    # core: ~150 spikes at 32 x 256).
    gather_below: float = 1 / 64
    # grid mode's per-step loops by the fused numba kernels (default: where numba is installed
    # and the tensors are on the CPU), else by torch calls
    fused: bool | None = None

    def __post_init__(self) -> None:
        if self.fused is None:
            self.fused = kernels.AVAILABLE and self.w_in.device.type == "cpu"
        self.decays = lif.Decays.from_hparams(self.hp)
        self.consts = ExactConsts.of(self.hp, self.w_in.dtype)

    @property
    def device(self) -> torch.device:
        return self.w_in.device

    @property
    def dtype(self) -> torch.dtype:
        return self.w_in.dtype

    def table(self, T: int) -> Tables:
        if T not in self.tables:
            self.tables[T] = build_tables(self.hp, T, self.hp.chunk_steps, self.decays,
                                          self.device, self.dtype)
        return self.tables[T]

    def blocks(self, batch: Batch) -> EventBlocks:
        return EventBlocks(batch, self.hp.chunk_steps, self.device, self.dtype)


def drive_scale(tab: Tables) -> float:
    """The largest output drive of one sample: |softmax - onehot| <= 1 times max_t w(t)/T for
    the weighted readouts, 1 for max. The clip is in these units."""
    return float(tab.w.max()) if tab.w is not None else 1.0


def clip_bound(net: Net, tab: Tables, B: int) -> float:
    """Bound on |lambda_u| after a jump: lambda_clip drive scales, over B (batch mean)."""
    return net.hp.lambda_clip * drive_scale(tab) / B


def reg_coefficient(net: Net, counts: torch.Tensor, T: int,
                     signal: float) -> torch.Tensor | None:
    """The regulariser's jump term per hidden neuron: reg_strength * signal * (nbar_n - nu),
    ``signal`` the batch's classification signal S per hidden spike (:func:`signal_sum`)."""
    hp = net.hp
    if hp.reg_strength == 0:
        return None
    nu = hp.reg_nu * T * hp.dt_ms / 1000.0
    nbar = counts.sum(0) / counts.shape[0]
    return (hp.reg_strength * signal) * (nbar - nu)


def signal_sum(net: Net, direct: torch.Tensor, current: torch.Tensor) -> float:
    """Sum over spikes of |direct| / ((1 - alpha) max(I - 1, min_slope)), the size of the
    loss's own jump at each. Its mean over a batch's spikes is the classification signal S
    the regulariser is measured in, so that it keeps one weight against the loss whatever
    the readout, T or data (with Adam, whichever term dominates would otherwise set every
    hidden update on its own)."""
    if direct.numel() == 0:
        return 0.0
    denom = (current - THETA).clamp(min=net.hp.min_slope) * (1.0 - net.decays.alpha)
    return float((direct / denom).abs().sum())


def direct_terms(net: Net, flat: torch.Tensor, steps: torch.Tensor, error: torch.Tensor,
                  tab: Tables, p_flat: torch.Tensor | None, taps: list | None,
                  g_out: torch.Tensor | None = None) -> torch.Tensor:
    """The loss's direct term in the jump of each given hidden spike (flat =
    b * N + n, at ``steps``): Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])[b,c].
    Weighted readouts use p_flat = (E W_out^T) flattened; max and first_spike use their taps
    (the samples the score reads, :class:`Forward`) and add their lambda_Io to g_out (when
    given)."""
    if tab.w is not None:
        return tab.dq[steps] * p_flat.take(flat)
    out = None
    for tap_steps, gain in taps:
        term = max_readout_terms(net, flat, steps, tap_steps, error * gain, tab, g_out)
        out = term if out is None else out + term
    return out


class FirstSpikeTracker:
    """The first threshold crossing of each output trace, fed block by block: step k and the
    samples V_o[k-1], V_o[k] (V_o[-1] = 0)."""

    def __init__(self, B: int, C: int, device: torch.device, dtype: torch.dtype) -> None:
        self.k = torch.full((B, C), -1, device=device, dtype=torch.int64)
        self.v0 = torch.zeros(B, C, device=device, dtype=dtype)
        self.v1 = torch.zeros(B, C, device=device, dtype=dtype)
        self.prev = torch.zeros(B, C, device=device, dtype=dtype)

    def update(self, vo_blk: torch.Tensor, t0: int) -> None:
        """vo_blk: (k, B, C) samples of steps t0 .. t0 + k - 1."""
        before = torch.cat([self.prev[None], vo_blk[:-1]])
        cross = vo_blk >= THETA
        first = cross.to(torch.int8).argmax(dim=0, keepdim=True)  # first True (0 if none)
        new = (self.k < 0) & cross.any(dim=0)
        self.k = torch.where(new, first[0] + t0, self.k)
        self.v1 = torch.where(new, vo_blk.gather(0, first)[0], self.v1)
        self.v0 = torch.where(new, before.gather(0, first)[0], self.v0)
        self.prev = vo_blk[-1].clone()

    def finish(self, fw: Forward, vmax: torch.Tensor, amax: torch.Tensor, hp: EventPropHparams,
               T: int) -> None:
        """Sets fw.first_times, fw.scores = -t / fs_tau and fw.taps (module docstring)."""
        dt = hp.dt_ms
        fired = self.k >= 0
        rise = torch.where(fired, self.v1 - self.v0, 1.0)
        frac = (THETA - self.v0) / rise
        late = T * dt * (1.0 + (THETA - vmax) / THETA)
        fw.first_times = torch.where(fired, dt * (self.k + frac), late)
        fw.scores = -fw.first_times / hp.fs_tau
        # ds/dV = -(dt/dV) / fs_tau at the crossing's two samples, or at the peak
        at_k = torch.where(fired, dt * frac / rise, T * dt / THETA) / hp.fs_tau
        at_before = torch.where(fired, dt * (1.0 - frac) / rise, 0.0) / hp.fs_tau
        fw.taps = [(torch.where(fired, self.k, amax), at_k),
                   (torch.where(fired, self.k - 1, -1), at_before)]


def first_spike_error(fw: Forward, labels: torch.Tensor, hp: EventPropHparams,
                      T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The early term fs_early (exp(t_y / (T dt)) - 1), batch mean, and its derivative with
    respect to the scores (B, C) (only s_y: t_y = -fs_tau s_y)."""
    B = labels.shape[0]
    window = T * hp.dt_ms
    rows = torch.arange(B, device=labels.device)
    growth = torch.exp(fw.first_times[rows, labels].double() / window)
    term = hp.fs_early * (growth - 1.0).mean()
    d_scores = torch.zeros(fw.scores.shape, device=labels.device, dtype=torch.float64)
    d_scores[rows, labels] = -hp.fs_early * growth * hp.fs_tau / (window * B)
    return term, d_scores


def max_readout_terms(net: Net, flat, steps, tstar, error, tab: Tables, g_out,
                      piece: int = 8192):
    """For the max readout, lambda_Io[t][b,c] = E[b,c] h(t*[b,c] - t) (zero after t*).
    Returns Sum_c W_out[n,c] (lambda_Io[t+1] - lambda_Io[t])[b,c] per spike and adds
    lambda_Io[t][b] to g_out[n] (unless g_out is None); (S, C) work in pieces to bound memory."""
    N = net.hp.hidden
    w_out = net.w_out
    out = torch.empty(flat.numel(), device=flat.device, dtype=error.dtype)
    for lo in range(0, flat.numel(), piece):
        f, t = flat[lo:lo + piece], steps[lo:lo + piece]
        b_idx, n_idx = f // N, f % N
        lag = tstar[b_idx] - t[:, None]  # (S, C)
        h0 = torch.where(lag >= 0, tab.h[lag.clamp(min=0)], 0.0)
        h1 = torch.where(lag >= 1, tab.h[(lag - 1).clamp(min=0)], 0.0)
        e_b = error[b_idx]
        out[lo:lo + piece] = (w_out[n_idx] * e_b * (h1 - h0)).sum(1)
        if g_out is not None:
            g_out.index_add_(0, n_idx, e_b * h0)
    return out


def output_block(tab: Tables, u: torch.Tensor, io: torch.Tensor, vo: torch.Tensor):
    """Output traces of one block from its spike input u = z W_out, (k, B*C), and the
    carried (I_o, V_o), both (B*C,); updates the carries in place; returns V_o (k, B*C)."""
    k = u.shape[0]
    vo_blk = tab.Hv[:k, :k] @ u + tab.gI[:k, None] * io + tab.aV[:k, None] * vo
    io_new = tab.Hi[k - 1, :k] @ u + tab.bI[k - 1] * io
    io.copy_(io_new)
    vo.copy_(vo_blk[k - 1])
    return vo_blk
