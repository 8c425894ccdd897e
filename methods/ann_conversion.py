"""ANN-to-SNN conversion (Diehl et al. 2015; Rueckauer et al. 2017): train a ReLU network on binned
spike counts with Adam, then convert it to integrate-and-fire neurons.

Input: the batch's spikes summed into bins of ``bin_ms`` (c_b, b = 0..nb-1; nb = ceil(T dt / bin_ms)).

ANN, ``arch`` = "rnn" (streams over bins):
    h_b = relu(c_b W_in + h_{b-1} U + a),  logits = (1/nb) sum_b (h_b W_o + a_o)
ANN, ``arch`` = "mlp" (default; the whole sample at once): h^1 = relu(flat(c) W_1 + a_1),
    h^l = relu(h^(l-1) W_l + a_l) for ``layers`` hidden layers, logits = h^L W_o + a_o.
Training: cross-entropy, Adam (lr), gradient norm clipped at ``grad_clip``, in ``train_step``.
A reservoir (Algorithm R, seeded) of ``norm_samples`` training samples is kept for the conversion.

Conversion (``finalize``, timed, the reported ``conversion_seconds``): lambda_l = the ``percentile``
(99.9) of the positive activations of hidden layer l on the reservoir; lambda_0 = 1.
    rnn: W_in' = W_in / lambda, a' = a / lambda, U' = U,          W_o' = lambda W_o
    mlp: W_l' = W_l lambda_(l-1) / lambda_l, a_l' = a_l / lambda_l, W_o' = lambda_L W_o
IF neurons, theta = 1, reset by subtraction, at most one spike per step, K = ``k_steps`` steps per bin:
    V[t] = V[t-1] + J[t];  s[t] = H(V[t] - 1);  V[t] <- V[t] - s[t]
    rnn: during bin b, J[t] = c_b W_in' + a' + s[t - K] U'   (the input enters as a constant current
         each step; the recurrent synapses deliver with a delay of one bin, K steps, so bin b sees
         the spikes of bin b-1). V keeps its positive residue across bins; a negative residue is
         dropped at the bin's end (V <- max(V, 0)), as the ReLU drops a negative pre-activation:
         otherwise a bin of negative drive leaves a debt of O(K) that silences the next bins and
         the error would not fall with K. Rate s ~ h_b / lambda.
    mlp: the sample is presented as a constant current for nb K steps, layer by layer.
Output: non-spiking integrators of W_o' s + a_o; score = integral / (steps) ~ the ANN's logits.

Evaluation: before ``finalize`` ``predict`` returns the ANN's scores (so the per-epoch validation
figure is the ANN's); after it, the converted SNN's, while the ANN's accuracy on the same batches is
accumulated: ``extra_metrics()['ann_test_acc']`` is the ANN's accuracy on every batch predicted since
``finalize`` (the runner predicts only the test split then).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from methods.api import BaseHparams, Batch, DatasetSpec, InferenceStats, InputError, Method
from methods import lif
from methods.torch_common import check_loss, seed_torch, sync_device, torch_device


@dataclass
class AnnHparams(BaseHparams):
    arch: Literal["rnn", "mlp"] = "mlp"
    hidden: int = 256
    layers: int = 1  # hidden layers of the mlp (the rnn has one recurrent layer)
    bin_ms: float = 10.0
    k_steps: int = 10  # SNN steps per bin
    percentile: float = 99.9
    norm_samples: int = 256  # reservoir of training samples for the normalisation
    grad_clip: float = 1.0
    weight_decay: float = 0.0

    def validate(self) -> None:
        for key in ("hidden", "layers", "bin_ms", "k_steps", "norm_samples", "steps", "dt_ms",
                    "batch_size", "lr"):
            if not getattr(self, key) > 0:
                raise InputError(f"{key} must be positive, got {getattr(self, key)}")
        if not 0 < self.percentile <= 100:
            raise InputError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.arch not in ("rnn", "mlp"):
            raise InputError(f"arch must be rnn or mlp, got {self.arch!r}")
        if self.epochs is not None and self.epochs < 1:
            raise InputError(f"epochs must be at least 1, got {self.epochs}")


def bin_counts(x: torch.Tensor, bin_steps: int) -> torch.Tensor:
    """(B, T, n_in) spikes -> (B, nb, n_in) float counts per bin (the last bin may be shorter)."""
    batch, steps, n_in = x.shape
    n_bins = -(-steps // bin_steps)
    pad = n_bins * bin_steps - steps
    if pad:
        x = torch.cat([x, x.new_zeros(batch, pad, n_in)], dim=1)
    return x.reshape(batch, n_bins, bin_steps, n_in).float().sum(dim=2)


# ---------------------------------------------------------------------------------------------
# The ReLU networks.


class ReluRnn(torch.nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int):
        super().__init__()
        self.w_in = torch.nn.Linear(n_in, hidden)
        self.u = torch.nn.Linear(hidden, hidden, bias=False)
        self.w_out = torch.nn.Linear(hidden, n_out)
        torch.nn.init.normal_(self.u.weight, 0.0, 0.5 / math.sqrt(hidden))

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """c (B, nb, n_in) -> logits (B, C), [h (B, nb, H)]."""
        drive = self.w_in(c)
        h = c.new_zeros(c.shape[0], drive.shape[2])
        hs = []
        for b in range(c.shape[1]):
            h = torch.relu(drive[:, b] + self.u(h))
            hs.append(h)
        h_all = torch.stack(hs, dim=1)
        return self.w_out(h_all).mean(dim=1), [h_all]


class ReluMlp(torch.nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int, layers: int):
        super().__init__()
        sizes = [n_in] + [hidden] * layers
        self.hidden = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.w_out = torch.nn.Linear(hidden, n_out)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """c (B, nb, n_in) -> logits (B, C), [h^l (B, H)]."""
        h = c.reshape(c.shape[0], -1)
        acts = []
        for layer in self.hidden:
            h = torch.relu(layer(h))
            acts.append(h)
        return self.w_out(h), acts


# ---------------------------------------------------------------------------------------------
# The converted spiking networks.


def layer_scales(acts: list[torch.Tensor], percentile: float) -> list[float]:
    """lambda_l: the percentile of each layer's positive activations (1 if a layer is silent)."""
    scales = []
    for a in acts:
        positive = a[a > 0].double()
        if positive.numel() == 0:
            scales.append(1.0)
            continue
        scales.append(float(torch.quantile(positive[: 16_000_000], percentile / 100.0)))
    return scales


def if_step(v: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Integrate-and-fire, theta = 1, reset by subtraction; returns the spikes (v updated)."""
    v.add_(current)
    s = (v >= lif.THETA).to(v.dtype)
    v.sub_(s)
    return s


@dataclass
class SpikingRnn:
    w_in: torch.Tensor  # (n_in, H), normalised
    bias: torch.Tensor  # (H,)
    u: torch.Tensor  # (H, H)
    w_out: torch.Tensor  # (H, C)
    b_out: torch.Tensor  # (C,)

    @classmethod
    def convert(cls, ann: ReluRnn, scale: float) -> "SpikingRnn":
        return cls(w_in=ann.w_in.weight.detach().T / scale, bias=ann.w_in.bias.detach() / scale,
                   u=ann.u.weight.detach().T.clone(), w_out=ann.w_out.weight.detach().T * scale,
                   b_out=ann.w_out.bias.detach().clone())

    def run(self, c: torch.Tensor, k_steps: int) -> dict[str, torch.Tensor]:
        """c (B, nb, n_in) -> scores (B, C), spike counts per bin (B, nb, H)."""
        batch, n_bins, _ = c.shape
        drive = c @ self.w_in + self.bias  # constant current of each bin
        v = drive.new_zeros(batch, self.u.shape[0])
        previous = drive.new_zeros(k_steps, batch, self.u.shape[0])  # spikes of the last bin
        counts = []
        for b in range(n_bins):
            v.clamp_(min=0.0)  # a bin's negative residue is what the ReLU discards
            recurrent = previous @ self.u  # what the delayed synapses deliver at each step
            spikes = [if_step(v, drive[:, b] + recurrent[k]) for k in range(k_steps)]
            previous = torch.stack(spikes)
            counts.append(previous.sum(dim=0))
        counts = torch.stack(counts, dim=1)
        total = counts.sum(dim=1)
        scores = (total @ self.w_out) / (n_bins * k_steps) + self.b_out
        return {"scores": scores, "rates": counts / k_steps, "hidden_spikes": total.sum(dim=1)}


@dataclass
class SpikingMlp:
    weights: list[torch.Tensor]  # normalised (in, out) per hidden layer
    biases: list[torch.Tensor]
    w_out: torch.Tensor
    b_out: torch.Tensor

    @classmethod
    def convert(cls, ann: ReluMlp, scales: list[float]) -> "SpikingMlp":
        previous = [1.0] + scales[:-1]
        weights = [layer.weight.detach().T * (p / s)
                   for layer, p, s in zip(ann.hidden, previous, scales)]
        biases = [layer.bias.detach() / s for layer, s in zip(ann.hidden, scales)]
        return cls(weights, biases, ann.w_out.weight.detach().T * scales[-1],
                   ann.w_out.bias.detach().clone())

    def run(self, c: torch.Tensor, k_steps: int) -> dict[str, torch.Tensor]:
        """The flattened sample as a constant current for nb K steps."""
        steps = c.shape[1] * k_steps
        drive = c.reshape(c.shape[0], -1) @ self.weights[0] + self.biases[0]
        vs = [drive.new_zeros(c.shape[0], w.shape[1]) for w in self.weights]
        totals = [torch.zeros_like(v) for v in vs]
        for _ in range(steps):
            s = if_step(vs[0], drive)
            totals[0] += s
            for i in range(1, len(self.weights)):
                s = if_step(vs[i], s @ self.weights[i] + self.biases[i])
                totals[i] += s
        scores = (totals[-1] @ self.w_out) / steps + self.b_out
        hidden_spikes = sum(t.sum(dim=1) for t in totals)
        return {"scores": scores, "rates": totals[0] / steps, "hidden_spikes": hidden_spikes}


# ---------------------------------------------------------------------------------------------
# The adapter.


class AnnConversion(Method):
    name = "ann-conversion"
    framework = "torch"
    Hparams = AnnHparams
    input_format = "dense"

    def setup(self, spec: DatasetSpec, hparams: AnnHparams, seed: int, device: str) -> None:
        seed_torch(seed)
        self.spec, self.hp, self.device = spec, hparams, torch_device(device)
        self.bin_steps = max(1, int(round(hparams.bin_ms / hparams.dt_ms)))
        self.n_bins = -(-spec.n_steps // self.bin_steps)
        if hparams.arch == "rnn":
            self.ann = ReluRnn(spec.n_in, hparams.hidden, spec.n_classes)
        else:
            self.ann = ReluMlp(spec.n_in * self.n_bins, hparams.hidden, spec.n_classes, hparams.layers)
        self.ann.to(self.device)
        self.optimizer = torch.optim.Adam(self.ann.parameters(), lr=hparams.lr,
                                          weight_decay=hparams.weight_decay)
        self.rng = np.random.default_rng(seed)
        self.reservoir: list[torch.Tensor] = []
        self.seen = 0
        self.snn: SpikingRnn | SpikingMlp | None = None
        self.scales: list[float] = []
        self.conversion_seconds = float("nan")
        self.eval_counts = {"ann": 0, "snn": 0, "total": 0}
        self._stats: InferenceStats | None = None

    def counts(self, batch: Batch) -> torch.Tensor:
        return bin_counts(torch.from_numpy(batch.x).to(self.device), self.bin_steps)

    def keep(self, c: torch.Tensor) -> None:
        """Reservoir sampling (Algorithm R) of training samples' bin counts, as int16."""
        for sample in c.to(torch.int16):
            if len(self.reservoir) < self.hp.norm_samples:
                self.reservoir.append(sample.clone())
            else:
                j = int(self.rng.integers(0, self.seen + 1))
                if j < self.hp.norm_samples:
                    self.reservoir[j] = sample.clone()
            self.seen += 1

    def train_step(self, batch: Batch) -> dict[str, float]:
        c = self.counts(batch)
        labels = torch.from_numpy(batch.y).to(self.device)
        self.keep(c)
        self.ann.train()
        logits, _ = self.ann(c)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        value = float(loss.detach())
        check_loss(value)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.hp.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.ann.parameters(), self.hp.grad_clip)
        self.optimizer.step()
        return {"loss": value, "correct": int((logits.argmax(dim=1) == labels).sum())}

    @torch.no_grad()
    def finalize(self) -> None:
        """Data-based normalisation on the reservoir, then the IF network."""
        start = time.perf_counter()
        self.ann.eval()
        acts: list[list[torch.Tensor]] = []
        for i in range(0, len(self.reservoir), 64):
            c = torch.stack(self.reservoir[i:i + 64]).float()
            acts.append(self.ann(c)[1])
        if not acts:
            raise RuntimeError("finalize() before any train_step: nothing to normalise on")
        layers = [torch.cat([a[i] for a in acts]) for i in range(len(acts[0]))]
        self.scales = layer_scales(layers, self.hp.percentile)
        self.snn = self.convert()
        self.eval_counts = {"ann": 0, "snn": 0, "total": 0}
        self.conversion_seconds = time.perf_counter() - start

    def convert(self) -> SpikingRnn | SpikingMlp:
        if isinstance(self.ann, ReluRnn):
            return SpikingRnn.convert(self.ann, self.scales[0])
        return SpikingMlp.convert(self.ann, self.scales)

    @torch.no_grad()
    def predict(self, batch: Batch) -> np.ndarray:
        c = self.counts(batch)
        self.ann.eval()
        ann_scores, acts = self.ann(c)
        if self.snn is None:
            self._stats = None
            return ann_scores.float().cpu().numpy()
        out = self.snn.run(c, self.hp.k_steps)
        labels = torch.from_numpy(batch.y).to(self.device)
        self.eval_counts["ann"] += int((ann_scores.argmax(dim=1) == labels).sum())
        self.eval_counts["snn"] += int((out["scores"].argmax(dim=1) == labels).sum())
        self.eval_counts["total"] += batch.size
        self._stats = self.spike_stats(out["hidden_spikes"], batch)
        return out["scores"].float().cpu().numpy()

    def spike_stats(self, hidden_spikes: torch.Tensor, batch: Batch) -> InferenceStats:
        """Synaptic operations of the converted network: each input spike reaches every neuron of
        the first layer once (its bin's current is computed once), each hidden spike its targets."""
        hp = self.hp
        n_out = self.spec.n_classes
        steps = self.n_bins * hp.k_steps
        spikes = hidden_spikes.double().cpu().numpy()
        inputs = batch.x.reshape(batch.size, -1).sum(axis=1).astype(np.float64)
        fan_out = hp.hidden + n_out  # rnn: recurrent + output; mlp: next layer or output
        synops = inputs * hp.hidden + spikes * fan_out
        if hp.arch == "rnn":
            dense_step = batch.n_in * hp.hidden + hp.hidden * hp.hidden + hp.hidden * n_out
        else:
            dense_step = (batch.n_in * self.n_bins * hp.hidden + hp.hidden * hp.hidden * (hp.layers - 1)
                          + hp.hidden * n_out)
        n_neurons = hp.hidden * (hp.layers if hp.arch == "mlp" else 1)
        return InferenceStats(hidden_spikes=spikes, n_neurons=n_neurons, synops=synops,
                              dense_synops=np.full_like(synops, float(dense_step * steps)),
                              active_fraction=spikes / float(n_neurons * steps))

    def inference_stats(self) -> InferenceStats | None:
        return self._stats

    def extra_metrics(self) -> dict[str, float]:
        total = self.eval_counts["total"]
        out = {"conversion_seconds": self.conversion_seconds}
        if total:
            out["ann_test_acc"] = self.eval_counts["ann"] / total
            out["snn_test_acc_seen"] = self.eval_counts["snn"] / total
        return out

    def sync(self) -> None:
        sync_device(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"ann": self.ann.state_dict(), "optimizer": self.optimizer.state_dict(),
                "reservoir": [r.clone() for r in self.reservoir], "seen": self.seen,
                "rng": self.rng.bit_generator.state, "scales": list(self.scales),
                "finalized": self.snn is not None, "conversion_seconds": self.conversion_seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ann.load_state_dict(state["ann"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.reservoir = [r.to(self.device) for r in state["reservoir"]]
        self.seen = state["seen"]
        self.rng.bit_generator.state = state["rng"]
        self.scales = list(state["scales"])
        self.conversion_seconds = state["conversion_seconds"]
        self.snn = self.convert() if state["finalized"] else None
