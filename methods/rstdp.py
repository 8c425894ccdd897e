"""Reward-modulated STDP (Izhikevich 2007; Florian 2007; Mozafari et al. 2018) training a spiking
readout on a fixed LIF hidden layer.

Network (dt steps, t = 0..T-1; alpha, beta, alpha_o as in :mod:`methods.lif`, theta = 1):
    hidden (fixed, never trained): the shared current-based LIF layer (equations in
        :mod:`methods.lif`), reset to 0. ``hidden_init``: "random" = lif.init_weights (the shared initial network);
        "bands" = each neuron j sums a Gaussian band of input channels around a random centre c_j
        (width ``band_width`` channels; neighbouring channels of SHD are neighbouring frequencies),
        scaled per neuron on the first training batch so that its mean input current is
        ``band_drive`` (a data-based gain, fixed afterwards), with lif.py's recurrent weights.
    readout (trained): n_classes LIF neurons with the same current synapse, tau_out, threshold 1,
        reset to 0, non-negative weights W (N x C), and lateral inhibition
        J_k[t] = beta J_k[t-1] + s[t] W_k - w_inh (sum_l s_l[t-1] - s_k[t-1]) (soft winner-take-all);
        during training a Gaussian current (std ``noise``) explores. Thresholds theta_k adapt,
        label-free, towards equal win rates: theta_k += h (wins_k / B - 1/C) per batch (>= 0.1).
        Gains set on the first training batch: the readout's, so that a column carries the
        hidden layer's mean rates r (measured then) to a steady current of 2 ``out_scale``.
    decision: the output with the most spikes; score_k = count_k + 0.1 tanh(mean_t V_k) (the
        membrane term < 0.5 only breaks ties, including the all-silent case; argmax takes the
        lowest index among exact ties).

Learning (per trial b of a batch, all trials of a batch simulated in parallel):
    pre trace  x_i[t] = exp(-dt/tau_stdp) x_i[t-1] + s_i[t]          (hidden spikes s)
    post trace y_k[t] = exp(-dt/tau_stdp) y_k[t-1] + o_k[t]          (output spikes o)
    STDP_ik[t] = A+ x_i[t] o_k[t] - A- s_i[t] y_k[t-1]
        (a pre spike in the same step as a post spike counts as pre-before-post: it caused it)
    eligibility e_ik[t] = exp(-dt/tau_elig) e_ik[t-1] + STDP_ik[t]
    reward at trial end R = +1 if the decision is the label, else -1; baseline Rbar_y, a running
        mean of R per class (rate ``reward_rate``); modulator M = R - Rbar_y (then Rbar_y updated)
    dW = lr * mean(W) * mean_b M_b e_b[T-1], restricted to the decision neuron's column when
        ``update`` = "winner" (Mozafari et al.), every column when "all"
    then W <- max(W, 0) and each column rescaled so that its mean drive r . W_k keeps its initial
        value (``normalise``): synaptic scaling keeps every output equally excitable, so a punished
        neuron loses weight on the active features and gains it on the others, and weight cannot
        drift onto the busiest hidden neurons.
Teacher-free: the label enters only through the scalar reward. Weights change once per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from methods.api import (Batch, DatasetSpec, InferenceStats, InputError, Method, NetworkHparams,
                       validate_network)
from methods import lif
from methods.lif_torch import lif_step
from methods.torch_common import seed_torch, sync_device, torch_device


@dataclass
class RStdpHparams(NetworkHparams):
    lr: float = 1.0
    hidden_init: Literal["random", "bands"] = "bands"
    band_width: float = 8.0  # channels (std of the Gaussian receptive field), "bands" only
    band_drive: float = 1.2  # target mean input current per hidden neuron (theta = 1), "bands"
    tau_stdp: float = 20.0  # ms, pre and post traces
    tau_elig: float = 1000.0  # ms, eligibility trace
    a_plus: float = 1.0
    a_minus: float = 0.5
    reward_rate: float = 0.05  # running-mean rate of the per-class reward baseline
    update: Literal["winner", "all"] = "winner"
    normalise: bool = True
    w_inh: float = 0.5  # lateral inhibition between outputs (soft winner-take-all)
    noise: float = 0.05  # std of the exploratory current into outputs during training
    out_scale: float = 0.6  # output drive: mean steady current 2 * out_scale (threshold 1)
    homeostasis: float = 0.5  # threshold adaptation per batch towards equal win rates; 0 = off
    chunk: int = 100  # steps per block of the eligibility accumulation

    def validate(self) -> None:
        validate_network(self)
        if not self.train_hidden:
            raise InputError("r-stdp does not learn W_in or W_rec (it sets their gain once from "
                             "data and trains W_out): train_hidden=false does not apply")
        for key in ("band_width", "band_drive", "tau_stdp", "tau_elig", "reward_rate", "chunk",
                    "out_scale"):
            if not getattr(self, key) > 0:
                raise InputError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("a_plus", "a_minus", "w_inh", "noise"):
            if getattr(self, key) < 0:
                raise InputError(f"{key} must be non-negative, got {getattr(self, key)}")
        if self.hidden_init not in ("random", "bands"):
            raise InputError(f"hidden_init must be random or bands, got {self.hidden_init!r}")
        if self.update not in ("winner", "all"):
            raise InputError(f"update must be winner or all, got {self.update!r}")


def band_weights(rng: np.random.Generator, n_in: int, hidden: int, width: float) -> np.ndarray:
    """(n_in, hidden) Gaussian receptive fields over channels around random centres, each column
    summing to 1 (the gain is set from data later)."""
    centres = rng.uniform(0, n_in, hidden)
    channels = np.arange(n_in)[:, None]
    w = np.exp(-((channels - centres[None, :]) ** 2) / (2 * width**2))
    w *= rng.uniform(0.5, 1.5, size=w.shape)
    return (w / w.sum(axis=0, keepdims=True)).astype(np.float32)


class StdpTraces:
    """Pre and post traces and the eligibility e (B, N, C) at the trial's last step, T - 1.

    Steps are kept a block at a time and folded in with e(T-1) = sum_t d_e^(T-1-t) STDP[t]."""

    def __init__(self, batch: int, n_pre: int, n_post: int, steps: int, hp: RStdpHparams,
                 like: torch.Tensor):
        self.hp, self.steps = hp, steps
        self.d_stdp = math.exp(-hp.dt_ms / hp.tau_stdp)
        self.d_elig = math.exp(-hp.dt_ms / hp.tau_elig)
        self.pre = like.new_zeros(batch, n_pre)
        self.post = like.new_zeros(batch, n_post)
        self.elig = like.new_zeros(batch, n_pre, n_post)
        self.block: dict[str, list[torch.Tensor]] = {"x": [], "o": [], "s": [], "y": []}
        self.t = 0  # steps seen

    def step(self, pre_spikes: torch.Tensor, post_spikes: torch.Tensor) -> None:
        """x[t] = d x[t-1] + s[t], y[t] = d y[t-1] + o[t]; keep x[t], o[t], s[t], y[t-1]."""
        self.block["y"].append(self.post)
        self.pre = self.pre * self.d_stdp + pre_spikes
        self.post = self.post * self.d_stdp + post_spikes
        for key, value in (("x", self.pre), ("o", post_spikes), ("s", pre_spikes)):
            self.block[key].append(value)

    def flush(self) -> None:
        """sum over the kept steps of d_e^(T-1-t) (A+ x[t] o[t]^T - A- s[t] y[t-1]^T)."""
        n = len(self.block["x"])
        if n == 0:
            return
        x, o, s, y = (torch.stack(self.block[k]) for k in ("x", "o", "s", "y"))
        ages = self.steps - 1 - (self.t + torch.arange(n, dtype=x.dtype, device=x.device))
        w = (self.d_elig ** ages)[:, None, None]
        ltp = torch.einsum("tbn,tbc->bnc", x * w, o)
        ltd = torch.einsum("tbn,tbc->bnc", s * w, y)
        self.elig += self.hp.a_plus * ltp - self.hp.a_minus * ltd
        self.t += n
        self.block = {k: [] for k in self.block}


class RStdp(Method):
    name = "rstdp"
    framework = "torch"
    Hparams = RStdpHparams
    input_format = "dense"

    def setup(self, spec: DatasetSpec, hparams: RStdpHparams, seed: int, device: str) -> None:
        seed_torch(seed)
        self.spec, self.hp, self.device = spec, hparams, torch_device(device)
        self.lr = hparams.lr  # the schedule's rate for the current epoch (set_lr)
        self.dec = lif.Decays.from_hparams(hparams)
        rng = np.random.default_rng(seed)
        shared = lif.init_weights(seed, spec.n_in, hparams.hidden, spec.n_classes, hparams.recurrent)
        w_in = shared["w_in"] if hparams.hidden_init == "random" else \
            band_weights(rng, spec.n_in, hparams.hidden, hparams.band_width)
        self.w_in = torch.from_numpy(w_in).to(self.device)
        self.w_rec = torch.from_numpy(shared["w_rec"]).to(self.device) if hparams.recurrent else None
        w_out = rng.uniform(0.5, 1.5, size=(hparams.hidden, spec.n_classes)).astype(np.float32)
        self.w_out = torch.from_numpy(w_out / w_out.sum(axis=0, keepdims=True)).to(self.device)
        self.calibrated = hparams.hidden_init == "random"
        self.out_calibrated = False
        self.pre_rate = torch.ones(hparams.hidden, device=self.device)  # hidden mean rates
        self.norm = self.pre_rate @ self.w_out  # each column's mean drive, kept constant
        self.w_scale = self.w_out.mean()  # updates are relative to the mean weight
        self.baseline = torch.zeros(spec.n_classes, device=self.device)
        self.theta = torch.full((spec.n_classes,), lif.THETA, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._stats: InferenceStats | None = None

    # -- simulation --------------------------------------------------------------------------
    def calibrate(self, x: torch.Tensor) -> None:
        """Data-based gains on the first training batch: hidden input so the mean input current
        is ``band_drive``, readout so a column of weights carries the mean hidden rate to about
        threshold (times ``out_scale``)."""
        hp = self.hp
        if not self.calibrated:
            rate = x.float().mean(dim=(0, 1))  # spikes per step per channel
            current = (rate @ self.w_in) / (1.0 - self.dec.beta)  # steady synaptic current
            self.w_in *= hp.band_drive / current.clamp(min=1e-6)
            self.calibrated = True
        if not self.out_calibrated:
            rate = self.run(x, train=False)["hidden_rate"]  # (N,) spikes per step
            current = (rate @ self.w_out) / (1.0 - self.dec.beta)
            self.w_out *= hp.out_scale * 2.0 / current.clamp(min=1e-6)
            self.pre_rate = rate.clamp(min=1e-6)
            self.norm = self.pre_rate @ self.w_out
            self.w_scale = self.w_out.mean()
            self.out_calibrated = True

    def run(self, x: torch.Tensor, train: bool) -> dict[str, Any]:
        """Simulate a batch; with ``train``, also the eligibility traces at the trial's end."""
        hp, dec = self.hp, self.dec
        batch, steps, _ = x.shape
        hidden, n_out = self.w_out.shape
        new = self.w_in.new_zeros
        I, V, z = new(batch, hidden), new(batch, hidden), new(batch, hidden)
        Io, Vo, o = new(batch, n_out), new(batch, n_out), new(batch, n_out)
        counts, vsum, hidden_spikes = new(batch, n_out), new(batch, n_out), new(batch, hidden)
        traces = StdpTraces(batch, hidden, n_out, steps, hp, self.w_in) if train else None
        chunk = min(hp.chunk, steps)
        for t0 in range(0, steps, chunk):
            drive = (x[:, t0:t0 + chunk].float() @ self.w_in).transpose(0, 1)
            for k in range(drive.shape[0]):
                _, _, z, V = lif_step(V, I, drive[k], dec, z, self.w_rec, i_out=I)
                hidden_spikes += z
                inhibition = hp.w_inh * (o.sum(dim=1, keepdim=True) - o)
                Io.mul_(dec.beta).add_(z @ self.w_out).sub_(inhibition)
                if train and hp.noise > 0:
                    Io.add_(torch.randn(batch, n_out, generator=self.generator,
                                          device=Io.device) * hp.noise)
                Vo = torch.lerp(Vo, Io, 1.0 - dec.alpha_out)
                vsum += Vo
                o = (Vo > self.theta).float()
                Vo = Vo * (1.0 - o)
                counts += o
                if traces is not None:
                    traces.step(z, o)
            if traces is not None:
                traces.flush()
        scores = counts + 0.1 * torch.tanh(vsum / steps)
        return {"scores": scores, "elig": None if traces is None else traces.elig,
                "hidden_count": hidden_spikes.sum(dim=1), "hidden_rate": hidden_spikes.mean(dim=0) / steps}

    # -- the contract ----------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, float]:
        x = torch.from_numpy(batch.x).to(self.device)
        labels = torch.from_numpy(batch.y).to(self.device)
        with torch.no_grad():
            self.calibrate(x)
            out = self.run(x, train=True)
            decision = out["scores"].argmax(dim=1)
            reward = (decision == labels).float() * 2.0 - 1.0
            modulator = reward - self.baseline[labels]
            self.update_baseline(labels, reward)
            self.apply(out["elig"], modulator, decision)
            self.adapt_thresholds(decision)
        return {"loss": float(-reward.mean()), "correct": int((decision == labels).sum())}

    def update_baseline(self, labels: torch.Tensor, reward: torch.Tensor) -> None:
        """Rbar_y <- Rbar_y + rate (R - Rbar_y), trial by trial in batch order."""
        for label, r in zip(labels.tolist(), reward.tolist()):
            self.baseline[label] += self.hp.reward_rate * (r - self.baseline[label])

    def apply(self, elig: torch.Tensor, modulator: torch.Tensor, decision: torch.Tensor) -> None:
        hp = self.hp
        if hp.update == "winner":
            gate = torch.nn.functional.one_hot(decision, elig.shape[2]).to(elig.dtype)
            elig = elig * gate[:, None, :]
        delta = (modulator[:, None, None] * elig).mean(dim=0)
        self.w_out += self.lr * self.w_scale * delta
        if hp.normalise:
            self.w_out.clamp_(min=0.0)
            self.w_out *= self.norm / (self.pre_rate @ self.w_out).clamp(min=1e-12)

    def set_lr(self, lr: float) -> None:
        self.lr = lr

    def adapt_thresholds(self, decision: torch.Tensor) -> None:
        """Homeostasis, label-free: theta_k += h (wins_k / B - 1 / C), kept >= 0.1."""
        n_out = self.theta.shape[0]
        wins = torch.bincount(decision, minlength=n_out).to(self.theta.dtype) / decision.shape[0]
        self.theta.add_(self.hp.homeostasis * (wins - 1.0 / n_out)).clamp_(min=0.1)

    def predict(self, batch: Batch) -> np.ndarray:
        with torch.no_grad():
            out = self.run(torch.from_numpy(batch.x).to(self.device), train=False)
        self._stats = lif.count_stats(out["hidden_count"].double().cpu().numpy(), batch, self.hp,
                                      self.spec.n_classes)
        return out["scores"].cpu().numpy()

    def inference_stats(self) -> InferenceStats | None:
        return self._stats

    def sync(self) -> None:
        sync_device(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"w_in": self.w_in.clone(), "w_rec": None if self.w_rec is None else self.w_rec.clone(),
                "w_out": self.w_out.clone(), "norm": self.norm.clone(),
                "pre_rate": self.pre_rate.clone(), "w_scale": self.w_scale.clone(),
                "baseline": self.baseline.clone(), "theta": self.theta.clone(), "calibrated": self.calibrated,
                "out_calibrated": self.out_calibrated, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_in = state["w_in"].to(self.device)
        self.w_rec = None if state["w_rec"] is None else state["w_rec"].to(self.device)
        self.w_out = state["w_out"].to(self.device)
        self.norm = state["norm"].to(self.device)
        self.pre_rate = state["pre_rate"].to(self.device)
        self.w_scale = state["w_scale"].to(self.device)
        self.baseline = state["baseline"].to(self.device)
        self.theta = state["theta"].to(self.device)
        self.calibrated, self.out_calibrated = state["calibrated"], state["out_calibrated"]
        self.generator.set_state(state["generator"])
