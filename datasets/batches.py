"""Minibatches of a :class:`datasets.spikes.SpikeDataset`: drawn in order or shuffled, binned
from the split's precomputed bins (or from raw spikes after a transform), dense or as events, and
written into one reusable buffer when asked, so that a training loop allocates nothing per batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np

from . import binning
from .h5 import RawSplit
from .paths import SPLITS
from .types import Batch, InputError

FORMATS = ("dense", "events")

# transform(times, units, offsets, labels, rng) -> (times, units, offsets, labels, n_in)
Transform = Callable[..., tuple]


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def subset(raw: RawSplit, idx: np.ndarray) -> RawSplit:
    """The samples ``idx`` of a split, as a new split (vectorised gather)."""
    pos, offsets = binning.gather(raw.offsets, idx)
    return RawSplit(
        times=raw.times[pos].copy() if isinstance(pos, slice) else raw.times[pos],
        units=raw.units[pos].copy() if isinstance(pos, slice) else raw.units[pos],
        offsets=offsets,
        labels=raw.labels[idx],
        speakers=None if raw.speakers is None else raw.speakers[idx],
        keys=raw.keys,
        path=raw.path,
        extras=raw.extras,
    )


class BatchMaker:
    """The batch-making half of a dataset. Needs ``_split(split)`` (a RawSplit), ``binned(split)``,
    ``n_steps``, ``dt_ms`` and ``n_in`` from the class it is mixed into."""

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        fmt: str = "dense",
        shuffle: bool = False,
        seed: int | None = None,
        transform: Transform | None = None,
        drop_last: bool = False,
        reuse_buffer: bool = False,
    ) -> Iterator[Batch]:
        """Minibatches of ``split`` in order, or in the permutation ``default_rng(seed)`` draws.

        ``fmt="dense"`` fills ``Batch.x`` (B, T, n_in) uint8 counts; ``fmt="events"`` fills
        ``Batch.events``. ``transform(times, units, offsets, labels, rng)`` receives copies of the
        batch's raw spikes (seconds, CSR) and the generator, and returns them changed together
        with the number of input units, before binning. With ``reuse_buffer`` every dense batch
        is written into one buffer kept by the dataset (see :meth:`prepare`): a batch's ``x`` is
        then valid only until the next batch is drawn.
        """
        raw = self._split(split)
        batch_size = _check_positive_int("batch_size", batch_size)
        if fmt not in FORMATS:
            raise InputError(f"unknown input format {fmt!r}; known: {', '.join(FORMATS)}")
        rng = np.random.default_rng(seed)
        order = rng.permutation(raw.n_samples) if shuffle else np.arange(raw.n_samples)
        binned = self.binned(split) if transform is None else None
        return self._iterate(raw, order, batch_size, fmt, transform, drop_last, rng, binned,
                             reuse_buffer)

    def prepare(self, batch_size: int, fmt: str, transform: Transform | None = None) -> None:
        """Do every piece of data preparation a training loop would otherwise do on the way:
        bin all splits, allocate and touch the reusable dense buffer, and draw one batch (so the
        allocator holds what a batch needs). A memory gauge armed after this call sees only what
        the method itself allocates."""
        for split in SPLITS:
            self.binned(split)
        for split in ("train", "valid"):
            batches = self.batches(split, batch_size, fmt=fmt, transform=transform, reuse_buffer=True)
            if fmt == "dense" and transform is None:
                batches = itertools.islice(batches, 1)  # the buffer is the one large allocation
            # event batches: let the allocator reach its steady state, a training loop's
            # (which holds one batch while the next is built)
            for _ in batches:
                pass

    def _dense_buffer(self, batch: int, n_in: int) -> np.ndarray:
        size = batch * self.n_steps * n_in
        buffer = getattr(self, "_buffer", None)
        if buffer is None or buffer.shape[0] < size:
            buffer = np.zeros(size, dtype=np.uint8)
            self._buffer = buffer
        return buffer

    def _iterate(self, raw, order, batch_size, fmt, transform, drop_last, rng, binned, reuse):
        n = order.shape[0]
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if drop_last and idx.shape[0] < batch_size:
                return
            if transform is not None:
                yield self._transformed(raw, idx, fmt, transform, rng, reuse)
                continue
            y = raw.labels[idx].astype(np.int64)
            if fmt == "dense":
                out = self._dense_buffer(batch_size, self.n_in) if reuse else None
                x = binning.dense_batch(binned, idx, out)
                yield Batch(y=y, n_steps=self.n_steps, n_in=self.n_in, x=x)
            else:
                yield Batch(y=y, n_steps=self.n_steps, n_in=self.n_in, events=binning.events_batch(binned, idx))

    def _transformed(self, raw: RawSplit, idx, fmt, transform, rng, reuse: bool = False) -> Batch:
        part = subset(raw, idx)
        out = transform(part.times, part.units, part.offsets, part.labels.astype(np.int64), rng)
        try:
            times, units, offsets, labels, n_in = out
        except (TypeError, ValueError):
            raise ValueError(
                "transform must return (times, units, offsets, labels, n_in)"
            ) from None
        times = np.asarray(times, dtype=np.float32)
        units = np.asarray(units)
        offsets = np.asarray(offsets, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        n_in = int(n_in)
        if (
            times.shape != units.shape
            or offsets.ndim != 1
            or offsets.shape[0] != labels.shape[0] + 1
            or offsets[0] != 0
            or offsets[-1] != times.shape[0]
        ):
            raise ValueError("transform returned inconsistent times/units/offsets/labels")
        if units.size and (int(units.min()) < 0 or int(units.max()) >= n_in):
            raise ValueError(f"transform returned a unit outside 0..{n_in - 1}")
        out = self._dense_buffer(labels.shape[0], n_in) if reuse and fmt == "dense" else None
        binned = binning.bin_batch(times, units, offsets, self.n_steps, self.dt_ms, n_in, fmt, out)
        if fmt == "dense":
            return Batch(y=labels, n_steps=self.n_steps, n_in=n_in, x=binned)
        return Batch(y=labels, n_steps=self.n_steps, n_in=n_in, events=binned)
