"""ParaLIF (Yarga & Wood 2023, 2025): the hidden LIF layer computed for all steps at once.

Without a reset, the shared network's hidden membrane is a linear filter of the input current
X[t] = x[t] @ W_in (:mod:`methods.lif`, with z = 0 in the recurrence):

    I[t] = beta I[t-1] + X[t],   m[t] = alpha m[t-1] + (1 - alpha) I[t]
    =>  m = K * X,   K = l * k,   l(n) = beta^n,   k(n) = (1 - alpha) alpha^n

(* a causal convolution over time). K is computed once per T in float64 (by the recursion itself,
so it is exactly the sequential impulse response), truncated to T steps, and the convolution is an
FFT product zero-padded to a fast length >= 2T - 1, so there is no wrap-around: O(T log T) and
parallel over time instead of T sequential steps.

Spikes are a function f of the whole membrane trace (``spike_mode``):

* ``T``: threshold, z = H(m - theta), fast-sigmoid surrogate 1 / (slope |m - theta| + 1)^2;
* ``D``: threshold on the increment, z = H((m[t] - m[t-1]) - theta), m[-1] = 0, same surrogate;
* ``SB``: z ~ Bernoulli(sigmoid(m)), straight-through gradient (dz/dp = 1);
* ``TRB``: z ~ Bernoulli(relu(tanh(m))), straight-through;
* ``none``: no spikes, z = m (for checks: then the layer is the sequential LIF without reset).

Recurrent layer, two passes as in the paper (its equations 22-23):
m1 = K * X;  m = m1 + K * (X + f(shift(m1)) @ W_rec), shift(m1)[t] = m1[t-1], shift(m1)[0] = 0;
z = f(m). The input current enters both passes (the paper's definition, kept as published).

Outputs are the shared leaky integrators, V_o = K_o * (z @ W_out), K_o = l_beta * k_alpha_out, also by
FFT; they equal the sequential output recursion of :mod:`methods.lif` for the same z. Readouts,
initial weights and checkpoints are shared with the other torch adapters; the optimiser is Adam
(``optimizer=adamax`` selects the paper's Adamax, same lr). Bernoulli modes draw from a generator
seeded from the run's seed (training) and a fixed-seed generator re-seeded at each ``predict``.
Memory: O(T B N) activations, like BPTT, but no per-step graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from methods.api import Batch, DatasetSpec, InputError, NetworkHparams, validate_network
from methods.neurons import check_neuron
from methods import lif
from methods.torch_common import TorchNetworkMethod, weight_parameters

SPIKE_MODES = ("T", "D", "SB", "TRB", "none")
OPTIMIZERS = ("adam", "adamax")


@dataclass
class ParaLIFHparams(NetworkHparams):
    spike_mode: str = "T"
    surrogate_slope: float = 100.0
    optimizer: str = "adam"
    neuron: str = "lif"  # the parallel form needs the LIF: only "lif" is accepted

    def validate(self) -> None:
        validate_network(self)
        check_neuron(self.neuron, ("lif",), "paralif")
        if self.spike_mode not in SPIKE_MODES:
            raise InputError(f"unknown spike_mode {self.spike_mode!r}; known: {', '.join(SPIKE_MODES)}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if not self.surrogate_slope > 0:
            raise InputError(f"surrogate_slope must be positive, got {self.surrogate_slope}")


class FastSigmoidSpike(torch.autograd.Function):
    """H(u) (u > 0) forward, 1 / (slope |u| + 1)^2 backward."""

    @staticmethod
    def forward(ctx, u, slope: float):
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad / (ctx.slope * u.abs() + 1.0) ** 2, None


class BernoulliStraightThrough(torch.autograd.Function):
    """z ~ Bernoulli(p) forward, gradient passed to p unchanged."""

    @staticmethod
    def forward(ctx, p, generator):
        return torch.bernoulli(p, generator=generator)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def lif_kernel(n_steps: int, decay_syn: float, decay_mem: float) -> np.ndarray:
    """Impulse response (float64, (T,)) of I = b I + X, m = a m + (1 - a) I (an input at t = 0)."""
    kernel = np.empty(n_steps)
    current = membrane = 0.0
    for t in range(n_steps):
        current = decay_syn * current + (1.0 if t == 0 else 0.0)
        membrane = decay_mem * membrane + (1.0 - decay_mem) * current
        kernel[t] = membrane
    return kernel


def fast_fft_length(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5."""
    m = max(n, 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


class CausalConvolution(torch.autograd.Function):
    """y[t] = sum_{s <= t} K[t - s] x[s] along the last dim, by FFT (K given by its rfft at n_fft).

    The backward is the matching correlation, dL/dx[s] = sum_{t >= s} K[t - s] g[t], computed
    with the conjugate spectrum: one rfft and one irfft, where autograd's own backward of
    rfft/irfft goes through full complex transforms (about 2.5x the cost)."""

    @staticmethod
    def forward(ctx, signal, spectrum, n_fft: int):
        ctx.save_for_backward(spectrum)
        ctx.n_fft = n_fft
        n_steps = signal.shape[-1]
        return torch.fft.irfft(torch.fft.rfft(signal, n=n_fft) * spectrum, n=n_fft)[..., :n_steps]

    @staticmethod
    def backward(ctx, grad):
        (spectrum,) = ctx.saved_tensors
        n_steps = grad.shape[-1]
        product = torch.fft.rfft(grad, n=ctx.n_fft) * spectrum.conj()
        return torch.fft.irfft(product, n=ctx.n_fft)[..., :n_steps], None, None


def shift_time(m: torch.Tensor) -> torch.Tensor:
    """m[..., t - 1] with zero at t = 0 (time is the last dim)."""
    return F.pad(m, (1, 0))[..., :-1]


class ParaLIFNetwork(torch.nn.Module):
    """Internally time is the last (contiguous) dim, (B, N, T), so the FFTs run on contiguous rows."""

    def __init__(self, weights: dict[str, np.ndarray], decays: lif.Decays, spike_mode: str,
                 slope: float):
        super().__init__()
        if spike_mode not in SPIKE_MODES:
            raise ValueError(f"unknown spike_mode {spike_mode!r}")
        self.w_in, self.w_rec, self.w_out = weight_parameters(weights)
        self.decays, self.spike_mode, self.slope = decays, spike_mode, slope
        self.generator: torch.Generator | None = None  # for the Bernoulli modes
        self._kernels: dict[tuple, tuple[int, torch.Tensor, torch.Tensor]] = {}

    def kernels(self, n_steps: int, device, dtype) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(FFT length, rfft of the hidden kernel, rfft of the output kernel), cached per T."""
        key = (n_steps, str(device), dtype)
        if key not in self._kernels:
            n_fft = fast_fft_length(2 * n_steps - 1)
            d = self.decays
            spectra = [torch.fft.rfft(torch.from_numpy(lif_kernel(n_steps, d.beta, a)), n=n_fft)
                       for a in (d.alpha, d.alpha_out)]
            complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
            self._kernels[key] = (n_fft, *(s.to(device=device, dtype=complex_dtype) for s in spectra))
        return self._kernels[key]

    def spike(self, m: torch.Tensor) -> torch.Tensor:
        """The spike function f on membrane traces (B, N, T)."""
        mode = self.spike_mode
        if mode == "none":
            return m
        if mode == "T":
            return FastSigmoidSpike.apply(m - lif.THETA, self.slope)
        if mode == "D":
            return FastSigmoidSpike.apply((m - shift_time(m)) - lif.THETA, self.slope)
        p = torch.sigmoid(m) if mode == "SB" else torch.relu(torch.tanh(m))
        return BernoulliStraightThrough.apply(p, self.generator)

    def membrane(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden membrane (B, N, T) of the one- or two-pass layer for x (B, T, n_in)."""
        n_fft, spectrum, _ = self.kernels(x.shape[1], x.device, x.dtype)
        current = torch.matmul(self.w_in.t(), x.transpose(1, 2))  # (B, N, T)
        m = CausalConvolution.apply(current, spectrum, n_fft)
        if self.w_rec is not None:
            # m1 + K * (X + W_rec f(shift m1)) = 2 m1 + K * (W_rec f(shift m1)): one more FFT pair
            feedback = torch.matmul(self.w_rec.t(), self.spike(shift_time(m)))
            m = 2.0 * m + CausalConvolution.apply(feedback, spectrum, n_fft)
        return m

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, n_in) -> hidden spikes (T, B, N), output traces (T, B, C)."""
        n_fft, _, spectrum_out = self.kernels(x.shape[1], x.device, x.dtype)
        z = self.spike(self.membrane(x))
        v_out = CausalConvolution.apply(torch.matmul(self.w_out.t(), z), spectrum_out, n_fft)
        return z.permute(2, 0, 1), v_out.permute(2, 0, 1)


class ParaLIF(TorchNetworkMethod):
    name = "paralif"
    Hparams = ParaLIFHparams
    input_format = "dense"
    EVAL_SEED_OFFSET = 1_000_003

    def build(self, weights: dict[str, np.ndarray], hp: ParaLIFHparams) -> torch.nn.Module:
        return ParaLIFNetwork(weights, lif.Decays.from_hparams(hp), hp.spike_mode,
                              hp.surrogate_slope)

    def setup(self, spec: DatasetSpec, hparams: ParaLIFHparams, seed: int, device: str) -> None:
        super().setup(spec, hparams, seed, device)
        if hparams.optimizer == "adamax":
            self.optimizer = torch.optim.Adamax(self.net.parameters(), lr=hparams.lr)
        self.seed = seed
        self.train_generator = torch.Generator(device=self.device)
        self.train_generator.manual_seed(seed)
        self.eval_generator = torch.Generator(device=self.device)
        self.net.generator = self.train_generator

    def predict(self, batch: Batch) -> np.ndarray:
        self.eval_generator.manual_seed(self.seed + self.EVAL_SEED_OFFSET)
        self.net.generator = self.eval_generator
        try:
            return super().predict(batch)
        finally:
            self.net.generator = self.train_generator

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["train_generator"] = self.train_generator.get_state()
        state["seed"] = self.seed  # seeds the evaluation draws of the Bernoulli modes
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "train_generator" in state:
            self.train_generator.set_state(state["train_generator"])
        self.seed = state.get("seed", self.seed)
