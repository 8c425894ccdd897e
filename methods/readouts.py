"""Readouts and losses shared by every gradient method (Nowotny et al. 2025, mlGeNN's SHD readouts).

A readout turns the output traces V_k(t), t = 0..T-1, into class scores s_k; the loss is the
cross-entropy of softmax(s) with the label.

    sum:           s_k = (1/T) sum_t V_k(t)
    sum_exp:       s_k = (1/T) sum_t exp(-t/T) V_k(t)
    gauss_window:  s_k = (1/T) sum_t w(t) V_k(t),  w(t) = exp(-(t - mu T)^2 / (2 (sigma T)^2))
    max:           s_k = max_t V_k(t)

``mu`` and ``sigma`` are fractions of T, so a window keeps its place when T or dt changes. Unless
set (``--set gauss_mu=``, ``gauss_sigma=``), a run places the window on its training data's
activity (:func:`window_for_activity`): mu T dt = the median of the training spike times in the
window, sigma T dt = half the range between their 16th and 84th percentiles. Speech that ends
halfway through the window then keeps the window on the speech, not on the silence after it.
For the weighted readouts the loss's derivative with respect to V_k(t) is
(softmax(s)_k - onehot_k) w(t) / (B T) for a batch-mean loss: :func:`output_drive` gives it to
adjoint methods such as EventProp.
"""

from __future__ import annotations

import numpy as np

from methods.api import READOUTS


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


def window_for_activity(centre_ms: float, spread_ms: float, window_ms: float,
                        n_steps: int) -> tuple[float, float]:
    """(mu, sigma) of the Gaussian window, as fractions of the window, from the data's activity
    centre and spread in ms; sigma is at least one step."""
    mu = min(max(centre_ms / window_ms, 0.0), 1.0)
    sigma = max(spread_ms / window_ms, 1.0 / n_steps)
    return mu, sigma


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
