"""e-prop's input: the batch's events (``Batch.events``), densified one block of ``chunk`` steps
at a time into a reused buffer, so no (B, T, n_in) array exists."""

from __future__ import annotations

import torch

from methods.api import Batch
from methods.torch_common import sorted_events


class EventInput:
    """A batch's input events, handed out as dense (B, n, n_in) blocks of steps t0 .. t0 + n - 1,
    written into one reused buffer (its dtype; valid until the next call)."""

    def __init__(self, batch: Batch, buffer: torch.Tensor):
        step, sample, unit, count = sorted_events(batch, "eprop")
        device = buffer.device
        self.step_cpu = torch.from_numpy(step)  # for the block bounds
        self.step, self.sample, self.unit = (torch.from_numpy(a).to(device)
                                             for a in (step, sample, unit))
        self.count = torch.from_numpy(count).to(device, buffer.dtype)
        self.shape = (batch.size, batch.n_steps, batch.n_in)
        self.buffer = buffer

    def block(self, t0: int, n: int) -> torch.Tensor:
        """Steps t0 .. t0 + n - 1 as a (B, n, n_in) view of the buffer."""
        lo, hi = torch.searchsorted(self.step_cpu, torch.tensor([t0, t0 + n])).tolist()
        out = self.buffer[:, :n]
        out.zero_()
        index = (self.sample[lo:hi], self.step[lo:hi] - t0, self.unit[lo:hi])
        out.index_put_(index, self.count[lo:hi], accumulate=True)
        return out


def input_block(x: torch.Tensor | EventInput, t0: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Steps t0 .. t0 + n - 1 of a dense (B, T, n_in) tensor or of an :class:`EventInput`, as
    ``dtype``."""
    if isinstance(x, EventInput):
        return x.block(t0, n).to(dtype)  # no copy when the buffer has that dtype
    return x[:, t0:t0 + n].to(dtype)
