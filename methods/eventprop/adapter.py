"""The EventProp adapter: the Method contract around the grid and exact passes, Adam on the
weights' ``.grad``, and the silent-neuron remedy.

Silent-neuron remedy (``end_epoch``): EventProp cannot make a silent neuron spike (no spike, no
gradient). A neuron without a spike in the whole epoch gets delta_n added to all its input weights,

    delta_n = max(silent_boost, ((1 - beta) revive_drive theta - Sum_i r_i W_in[i,n]) / Sum_i r_i)

with r_i the epoch's mean input events of channel i per (sample, step) that has any input. The
steady synaptic current of a constant drive d per step is d / (1 - beta), so after the rise the
neuron's mean current while its input is active is at least ``revive_drive`` thresholds: it fires
again in the next epoch however far below threshold it had fallen (a fixed rise, mlGeNN's 0.002,
is too small to revive a layer that has fallen far)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from methods import lif
from methods.api import Batch, DatasetSpec, DivergedError, InferenceStats, Method
from methods.eventprop.common import FIRST_SPIKE, Forward, Net, Tables, first_spike_error
from methods.eventprop.events import EventBlocks
from methods.eventprop.exact import exact_backward, exact_forward
from methods.eventprop.grid import grid_backward, grid_forward
from methods.eventprop.hparams import EventPropHparams
from methods.torch_common import check_loss, seed_torch, sync_device, torch_device


def forward(net: Net, blocks: EventBlocks, store: bool, traces: bool = False) -> Forward:
    """The forward pass of ``net.hp.timing``."""
    if net.hp.timing == "grid":
        return grid_forward(net, blocks, store, traces)
    return exact_forward(net, blocks, store, traces)


@torch.no_grad()
def loss_and_grads(net: Net, batch: Batch) -> tuple[float, dict[str, torch.Tensor], int, Forward]:
    """One training step without the update: (batch-mean loss, gradients, correct, forward)."""
    blocks = net.blocks(batch)
    fw = forward(net, blocks, store=True)
    labels = torch.from_numpy(np.asarray(batch.y, dtype=np.int64)).to(net.device)
    logp = torch.log_softmax(fw.scores.double(), dim=1)
    loss_t = -logp.gather(1, labels[:, None]).mean()
    error = logp.exp()
    error[torch.arange(batch.size, device=net.device), labels] -= 1.0
    error = error / batch.size
    if net.hp.loss == FIRST_SPIKE:
        term, d_scores = first_spike_error(fw, labels, net.hp, batch.n_steps)
        loss_t = loss_t + term
        error += d_scores
    error = error.to(net.dtype)
    correct_t = (fw.scores.argmax(dim=1) == labels).sum()
    loss, correct = float(loss_t), int(correct_t)
    check_loss(loss)
    if net.hp.timing == "grid":
        grads = grid_backward(net, blocks, fw, error)
    else:
        grads = exact_backward(net, blocks, fw, error)
    total = sum(float(g.abs().sum()) for g in grads.values())
    if not math.isfinite(total):
        raise DivergedError("non-finite gradient")
    return loss, grads, correct, fw


# Grid mode's hidden gradients are a first-order discretisation of the exact ones: on a speech
# batch their cosine to exact mode's is 0.93 at dt = tau_syn / 5 and near 0 at dt = 2 tau_syn
# (docs/eventprop.md, section 9).
COARSE_DT = 0.2  # dt / tau_syn above which a grid-mode run is warned


def coarse_grid_warning(hp: EventPropHparams) -> str | None:
    """The warning for a grid-mode run whose step is coarse for its synapse, else None."""
    if hp.timing != "grid" or hp.dt_ms <= COARSE_DT * hp.tau_syn:
        return None
    return (f"eventprop: dt_ms={hp.dt_ms:g} is {hp.dt_ms / hp.tau_syn:.2g} x tau_syn; grid-mode "
            "hidden gradients are coarse at this step (docs/eventprop.md, section 9): use "
            f"dt_ms <= {COARSE_DT * hp.tau_syn:g} or timing=exact")


class EventProp(Method):
    name = "eventprop"
    framework = "torch"
    Hparams = EventPropHparams
    input_format = "events"

    # -- contract ---------------------------------------------------------------------------
    def setup(self, spec: DatasetSpec, hparams: EventPropHparams, seed: int, device: str) -> None:
        seed_torch(seed)
        message = coarse_grid_warning(hparams)
        if message:
            warnings.warn(message, stacklevel=2)
        self.spec, self.hp = spec, hparams
        self.device = torch_device(device)
        self.dtype = torch.float64 if hparams.dtype == "float64" else torch.float32
        weights = lif.init_weights(seed, spec.n_in, hparams.hidden, spec.n_classes, hparams.recurrent)
        self.params: dict[str, torch.nn.Parameter] = {
            key: torch.nn.Parameter(torch.from_numpy(w).to(self.device, self.dtype))
            for key, w in weights.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=hparams.lr)
        self.epoch_counts = torch.zeros(hparams.hidden, device=self.device, dtype=torch.float64)
        self.input_counts = np.zeros(spec.n_in)  # input events per channel this epoch
        self.input_steps = 0  # (sample, step) pairs with any input this epoch
        self._tables: dict[int, Tables] = {}
        self._stats: InferenceStats | None = None
        self._silent_last = 0
        self._boosted_total = 0

    def train_step(self, batch: Batch) -> dict[str, float]:
        loss, grads, correct, fw = loss_and_grads(self.net(), batch)
        for key, param in self.params.items():
            if self.hp.trains(key):  # else Adam leaves it as it is
                param.grad = grads[key]
        self.optimizer.step()
        self.epoch_counts += fw.counts.sum(0, dtype=torch.float64)
        self._count_input(batch)
        total = float(fw.counts.sum())
        return {"loss": loss, "correct": correct, "hidden_spikes": total,
                "spikes_per_neuron": total / (batch.size * self.hp.hidden)}

    @torch.no_grad()
    def predict(self, batch: Batch) -> np.ndarray:
        net = self.net()
        blocks = net.blocks(batch)
        fw = forward(net, blocks, store=False)
        counts = fw.counts.sum(1, dtype=torch.float64).cpu().numpy()
        T, N = batch.n_steps, self.hp.hidden
        active = (fw.active.double().cpu().numpy() if fw.active is not None else counts) / (T * N)
        synops, dense = lif.synops_per_sample(blocks.per_sample(), counts, batch.n_in, N,
                                              self.spec.n_classes, self.hp.recurrent, T)
        self._stats = InferenceStats(hidden_spikes=counts, n_neurons=N, synops=synops,
                                     dense_synops=dense, active_fraction=active)
        return fw.scores.float().cpu().numpy()

    def inference_stats(self) -> InferenceStats | None:
        return self._stats

    def _count_input(self, batch: Batch) -> None:
        ev = batch.events
        if ev is None or not len(ev.unit):
            return
        self.input_counts += np.bincount(ev.unit, weights=ev.count, minlength=self.spec.n_in)
        key = ev.sample * batch.n_steps + ev.step
        pairs = np.bincount(key, minlength=batch.size * batch.n_steps)  # a count, not a sort
        self.input_steps += int(np.count_nonzero(pairs))

    def revive_rise(self, silent: torch.Tensor) -> torch.Tensor:
        """delta_n of the remedy (module docstring) for the silent neurons, in their order."""
        rise = torch.full((int(silent.sum()),), self.hp.silent_boost, dtype=torch.float64)
        if self.hp.revive_drive <= 0 or self.input_steps == 0:
            return rise
        rate = torch.from_numpy(self.input_counts / self.input_steps)
        total = float(rate.sum())
        if total <= 0:
            return rise
        drive = rate @ self.params["w_in"].detach().cpu().double()[:, silent.cpu()]
        need = (1.0 - lif.Decays.from_hparams(self.hp).beta) * self.hp.revive_drive * lif.THETA
        return torch.maximum(rise, (need - drive) / total)

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> None:
        """Silent-neuron remedy (module docstring)."""
        silent = self.epoch_counts == 0
        self._silent_last = int(silent.sum())
        if self._silent_last and self.hp.trains("w_in") and (self.hp.silent_boost > 0
                                                             or self.hp.revive_drive > 0):
            rise = self.revive_rise(silent).to(self.device, self.dtype)
            self.params["w_in"][:, silent] += rise
            self._boosted_total += self._silent_last
        self.epoch_counts.zero_()
        self.input_counts[:] = 0.0
        self.input_steps = 0

    def extra_metrics(self) -> dict[str, float]:
        return {"silent_neurons_last_epoch": float(self._silent_last),
                "silent_boosts_total": float(self._boosted_total)}

    def sync(self) -> None:
        sync_device(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": {k: p.detach().cpu().clone() for k, p in self.params.items()},
                "optimizer": self.optimizer.state_dict(),
                "epoch_counts": self.epoch_counts.cpu().clone(),
                "input_counts": torch.from_numpy(self.input_counts.copy()),
                "input_steps": self.input_steps,
                "silent": (self._silent_last, self._boosted_total)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, param in self.params.items():
            param.copy_(state["weights"][key].to(self.device, self.dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch_counts.copy_(state["epoch_counts"].to(self.device))
        self.input_counts[:] = np.asarray(state["input_counts"], dtype=np.float64)
        self.input_steps = int(state["input_steps"])
        self._silent_last, self._boosted_total = state["silent"]

    def net(self) -> Net:
        """The current weights (no autograd history) and everything a pass reads."""
        w_rec = self.params["w_rec"].detach() if self.hp.recurrent else None
        return Net(self.hp, self.params["w_in"].detach(), w_rec, self.params["w_out"].detach(),
                   self.spec.n_classes, self._tables)
