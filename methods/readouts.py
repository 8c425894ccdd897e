"""Readouts and losses shared by the gradient methods (Nowotny et al. 2025, mlGeNN's SHD readouts).

A readout turns the output traces V_k(t), t = 0..T-1, into class scores s_k; the loss is the
cross-entropy of softmax(s) with the label.

    sum:           s_k = (1/T) sum_t V_k(t)
    sum_exp:       s_k = (1/T) sum_t exp(-t/T) V_k(t)
    gauss_window:  s_k = (1/T) sum_t w(t) V_k(t),  w(t) = exp(-(t - mu T)^2 / (2 (sigma T)^2))
    max:           s_k = max_t V_k(t)

``mu`` and ``sigma`` are fractions of T, so a window keeps its place when T or dt changes. Unless
set (``--set gauss_mu=``, ``gauss_sigma=``), a run scales the window to its data's utterances
(:func:`window_for_utterance`): with D the median duration of the training samples (last spike
time, within the window), mu T dt = 0.5 D and sigma T dt = 0.25 D. Data that fill the window get
the defaults (mu 0.5, sigma 0.25); speech that ends halfway through it keeps the window on the
speech, not on the silence after it. (Centring the window on the median spike time instead makes
it symmetric about the activity, so that two classes playing the same bands in opposite order
score alike: on the embedded set BPTT's Gaussian readout then stops at the pair level, ~50 %.)
For the weighted readouts the loss's derivative with respect to V_k(t) is
(softmax(s)_k - onehot_k) w(t) / (B T) for a batch-mean loss: :func:`output_drive` gives it to
adjoint methods such as EventProp.

First-spike loss (``first_spike``; offered by EventProp and bptt-snntorch, the methods whose
hyperparameters list it in ``losses``): the outputs are LIF neurons with threshold theta
(``methods.lif.THETA``) whose membrane is V_o up to their first spike (which is all the loss reads,
so no reset is modelled). Output c's first spike time is the first threshold crossing of its
sampled trace, placed by linear interpolation between the samples (sample k at time (k + 1) dt,
V_o = 0 at time 0, i.e. V_o[-1] = 0):

    t_c = dt (k + (theta - V_o[k-1]) / (V_o[k] - V_o[k-1])),  k the first step with V_o[k] >= theta
    t_c = T dt (1 + (theta - max_t V_o[t]) / theta)            (fallback: output c never fires)

The fallback continues the time past the window's end, falling as the output's peak nears
threshold, so a silent output still gets a gradient towards firing. Scores s_c = -t_c / fs_tau,
so the prediction argmax s is the output that fires first; loss = cross-entropy of softmax(s) +
fs_early (exp(t_y / (T dt)) - 1), batch mean, the second term keeping the correct output early
(Wunderlich & Pehle 2021's first-spike loss, with the window as time scale). t_c depends on V_o
only at the two samples around the crossing (at the peak for the fallback): autograd through
:func:`first_spike_times` differentiates it exactly with respect to V_o, and EventProp reads the
same derivative at those samples (:mod:`methods.eventprop.common`).
"""

from __future__ import annotations

import numpy as np

from methods.api import FIRST_SPIKE, READOUTS, NetworkHparams
from methods.lif import THETA


def time_weights(kind: str, n_steps: int, mu: float = 0.5, sigma: float = 0.25) -> np.ndarray | None:
    """w(t) for the weighted readouts as float64 (T,); None for ``max``."""
    t = np.arange(n_steps, dtype=np.float64)
    if kind == "sum":
        return np.ones(n_steps)
    if kind == "sum_exp":
        return np.exp(-t / n_steps)
    if kind == "gauss_window":
        centre, width = mu * n_steps, sigma * n_steps
        return np.exp(-((t - centre) ** 2) / (2.0 * width**2))
    if kind == "max":
        return None
    raise ValueError(f"unknown readout {kind!r}; known: {', '.join(READOUTS)}")


UTTERANCE_MU = 0.5  # the window's centre, as a fraction of the utterance
UTTERANCE_SIGMA = 0.25  # its width


def window_for_utterance(utterance_ms: float, window_ms: float, n_steps: int) -> tuple[float, float]:
    """(mu, sigma) of the Gaussian window, as fractions of the window, for data whose samples
    last ``utterance_ms``; sigma is at least one step."""
    share = min(max(utterance_ms / window_ms, 0.0), 1.0)
    return UTTERANCE_MU * share, max(UTTERANCE_SIGMA * share, 1.0 / n_steps)


def scores_numpy(v_out: np.ndarray, kind: str, mu: float = 0.5, sigma: float = 0.25) -> np.ndarray:
    """Scores (B, C) from traces (T, B, C) with numpy."""
    weights = time_weights(kind, v_out.shape[0], mu, sigma)
    if weights is None:
        return v_out.max(axis=0)
    return np.einsum("t,tbc->bc", weights, v_out) / v_out.shape[0]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def output_drive(scores: np.ndarray, labels: np.ndarray, kind: str, n_steps: int,
                 mu: float = 0.5, sigma: float = 0.25, argmax_t: np.ndarray | None = None) -> np.ndarray:
    """dL/dV_k(t) of the batch-mean cross-entropy, shape (T, B, C), float64.

    For ``max`` the derivative sits at the step of each trace's maximum (``argmax_t``, (B, C)).
    """
    batch, n_classes = scores.shape
    error = softmax(scores.astype(np.float64))
    error[np.arange(batch), labels] -= 1.0
    error /= batch
    weights = time_weights(kind, n_steps, mu, sigma)
    if weights is not None:
        return weights[:, None, None] * error[None] / n_steps
    drive = np.zeros((n_steps, batch, n_classes))
    b_idx, c_idx = np.meshgrid(np.arange(batch), np.arange(n_classes), indexing="ij")
    drive[argmax_t, b_idx, c_idx] = error
    return drive


class TorchReadout:
    """Scores and loss for torch traces (T, B, C); the weights live on the traces' device."""

    def __init__(self, kind: str, n_steps: int, mu: float = 0.5, sigma: float = 0.25,
                 device: str = "cpu", dtype=None):
        import torch

        self.kind = kind
        self.n_steps = n_steps
        weights = time_weights(kind, n_steps, mu, sigma)
        self.weights = None if weights is None else torch.tensor(
            weights / n_steps, device=device, dtype=dtype or torch.float32)

    def scores(self, v_out):
        if self.weights is None:
            return v_out.max(dim=0).values
        return (self.weights.to(v_out.dtype)[:, None, None] * v_out).sum(dim=0)

    def loss(self, v_out, labels):
        import torch.nn.functional as F

        scores = self.scores(v_out)
        return F.cross_entropy(scores, labels), scores


def first_spike_times(v_out, dt_ms: float):
    """First spike times t_c (B, C), ms, of the output traces v_out (T, B, C) (module docstring);
    differentiable with respect to v_out."""
    import torch

    n_steps = v_out.shape[0]
    steps = torch.arange(n_steps, device=v_out.device).view(n_steps, 1, 1)
    k = torch.where(v_out >= THETA, steps, n_steps).amin(dim=0)  # first crossing; T: none
    fired = k < n_steps
    at = k.clamp(max=n_steps - 1)
    v_at = v_out.gather(0, at[None])[0]
    v_before = torch.where(at > 0, v_out.gather(0, (at - 1).clamp(min=0)[None])[0], 0.0)
    rise = torch.where(fired, v_at - v_before, 1.0)  # > 0 where fired: v_before < theta <= v_at
    crossing = dt_ms * (k + (THETA - v_before) / rise)
    fallback = n_steps * dt_ms * (1.0 + (THETA - v_out.amax(dim=0)) / THETA)
    return torch.where(fired, crossing, fallback)


class FirstSpikeReadout:
    """Scores -t / fs_tau and the first-spike loss of torch traces (T, B, C) (module docstring)."""

    def __init__(self, dt_ms: float, fs_tau: float, fs_early: float):
        self.dt_ms, self.fs_tau, self.fs_early = dt_ms, fs_tau, fs_early

    def scores(self, v_out):
        return -first_spike_times(v_out, self.dt_ms) / self.fs_tau

    def loss(self, v_out, labels):
        import torch
        import torch.nn.functional as F

        times = first_spike_times(v_out, self.dt_ms)
        scores = -times / self.fs_tau
        t_label = times.gather(1, labels[:, None])[:, 0]
        window = v_out.shape[0] * self.dt_ms
        early = self.fs_early * (torch.exp(t_label / window) - 1.0).mean()
        return F.cross_entropy(scores, labels) + early, scores


def torch_readout(hp: NetworkHparams, n_steps: int,
                  device: str = "cpu") -> TorchReadout | FirstSpikeReadout:
    """The readout ``hp.loss`` names, for torch traces of ``n_steps`` steps."""
    if hp.loss == FIRST_SPIKE:
        return FirstSpikeReadout(hp.dt_ms, hp.fs_tau, hp.fs_early)
    return TorchReadout(hp.loss, n_steps, hp.gauss_mu, hp.gauss_sigma, device=device)
