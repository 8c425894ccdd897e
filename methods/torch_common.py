"""What the torch adapters of the shared network have in common: seeding, initial weights from
:func:`methods.lif.init_weights`, Adam, the shared readout, training and prediction steps,
inference statistics and checkpoints. An adapter only says how to build its network
(:meth:`TorchNetworkMethod.build`), a module whose forward maps x (B, T, n_in) to
(hidden spikes (T, B, N), output traces (T, B, C)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.api import (MAX_LOSS, Batch, DatasetSpec, InferenceStats, InputError, Method,  # noqa: F401
                         NetworkHparams, check_loss)
from methods import lif
from methods.readouts import torch_readout


def weight_parameters(
    weights: dict[str, np.ndarray],
) -> tuple[torch.nn.Parameter, torch.nn.Parameter | None, torch.nn.Parameter]:
    """(w_in, w_rec, w_out) of :func:`methods.lif.init_weights` as parameters; w_rec is None when
    the network is not recurrent."""
    w_rec = weights.get("w_rec")
    return (torch.nn.Parameter(torch.from_numpy(weights["w_in"])),
            None if w_rec is None else torch.nn.Parameter(torch.from_numpy(w_rec)),
            torch.nn.Parameter(torch.from_numpy(weights["w_out"])))


def torch_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but torch sees no CUDA device")
    return torch.device(device)


def sync_device(device: torch.device) -> None:
    """Block until queued work on ``device`` is done (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_torch(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def sorted_events(batch: Batch, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(step, sample, unit, count) of the batch's input events as int64 / count arrays, checked
    against the batch's shape and sorted by step (the contract says they are; a stable sort
    makes sure, only when needed). Bad events raise InputError."""
    events = batch.events
    if events is None:
        raise InputError(f"{method} expects event input (Batch.events), got none")
    step = np.asarray(events.step, dtype=np.int64)
    sample = np.asarray(events.sample, dtype=np.int64)
    unit = np.asarray(events.unit, dtype=np.int64)
    count = np.asarray(events.count)
    if step.size:
        if step.min() < 0 or step.max() >= batch.n_steps:
            raise InputError("event step outside 0..n_steps-1")
        if unit.min() < 0 or unit.max() >= batch.n_in:
            raise InputError("event unit outside 0..n_in-1")
        if sample.min() < 0 or sample.max() >= batch.size:
            raise InputError("event sample outside the batch")
    if step.size > 1 and np.any(step[1:] < step[:-1]):
        order = np.argsort(step, kind="stable")
        step, sample, unit, count = step[order], sample[order], unit[order], count[order]
    return step, sample, unit, count


def dense_input(batch: Batch, device: torch.device) -> torch.Tensor:
    assert batch.x is not None, "dense-input method received a batch without x"
    return torch.from_numpy(batch.x).to(device=device, dtype=torch.float32, non_blocking=True)


def network_stats(spikes: torch.Tensor, batch: Batch, hp: NetworkHparams, n_out: int) -> InferenceStats:
    """Inference statistics of the shared network from its hidden spikes (T, B, N)."""
    hidden_spikes = spikes.sum(dim=(0, 2)).double().cpu().numpy()
    active = (spikes > 0).double().mean(dim=(0, 2)).cpu().numpy()
    return lif.inference_stats(hidden_spikes, active, batch, hp.hidden, hp.recurrent, n_out)


class TorchModuleState:
    """Checkpoint and sync of an adapter holding ``self.net`` (a torch module), ``self.optimizer``
    and ``self.device``."""

    def sync(self) -> None:
        sync_device(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


class TorchNetworkMethod(TorchModuleState, Method):
    """Base of the torch adapters of the shared network (see module docstring)."""

    framework = "torch"
    max_loss = MAX_LOSS

    def build(self, weights: dict[str, np.ndarray], hp: Any) -> torch.nn.Module:
        raise NotImplementedError

    def setup(self, spec: DatasetSpec, hparams: Any, seed: int, device: str) -> None:
        seed_torch(seed)
        self.spec, self.hp, self.device = spec, hparams, torch_device(device)
        weights = lif.init_weights(seed, spec.n_in, hparams.hidden, spec.n_classes, hparams.recurrent)
        self.net = self.build(weights, hparams).to(self.device)
        if not hparams.train_hidden:
            for name, param in self.net.named_parameters():
                param.requires_grad_(hparams.trains(name))
        self.optimizer = torch.optim.Adam(
            [p for p in self.net.parameters() if p.requires_grad], lr=hparams.lr)
        self.readout = torch_readout(hparams, spec.n_steps, device=str(self.device))
        self._stats: InferenceStats | None = None

    def train_step(self, batch: Batch) -> dict[str, float]:
        self.net.train()
        x = dense_input(batch, self.device)
        labels = torch.from_numpy(batch.y).to(self.device)
        _, traces = self.net(x)
        loss, scores = self.readout.loss(traces, labels)
        value = float(loss.detach())
        check_loss(value, self.max_loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        correct = int((scores.argmax(dim=1) == labels).sum())
        return {"loss": value, "correct": correct}

    @torch.no_grad()
    def predict(self, batch: Batch) -> np.ndarray:
        self.net.eval()
        spikes, traces = self.net(dense_input(batch, self.device))
        self._stats = network_stats(spikes, batch, self.hp, self.spec.n_classes)
        return self.readout.scores(traces).float().cpu().numpy()

    def inference_stats(self) -> InferenceStats | None:
        return self._stats

