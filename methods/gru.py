"""Non-spiking reference: a GRU (Cho et al. 2014) on the same binned dense input, Adam, cross-entropy.

What a plain recurrent network reaches on the data the spiking methods see (SHD's paper put an
LSTM beside its spiking networks, Cramer et al. 2020). The binned spike counts x_t (B, T, n_in)
feed ``layers`` GRU layers of ``hidden`` units; a linear readout of every step's hidden state is
averaged over the T steps into the class scores, trained with softmax cross-entropy. Memory:
autograd keeps every step's gates, O(T B hidden).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from methods.api import (BaseHparams, Batch, DatasetSpec, InputError, Method, check_loss)
from methods.torch_common import TorchModuleState, dense_input, seed_torch, torch_device


@dataclass
class GruHparams(BaseHparams):
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0  # between GRU layers (layers > 1)

    def validate(self) -> None:
        for key in ("hidden", "layers", "steps", "batch_size"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be at least 1, got {getattr(self, key)}")
        if not (self.lr > 0 and self.dt_ms > 0):
            raise InputError("lr and dt_ms must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be within [0, 1), got {self.dropout}")
        if self.epochs is not None and self.epochs < 1:
            raise InputError(f"epochs must be at least 1, got {self.epochs}")


class GruNetwork(torch.nn.Module):
    def __init__(self, n_in: int, n_classes: int, hp: GruHparams):
        super().__init__()
        self.gru = torch.nn.GRU(n_in, hp.hidden, num_layers=hp.layers, batch_first=True,
                                dropout=hp.dropout if hp.layers > 1 else 0.0)
        self.readout = torch.nn.Linear(hp.hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, n_in) -> class scores (B, C), the readout averaged over time."""
        states, _ = self.gru(x)
        return self.readout(states).mean(dim=1)


class Gru(TorchModuleState, Method):
    name = "gru"
    framework = "torch"
    Hparams = GruHparams
    input_format = "dense"

    def setup(self, spec: DatasetSpec, hparams: GruHparams, seed: int, device: str) -> None:
        seed_torch(seed)
        self.spec, self.hp, self.device = spec, hparams, torch_device(device)
        self.net = GruNetwork(spec.n_in, spec.n_classes, hparams).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=hparams.lr)

    def train_step(self, batch: Batch) -> dict[str, float]:
        self.net.train()
        labels = torch.from_numpy(batch.y).to(self.device)
        scores = self.net(dense_input(batch, self.device))
        loss = torch.nn.functional.cross_entropy(scores, labels)
        value = float(loss.detach())
        check_loss(value)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": value, "correct": int((scores.argmax(dim=1) == labels).sum())}

    @torch.no_grad()
    def predict(self, batch: Batch) -> np.ndarray:
        self.net.eval()
        return self.net(dense_input(batch, self.device)).float().cpu().numpy()

