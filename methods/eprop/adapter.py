"""The e-prop adapter: the Method contract around one forward pass per batch that also
accumulates the updates (no autograd graph), and Adam once per batch.

Learning signal (loss: sum_t w(t) CE(softmax(V_o[t]), y) / T, mean over the batch;
w(t) from ``loss``: sum | sum_exp | gauss_window; ``max`` uses w = 1):
    err_k[t] = w(t) (softmax(V_o[t])_k - onehot_k) / (B T)
    L_j[t]   = sum_k B_jk err_k[t],  B = W_out (feedback "symmetric") or fixed random ("random")
They drive the updates dW of :mod:`methods.eprop.learner` (eligibility traces, block form); Adam
applies the accumulated dW once per batch, after an optional rescaling to global norm
``grad_clip``. With no recurrence and symmetric feedback these are the exact gradients of the loss
for this pseudo-derivative and reset treatment. V_o, psi and the network:
:mod:`methods.eprop.network`.

Input: the batch's events, a block at a time (:mod:`methods.eprop.inputs`). The per-batch state
(network state, traces, carried filter state, accumulated updates) lives in buffers allocated once
per batch size and zeroed per batch: peak memory then does not depend on how the C allocator
happened to place earlier batches.

Prediction: the shared readout (``loss``: sum_t w(t) V_o[t] / T, or max) of V_o.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from methods import lif
from methods.api import Batch, DatasetSpec, InferenceStats, Method
from methods.eprop.hparams import EpropHparams
from methods.eprop.inputs import EventInput, input_block
from methods.eprop.learner import Learner, OutputFilter
from methods.eprop.network import Network, pseudo_derivative
from methods.readouts import time_weights
from methods.torch_common import check_loss, seed_torch, sync_device, torch_device


def learning_signal(v_out: torch.Tensor, onehot: torch.Tensor, wt: torch.Tensor,
                    batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A block's loss term and output error err (n, B, C) from its V_o (n, B, C) and time weights
    ``wt`` = w(t) / T (n, 1, 1)."""
    logp = torch.log_softmax(v_out, dim=2)
    return (wt * logp * onehot).sum() / batch, (logp.exp() - onehot) * (wt / batch)


def clip_global_norm(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    """``grads`` scaled down to global norm ``max_norm`` when above it (0 = off)."""
    if max_norm > 0:
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        if norm > max_norm:
            return {k: g * (max_norm / norm) for k, g in grads.items()}
    return grads


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
        """The batch's events over the reused input buffer."""
        shape = (batch.size, min(self.hp.chunk, batch.n_steps), batch.n_in)
        buffer = self._reused("input", shape, lambda: torch.zeros(shape, device=self.device))
        return EventInput(batch, buffer)

    def _weights(self, dtype: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """W_in, W_out and W_rec (None without recurrence), detached, as ``dtype``."""
        w_in = self.params["w_in"].detach().to(dtype)
        w_out = self.params["w_out"].detach().to(dtype)
        w_rec = self.params["w_rec"].detach().to(dtype) if "w_rec" in self.params else None
        return w_in, w_out, w_rec

    def _time_weights(self, t0: int, n: int, steps: int, like: torch.Tensor) -> torch.Tensor:
        """w(t) / T of steps t0 .. t0 + n - 1, shaped (n, 1, 1)."""
        return torch.as_tensor(self.time_w[t0:t0 + n] / steps, dtype=like.dtype,
                               device=like.device)[:, None, None]

    def _readout(self, scores: torch.Tensor, v_out: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        """The scores after a block: the running max of V_o, or the running sum of w(t) V_o / T."""
        if self.readout_max:
            return torch.maximum(scores, v_out.max(dim=0).values)
        return scores + (wt * v_out).sum(dim=0)

    # -- the single forward pass -------------------------------------------------------------
    def run(self, x: torch.Tensor | EventInput, labels: torch.Tensor | None,
            dtype=torch.float32) -> dict[str, Any]:
        """One forward pass over time; with labels, also the e-prop updates (no graph kept).
        ``x``: (B, T, n_in) spike counts (a tensor of any dtype, or events), read a block at a time."""
        hp = self.hp
        batch, steps, n_in = x.shape
        w_in, w_out, w_rec = self._weights(dtype)
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
            wt = self._time_weights(t0, n, steps, like)
            scores = self._readout(scores, v_out, wt)
            if learner is not None:
                term, err = learning_signal(v_out, onehot, wt, batch)
                loss = loss - term
                psi = pseudo_derivative(net.ub[:n] - lif.THETA, hp.gamma)
                learner.block(psi, err @ back.T, zf, err, last=t0 + n >= steps)
        return {"scores": scores, "loss": loss, "learner": learner, "counts": counts}

    # -- the contract ----------------------------------------------------------------------------
    def gradients(self, learner: Learner) -> dict[str, torch.Tensor]:
        """The accumulated updates of the trained weights, as copies."""
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
        grads = clip_global_norm(self.gradients(out["learner"]), self.hp.grad_clip)
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
